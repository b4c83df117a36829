"""One LanceDB store as the registry and the ledger both use it: the connection, the
writer lock, the write retry, compaction, and named migrations recorded in the store.

The rules, stated once for both:

Reads see every commit. The connection uses ``read_consistency_interval=0``, so a read
sees what any process committed before it started. A read that races a compaction
pruning the version it was reading is retried (up to ``READ_ATTEMPTS``).

Writes are retried only on a commit conflict (LanceDB says "retryable"): such a write did
not commit, so running it again cannot duplicate it. Nothing else is retried: an error
raised *after* a commit (say, a pruned manifest while reloading) would turn a retried
append into two rows. The policy: up to ``WRITE_ATTEMPTS`` attempts, backing off
exponentially from 10 ms, capped at 0.5 s, with jitter (writers in several processes
must not retry in step); about 3 s in the worst case.

A write that fails -- a conflict that outlasts the attempts, or any other error -- raises
:class:`~runtime.errors.StoreError`. The store never swallows a failure. Callers whose
own work must not fail over a write (accounting after a call that worked) catch it, log
it and count it (``Yard.lost_writes``); they never pretend it was stored.

Locks. Writers that must not interleave (allocating a version number, moving the
``current`` flag, creating tables, migrating) hold the owner's file lock
(``<store>/.<owner>.lock``) and a thread lock. For a non-local URI (s3://, gs://, ...)
a single writer process is assumed and only the thread lock is taken. Plain appends and
``UPDATE ... SET n = n + 1`` need no lock: LanceDB commits them without lost updates.

Connections. Every RENEW_EVERY writes the store opens a new LanceDB connection (and new
table handles): a connection's memory grows with every table version it has seen.

Versions. `table_version` is what caches of rows are keyed on: any commit to a table, by
any process, moves it. On a local disk it is a stat of the table's ``_versions`` folder
(~5 us) while that folder stands still, rather than a look at the latest manifest through
LanceDB (0.5-1 ms here); see `table_version` for why a stat cannot miss a commit.

Compaction. Every write makes a table version. When a table's version crosses a
multiple of ``compact_every`` it is optimised (fragments merged, new rows folded into
the indexes, versions older than ``cleanup_older_than`` pruned), best effort: skipped if
another writer holds the lock, and never failing the write that triggered it.

Migrations are named steps, each run once per store and recorded in the ``_migrations``
table (name, owner, time), as simonw/llm records its own. They run under the owner's
lock before the owner's tables are opened or created, oldest first; a store made by
current code runs them too (they find nothing to do) so that every store ends with the
same record. A migration must be safe to run again after a crash halfway (it is
recorded only once it has finished).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog

from .errors import StoreError
from .times import as_utc, utc_now

log = structlog.get_logger(__name__)

WRITE_ATTEMPTS = 10
# A LanceDB connection's memory grows with every table version it has seen, and every write
# makes one. Measured here (2,000 writes of accounting batches): +123 MB on one connection;
# +39 MB with a new connection every 100 writes, ~1 MB per 200 writes once warm. A long-lived
# server's accounting writes for ever.
RENEW_EVERY = 100
READ_ATTEMPTS = 3
# Pruning versions that a concurrent reader or writer still uses makes it fail; other
# processes' operations take well under a minute.
MIN_CLEANUP_AGE = timedelta(minutes=1)
MIGRATIONS = "_migrations"
MIGRATIONS_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("owner", pa.string(), nullable=False),
        pa.field("applied_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
# Index kinds a table may declare, by the lancedb.index class that builds them.
INDEX_KINDS = ("FTS", "Bitmap", "BTree")


@dataclass(frozen=True)
class Migration:
    """A named step that brings a store made by older code up to date. `apply` gets the
    store, holding its lock, before the owner's tables are opened."""

    name: str
    apply: Callable[[LanceStore], None]


def sql_str(value: str) -> str:
    """A SQL string literal. Callers validate what they quote first; this is the second fence."""
    return "'" + value.replace("'", "''") + "'"


