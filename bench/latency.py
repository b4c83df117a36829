"""Section 1: latency of a trivial `print(1)` on every path, and of a trivial skill call
through Yard.run, cold (one-shot containers) and warm (the pool)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BENCH_LABEL, Ledger, quiet_logs, ratio, say, settings, summary_ms, write_trivial_skill

ARGV = ["python3", "-c", "print(1)"]


def host_python() -> str:
    """The host's real python3 binary: /usr/bin/python3 if present, else the resolved one."""
    import os

    if os.path.exists("/usr/bin/python3"):
        return "/usr/bin/python3"
    found = shutil.which("python3") or sys.executable
    return os.path.realpath(found)


def _time(fn, n: int, label: str, warmup: int = 1, pause: float = 0.0) -> list[float]:
    """Time n calls of fn; `pause` seconds pass (untimed) before each."""
    for _ in range(warmup):
        fn()
    out = []
    for i in range(n):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if (i + 1) % 10 == 0 or i + 1 == n:
            say(f"  {label}: {i + 1}/{n}")
    return out


def run(client, runner: str, ledger: Ledger, *, n: int) -> dict[str, Any]:
    from sandbox import Limits, RunSpec, Sandbox
    from sandbox.docker_backend import DockerBackend
    from sandbox.pool import WarmPool

    quiet_logs()
    rows: dict[str, dict[str, Any]] = {}

    errors: dict[str, int] = {}

    def check(name: str, ok: bool) -> None:
        if not ok:
            errors[name] = errors.get(name, 0) + 1

    # host python: the plain system interpreter, not a version-manager shim (pyenv's `python3` is a
    # shell script that doubles the time and would make the ratio targets easy to meet).
    host_py = host_python()
    say(f"latency: host {host_py} -c 'print(1)' x{n}")

    def host() -> None:
        p = subprocess.run([host_py, "-c", "print(1)"], capture_output=True)
        check("host_python", p.returncode == 0 and p.stdout == b"1\n")

    rows["host_python"] = summary_ms(_time(host, n, "host python"))

    # docker CLI
    say(f"latency: docker run --rm --network none RUNNER python3 -c 'print(1)' x{n}")

    def cli() -> None:
        p = subprocess.run(["docker", "run", "--rm", "--network", "none", "--label", f"{BENCH_LABEL}={ledger.run_id}",
                            runner, *ARGV], capture_output=True)
        check("docker_cli", p.returncode == 0 and p.stdout == b"1\n")

    rows["docker_cli"] = summary_ms(_time(cli, n, "docker CLI"))

    # docker SDK
    say(f"latency: docker SDK containers.run(remove=True) x{n}")

    def sdk() -> None:
        out = client.containers.run(runner, ARGV, remove=True, network_mode="none",
                                    labels={BENCH_LABEL: ledger.run_id})
        check("docker_sdk", out == b"1\n")

    rows["docker_sdk"] = summary_ms(_time(sdk, n, "docker SDK"))

    # skillyard cold: a fresh hardened container per run, default Limits
    say(f"latency: skillyard cold Sandbox(DockerBackend()).run x{n}")
    cold_sb = Sandbox(DockerBackend())

    def cold() -> None:
        r = cold_sb.run(ARGV, image=runner, owner="bench")
        check("skillyard_cold", r.ok and r.stdout == b"1\n")

    rows["skillyard_cold"] = summary_ms(_time(cold, n, "skillyard cold"))
    cold_sb.close()

    # skillyard warm: a WarmPool of size 1, prewarmed
    say(f"latency: skillyard warm WarmPool(size=1) x{n}")
    pool = WarmPool(DockerBackend(), size=1)
    try:
        pool.prewarm(RunSpec(image=runner, argv=ARGV, limits=Limits(), owner="bench"))
        warm_sb = Sandbox(pool)

        def warm() -> None:
            r = warm_sb.run(ARGV, image=runner, owner="bench")
            check("skillyard_warm", r.ok and r.stdout == b"1\n")

        rows["skillyard_warm"] = summary_ms(_time(warm, n, "skillyard warm"))
    finally:
        pool.close()

    # a trivial skill through Yard.run, cold and warm
    rows.update(_skill_calls(client, runner, ledger, n=n, check=check))

    host_p50, host_p95 = rows["host_python"]["p50_ms"], rows["host_python"]["p95_ms"]
    for row in rows.values():
        row["p50_x_host"] = ratio(row["p50_ms"], host_p50)
        row["p95_x_host"] = ratio(row["p95_ms"], host_p95)
    import shutil

    return {"n": n, "rows": rows, "errors": errors, "host_python": host_python(),
            "runner_image": runner}


PACE_S = 0.05


def _skill_calls(client, runner: str, ledger: Ledger, *, n: int, check) -> dict[str, dict[str, Any]]:
    from runtime.yard import Yard

    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-lat-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SKILLYARD_HOME"] = str(home)
        folder = write_trivial_skill(Path(tmp) / "src", name="bench-echo")
        cold = Yard(settings(home, runner_image=runner), pool=False)
        try:
            say("latency: registering the trivial skill bench-echo (gate)")
            ledger.add_folders([folder])
            outcome = cold.add(folder)
            if outcome.status not in ("registered", "unchanged"):
                raise RuntimeError(f"bench-echo was not registered: {outcome.status} {outcome.reasons}")

            def call_cold() -> None:
                r = cold.run("bench-echo", {})
                check("skill_cold", r.ok and r.output == {"ok": 1})

            say(f"latency: skill call cold Yard(pool=False).run x{n}")
            rows["skill_call_cold"] = summary_ms(_time(call_cold, n, "skill cold"))
        finally:
            cold.close()
        warm = Yard(settings(home, runner_image=runner, pool_size=1), pool=True)
        try:
            def call_warm() -> None:
                r = warm.run("bench-echo", {})
                check("skill_warm", r.ok and r.output == {"ok": 1})

            say(f"latency: skill call warm Yard(pool=True, pool_size=1).run x{n}")
            t0 = time.perf_counter()
            call_warm()  # the first call starts the container (and loads the package)
            first = time.perf_counter() - t0
            rows["skill_call_warm"] = summary_ms(_time(call_warm, n, "skill warm"))
            rows["skill_call_warm"]["first_call_ms"] = round(first * 1000, 1)
            # An agent calls a skill, then thinks: with a pause between calls the container has started the
            # next call's process before it is asked (RunSpec.prestart). Only the call is timed.
            say(f"latency: skill call warm, {PACE_S * 1000:.0f} ms between calls x{n}")
            rows["skill_call_warm_paced"] = summary_ms(_time(call_warm, n, "skill warm paced", pause=PACE_S))
        finally:
            warm.close()
        os.environ.pop("SKILLYARD_HOME", None)
    return rows
