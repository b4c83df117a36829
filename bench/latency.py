"""Section 1: latency of a trivial `print(1)` on every path (ours and the peers'), and of a
trivial skill call through Yard.run, cold (one-shot containers) and warm (the pool): back to
back, and 2 s after the previous call."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import peers as peer_paths
from .common import BENCH_LABEL, Ledger, quiet_logs, ratio, say, settings, summary_ms, write_trivial_skill

ARGV = ["python3", "-c", "print(1)"]


def host_python() -> str:
    """The host's real python3 binary: /usr/bin/python3 if present, else the resolved one."""
    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    found = shutil.which("python3") or sys.executable
    return os.path.realpath(found)


def _rounds(paths: list[tuple[str, str, Any, Any]], n: int) -> dict[str, list[float]]:
    """Time every path once per round, for `n` rounds, after one untimed warm-up round.

    Interleaved rather than one block per path: this machine's speed drifts by tens of
    percent within a minute (shared cores), and a block would give a ratio the drift
    made. Each path is (key, label, call, before): `before` runs untimed just ahead of
    the call (a back-to-back predecessor, or a pause). Every path starts after SETTLE_S
    of quiet, so the engine's work left over from the path before (removing a container
    runs on after `docker run --rm` returns) is not billed to it.
    """
    times: dict[str, list[float]] = {key: [] for key, _, _, _ in paths}
    for i in range(n + 1):
        for key, _, call, before in paths:
            time.sleep(SETTLE_S)
            if before is not None:
                before()
            t0 = time.perf_counter()
            call()
            if i:  # round 0 warms every path up
                times[key].append(time.perf_counter() - t0)
        if i and (i % 10 == 0 or i == n):
            say(f"  latency: round {i}/{n} ({len(paths)} paths each)")
    return times


def run(client, runner: str, ledger: Ledger, *, n: int) -> dict[str, Any]:
    from sandbox import Limits, RunSpec, Sandbox
    from sandbox.docker_backend import DockerBackend
    from sandbox.pool import WarmPool

    quiet_logs()
    errors: dict[str, int] = {}

    def check(name: str, ok: bool) -> None:
        if not ok:
            errors[name] = errors.get(name, 0) + 1

    # host python: the plain system interpreter, not a version-manager shim (pyenv's `python3` is a
    # shell script that doubles the time and would make the ratio targets easy to meet).
    host_py = host_python()

    def host() -> None:
        p = subprocess.run([host_py, "-c", "print(1)"], capture_output=True)
        check("host_python", p.returncode == 0 and p.stdout == b"1\n")

    def cli() -> None:
        p = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "--label",
                f"{BENCH_LABEL}={ledger.run_id}",
                runner,
                *ARGV,
            ],
            capture_output=True,
        )
        check("docker_cli", p.returncode == 0 and p.stdout == b"1\n")

    def sdk() -> None:
        out = client.containers.run(
            runner, ARGV, remove=True, network_mode="none", labels={BENCH_LABEL: ledger.run_id}
        )
        check("docker_sdk", out == b"1\n")

    # skillyard cold: a fresh hardened container per run, default Limits, with a spare created
    # ahead (never started before its run), as a strict-isolation server's yard makes its calls
    cold_sb = Sandbox(DockerBackend(spares=True))

    def cold() -> None:
        r = cold_sb.run(ARGV, image=runner, owner="bench")
        check("skillyard_cold", r.ok and r.stdout == b"1\n")

    # skillyard warm: a WarmPool of size 1, prewarmed
    pool = WarmPool(DockerBackend(), size=1)
    warm_sb = Sandbox(pool)

    def warm() -> None:
        r = warm_sb.run(ARGV, image=runner, owner="bench")
        check("skillyard_warm", r.ok and r.stdout == b"1\n")

    paths = [
        ("host_python", f"host {host_py} -c 'print(1)'", host, None),
        ("docker_cli", "docker run --rm --network none RUNNER python3 -c 'print(1)'", cli, None),
        ("docker_sdk", "docker SDK containers.run(remove=True)", sdk, None),
        ("skillyard_cold", "skillyard cold Sandbox(DockerBackend(spares=True)).run", cold, None),
        ("skillyard_warm", "skillyard warm WarmPool(size=1)", warm, None),
    ]
    peers: list[peer_paths.Peer] = []
    skipped: dict[str, str] = {}
    try:
        pool.prewarm(RunSpec(image=runner, argv=ARGV, limits=Limits(), owner="bench"))
        peers, skipped = peer_paths.start(runner)
        for peer in peers:
            paths.append((peer.key, peer.label, lambda peer=peer: check(peer.key, peer.call()), None))
        with _skill_calls(runner, ledger, check=check) as (skill_paths, first_call_ms):
            paths += skill_paths
            for _, label, _, _ in paths:
                say(f"latency: {label}")
            say(f"latency: {n} rounds, the paths interleaved")
            times = _rounds(paths, n)
    finally:
        pool.close()
        cold_sb.close()
        peers_left = peer_paths.stop(peers, client)
    rows = {key: summary_ms(times[key]) for key in times}
    rows["skill_call_warm"]["first_call_ms"] = first_call_ms
    host_p50, host_p95 = rows["host_python"]["p50_ms"], rows["host_python"]["p95_ms"]
    for row in rows.values():
        row["p50_x_host"] = ratio(row["p50_ms"], host_p50)
        row["p95_x_host"] = ratio(row["p95_ms"], host_p95)
    return {
        "n": n,
        "rows": rows,
        "labels": {key: label for key, label, _, _ in paths},
        "peers_skipped": skipped,
        "peer_containers_removed": peers_left,
        "pace_s": PACE_S,
        "errors": errors,
        "host_python": host_py,
        "runner_image": runner,
        "interleaved": True,
    }


