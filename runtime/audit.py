"""The audit trail: every call, gate, import, rollback, fix and create made through the
HTTP API or the MCP server, as one JSON line each in ``<home>/audit.jsonl``.

Lines are written by a structlog logger of their own (its own processors and output, so
the process's logging set-up neither hides nor reformats them): ``ts`` (ISO 8601, UTC),
``event`` (call, gate, import, rollback, fix, create), ``tenant``, ``skill``, ``version``,
``scope`` (private or shared), ``outcome``, ``duration_ms``, ``limits`` and ``tokens``
where they apply, and the ``request_id`` / ``job_id`` that produced it.

The file is appended to (mode 0600) under a file lock, so several processes (the HTTP
server, an MCP server) may share it; it is rotated at ``max_bytes`` (20 MB by default)
to ``audit.jsonl.1`` .. ``audit.jsonl.N``, the oldest dropped. :meth:`AuditLog.query`
reads the rotated files too, oldest first.

Never logged: call inputs and outputs, tracebacks, API keys.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from .errors import error_kind
from .times import as_utc, parse_when

AUDIT_FILE = "audit.jsonl"
LOCK_FILE = ".audit.lock"
MAX_BYTES = 20 * 1024 * 1024
BACKUPS = 5


def _when(value: datetime | str | None) -> datetime | None:
    """A filter's time: a datetime in UTC, or a text parse_when reads (None: no filter)."""
    if value is None:
        return None
    return parse_when(value) if isinstance(value, str) else as_utc(value)


class _RotatingFile:
    """The structlog 'logger' at the end of the chain: appends rendered lines, rotating by size."""

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

    def msg(self, message: str) -> None:
        from filelock import FileLock

        data = (message.replace("\n", " ") + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, FileLock(str(self.path.parent / LOCK_FILE), timeout=30):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    info = debug = warning = error = critical = exception = log = msg


class AuditLog:
    """The audit trail of one SKILLYARD_HOME (see the module docstring)."""

    def __init__(self, home: str | Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.home = Path(home)
        self.path = self.home / AUDIT_FILE
        self._file = _RotatingFile(self.path, max_bytes, backups)
        self._log = structlog.wrap_logger(
            self._file,
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                structlog.processors.JSONRenderer(default=str),
            ],
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=False,
        )

    def record(self, event: str, **fields: Any) -> None:
        """Append one entry. Never raises: an audit hiccup is logged, not passed to the caller."""
        clean = {k: v for k, v in fields.items() if v is not None}
        try:
            self._log.info(event, **clean)
        except Exception as exc:  # noqa: BLE001
            structlog.get_logger(__name__).error("audit_write_failed", error=str(exc), audit_event=event)

    def files(self) -> list[Path]:
        """The audit files, oldest first."""
        rotated = sorted(
            self.path.parent.glob(f"{self.path.name}.*"),
            key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
            reverse=True,
        )
        rotated = [p for p in rotated if p.suffix[1:].isdigit()]
        return rotated + ([self.path] if self.path.exists() else [])

    def query(
        self,
        tenant: str | None = None,
        skill: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        *,
        event: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Entries matching every given filter, oldest first (with `limit`: the newest `limit`)."""
        lo, hi = _when(since), _when(until)
        out: list[dict[str, Any]] = []
        for path in self.files():
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except FileNotFoundError:  # rotated away while we read
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(entry, dict):
                    continue
                if tenant is not None and entry.get("tenant") != tenant:
                    continue
                if skill is not None and entry.get("skill") != skill:
                    continue
                if event is not None and entry.get("event") != event:
                    continue
                if lo is not None or hi is not None:
                    try:
                        ts = _when(datetime.fromisoformat(str(entry.get("ts", "")).replace("Z", "+00:00")))
                    except ValueError:
                        continue
                    if (lo is not None and ts < lo) or (hi is not None and ts > hi):
                        continue
                out.append(entry)
        if limit is not None:
            out = out[-limit:] if limit > 0 else []
        return out


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
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Query the audit trail of `home` (default: the configured SKILLYARD_HOME)."""
    if home is None:
        from .config import get_settings

        home = get_settings().home
    return AuditLog(home).query(tenant, skill, since, until, event=event, limit=limit)
