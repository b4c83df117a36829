"""Shared helpers of the benchmark suite: stats, progress, machine facts, the engine,
the trivial skill, and bookkeeping of every container and image a run creates."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SKILLS = ROOT / "skills"
# The project's wheelhouse (as tests/conftest.py uses it): wheels are downloaded once.
WHEELHOUSE = ROOT / ".skillyard" / "wheelhouse"
BENCH_LABEL = "skillyard.bench"  # on the containers the bench starts itself (docker CLI / SDK rows)

_T0 = time.monotonic()
_say_lock = threading.Lock()


def say(msg: str) -> None:
    """Progress to stderr, with seconds since the suite started."""
    with _say_lock:
        print(f"[bench {time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float | None:
    """Percentile by linear interpolation (p in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": r1(pct(ms, 50)),
        "p95_ms": r1(pct(ms, 95)),
        "mean_ms": r1(statistics.fmean(ms)) if ms else None,
        "min_ms": r1(min(ms)) if ms else None,
        "max_ms": r1(max(ms)) if ms else None,
    }


def r1(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def ratio(a: float | None, b: float | None, nd: int = 2) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, nd)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


# -- machine facts -----------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(client: Any | None) -> dict[str, Any]:
    docker_version = None
    if client is not None:
        try:
            v = client.version()
            docker_version = f"{v.get('Version')} (API {v.get('ApiVersion')})"
        except Exception as exc:  # noqa: BLE001
            docker_version = f"unavailable: {exc}"
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _mem_total(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "docker": docker_version,
        "python": platform.python_version(),
        "skillyard_commit": (commit[:12] + ("-dirty" if dirty else "")) if commit else "unknown",
        "loadavg_at_start": _loadavg(),
    }


# -- engine and images -------------------------------------------------------------------------
def docker_client():
    import docker

    client = docker.from_env(timeout=120)
    client.ping()
    return client


def runner_image(client) -> str:
    from sandbox.images import Images

    return Images(client, WHEELHOUSE).ensure().runner


def settings(home: Path, **kw: Any):
    """Settings for a temp SKILLYARD_HOME, sharing the project's wheelhouse."""
    from runtime.config import Settings

    return Settings(home=home, wheelhouse=WHEELHOUSE, **kw)


def quiet_logs() -> None:
    from runtime import logs

    logs.configure("WARNING")


# -- the trivial skill -------------------------------------------------------------------------
def write_trivial_skill(root: Path, name: str = "bench-echo") -> Path:
    """A one-line skill: run(params) returns {"ok": 1}. Tests cover it fully."""
    d = root / name
    (d / "scripts").mkdir(parents=True, exist_ok=True)
    (d / "tests").mkdir(parents=True, exist_ok=True)
    (d / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: Returns a constant; a benchmark skill for call "
        "overhead.\n---\n# {name}\nCall it with {{}}.\n"
    )
    (d / "scripts" / "main.py").write_text("def run(params):\n    return {'ok': 1}\n")
    (d / "tests" / "test_main.py").write_text(
        "from scripts.main import run\n\n\ndef test_run():\n    assert run({}) == {'ok': 1}\n"
    )
    (d / "skillyard.yaml").write_text("entrypoint: scripts/main.py:run\n")
    return d