PACE_S = 2.0  # an agent calls a skill, then thinks: the next call comes seconds later
SETTLE_S = 0.1


@contextmanager
def _skill_calls(
    runner: str, ledger: Ledger, *, check
) -> Iterator[tuple[list[tuple[str, str, Any, Any]], float]]:
    """The trivial skill bench-echo registered in a temp home; yields its latency paths
    (cold, warm back to back, warm after a pause) and the warm Yard's first call in ms."""
    from runtime.yard import Yard

    with tempfile.TemporaryDirectory(prefix="skillyard-bench-lat-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SKILLYARD_HOME"] = str(home)
        folder = write_trivial_skill(Path(tmp) / "src", name="bench-echo")
        # Cold calls in a long-lived process, as a strict-isolation server (pool_size 0) makes
        # them: accounting journaled and merged in batches, the record kept while the table stands.
        cold = Yard(settings(home, runner_image=runner), pool=False, long_lived=True)
        warm = Yard(settings(home, runner_image=runner, pool_size=1), pool=True)
        try:
            say("latency: registering the trivial skill bench-echo (gate)")
            ledger.add_folders([folder])
            outcome = cold.add(folder)
            if outcome.status not in ("registered", "unchanged"):
                raise RuntimeError(f"bench-echo was not registered: {outcome.status} {outcome.reasons}")

            def call_cold() -> None:
                r = cold.run("bench-echo", {})
                check("skill_cold", r.ok and r.output == {"ok": 1})

            def call_warm() -> None:
                r = warm.run("bench-echo", {})
                check("skill_warm", r.ok and r.output == {"ok": 1})

            t0 = time.perf_counter()
            call_warm()  # the first call starts the container (and loads the package)
            first_ms = round((time.perf_counter() - t0) * 1000, 1)
            yield (
                [
                    (
                        "skill_call_cold",
                        "skill call cold Yard(pool=False, long_lived=True).run",
                        call_cold,
                        None,
                    ),
                    # timed right after an untimed call: the next call's process is still starting
                    (
                        "skill_call_warm",
                        "skill call warm Yard(pool=True, pool_size=1).run, back to back",
                        call_warm,
                        call_warm,
                    ),
                    # An agent calls a skill, then thinks: the next call comes after a pause. Only the
                    # call is timed; the pause is longer than any cache of ours lasts on a timer.
                    (
                        "skill_call_warm_paced",
                        f"skill call warm, {PACE_S:g} s after the previous one",
                        call_warm,
                        lambda: time.sleep(PACE_S),
                    ),
                ],
                first_ms,
            )
        finally:
            warm.close()
            cold.close()
            os.environ.pop("SKILLYARD_HOME", None)