def sql_ts(ts: datetime) -> str:
    """A SQL timestamp literal (microseconds, UTC) for a datetime (naive = UTC)."""
    text = as_utc(ts).isoformat()  # digits, '-', ':', '.', 'T' and '+00:00' only
    return f"arrow_cast({sql_str(text)}, 'Timestamp(Microsecond, Some(\"UTC\"))')"


def first_line(exc: BaseException) -> str:
    """An error's first line, for a log or a message (LanceDB errors carry long backtraces)."""
    return (str(exc).splitlines() or [""])[0][:200]


def is_retryable(exc: Exception) -> bool:
    """A commit conflict: the write did not commit, so running it again cannot duplicate it."""
    text = str(exc).lower()
    return "retryable commit conflict" in text or "commitconflict" in text or "commit conflict" in text


def is_pruned(exc: Exception) -> bool:
    """A read raced a compaction that pruned the version it was reading."""
    text = str(exc).lower()
    return "not found" in text and (".manifest" in text or ".lance" in text)


# File systems on which a folder's times move whenever an entry is added, removed or renamed,
# seen at once by every process of the machine (not NFS and the like, where attributes are
# cached for seconds): there a stat of a table's _versions folder can stand for its version.
STAT_FS_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs"})
# A folder time this close to now is not trusted: file times come from a coarse clock (one
# kernel tick, 1-10 ms), so a second commit within the same tick could leave them unchanged.
STAT_SETTLED_NS = 100_000_000


def fs_type(path: Path) -> str | None:
    """The type of the file system `path` is on (the longest mount point above it), or None."""
    try:
        target = os.path.realpath(path)
        best, kind = "", None
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) < 5 or not right:
                    continue
                mount = fields[4].replace("\\040", " ")
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, right.split()[0]
        return kind
    except OSError:
        return None


def is_local(uri: str) -> bool:
    """Whether `uri` is a local path (file locks work there)."""
    return "://" not in uri or uri.startswith("file://")


