"""Section `load`: many calls of a trivial skill at concurrency 16 through Yard with the warm
pool (pool_size 16). Checks: every error is counted by kind, no container is left after
close, every call has its ledger row, the runtime's RSS (sampled every second) stays flat
(the end within 10% of the value after the first 1,000 calls), and -- bench/durability.py --
a serving process SIGKILLed at a random point loses no acknowledged call's row.

Standalone:  .venv/bin/python bench/load.py [--calls 10000] [--concurrency 16]
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from . import durability
from .common import Ledger, quiet_logs, say, settings, wait_no_containers
from .throughput import hammer, ledger_check, register_trivial, warm_up


def rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples this process's RSS every `interval` seconds, tagged with the calls done so far."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (t, calls done, rss)
        self.calls = 0
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-rss")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(time.monotonic() - self._t0, 2), self.calls, rss_bytes()))
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((round(time.monotonic() - self._t0, 2), self.calls, rss_bytes()))


def run(
    client,
    runner: str,
    ledger: Ledger,
    *,
    calls: int = 10_000,
    concurrency: int = 16,
    baseline_after: int = 1000,
    flat_tolerance: float = 0.10,
    sigkill: bool = True,
) -> dict[str, Any]:
    from runtime.yard import Yard

    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-load-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SKILLYARD_HOME"] = str(home)
        say(f"load: registering the trivial skill; then {calls} calls at concurrency {concurrency}")
        register_trivial(client, runner, ledger, home, Path(tmp) / "src")
        yard = Yard(settings(home, runner_image=runner, pool_size=concurrency), pool=True)
        rss_start = rss_bytes()
        sampler = RssSampler().start()
        try:
            warm_up(yard, concurrency)

            def on_call(n: int) -> None:
                sampler.calls = n

            res = hammer(yard, calls=calls, concurrency=concurrency, label="load", on_call=on_call)
        finally:
            yard.close()
            sampler.stop()
        left = wait_no_containers(client, ledger.run_id)
        res["ledger"] = ledger_check(home, calls + concurrency)
        if sigkill:
            say(f"load: durability: a serving child process at concurrency {concurrency}, then SIGKILL")
            res["durability"] = durability.run(client, runner, home, concurrency=concurrency)
        os.environ.pop("SKILLYARD_HOME", None)
    samples = sampler.samples
    rss = [s[2] for s in samples]
    after_base = [s[2] for s in samples if s[1] >= min(baseline_after, calls)]
    baseline = after_base[0] if after_base else (rss[0] if rss else 0)
    end = rss[-1] if rss else 0
    flat = bool(baseline) and abs(end - baseline) <= flat_tolerance * baseline
    res.update(
        {
            "leftover_containers": len(left),
            "rss_start_mib": mib(rss_start),
            f"rss_after_first_{min(baseline_after, calls)}_mib": mib(baseline),
            "rss_peak_mib": mib(max(rss) if rss else 0),
            "rss_end_mib": mib(end),
            "rss_flat": flat,
            "rss_growth_pct": round(100 * (end - baseline) / baseline, 1) if baseline else None,
            "rss_samples": [(t, n, mib(b)) for t, n, b in samples],
            "rss_source": "psutil" if _has_psutil() else "/proc/self/status VmRSS",
        }
    )
    return res


def _has_psutil() -> bool:
    import importlib.util

    return importlib.util.find_spec("psutil") is not None


def mib(n: int) -> float:
    """Bytes as MiB, one decimal."""
    return round(n / 1024**2, 1)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import secrets

    from .common import docker_client, runner_image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--keep-images", action="store_true")
    a = ap.parse_args(argv)
    client = docker_client()
    ledger = Ledger(run_id=secrets.token_hex(6))
    ledger.snapshot(client)
    try:
        res = run(client, runner_image(client), ledger, calls=a.calls, concurrency=a.concurrency)
    finally:
        if not a.keep_images:
            from .common import remove_images

            remove_images(client, ledger.images(client))
    res.pop("rss_samples")
    print(json.dumps(res, indent=2))
    ok = (
        res["errors"] == 0
        and res["leftover_containers"] == 0
        and res["rss_flat"]
        and res["ledger"]["lost_rows"] == 0
        and res.get("durability", {}).get("acknowledged_without_row") == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
