"""Serving under attack, measured: what a refused run costs the server, what a flood of one
tenant's refusals does to another tenant's latency, and what an audit query costs as a
tenant's history grows.

The server is the HTTP API in a subprocess (bench/serving_server.py) whose skills are host
functions, so the figures are the serving layer's own. Tenant `flood` holds its one run
slot; its further runs are refused (429). Per round, interleaved across the trees measured:

  quiet   `calm` makes N sequential runs of `echo`: its p50 and the server's CPU per run;
  refuse  `flood` alone sends refused runs from 4 connections for a few seconds: server CPU
          per refusal, and the audit lines written per refusal;
  flood   both at once: `calm`'s p50 while `flood` is refused.

Ratios (same run): CPU per refusal / CPU per run; calm's p50 under the flood / quiet.
`--baseline-tree DIR` measures another source tree (e.g. `git archive <commit> runtime sandbox
| tar -x -C DIR`) the same way, interleaved round by round. Nothing is asserted.

  .venv/bin/python bench/serving.py [--rounds 5] [--baseline-tree DIR] [--no-markdown]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/serving.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from .common import ROOT, machine_info, pct, ratio, say

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Server:
    """bench/serving_server.py in a subprocess, importing `tree`'s runtime (None: this tree's)."""

    def __init__(self, label: str, tree: Path | None, tmp: Path) -> None:
        self.label = label
        self.home = tmp / label
        self.home.mkdir(parents=True)
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = f"{tree}{os.pathsep}{env.get('PYTHONPATH', '')}"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serving_server.py"), str(self.home), str(self.port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = ""
        while self.proc.stdout is not None and not line.startswith('{"keys"'):
            line = self.proc.stdout.readline()  # (log lines may come first)
            if not line:
                raise SystemExit(f"the {label} server did not start (exit {self.proc.poll()})")
        self.keys = json.loads(line)["keys"]
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # never block its writes
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.request("GET", "/healthz", None)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the {label} server does not answer")
            time.sleep(0.1)
        status, _ = self.request("POST", "/v1/skills/hold/run", "flood", {"input": {}, "async": True})
        if status != 202:
            raise SystemExit(f"{label}: could not hold flood's run slot ({status})")
        time.sleep(0.3)
        if self.request("POST", "/v1/skills/echo/run", "flood", {"input": {}})[0] != 429:
            raise SystemExit(f"{label}: flood's runs are not refused")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(
        self, method: str, path: str, tenant: str | None, body: Any = None, conn: Any = None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        if tenant:
            headers["Authorization"] = f"Bearer {self.keys[tenant]}"
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            if own:
                conn.close()

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def audit_lines(self) -> int:
        return sum(
            len(p.read_bytes().splitlines())
            for p in self.home.rglob("*")
            if p.is_file() and "audit" in p.name
        )

    def stop(self) -> None:
        (self.home / "release").write_text("")
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def calm_runs(server: Server, n: int) -> list[float]:
    conn = server.connection()
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            status, _ = server.request("POST", "/v1/skills/echo/run", "calm", {"input": {"x": 1}}, conn)
            out.append(time.perf_counter() - t0)
            if status != 200:
                raise SystemExit(f"{server.label}: calm's run answered {status}")
    finally:
        conn.close()
    return out


class Flood:
    """`threads` connections sending flood's refused runs until stopped; counts the 429s."""

    def __init__(self, server: Server, threads: int = 4) -> None:
        self.server, self.refused, self.other = server, 0, 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def _loop(self) -> None:
        conn = self.server.connection()
        try:
            while not self._stop.is_set():
                status, _ = self.server.request("POST", "/v1/skills/echo/run", "flood", {"input": {}}, conn)
                with self._lock:
                    if status == 429:
                        self.refused += 1
                    else:
                        self.other += 1
        finally:
            conn.close()

    def __enter__(self) -> Flood:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def one_round(server: Server, n: int, refuse_s: float) -> dict[str, Any]:
    cpu0 = server.cpu()
    quiet = calm_runs(server, n)
    cpu_run = (server.cpu() - cpu0) / n
    time.sleep(0.2)
    lines0, cpu0 = server.audit_lines(), server.cpu()
    with Flood(server) as flood:
        time.sleep(refuse_s)
    cpu_refusal = (server.cpu() - cpu0) / max(1, flood.refused)
    time.sleep(0.5)
    lines = server.audit_lines() - lines0
    refused = flood.refused
    with Flood(server) as flood:
        time.sleep(0.3)
        loud = calm_runs(server, n)
    return {
        "quiet": quiet,
        "loud": loud,
        "cpu_run_ms": cpu_run * 1000,
        "cpu_refusal_ms": cpu_refusal * 1000,
        "refusals": refused,
        "audit_lines_per_refusal": lines / max(1, refused),
    }


AUDIT_SCRIPT = """
import json, sys, tempfile, time
from runtime.audit import AuditLog
n = int(sys.argv[1])
with tempfile.TemporaryDirectory() as home:
    log = AuditLog(home)
    for i in range(n):
        log.record("call", tenant="t" if i % 4 == 0 else f"o{i % 7}", skill="echo", outcome="ok", n=i)
    times = []
    for _ in range(25):
        t0 = time.perf_counter()
        got = log.query(tenant="t", limit=200)
        times.append(time.perf_counter() - t0)
    assert len(got) == min(200, (n + 3) // 4), len(got)
    print(json.dumps(sorted(times)[len(times) // 2]))
"""