class LanceStore:
    """The tables one owner (``registry``, ``ledger``) keeps in the LanceDB store at `uri`.

    `schemas` are the owner's tables; `indexes` the FTS and scalar indexes each needs
    (``(column, kind)``, kind one of INDEX_KINDS); `migrations` its named steps, oldest
    first; `after_compact(table_name, table)` runs under the lock after a table was
    optimised (the registry maintains its vector index there). See the module docstring.
    """

    def __init__(
        self,
        uri: str | Path,
        *,
        owner: str,
        schemas: Mapping[str, pa.Schema],
        indexes: Mapping[str, Sequence[tuple[str, str]]] | None = None,
        migrations: Sequence[Migration] = (),
        compact_every: int = 50,
        cleanup_older_than: timedelta = timedelta(hours=1),
        lock_timeout: float = 60.0,
        after_compact: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.uri = str(uri)
        self.owner = owner
        self.schemas = dict(schemas)
        self.indexes = {name: tuple(specs) for name, specs in (indexes or {}).items()}
        self.migrations = tuple(migrations)
        self.compact_every = max(1, int(compact_every))
        self.cleanup_older_than = max(cleanup_older_than, MIN_CLEANUP_AGE)
        self.after_compact = after_compact
        self._thread_lock = threading.RLock()
        self._file_lock: Any = None
        if is_local(self.uri):
            root = Path(self.uri.removeprefix("file://")).expanduser()
            root.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            self._file_lock = FileLock(str(root / f".{owner}.lock"), timeout=lock_timeout)
        else:
            log.info("store is not local: a single writer process is assumed", uri=self.uri, owner=owner)
        self._db: Any = self._connect()
        self._tables: dict[str, Any] = {}
        self._stat_root: Path | None = None  # where tables' _versions folders can be stat'ed
        if is_local(self.uri):
            root = Path(self.uri.removeprefix("file://")).expanduser()
            if fs_type(root) in STAT_FS_TYPES:
                self._stat_root = root
        self._seen_versions: dict[str, tuple[tuple[int, int, int], int]] = {}
        self.renew_every = RENEW_EVERY
        self._writes = 0
        self.renewals = 0
        self._migrated = not self.migrations

    def _connect(self) -> Any:
        import lancedb  # heavy: kept off the import path of modules that only name the store

        return lancedb.connect(self.uri, read_consistency_interval=timedelta(0))

    def _renew(self) -> None:
        """A new connection and new table handles (see RENEW_EVERY). Handles other threads
        hold stay valid: they keep the old connection alive until they let go of it."""
        if self._db is None:
            return  # closed: stays closed
        db = self._connect()
        self._tables = {}
        self._db = db
        self.renewals += 1

    # -- locks ---------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise writers: the thread lock always, the owner's file lock for local stores."""
        with self._thread_lock:
            if self._file_lock is None:
                yield
                return
            from filelock import Timeout

            try:
                self._file_lock.acquire()
            except Timeout as exc:
                raise StoreError(f"{self.owner} lock busy: {self._file_lock.lock_file}") from exc
            try:
                yield
            finally:
                self._file_lock.release()

    @contextmanager
    def _try_locked(self) -> Iterator[bool]:
        """The lock if it is free now (re-entrant), else False: for best-effort tidying."""
        with self._thread_lock:
            if self._file_lock is None:
                yield True
                return
            from filelock import Timeout

            try:
                self._file_lock.acquire(timeout=0)
            except Timeout:
                yield False
                return
            try:
                yield True
            finally:
                self._file_lock.release()

    # -- tables --------------------------------------------------------------------------------
    def _db_or_fail(self) -> Any:
        if self._db is None:
            raise StoreError(f"the {self.owner} store is closed")
        return self._db

    def table(self, name: str, *, create: bool = True) -> Any | None:
        """The table's handle. A missing table is created (with its indexes) when `create`,
        else None: reads of a table never written need not create it. Pending migrations
        run first, once per process."""
        tbl = self._tables.get(name)
        if tbl is not None:
            return tbl
        db = self._db_or_fail()
        self._migrate_once()
        try:
            tbl = db.open_table(name)
        except ValueError:  # "Table '...' was not found"
            if not create:
                return None
            with self.locked():  # one creator across processes; the others then open it
                tbl = db.create_table(name, schema=self.schemas[name], exist_ok=True)
                self._index(name, tbl)
            log.debug("table created", table=name, owner=self.owner)
        self._tables[name] = tbl
        return tbl

    def table_version(self, name: str) -> int:
        """The table's current version: any commit by any process moves it.

        On a local disk (STAT_FS_TYPES) the table's ``_versions`` folder is stat'ed first: every
        commit adds a manifest there, which moves the folder's mtime and ctime. When they are
        what they were at an earlier look, that look's version stands. A look is remembered only
        if the folder's times were at least STAT_SETTLED_NS older than the stat: a commit after
        the look then happens at a later tick of the coarse file clock than those times, so it
        cannot leave them unchanged. The stat comes before the version is read, so a commit in
        between only makes the next look read again. Elsewhere: LanceDB's own look."""
        if self._stat_root is None:
            return int(self.table(name).version)
        started = time.time_ns()
        try:
            st = os.stat(self._stat_root / f"{name}.lance" / "_versions")
        except OSError:  # not there (yet), or another layout: LanceDB says
            return int(self.table(name).version)
        key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        seen = self._seen_versions.get(name)
        if seen is not None and seen[0] == key:
            return seen[1]
        version = int(self.table(name).version)
        if started - max(st.st_mtime_ns, st.st_ctime_ns) >= STAT_SETTLED_NS:
            self._seen_versions[name] = (key, version)
        return version

    def ensure(self) -> None:
        """Every table of this owner open, created if missing, with its indexes (an index
        an older store lacks is built here). Cheap once everything exists."""
        if len(self._tables) == len(self.schemas):
            return
        db = self._db_or_fail()
        self._migrate_once()
        try:
            opened = {n: db.open_table(n) for n in self.schemas}
            if not any(self._missing_indexes(n, t) for n, t in opened.items()):
                self._tables.update(opened)
                return
        except ValueError:  # "Table '...' was not found"
            pass
        with self.locked():
            for n, schema in self.schemas.items():
                tbl = db.create_table(n, schema=schema, exist_ok=True)
                self._index(n, tbl)
                self._tables[n] = tbl

    def _missing_indexes(self, name: str, table: Any) -> list[tuple[str, str]]:
        """(column, kind) of the declared indexes `table` lacks."""
        wanted = self.indexes.get(name, ())
        if not wanted:
            return []
        have = {(tuple(ix.columns), str(ix.index_type).lower()) for ix in table.list_indices()}
        return [(col, kind) for col, kind in wanted if ((col,), kind.lower()) not in have]

    def _index(self, name: str, table: Any) -> None:
        """Build the declared indexes `table` lacks (under the lock); optimize() keeps them
        up to date, and rows not yet in an index are still scanned."""
        from lancedb.index import FTS, Bitmap, BTree

        for column, kind in self._missing_indexes(name, table):
            table.create_index(
                column, config={"FTS": FTS, "Bitmap": Bitmap, "BTree": BTree}[kind](), replace=True
            )
            log.info("created index", table=name, column=column, kind=kind)

    # -- migrations ----------------------------------------------------------------------------
    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in this store (of every owner), oldest first."""
        table = self._migrations_table(create=False)
        if table is None:
            return []
        rows = table.search().limit(None).to_arrow().to_pylist()
        return [r["name"] for r in sorted(rows, key=lambda r: r["applied_at"])]

    def _migrations_table(self, *, create: bool) -> Any | None:
        db = self._db_or_fail()
        try:
            return db.open_table(MIGRATIONS)
        except ValueError:
            if not create:
                return None
        try:
            return db.create_table(MIGRATIONS, schema=MIGRATIONS_SCHEMA, exist_ok=True)
        except Exception:  # noqa: BLE001 - another owner created it at the same moment
            return db.open_table(MIGRATIONS)

    def _migrate_once(self) -> None:
        """Run the migrations not yet recorded (under the lock), once per process. A
        migration may use the store's tables itself: it runs with `_migrated` set."""
        if self._migrated:
            return
        self._migrated = True
        try:
            if {m.name for m in self.migrations} <= set(self.applied_migrations()):
                return
            self._run_migrations()
        except BaseException:
            self._migrated = False  # try again on the next access
            raise

    def _run_migrations(self) -> None:
        with self.locked():
            done = set(self.applied_migrations())  # another process may have run them meanwhile
            for migration in self.migrations:
                if migration.name in done:
                    continue
                started = time.perf_counter()
                migration.apply(self)
                record = {"name": migration.name, "owner": self.owner, "applied_at": utc_now()}
                table = self._migrations_table(create=True)
                self.write_to(
                    table, lambda t, r=record: t.add(pa.Table.from_pylist([r], schema=MIGRATIONS_SCHEMA))
                )
                log.info(
                    "store migration applied",
                    migration=migration.name,
                    owner=self.owner,
                    seconds=round(time.perf_counter() - started, 2),
                )

    def open_existing(self, name: str) -> Any | None:
        """A table as it is on disk, or None, for migrations (no schema check, no creation)."""
        try:
            return self._db_or_fail().open_table(name)
        except ValueError:
            return None

    # -- writes and reads ----------------------------------------------------------------------
    def write(self, table_name: str, op: Callable[[Any], Any], *, what: str) -> Any:
        """Run one write on the table (see the module docstring for the retry policy);
        compact the table when its version crosses a multiple of `compact_every`."""
        self._writes += 1
        if self._writes % self.renew_every == 0:
            self._renew()
        table = self.table(table_name)
        before = table.version
        result = self.write_to(table, op, what=what)
        try:
            if table.version // self.compact_every != before // self.compact_every:
                self.compact_table(table_name)
        except Exception as exc:  # noqa: BLE001 - tidying never fails a write
            log.debug("compaction check failed", table=table_name, error=first_line(exc))
        return result

    def append(self, table_name: str, rows: list[dict[str, Any]], *, what: str) -> Any:
        """Append `rows` to the table in one write (see `write`)."""
        batch = pa.Table.from_pylist(rows, schema=self.schemas[table_name])
        return self.write(table_name, lambda t: t.add(batch), what=what)

    def upsert(
        self, table_name: str, rows: list[dict[str, Any]], *, on: list[str], insert: bool = True, what: str
    ) -> Any:
        """One merge_insert of `rows` keyed on the columns `on`: matched rows updated, the
        others inserted (unless `insert` is False). One write, one table version, however
        many rows. A null vector is stored as null (lancedb counts it as "bad")."""
        batch = pa.Table.from_pylist(rows, schema=self.schemas[table_name])

        def op(table: Any) -> Any:
            merge = table.merge_insert(on).when_matched_update_all()
            if insert:
                merge = merge.when_not_matched_insert_all()
            return merge.execute(batch, on_bad_vectors="null")

        return self.write(table_name, op, what=what)

    def write_to(self, table: Any, op: Callable[[Any], Any], *, what: str = "write") -> Any:
        """`op(table)` under the retry policy; StoreError when it does not commit."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return op(table)
            except Exception as exc:  # filtered: only conflicts are retried, the rest re-raised
                if not is_retryable(exc):
                    raise StoreError(f"{self.owner} {what} failed: {first_line(exc)}") from exc
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(
                        f"{self.owner} {what} failed: {WRITE_ATTEMPTS} commit conflicts in a row"
                    ) from exc
                delay = min(0.5, 0.01 * 2**attempt) * (0.5 + random.random())
                log.debug("commit conflict, retrying", owner=self.owner, what=what, attempt=attempt + 1)
                threading.Event().wait(delay)
        raise AssertionError("unreachable")

    def rows(
        self, table_name: str, where: str | None = None, columns: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every row matching `where` (SQL; callers validate and quote what they put in
        it), as dicts of `columns` (default: all). A table never created has no rows."""
        table = self.table(table_name, create=False)
        if table is None:
            return []
        for attempt in range(READ_ATTEMPTS):
            query = table.search()
            if where:
                query = query.where(where)
            if columns:
                query = query.select(list(columns))
            try:
                return query.limit(None).to_arrow().to_pylist()
            except Exception as exc:  # only a version pruned mid-read is retried, the rest re-raised
                if attempt == READ_ATTEMPTS - 1 or not is_pruned(exc):
                    raise
        raise AssertionError("unreachable")

    # -- compaction ----------------------------------------------------------------------------
    def compact_table(self, table_name: str) -> bool:
        """``optimize()`` one table: merge small fragments, fold new rows into the indexes,
        prune versions older than ``cleanup_older_than``; then `after_compact`.

        Best effort: skipped if another writer holds the lock; a concurrent lock-free
        writer can pre-empt it too. Either way it is retried next time. (LanceDB 0.40's
        optimize() merges every fragment under 1M rows, so it rewrites small tables
        whole -- fine at these sizes; tuning it needs `pylance`, not a dependency.)"""
        table = self.table(table_name, create=False)
        if table is None:
            return False
        with self._try_locked() as got:
            if not got:
                log.debug("compaction deferred: lock busy", table=table_name, owner=self.owner)
                return False
            try:
                table.optimize(cleanup_older_than=self.cleanup_older_than)
            except Exception as exc:  # noqa: BLE001 - never fail a write because tidying failed
                (log.debug if is_retryable(exc) else log.warning)(
                    "compaction skipped", table=table_name, error=first_line(exc)
                )
                return False
            if self.after_compact is not None:
                try:
                    self.after_compact(table_name, table)
                except Exception as exc:  # noqa: BLE001 - the owner's upkeep is best effort too
                    log.warning("upkeep after compaction failed", table=table_name, error=first_line(exc))
        log.debug("compacted", table=table_name, version=table.version)
        return True

    def compact(self) -> dict[str, bool]:
        """Optimise every table of this owner now (see `compact_table`)."""
        with self.locked():
            return {name: self.compact_table(name) for name in self.schemas}

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Drop the handles and the connection; later use raises StoreError."""
        self._tables.clear()
        db, self._db = self._db, None
        if db is not None and hasattr(db, "close"):
            try:
                db.close()
            except Exception as exc:  # noqa: BLE001 - closing: nothing left to protect
                log.debug("closing the connection failed", error=first_line(exc))
