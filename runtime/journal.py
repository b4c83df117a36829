"""The accounting journal: every use of a skill is on disk before its call returns.

A long-lived yard appends one JSON line per accounted call to a journal file of its own
under ``HOME/journal/`` and syncs it (``fdatasync``) before the call's result goes back
to its caller: an *acknowledged* call is one whose line is durable. The accounting
writer (runtime/accounting.py) merges the lines into LanceDB in batches, and the next
process of the same home replays whatever a killed process left unmerged.

Invariants:

- **Durable before acknowledged.** `append` returns only once its line has been written
  and synced. Concurrent appends share syncs (group commit): at most one sync runs at a
  time, and each covers every line written before it started.
- **One file per writer.** Each `Journal` has a fresh writer id (16 hex digits) and the
  file ``<writer>.jsonl``; its sequence numbers start at 1 and grow by one per line. The
  owner holds an exclusive ``flock`` on the file for its whole life. The file is created
  under a temporary name, locked, and only then renamed into place, so a ``.jsonl`` file
  whose lock can be taken belongs to no live journal: its process died (or closed it
  with lines unmerged), and whoever holds its lock may replay it.
- **A cut line was never acknowledged.** A process killed in the middle of a write leaves
  a last line without its newline; it was never synced for a caller, and is ignored.
- **Removed only when merged.** The owner empties its file (`truncate`) or removes it
  (`retire`) only after every line in it has been merged; a replayer removes an orphan
  only after merging all of it. A file left behind is therefore always safe to replay:
  the merge is idempotent (see runtime/accounting.py).

The journal knows nothing of LanceDB; entries are plain JSON objects.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

SUFFIX = ".jsonl"
# Empty the file once everything in it is merged and it has grown past this: a server's
# journal stays small without a rotation scheme.
TRUNCATE_AT_BYTES = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One journaled line: the writer's sequence number and the caller's data."""

    seq: int
    data: dict[str, Any]


def _sync_dir(folder: Path) -> None:
    """Make a rename or an unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_entries(path: Path) -> list[Entry]:
    """Every whole line of a journal file, in order (a last line cut short is skipped)."""
    entries = []
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break  # cut by a kill mid-write: never acknowledged
            try:
                line = json.loads(raw)
                entries.append(Entry(int(line["seq"]), dict(line["data"])))
            except (ValueError, KeyError, TypeError):
                log.warning("journal_line_unreadable", path=str(path), line=raw[:200])
    return entries


class Journal:
    """This process's journal file in `folder` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.writer = secrets.token_hex(8)
        self.path = self.folder / f"{self.writer}{SUFFIX}"
        temporary = self.folder / f".{self.writer}.tmp"
        self._fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new inode: nobody else can hold it
        os.rename(temporary, self.path)
        _sync_dir(self.folder)
        self._lock = threading.Lock()  # the file, the counters below
        self._synced_cond = threading.Condition(self._lock)
        self._seq = 0
        self._written = 0  # bytes written to the file
        self._synced = 0  # bytes known to be on disk
        self._syncing = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether `retire` or `abandon` has run (appends then raise)."""
        return self._closed

    def append(self, data: dict[str, Any]) -> int:
        """Write one line and return once it is synced; its sequence number."""
        with self._lock:
            if self._closed:
                raise ValueError("the journal is closed")
            self._seq += 1
            seq = self._seq
            line = json.dumps({"seq": seq, "data": data}, separators=(",", ":")).encode() + b"\n"
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            self._written += len(line)
            end = self._written
            # Group commit: whoever finds no sync running starts one for all that is written.
            while self._synced < end:
                if self._syncing:
                    self._synced_cond.wait()
                    continue
                self._syncing = True
                target = self._written
                self._lock.release()
                try:
                    os.fdatasync(self._fd)
                finally:
                    self._lock.acquire()
                    self._syncing = False
                    self._synced = max(self._synced, target)
                    self._synced_cond.notify_all()
        return seq

    def truncate_if_merged(self, merged_seq: int) -> bool:
        """Empty the file if every line in it (up to `merged_seq`) is merged and it is big."""
        with self._lock:
            if self._closed or merged_seq != self._seq or self._written < TRUNCATE_AT_BYTES:
                return False
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._written = self._synced = 0
            return True

    def retire(self) -> None:
        """Everything is merged: remove the file (durably) and release it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.unlink(self.path)
            _sync_dir(self.folder)
            os.close(self._fd)  # releases the lock

    def abandon(self) -> None:
        """Close without removing: what is unmerged is replayed by the next process."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._fd)


@dataclass
class Orphan:
    """A journal file of no live process, locked by us until `done` or `release`."""

    path: Path
    writer: str
    fd: int

    def entries(self) -> list[Entry]:
        """Its whole lines, in order."""
        return read_entries(self.path)

    def done(self) -> None:
        """Everything in it is merged: remove it (durably), then let go of the lock."""
        try:
            os.unlink(self.path)
            _sync_dir(self.path.parent)
        finally:
            os.close(self.fd)

    def release(self) -> None:
        """Leave it for another attempt."""
        os.close(self.fd)


def orphans(folder: Path) -> Iterator[Orphan]:
    """The journal files in `folder` that no live journal holds, each locked while yielded."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        path = Path(folder) / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # replayed by someone else meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its owner lives (or another process replays it now)
            os.close(fd)
            continue
        if not path.exists():  # removed between our open and our lock: done by another
            os.close(fd)
            continue
        yield Orphan(path=path, writer=name[: -len(SUFFIX)], fd=fd)