def audit_query_ms(tree: Path | None, lines: int) -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = f"{tree}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = subprocess.run(
        [sys.executable, "-c", AUDIT_SCRIPT, str(lines)], env=env, capture_output=True, text=True, timeout=900
    )
    if out.returncode != 0:
        raise SystemExit(f"audit query bench failed: {out.stderr[-500:]}")
    return json.loads(out.stdout) * 1000


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        prog="bench/serving.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40, help="calm's sequential runs per phase")
    ap.add_argument("--refuse-seconds", type=float, default=3.0)
    ap.add_argument("--baseline-tree", type=Path, default=None, help="another source tree to measure alike")
    ap.add_argument("--audit-lines", type=int, nargs=2, default=[1000, 40000], metavar=("SMALL", "BIG"))
    ap.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    ap.add_argument("--no-markdown", action="store_true")
    a = ap.parse_args(argv)
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    if a.baseline_tree is not None:
        trees.append(("baseline", a.baseline_tree.resolve()))
    info = machine_info(None)
    results: dict[str, Any] = {"machine": info, "trees": {}}
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-serving-") as tmp:
        servers = [Server(f"s{i}", tree, Path(tmp)) for i, (_, tree) in enumerate(trees)]
        rounds: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
        try:
            for r in range(a.rounds):
                for (label, _), server in zip(trees, servers, strict=True):
                    say(f"round {r + 1}/{a.rounds}: {label}")
                    rounds[label].append(one_round(server, a.runs, a.refuse_seconds))
        finally:
            for server in servers:
                server.stop()
    for label, tree in trees:
        rs = rounds[label]
        quiet = [x for r in rs for x in r["quiet"]]
        loud = [x for r in rs for x in r["loud"]]
        cpu_refusal = pct([r["cpu_refusal_ms"] for r in rs], 50)
        cpu_run = pct([r["cpu_run_ms"] for r in rs], 50)
        say(f"{label}: audit query cost at {a.audit_lines[0]} and {a.audit_lines[1]} lines")
        small, big = (audit_query_ms(tree, n) for n in a.audit_lines)
        results["trees"][label] = {
            "calm_p50_quiet_ms": round(pct(quiet, 50) * 1000, 2),
            "calm_p50_flood_ms": round(pct(loud, 50) * 1000, 2),
            "calm_p95_flood_ms": round(pct(loud, 95) * 1000, 2),
            "flood_over_quiet_p50": ratio(pct(loud, 50), pct(quiet, 50)),
            "server_cpu_per_refusal_ms": round(cpu_refusal, 3),
            "server_cpu_per_run_ms": round(cpu_run, 3),
            "refusal_over_run_cpu": ratio(cpu_refusal, cpu_run),
            "refusals_per_second": round(pct([r["refusals"] for r in rs], 50) / a.refuse_seconds, 1),
            "audit_lines_per_refusal": round(pct([r["audit_lines_per_refusal"] for r in rs], 50), 4),
            "audit_query_ms": {str(a.audit_lines[0]): round(small, 2), str(a.audit_lines[1]): round(big, 2)},
            "audit_query_big_over_small": ratio(big, small),
        }
    print(json.dumps(results, indent=2))
    if not a.no_markdown:
        append_markdown(a.markdown, results, a)
    return results


def append_markdown(path: Path, results: dict[str, Any], a: argparse.Namespace) -> None:
    m = results["machine"]
    labels = list(results["trees"])
    rows = [
        ("calm's run p50, quiet (ms)", "calm_p50_quiet_ms"),
        ("calm's run p50, while flood is refused (ms)", "calm_p50_flood_ms"),
        ("calm's run p95, while flood is refused (ms)", "calm_p95_flood_ms"),
        ("ratio: p50 under the flood / quiet", "flood_over_quiet_p50"),
        ("server CPU per refused run (ms)", "server_cpu_per_refusal_ms"),
        ("server CPU per run of echo (ms)", "server_cpu_per_run_ms"),
        ("ratio: CPU per refusal / per run", "refusal_over_run_cpu"),
        ("refusals served per second (4 connections)", "refusals_per_second"),
        ("audit lines written per refusal", "audit_lines_per_refusal"),
        ("ratio: audit query at the big / small history", "audit_query_big_over_small"),
    ]
    lines = [
        "",
        f"## Serving under attack: {m['date']} ({m['skillyard_commit']})",
        "",
        f"`bench/serving.py` (--rounds {a.rounds} --runs {a.runs} --refuse-seconds {a.refuse_seconds}"
        + (" --baseline-tree ..." if a.baseline_tree else "")
        + f"). {m['cpu_model']}, {m['cores']} cores, {m['memory']}, Python {m['python']}, "
        f"load average at start {m['loadavg_at_start']}. Interleaved rounds; skills are host functions.",
        "",
        "| figure | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for title, key in rows:
        lines.append(f"| {title} | " + " | ".join(str(results["trees"][t][key]) for t in labels) + " |")
    for t in labels:
        q = results["trees"][t]["audit_query_ms"]
        lines.append(
            f"| audit query, limit 200 ({t}): ms at "
            + ", ".join(f"{k} lines: {v}" for k, v in q.items())
            + " | "
            + " | " * (len(labels) - 1)
        )
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
