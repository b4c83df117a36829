"""The audit trail: every call, gate, import, rollback, delete, fix and create made through
the HTTP API or the MCP server, every tenant and key change, and every refused attempt,
as one JSON line each in the acting tenant's own file, ``<home>/audit/<tenant>.jsonl``
(the operator's is ``local.jsonl``).

Lines are written by a structlog logger of their own (its own processors and output, so
the process's logging set-up neither hides nor reformats them): ``ts`` (ISO 8601, UTC),
``event``, ``tenant``, ``skill``, ``version``, ``scope`` (private or shared), ``outcome``,
``duration_ms``, ``limits`` and ``tokens`` where they apply, and the ``request_id`` /
``job_id`` that produced it.

Invariants:

- **Per tenant.** A file is appended to (mode 0600) under a file lock of its own, so
  several processes (the HTTP server, an MCP server) may share it, and it is rotated at
  ``max_bytes`` to ``<tenant>.jsonl.1`` .. ``.N``, the oldest dropped: each tenant has a
  budget of its own, and no tenant's volume ever pushes out another's history.
- **Refusals are aggregated.** A refused attempt (403, 429) is counted in memory, per
  (tenant, event, skill, error), and written as one entry per ``refusal_window_s`` with
  ``count``, ``first_ts`` and ``last_ts``: a flood of refusals costs no file write each
  and a line per window, not per request. A query writes what is pending first; a process
  that dies loses at most one window's counts.
- **Queries cost what they return.** A query reads its tenants' files backwards from the
  newest line and stops once ``limit`` entries matched or the lines are older than
  ``since``; a tenant's query reads only that tenant's files.

Stores made by older code kept one shared ``<home>/audit.jsonl``: it is split into the
per-tenant files the first time an AuditLog opens the home, then removed.

Never logged: call inputs and outputs, tracebacks, API keys.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from .errors import error_kind
from .times import as_utc, parse_when

AUDIT_DIR = "audit"
LEGACY_FILE = "audit.jsonl"  # the one shared file of older stores
LOCK_FILE = ".audit.lock"  # held while the legacy file is split
OPERATOR = "local"  # the operator's audit identity (runtime.views.TenantView.name)
MAX_BYTES = 8 * 1024 * 1024  # per tenant and file
BACKUPS = 3  # rotated files kept per tenant: a tenant's history is at most (1 + BACKUPS) x MAX_BYTES
REFUSAL_WINDOW_S = 10.0
READ_BLOCK = 64 * 1024
_FILE_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def _when(value: datetime | str | None) -> datetime | None:
    """A filter's time: a datetime in UTC, or a text parse_when reads (None: no filter)."""
    if value is None:
        return None
    return parse_when(value) if isinstance(value, str) else as_utc(value)


