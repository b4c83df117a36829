"""The load section's durability check: a long-lived pooled yard, as the servers run it, in a
child process, called from `concurrency` threads and SIGKILLed at a random point. The next yard
of the same home then replays the journal the child left (what a restarted server does first),
and every call the child acknowledged -- its result returned to the caller -- must have its
ledger row, once, with the counters agreeing.

The child learns each call's ledger row id from the thread's last `Writer.record` (this check's
own instrumentation) and prints it after `Yard.run` has returned.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from .common import ROOT, WHEELHOUSE, say
from .throughput import SKILL

CHILD = textwrap.dedent("""
    import sys, threading
    from pathlib import Path

    from runtime import accounting, logs
    from runtime.config import Settings
    from runtime.yard import Yard

    home, wheelhouse, runner, skill, concurrency = sys.argv[1:6]
    logs.configure("WARNING")
    config = Settings(home=Path(home), wheelhouse=Path(wheelhouse), runner_image=runner)
    yard = Yard(config.model_copy(update={"pool_size": int(concurrency)}), pool=True)
    last = threading.local()
    record = accounting.Writer.record

    def recording(self, use):
        record(self, use)
        last.use_id = use.id

    accounting.Writer.record = recording
    out = threading.Lock()

    def caller():
        while True:
            result = yard.run(skill, {})
            with out:
                # One write: a line of another thread can never land inside an ack.
                sys.stdout.write(f"ack {last.use_id if result.ok else '-'}\\n")
                sys.stdout.flush()

    for _ in range(int(concurrency)):
        threading.Thread(target=caller, daemon=True).start()
    threading.Event().wait()
""")


def run(
    client, runner: str, home: Path, *, concurrency: int = 16, kill_after: tuple[float, float] = (2.0, 8.0)
) -> dict:
    from runtime.ledger import Ledger as SkillLedger
    from runtime.registry import Registry

    from .common import settings

    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), str(WHEELHOUSE), runner, SKILL, str(concurrency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ack "):
                acked.append(line.split()[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while len(acked) < concurrency and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or len(acked) < concurrency:
        proc.kill()
        err = proc.stderr.read()[-600:] if proc.stderr else ""
        return {"error": f"the child did not serve: {err}"}
    delay = random.uniform(*kill_after)
    say(f"load: durability: SIGKILL of the serving child in {delay:.1f} s (random)")
    time.sleep(delay)
    proc.kill()
    proc.wait(30)
    reader.join(10)
    errors = sum(1 for a in acked if a == "-")
    acked_ids = [a for a in acked if a != "-"]

    from runtime.yard import Yard

    label = {"label": [f"skillyard.pid={proc.pid}"]}
    orphaned = len(client.api.containers(all=True, filters=label))  # its warm containers, now orphans
    fresh = Yard(settings(home, runner_image=runner), pool=False)
    try:
        fresh.gc()  # what a starting server does: removes the dead process's containers
        replayed = fresh.recover_accounting()
    finally:
        fresh.close()
    ledger, registry = SkillLedger(home / "store"), Registry(home / "store", embedder=None)
    try:
        ids = [r["id"] for r in ledger.uses(SKILL)]
        counted = sum(v.calls for v in registry.versions(SKILL))
    finally:
        ledger.close()
        registry.close()
    left = client.api.containers(all=True, filters=label)
    return {
        "killed_after_s": round(delay, 2),
        "acknowledged": len(acked_ids),
        "errors": errors,
        "replayed_uses": replayed,
        "acknowledged_without_row": len(set(acked_ids) - set(ids)),
        "duplicate_rows": len(ids) - len(set(ids)),
        "ledger_rows": len(ids),
        "counted": counted,
        "child_containers_orphaned": orphaned,
        "child_containers_left": len(left),
    }