# -- bookkeeping: what this run created --------------------------------------------------------
@dataclass
class Ledger:
    """What this run created: the skill packages it gated (name, content hash) and the label on
    the containers it starts itself. Skill images are found by their labels at cleanup time, so
    an image rebuilt mid-run (e.g. after another process removed it) is cleaned up too."""

    run_id: str
    packages: set[tuple[str, str]] = field(default_factory=set)
    preexisting_images: set[str] = field(default_factory=set)  # skill image ids present at the start
    preexisting_tags: set[str] = field(default_factory=set)  # and their tags (an image removed and rebuilt
    # under the same tag, as the gate section's --exact-copies does, is left as it was found)
    notes: list[str] = field(default_factory=list)

    def snapshot(self, client) -> None:
        imgs = client.images.list(filters={"label": "skillyard.kind=skill"})
        self.preexisting_images = {img.id for img in imgs}
        self.preexisting_tags = {t for img in imgs for t in img.tags}

    def add_folders(self, folders: list[Path]) -> None:
        from runtime.package import load_package

        s = settings(Path(os.devnull))
        for f in folders:
            try:
                pkg = load_package(f, s)
            except Exception:  # noqa: BLE001 - a rejected package builds no image
                continue
            self.packages.add((pkg.name, pkg.content_hash))

    def images(self, client, names: set[str] | None = None) -> set[str]:
        """Tags of skill images built for this run's packages that were not there at the start."""
        out = set()
        for img in client.images.list(filters={"label": "skillyard.kind=skill"}):
            labels = img.labels or {}
            key = (labels.get("skillyard.skill", ""), labels.get("skillyard.content_hash", ""))
            if (
                key in self.packages
                and img.id not in self.preexisting_images
                and (names is None or key[0] in names)
            ):
                out.update(t for t in (img.tags or [img.id]) if t not in self.preexisting_tags)
        return out


def skill_image_ids(client) -> set[str]:
    return {img.id for img in client.images.list(filters={"label": "skillyard.kind=skill"})}


def my_containers(client, run_id: str) -> list[dict[str, Any]]:
    """Containers this process made: skillyard-managed with our pid on this host, or bench-labelled."""
    pid, host = str(os.getpid()), socket.gethostname()
    mine = []
    for c in client.api.containers(all=True, filters={"label": "skillyard.managed=1"}):
        labels = c.get("Labels") or {}
        if labels.get("skillyard.pid") == pid and labels.get("skillyard.host") == host:
            mine.append(c)
    mine += client.api.containers(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"})
    return mine


def wait_no_containers(client, run_id: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Wait for background removals (pool discards) to finish; return what is still there."""
    deadline = time.monotonic() + timeout
    while True:
        left = my_containers(client, run_id)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat; None where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def settle(
    client, run_id: str, *, idle: float = 0.85, window: float = 0.5, timeout: float = 30.0
) -> dict[str, Any]:
    """Before a section: wait for this run's containers to go and for the machine to be
    idle (`idle` of CPU time over two windows in a row, or `timeout`).

    Why: a section must not be billed for the previous one's leftovers (pool containers
    still being removed, the engine deleting layers). In one full run the search section,
    right after the gate section, measured 54 ms at 1k rows against 34 ms when run alone
    minutes later; whether leftovers or the machine's drift did that, the report now says
    how idle the machine was when each section started (`settled` in the JSON)."""
    t0 = time.monotonic()
    left = wait_no_containers(client, run_id, timeout=min(20.0, timeout))
    quiet, fraction = 0, None
    prev = _cpu_times()
    while prev is not None and time.monotonic() - t0 < timeout:
        time.sleep(window)
        now = _cpu_times()
        if now is None or now[1] == prev[1]:
            break
        fraction = (now[0] - prev[0]) / (now[1] - prev[1])
        prev = now
        quiet = quiet + 1 if fraction >= idle else 0
        if quiet >= 2:
            break
    return {
        "waited_s": round(time.monotonic() - t0, 1),
        "idle": None if fraction is None else round(fraction, 2),
        "quiet": quiet >= 2,
        "containers_left": len(left),
    }


def remove_images(client, refs: set[str] | list[str]) -> tuple[list[str], list[str]]:
    """Remove images by tag/id (not forced: one in use by a container stays). Returns (removed, failed)."""
    import docker.errors

    removed, failed = [], []
    for ref in sorted(refs):
        try:
            client.images.remove(ref, force=False, noprune=False)
            removed.append(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            failed.append(f"{ref}: {str(exc)[:160]}")
    return removed, failed


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
