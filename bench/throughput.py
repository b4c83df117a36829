"""Section 2: throughput of trivial skill calls through Yard with the warm pool
(pool_size = concurrency), at several concurrencies. After each level the yard is closed
and the ledger read back: every call made (warm-up included) must have its row and its
count ("lost rows" otherwise)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .common import Ledger, pct, quiet_logs, r1, say, settings, wait_no_containers, write_trivial_skill

SKILL = "bench-echo"


def hammer(
    yard, *, calls: int, concurrency: int, label: str, on_call: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """`calls` calls of the trivial skill from `concurrency` threads. Errors are counted by kind."""
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    done = [0]
    step = max(10, calls // 10)

    def one(_: int) -> None:
        t0 = time.perf_counter()
        try:
            r = yard.run(SKILL, {})
            kind = None if r.ok and r.output == {"ok": 1} else (r.error.kind if r.error else "wrong_output")
            msg = "" if kind is None else (r.error.message if r.error else repr(r.output))
        except Exception as exc:  # noqa: BLE001 - a raised exception is an error of its own kind
            kind, msg = f"raised:{type(exc).__name__}", str(exc)
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)
            if kind is not None:
                kinds[kind] += 1
                if len(samples) < 5:
                    samples.append(f"{kind}: {msg[:300]}")
            done[0] += 1
            n = done[0]
        if n % step == 0 or n == calls:
            say(f"  {label}: {n}/{calls} calls")
        if on_call:
            on_call(n)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-call") as ex:
        list(ex.map(one, range(calls)))
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in latencies]
    return {
        "calls": calls,
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "calls_per_s": round(calls / wall, 2) if wall else None,
        "p50_ms": r1(pct(ms, 50)),
        "p95_ms": r1(pct(ms, 95)),
        "p99_ms": r1(pct(ms, 99)),
        "max_ms": r1(max(ms) if ms else None),
        "errors": sum(kinds.values()),
        "errors_by_kind": dict(kinds),
        "error_samples": samples,
    }


def register_trivial(client, runner: str, ledger: Ledger, home: Path, src: Path) -> None:
    from runtime.yard import Yard

    folder = write_trivial_skill(src, name=SKILL)
    ledger.add_folders([folder])
    y = Yard(settings(home, runner_image=runner), pool=False)
    try:
        outcome = y.add(folder)
    finally:
        y.close()
    if outcome.status not in ("registered", "unchanged"):
        raise RuntimeError(f"{SKILL} was not registered: {outcome.status} {outcome.reasons}")


def ledger_check(home: Path, expected: int) -> dict[str, Any]:
    """What a fresh process finds in the store of `home` for the trivial skill: its ledger rows
    (each once) and its call counter, against the calls made. Read after the yard closed."""
    from runtime.ledger import Ledger as SkillLedger
    from runtime.registry import Registry

    ledger, registry = SkillLedger(home / "store"), Registry(home / "store", embedder=None)
    try:
        ids = [r["id"] for r in ledger.uses(SKILL)]
        counted = sum(v.calls for v in registry.versions(SKILL))
    finally:
        ledger.close()
        registry.close()
    return {
        "calls_made": expected,
        "ledger_rows": len(ids),
        "duplicate_rows": len(ids) - len(set(ids)),
        "counted": counted,
        "lost_rows": max(0, expected - len(set(ids))),
    }


def warm_up(yard, concurrency: int) -> None:
    """`concurrency` calls at once, so the pool holds that many warm containers before timing."""
    with ThreadPoolExecutor(max_workers=concurrency) as ex:
        list(ex.map(lambda _: yard.run(SKILL, {}), range(concurrency)))
    deadline = time.monotonic() + 30  # background refills, if any
    while time.monotonic() < deadline:
        stats = yard.call_sandbox.backend.stats()
        if sum(stats["idle"].values()) >= concurrency:
            break
        time.sleep(0.2)


def run(client, runner: str, ledger: Ledger, *, levels: dict[int, int]) -> dict[str, Any]:
    """`levels`: concurrency -> calls timed at it."""
    from runtime.yard import Yard

    quiet_logs()
    out: dict[str, Any] = {"levels": {}}
    made = 0
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-tp-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SKILLYARD_HOME"] = str(home)
        say("throughput: registering the trivial skill")
        register_trivial(client, runner, ledger, home, Path(tmp) / "src")
        for c, calls in levels.items():
            say(f"throughput: concurrency {c}, pool_size {c}, {calls} calls (after {c} warm-up calls)")
            yard = Yard(settings(home, runner_image=runner, pool_size=c), pool=True)
            try:
                warm_up(yard, c)
                res = hammer(yard, calls=calls, concurrency=c, label=f"c={c}")
                res["pool_after"] = yard.call_sandbox.backend.stats()
            finally:
                yard.close()
            made += c + calls
            left = wait_no_containers(client, ledger.run_id)
            res["leftover_containers"] = len(left)
            res["ledger"] = ledger_check(home, made)
            out["levels"][str(c)] = res
        os.environ.pop("SKILLYARD_HOME", None)
    return out