def _file_tenant(tenant: Any) -> str:
    """The file an entry of `tenant` goes to: its name, or `_other` for anything that is no
    tenant name (never a path: names reach the file system)."""
    return tenant if isinstance(tenant, str) and _FILE_TENANT.fullmatch(tenant) else "_other"


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    """An entry's `ts` as a UTC datetime (None: it has none, or not one that reads)."""
    try:
        return as_utc(datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")))
    except (KeyError, ValueError):
        return None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _RotatingFile:
    """The structlog 'logger' at the end of one tenant's chain: appends rendered lines,
    rotating by size, under a file lock of its own."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self._lock = threading.Lock()

    def _rotate(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write_lines(self, lines: list[bytes]) -> None:
        """Append `lines` (each ending in a newline), rotating whenever the next would pass max_bytes."""
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(f".{self.path.name}.lock")
        with self._lock, FileLock(str(lock), timeout=30):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            fd = -1
            try:
                for data in lines:
                    if size and size + len(data) > self.max_bytes:
                        if fd >= 0:
                            os.close(fd)
                            fd = -1
                        self._rotate()
                        size = 0
                    if fd < 0:
                        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    os.write(fd, data)
                    size += len(data)
            finally:
                if fd >= 0:
                    os.close(fd)

    def msg(self, message: str) -> None:
        self.write_lines([(message.replace("\n", " ") + "\n").encode("utf-8")])

    info = debug = warning = error = critical = exception = log = msg

    def files(self) -> list[Path]:
        """This tenant's files, newest first."""
        rotated = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)]
        return [p for p in [self.path, *rotated] if p.exists()]


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The file's lines, last first, read in blocks from the end (a vanished file: none)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:  # rotated away while we read
        return
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        tail = b""
        while pos > 0:
            step = min(READ_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            lines = (fh.read(step) + tail).split(b"\n")
            tail = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if tail:
            yield tail


@dataclass
class _Refusals:
    """Refusals of one (tenant, event, skill, error) counted since the last write."""

    count: int = 0
    first_ts: str = ""
    last_ts: str = ""
    context: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    """The audit trail of one SKILLYARD_HOME (see the module docstring)."""

    def __init__(
        self,
        home: str | Path,
        *,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        refusal_window_s: float = REFUSAL_WINDOW_S,
    ) -> None:
        self.home = Path(home)
        self.dir = self.home / AUDIT_DIR
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self.refusal_window_s = refusal_window_s
        self._lock = threading.Lock()
        self._files: dict[str, _RotatingFile] = {}
        self._loggers: dict[str, Any] = {}
        self._pending: dict[tuple[str, str, str | None, str], _Refusals] = {}
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._split_legacy()

    # -- files -------------------------------------------------------------------------------------
    def _file(self, tenant: str) -> _RotatingFile:
        name = _file_tenant(tenant)
        with self._lock:
            rotating = self._files.get(name)
            if rotating is None:
                rotating = self._files[name] = _RotatingFile(
                    self.dir / f"{name}.jsonl", self.max_bytes, self.backups
                )
                self._loggers[name] = structlog.wrap_logger(
                    rotating,
                    processors=[
                        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                        structlog.processors.JSONRenderer(default=str),
                    ],
                    wrapper_class=structlog.BoundLogger,
                    cache_logger_on_first_use=False,
                )
            return rotating

    def tenants(self) -> list[str]:
        """The tenants that have entries (file names), by name."""
        if not self.dir.is_dir():
            return []
        names = {
            p.name.split(".jsonl", 1)[0] for p in self.dir.glob("*.jsonl*") if not p.name.startswith(".")
        }
        return sorted(names)

    def files(self, tenant: str | None = None) -> list[Path]:
        """The audit files (of `tenant`, or of every tenant), each tenant's oldest first."""
        out: list[Path] = []
        for name in [tenant] if tenant is not None else self.tenants():
            out += list(reversed(self._file(name).files()))
        return out

    def _split_legacy(self) -> None:
        """Move the entries of an older store's shared audit.jsonl (and its rotated files)
        into the per-tenant files, oldest first, then remove it. Once per home."""
        legacy = [self.home / f"{LEGACY_FILE}.{i}" for i in range(9, 0, -1)] + [self.home / LEGACY_FILE]
        if not any(p.exists() for p in legacy):
            return
        from filelock import FileLock

        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir / LOCK_FILE), timeout=60):
            for path in legacy:
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:  # another process split it first
                    continue
                by_tenant: dict[str, list[bytes]] = {}
                for line in raw.splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        by_tenant.setdefault(_file_tenant(entry.get("tenant")), []).append(line + b"\n")
                for tenant, lines in by_tenant.items():
                    self._file(tenant).write_lines(lines)
                path.unlink(missing_ok=True)
        structlog.get_logger(__name__).info("audit_split_per_tenant", home=str(self.home))

    # -- writing -----------------------------------------------------------------------------------
    def record(self, event: str, **fields: Any) -> None:
        """Append one entry to its tenant's file (`tenant`; none: the operator's). Never
        raises: an audit hiccup is logged, not passed to the caller."""
        clean = {k: v for k, v in fields.items() if v is not None}
        clean.setdefault("tenant", OPERATOR)
        try:
            self._file(clean["tenant"])
            self._loggers[_file_tenant(clean["tenant"])].info(event, **clean)
        except Exception as exc:  # noqa: BLE001 - the audit never fails the work it records
            structlog.get_logger(__name__).error("audit_write_failed", error=str(exc), audit_event=event)

    def refused(
        self, event: str, *, tenant: str, error: str, skill: str | None = None, **context: Any
    ) -> None:
        """Count one refused attempt; it is written with the others of its kind once per
        refusal window (see the module docstring). Costs no I/O."""
        now = _now_iso()
        key = (tenant, event, skill, error)
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Refusals(first_ts=now)
            pending.count += 1
            pending.last_ts = now
            pending.context = {k: v for k, v in context.items() if v is not None}  # the latest one's
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="skillyard-audit", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.refusal_window_s):
            self.flush()

    def flush(self) -> None:
        """Write the refusals counted so far (one entry per kind)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (tenant, event, skill, error), refusals in pending.items():
            self.record(
                event,
                **refusals.context,
                tenant=tenant,
                skill=skill,
                outcome="refused",
                error=error,
                count=refusals.count,
                first_ts=refusals.first_ts,
                last_ts=refusals.last_ts,
            )

    def close(self) -> None:
        """Stop the refusal writer and write what it still holds."""
        self._stop.set()
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=5)
        self.flush()

    # -- reading -----------------------------------------------------------------------------------
    def _newest(
        self,
        tenant: str,
        matches: Callable[[dict[str, Any], datetime | None], bool],
        lo: datetime | None,
        limit: int | None,
    ) -> list[dict[str, Any]]:
        """`tenant`'s newest entries that `matches`, newest first: at most `limit`, none older than `lo`."""
        out: list[dict[str, Any]] = []
        for path in self._file(tenant).files():
            for line in _lines_backwards(path):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                ts = _entry_time(entry)
                if lo is not None and ts is not None and ts < lo:
                    return out  # lines are in time order: nothing further back is as new as `since`
                if matches(entry, ts):
                    out.append(entry)
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    def query(
        self,
        tenant: str | None = None,
        skill: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        event: str | None = None,
        outcome: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries matching every given filter, oldest first (with `limit`: the newest `limit`)."""
        self.flush()
        lo, hi = _when(since), _when(until)
        if limit is not None and limit <= 0:
            return []

        def matches(entry: dict[str, Any], ts: datetime | None) -> bool:
            if skill is not None and entry.get("skill") != skill:
                return False
            if event is not None and entry.get("event") != event:
                return False
            if outcome is not None and entry.get("outcome") != outcome:
                return False
            if tenant is not None and entry.get("tenant") != tenant:
                return False
            if lo is not None or hi is not None:
                if ts is None or (lo is not None and ts < lo) or (hi is not None and ts > hi):
                    return False
            return True

        found: list[dict[str, Any]] = []
        for name in [tenant] if tenant is not None else self.tenants():
            found += self._newest(name, matches, lo, limit)
        found.sort(key=lambda e: str(e.get("ts", "")))
        return found[-limit:] if limit is not None else found


@contextmanager
def audited(log: AuditLog, event: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """One audit entry for a piece of work, written however the work ends: the body sets ``outcome``
    (and what else it learns) on the yielded dict; an exception records ``outcome=error`` and
    ``error=<kind>`` (package, sandbox, engine, llm, internal, ...) and propagates."""
    entry: dict[str, Any] = {**fields, "outcome": "error"}
    started = time.monotonic()
    try:
        yield entry
    except BaseException as exc:
        entry["outcome"], entry["error"] = "error", error_kind(exc)
        raise
    finally:
        entry.setdefault("duration_ms", round((time.monotonic() - started) * 1000, 1))
        log.record(event, **entry)


def query(
    tenant: str | None = None,
    skill: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    home: str | Path | None = None,
    event: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Query the audit trail of `home` (default: the configured SKILLYARD_HOME)."""
    if home is None:
        from .config import get_settings

        home = get_settings().home
    return AuditLog(home).query(tenant, skill, since, until, event=event, outcome=outcome, limit=limit)
