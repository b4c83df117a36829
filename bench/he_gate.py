"""Section 5: gate HumanEval's 164 problems as skills, end to end (build + test + register),
with Yard.add_many(folders, workers=W)."""

from __future__ import annotations

import functools
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import humaneval
from .common import Ledger, quiet_logs, remove_images, say, settings


def _progress(workers: int, total: int, counter: Iterator[int], outcome: Any) -> None:
    """One gated skill of a run with `workers`: say so now and then, and for every failure."""
    done = next(counter)
    if outcome.status != "registered" or done % 10 == 0 or done == total:
        what = f"{outcome.name} {outcome.status} {outcome.duration_s:.1f}s"
        say(f"  humaneval W={workers}: {done}/{total} ({what})")


def run(
    client,
    runner: str,
    ledger: Ledger,
    *,
    limit: int | None,
    workers: tuple[int, ...],
    keep_images: bool = False,
) -> dict[str, Any]:
    from runtime.yard import Yard

    quiet_logs()
    out: dict[str, Any] = {
        "runs": {},
        "coverage_policy": "real: a second test calls run(); default 80% threshold",
    }
    for w in workers:
        with tempfile.TemporaryDirectory(prefix=f"skillyard-bench-he{w}-") as tmp:
            tmp_p = Path(tmp)
            # A nonce per run: every image is this run's own, so each W starts cold.
            folders = humaneval.write_all(tmp_p / "src", limit, nonce=f"he-{ledger.run_id}-w{w}")
            ledger.add_folders(folders)
            yard = Yard(settings(tmp_p / "home", runner_image=runner), pool=False)

            progress = functools.partial(_progress, w, len(folders), itertools.count(1))

            say(f"humaneval: gating {len(folders)} skills with workers={w}")
            t0 = time.perf_counter()
            try:
                outcomes = yard.add_many(folders, workers=w, on_result=progress)
            finally:
                wall = time.perf_counter() - t0
                yard.close()
                mine = ledger.images(client, names={f.name for f in folders})
            statuses: dict[str, int] = {}
            for o in outcomes:
                statuses[o.status] = statuses.get(o.status, 0) + 1
            not_ok = [
                {
                    "name": o.name,
                    "status": o.status,
                    "reasons": o.reasons[:3],
                    "coverage": o.report.coverage if o.report else None,
                }
                for o in outcomes
                if o.status != "registered"
            ]
            durations = sorted(o.duration_s for o in outcomes)
            res = {
                "skills": len(outcomes),
                "workers": w,
                "wall_s": round(wall, 1),
                "skills_per_min": round(60 * len(outcomes) / wall, 1) if wall else None,
                "registered": statuses.get("registered", 0),
                "blocked": statuses.get("blocked", 0),
                "rejected": statuses.get("rejected", 0),
                "statuses": statuses,
                "not_registered": not_ok,
                "per_skill_p50_s": round(durations[len(durations) // 2], 2) if durations else None,
                "per_skill_max_s": round(durations[-1], 2) if durations else None,
                "images_built": len(mine),
                "extrapolated_164_s": round(wall * 164 / len(outcomes), 1) if outcomes else None,
            }
            out["runs"][str(w)] = res
            if not keep_images:
                removed, failed = remove_images(client, mine)
                res["images_removed"] = len(removed)
                if failed:
                    ledger.notes.append(f"humaneval: {len(failed)} images not removed: {failed[:3]}")
    return out
