"""Optional (`bench/run.py --profile`): where a cold and a warm skill call spend their time.

pyinstrument samples the calling process (the host side: docker API round trips, LanceDB
writes, JSON, schema checks); time spent waiting on the engine shows up as socket reads.
Text reports go to bench/results/profile-{cold,warm}.txt.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .common import Ledger, quiet_logs, say, settings
from .throughput import SKILL, register_trivial

RESULTS = Path(__file__).resolve().parent / "results"


def run(client, runner: str, ledger: Ledger, *, calls: int = 10) -> dict[str, Any]:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return {"skipped": "pyinstrument is not installed (pip install -r bench/requirements.txt)"}
    from runtime.yard import Yard

    quiet_logs()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="skillyard-bench-prof-") as tmp:
        home = Path(tmp) / "home"
        os.environ["SKILLYARD_HOME"] = str(home)
        register_trivial(client, runner, ledger, home, Path(tmp) / "src")
        for mode in ("cold", "warm"):
            yard = Yard(settings(home, runner_image=runner, pool_size=1), pool=(mode == "warm"))
            try:
                for _ in range(2):
                    yard.run(SKILL, {})  # warm-up: package cache, image check, pool container
                say(f"profile: {calls} {mode} calls under pyinstrument")
                prof = Profiler(interval=0.0005, async_mode="disabled")
                prof.start()
                for _ in range(calls):
                    yard.run(SKILL, {})
                prof.stop()
            finally:
                yard.close()
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"profile-{mode}.txt"
            path.write_text(prof.output_text(unicode=False, color=False, show_all=False))
            out[mode] = {"report": str(path.relative_to(RESULTS.parent.parent)), "calls": calls}
        os.environ.pop("SKILLYARD_HOME", None)
    return out
