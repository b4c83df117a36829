"""The skill registry: every version of every skill, in LanceDB.

Tables (created on first use):

``skills``
    one row per (name, version): status, ``current`` flag, description, tags,
    instructions, the flattened gate summary, the full gate report (JSON text),
    ``search_text`` (name + description + tags + instructions, FTS-indexed) and
    ``vector`` (fixed_size_list<float32>[384], null when no embedder was available).
``packages``
    (name, version, content_hash, size, data) -- the tar.gz blob, kept apart so
    listing and searching never read package bytes.
``usage``
    (name, version, calls, failures, last_used) -- the call counters. They live in
    their own small table so that ``record_call`` (the hot path) neither rewrites
    the wide ``skills`` rows nor turns them into un-indexed FTS rows, and never
    conflicts with a registration committing to ``skills``.
``events``
    append-only audit trail: (ts, name, version, kind, detail JSON).

Invariants: at most one row per name has ``current = true``; it is always a
version whose gate passed (status ``registered``, or ``retired`` after the skill
was retired -- the head keeps its flag so the skill still lists as retired).
Blocked versions are kept with their reasons and report but are never current.

Concurrency: writers that allocate versions or move the ``current`` flag hold a
``filelock.FileLock`` at ``<store>/.registry.lock`` (local stores only; for a
non-local URI -- s3://, gs://, ... -- a single writer process is assumed and
only an in-process lock is taken). ``record_call`` takes no lock: it is a single
``UPDATE ... SET calls = calls + 1`` (``values_sql``), which LanceDB commits
without lost updates across processes. The connection uses
``read_consistency_interval=0`` so every read sees other processes' commits.

Every LanceDB write makes a table version, so writes are kept few: moving the
``current`` flag and inserting the new row is one ``merge_insert``. Tables are
compacted (``optimize``: merge fragments, fold new rows into the FTS index,
prune old versions) whenever a table's version number crosses a multiple of
``compact_every``, and on demand with ``compact()``. Rows not yet in an index
are still searched (LanceDB 0.40 scans un-indexed rows), so a skill is findable
the moment ``add_version`` returns.

Indexes: FTS on ``skills.search_text``; bitmaps on ``skills.status`` and
``skills.current`` (the search prefilter); BTREE on ``packages.name`` and
``usage.name``. Compaction also builds an IVF_SQ vector index once ``skills``
holds ``vector_index_min_rows`` vectors (below that a flat scan is cheap), and
rebuilds it when delta segments pile up. Search reads through LanceDB's async
API on a loop thread of its own (``_Searcher``): see ``search()``.

SQL safety: LanceDB filters are SQL strings. Names are validated against
``^[a-z0-9]+(-[a-z0-9]+)*$`` (max 64), content hashes against a strict
alphabet, versions are ints, statuses come from a fixed set -- and string
literals are quoted with ``_sql_str`` besides. Nothing else reaches a filter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import structlog

from .errors import InvalidName, NotFound, RegistryError, StoreError
from .names import validate_name

log = structlog.get_logger(__name__)

DIM = 384
# sha256 hex, or "algo:hex", or similar; no quotes, spaces or SQL metacharacters.
HASH_RE = re.compile(r"^[A-Za-z0-9:_-]{1,160}$")
STATUSES = ("registered", "blocked", "retired")
Status = Literal["registered", "blocked", "retired"]

SKILLS, PACKAGES, USAGE, EVENTS = "skills", "packages", "usage", "events"
LOCK_NAME = ".registry.lock"
_TS = pa.timestamp("us", tz="UTC")

SKILLS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("current", pa.bool_(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("instructions", pa.string()),
        pa.field("search_text", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), DIM)),
        pa.field("gate_passed", pa.bool_()),
        pa.field("gate_tests", pa.int64()),
        pa.field("gate_failures", pa.int64()),
        pa.field("gate_errors", pa.int64()),
        pa.field("gate_skipped", pa.int64()),
        pa.field("gate_coverage", pa.float64()),
        pa.field("gate_duration_s", pa.float64()),
        pa.field("gate_reasons", pa.list_(pa.string())),
        pa.field("gate_report", pa.string()),
        pa.field("created_at", _TS),
        pa.field("updated_at", _TS),
        # The listing columns but `id` (_LISTED), packed as one JSON text (_listing): the
        # search legs return it with their hits, so no second read of the hits' rows.
        pa.field("listing", pa.string()),
    ]
)
PACKAGES_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("data", pa.large_binary()),
    ]
)
USAGE_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("calls", pa.int64()),
        pa.field("failures", pa.int64()),
        pa.field("last_used", _TS),
    ]
)
EVENTS_SCHEMA = pa.schema(
    [
        pa.field("ts", _TS),
        pa.field("name", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("kind", pa.string()),
        pa.field("detail", pa.string()),
    ]
)
_SCHEMAS = {SKILLS: SKILLS_SCHEMA, PACKAGES: PACKAGES_SCHEMA, USAGE: USAGE_SCHEMA, EVENTS: EVENTS_SCHEMA}
# What listing reads: no vector, instructions, search text or report.
_LIGHT = [
    "id",
    "name",
    "version",
    "content_hash",
    "status",
    "current",
    "description",
    "tags",
    "gate_passed",
    "gate_tests",
    "gate_failures",
    "gate_errors",
    "gate_skipped",
    "gate_coverage",
    "gate_duration_s",
    "gate_reasons",
    "created_at",
    "updated_at",
]
# Packed into `listing`: each column a query returns costs ~0.4 ms at 100k rows (more
# for lists), a take of the hits' rows ~4 ms; one JSON column ~0.1-0.5 ms.
_LISTED = _LIGHT[1:]
_LISTED_TS = ("created_at", "updated_at")
_SEARCHABLE = "current = true AND status = 'registered'"
# Scalar indexes, made with the tables (and added to older stores on open). Without
# them the searchable prefilter reads `current` and `status` of every row, and the
# usage lookup after each search scans the whole usage table (measured at 100k rows:
# ~10 ms and ~30 ms per search). optimize() folds new rows into them.
_SCALAR_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    SKILLS: (("status", "Bitmap"), ("current", "Bitmap")),
    PACKAGES: (("name", "BTree"),),
    USAGE: (("name", "BTree"),),
}
# Vector index (IVF_SQ, cosine), built by compaction once the skills table holds this
# many vectors. A flat scan reads every vector: ~5 ms of a search at 1k rows, ~15-25 ms
# at 10k, ~190 ms at 100k; through the index the vector leg takes ~5-9 ms at any of
# those sizes, and building it takes <1 s at 5k rows, ~8 s at 100k. IVF_SQ because it
# keeps ~full recall (8-bit scalar codes, then a refine step) and trains fast, where
# IVF_PQ took about a minute at 100k and HNSW two: it is rebuilt now and then.
VECTOR_INDEX_MIN_ROWS = 5_000
# optimize() appends each batch of new rows as a delta segment of the vector index,
# searched on its own and with the old centroids; past this many segments the index
# is rebuilt (re-trained for the current size) at the next compaction.
VECTOR_INDEX_MAX_SEGMENTS = 8
# ...and when the table has grown this many times past the rows it was trained on.
# The trained row count is kept in the index name: "vector_ivfsq_<rows>".
VECTOR_INDEX_REBUILD_GROWTH = 2
VECTOR_INDEX_PREFIX = "vector_ivfsq_"
# Tuned on all-MiniLM-L6-v2 vectors of synthetic skill descriptions (20k real ones, and
# 100k: those plus noisy copies) against an exact scan, 38 queries: ~1k rows per
# partition, 20 probed, refine x2 (re-rank 10 candidates by exact distance) gave top-5
# recall 0.99-1.0 at 100k rows. Without refine recall stays ~0.96 (8-bit codes blur
# near-ties). Past ~500k rows 20 probes cover under 4% of the partitions: raise
# VECTOR_NPROBES then.
VECTOR_ROWS_PER_PARTITION = 1024
VECTOR_NPROBES = 20
VECTOR_REFINE_FACTOR = 2
RRF_K = 60  # reciprocal rank fusion constant (as LanceDB's RRFReranker)
# Skill names whose usage rows a searcher keeps between searches (see _Searcher.usage_of);
# past this the cache starts over. A few hundred bytes a name.
USAGE_CACHE_NAMES = 10_000


# --------------------------------------------------------------------------- errors


# --------------------------------------------------------------------------- records


class EmbedderLike(Protocol):
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class GateSummary:
    passed: bool
    tests: int
    failures: int
    errors: int
    skipped: int
    coverage: float | None
    duration_s: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class SkillRecord:
    id: str
    name: str
    version: int
    content_hash: str
    status: str
    current: bool
    description: str
    tags: list[str]
    gate: GateSummary
    calls: int
    failures: int
    last_used: datetime | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        # Not dataclass fields (so asdict/==/repr ignore them): the full gate report
        # is loaded from the store on first access of `.gate_report`.
        self._report_loader: Callable[[], dict[str, Any]] | None = None
        self._report: dict[str, Any] | None = None

    @property
    def gate_report(self) -> dict[str, Any]:
        if self._report is None:
            if self._report_loader is None:
                raise RegistryError(f"{self.name} v{self.version}: no gate report loader")
            self._report = self._report_loader()
        return self._report


# --------------------------------------------------------------------------- helpers


def _validate_hash(content_hash: object) -> str:
    if not isinstance(content_hash, str) or not HASH_RE.fullmatch(content_hash):
        raise InvalidName(f"invalid content hash {content_hash!r}")
    return content_hash


def _validate_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or int(version) < 1:
        raise ValueError(f"invalid version {version!r}: want an int >= 1")
    return int(version)


def _validate_status(status: object) -> str:
    if status not in STATUSES:
        raise ValueError(f"invalid status {status!r}: want one of {STATUSES}")
    return str(status)


def _sql_str(value: str) -> str:
    """A SQL string literal. Inputs are validated first; quoting is the second fence."""
    return "'" + value.replace("'", "''") + "'"


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(ts: datetime | None) -> datetime | None:
    """Arrow gives zoneinfo('UTC'); hand out the same tzinfo as _now() everywhere."""
    return None if ts is None else ts.astimezone(UTC)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://")).expanduser()


def _is_retryable(exc: Exception) -> bool:
    text = str(exc)
    return "CommitConflict" in text or "commit conflict" in text.lower()


def _embed_text(name: str, description: str, tags: list[str]) -> str:
    # The description says what the skill does and when to use it: that is what a
    # query should match by meaning. Instructions are long and would dilute the
    # mean-pooled vector (and be cut at 256 tokens); they are in the FTS text.
    text = f"{name.replace('-', ' ')}: {description}"
    return f"{text}\nTags: {', '.join(tags)}" if tags else text


def _search_text(name: str, description: str, tags: list[str], instructions: str) -> str:
    return "\n".join([name, name.replace("-", " "), description, " ".join(tags), instructions])


def _listing(row: dict[str, Any]) -> str:
    """The `listing` column of a skills row: its _LISTED columns as JSON (ASCII only, so
    it is a safe SQL literal once quoted; timestamps as ISO 8601)."""
    out = {k: row.get(k) for k in _LISTED}
    for k in _LISTED_TS:
        ts = out[k]
        out[k] = None if ts is None else _utc(ts).isoformat()
    return json.dumps(out, separators=(",", ":"))


def _unpack(row_id: str, listing: str) -> dict[str, Any]:
    """A row of the _LIGHT columns from its id and `listing` (see _listing)."""
    row = json.loads(listing)
    for k in _LISTED_TS:
        if row[k] is not None:
            row[k] = datetime.fromisoformat(row[k])
    row["id"] = row_id
    return row


def _first_line(exc: BaseException) -> str:
    """An error's first line, for a log (LanceDB errors carry long backtraces)."""
    return (str(exc).splitlines() or [""])[0][:200]


def _trained_rows(index_name: str) -> int | None:
    """Rows the vector index was trained on, from its name; None if not ours."""
    m = re.fullmatch(re.escape(VECTOR_INDEX_PREFIX) + r"(\d+)", index_name)
    return int(m.group(1)) if m else None


def _fuse(
    text_hits: list[dict[str, Any]], vector_hits: list[dict[str, Any]], limit: int, min_similarity: float
) -> list[tuple[dict[str, Any], float]]:
    """Reciprocal rank fusion of the two legs, best first, at most `limit` hits.

    Score = sum over the legs a row is in of 1 / (RRF_K + rank), rank from 1 (what
    LanceDB's RRFReranker computes). Rows only the vector leg found are kept when
    their cosine similarity (1 - cosine distance) reaches `min_similarity`: the
    vector leg returns its nearest rows however unrelated they are.
    """
    scores: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    for leg in (vector_hits, text_hits):
        for rank, row in enumerate(leg, start=1):
            scores[row["id"]] = scores.get(row["id"], 0.0) + 1.0 / (RRF_K + rank)
            rows.setdefault(row["id"], row)
    in_text = {row["id"] for row in text_hits}
    kept = [i for i in scores if i in in_text or 1.0 - rows[i]["_distance"] >= min_similarity]
    kept.sort(key=lambda i: scores[i], reverse=True)  # stable: ties keep vector-leg order
    return [(rows[i], scores[i]) for i in kept[:limit]]


class _Searcher:
    """The read side of search: an asyncio loop on a daemon thread, with LanceDB's async
    handles of the skills and usage tables.

    Why not the sync API: each sync query costs ~2.5 ms of Python around the query
    itself (two schema round trips, a thread hop each), and search makes three
    queries. Here a search is ``search_hybrid``: the two legs, fusion, and one read of
    the counters of the hits kept (or ``search_text`` alone); with a slow query
    embedder the text leg (``text_leg``) is started before the query is embedded. The legs
    return their hits' listing columns packed in one column (``listing``: every
    column a query returns costs ~0.4 ms at 100k rows, and a second read of the hits'
    rows ~4 ms). Every LanceDB query has a fixed cost of ~2.5-3 ms here, so the count
    matters more than overlap: on two cores, queries beside the embedding slow it down
    about as much as they save. The handles do not check for new versions per query
    (~1.2 ms each here); every search starts with one ``refresh`` of both (~0.3 ms), and
    its queries read the versions it found. The counters read is skipped for hits whose
    counters were read since the usage table last changed (``usage_of``): ~4 ms off a
    search that finds skills an earlier search found, ~0.1 ms (the version look-up) on
    one that does not.
    """

    def __init__(self, uri: str) -> None:
        self.pid = os.getpid()
        # usage rows by skill name, valid while the usage table is at _usage_version
        # (see usage_of); touched only on the loop thread.
        self._usage_cache: dict[str, list[dict[str, Any]]] = {}
        self._usage_version: int | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="registry-search", daemon=True)
        self._thread.start()
        try:
            self._db, self._skills, self._usage = self.run(self._open(uri))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _open(uri: str) -> tuple[Any, Any, Any]:
        import lancedb

        # No automatic consistency check (read_consistency_interval=None): each query would
        # look for a newer version itself (~1.2 ms a query here, three queries a search);
        # a search calls `refresh` once instead, so it still sees every commit, of any
        # process, that landed before it started.
        db = await lancedb.connect_async(uri, read_consistency_interval=None)
        return db, await db.open_table(SKILLS), await db.open_table(USAGE)

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Any) -> Any:
        return self.submit(coro).result()

    def close(self) -> None:
        """Stop the loop and close the connection; idempotent, and a no-op in a forked
        child (the loop thread and the connection belong to the parent)."""
        if self.pid != os.getpid() or self._loop.is_closed():
            return
        self._stop_loop()
        self._db.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def refresh(self) -> None:
        """Move both table handles to their latest versions (~0.3 ms for both when nothing
        changed): the first step of every search."""
        await asyncio.gather(self._skills.checkout_latest(), self._usage.checkout_latest())

    async def search_text(
        self, query: str, limit: int
    ) -> list[tuple[dict[str, Any], float, dict[tuple[str, int], dict[str, Any]]]]:
        """Full text only (no query vector): the text leg, then the counters of its hits.
        (row, score, usage) per hit, best first."""
        await self.refresh()
        text_hits = await self.text_leg(query, limit)
        hits = [(h, float(h["_score"])) for h in text_hits]
        usage = await self.usage_of({h["name"] for h in text_hits})
        return await self._result(hits, usage)

    async def search_hybrid(
        self,
        query: str,
        refreshed: concurrent.futures.Future[Any],
        text: concurrent.futures.Future[Any] | None,
        qv: np.ndarray,
        limit: int,
        min_similarity: float,
    ) -> list[tuple[dict[str, Any], float, dict[tuple[str, int], dict[str, Any]]]]:
        """Both legs, fused, then the counters of the hits kept, in one query.
        `refreshed` is this search's ``refresh``, submitted before the query was embedded;
        `text` the text leg if it was started then too (``text_leg``, see Registry.search),
        else it runs here beside the vector leg. The legs return the hits' listing columns
        themselves (`listing`), so no row is read twice."""
        await asyncio.wrap_future(refreshed)
        if text is None:
            text_hits, vector_hits = await asyncio.gather(
                self.text_leg(query, limit), self.vector_leg(qv, limit)
            )
        else:
            try:
                vector_hits = await self.vector_leg(qv, limit)
            except BaseException:
                text.cancel()
                raise
            text_hits = await asyncio.wrap_future(text)
        hits = _fuse(text_hits, vector_hits, limit, min_similarity)
        usage = await self.usage_of({h["name"] for h, _ in hits})
        return await self._result(hits, usage)

    async def _result(
        self, hits: list[tuple[dict[str, Any], float]], usage: dict[tuple[str, int], dict[str, Any]]
    ) -> list[tuple[dict[str, Any], float, dict[tuple[str, int], dict[str, Any]]]]:
        if not hits:
            return []
        rows = await self._rows_of([h for h, _ in hits])
        return [(row, score, usage) for row, (_, score) in zip(rows, hits)]

    @staticmethod
    def _hits(table: pa.Table) -> list[dict[str, Any]]:
        """A leg's result as dicts: its columns, and `name` and `row` (the _LIGHT
        columns, None when the row has no `listing`) from the packed listing."""
        hits = table.to_pylist()
        for h in hits:
            listing = h.pop("listing")
            h["row"] = None if listing is None else _unpack(h["id"], listing)
            h["name"] = h["row"]["name"] if listing is not None else h.pop("name")
        return hits

    async def text_leg(
        self, query: str, limit: int, refreshed: concurrent.futures.Future[Any] | None = None
    ) -> list[dict[str, Any]]:
        """BM25 top `limit` of the searchable rows: id, name, row, `_score`, `_rowid`;
        after `refreshed` (the search's ``refresh``) when given."""
        if refreshed is not None:
            await asyncio.wrap_future(refreshed)
        q = self._skills.query().nearest_to_text(query).where(_SEARCHABLE)
        return self._hits(await q.select(self._columns("_score")).with_row_id().limit(limit).to_arrow())

    async def vector_leg(self, qv: np.ndarray, limit: int) -> list[dict[str, Any]]:
        """Cosine top `limit` of the searchable rows, nearest first: id, name, row,
        `_distance`, `_rowid`. nprobes/refine_factor matter once there is an index: the
        refine step re-ranks `limit * refine_factor` candidates by exact distance."""
        q = (
            self._skills.query()
            .nearest_to(qv)
            .distance_type("cosine")
            .nprobes(VECTOR_NPROBES)
            .refine_factor(VECTOR_REFINE_FACTOR)
            .where(_SEARCHABLE)
        )
        return self._hits(await q.select(self._columns("_distance")).with_row_id().limit(limit).to_arrow())

    @staticmethod
    def _columns(score: str) -> list[str]:
        # `name` besides `listing` only for a row without one (written before the column
        # existed, by an older process); reading it costs ~0.3 ms, so only then.
        return ["id", "listing", "name", score]

    async def usage_of(self, names: set[str]) -> dict[tuple[str, int], dict[str, Any]]:
        """The usage rows of `names`, by (name, version), from the cache when the usage
        table has not changed since they were read.

        Why a cache: reading the counters is a LanceDB query (~3-4.5 ms at 100k rows), the
        version the search's ``refresh`` checked out costs ~0.1 ms to ask, and between two
        searches the counters mostly stay put. Any write to the usage table (a call recorded by this or another
        process, a compaction) moves its version, and the next search drops the whole
        cache. Rows read are filed under the version seen *before* the query: a commit
        landing in between makes them look older than they are, so they are dropped
        too early, never kept too long.
        """
        if not names:
            return {}
        version = await self._usage.version()
        if version != self._usage_version:
            self._usage_cache.clear()
            self._usage_version = version
        # taken before the await below: another search may clear the cache meanwhile
        rows_of = {n: self._usage_cache[n] for n in names if n in self._usage_cache}
        missing = sorted(names - rows_of.keys())
        fetched: dict[str, list[dict[str, Any]]] = {n: [] for n in missing}
        if missing:
            where = "name IN (" + ", ".join(_sql_str(validate_name(n)) for n in missing) + ")"
            for r in (await self._usage.query().where(where).to_arrow()).to_pylist():
                fetched[r["name"]].append(r)
            # Another search on this loop may have seen a newer version meanwhile: then
            # these rows belong to an older one and are not filed.
            if self._usage_version == version:
                if len(self._usage_cache) + len(fetched) > USAGE_CACHE_NAMES:
                    self._usage_cache.clear()
                self._usage_cache.update(fetched)
        rows_of.update(fetched)
        return {(r["name"], r["version"]): r for rows in rows_of.values() for r in rows}

    async def _rows_of(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The _LIGHT columns of `hits`, in order: from their listing, else (rows written
        without one) read by row id and checked against their ids -- a compaction
        committed in between can move rows, and then they are looked up by id."""
        todo = [h for h in hits if h["row"] is None]
        if not todo:
            return [h["row"] for h in hits]
        taken = (
            await self._skills.take_row_ids([h["_rowid"] for h in todo])
            .select(_LIGHT)
            .with_row_id()
            .to_arrow()
        )
        by_rowid = {r["_rowid"]: r for r in taken.to_pylist()}
        found = {
            h["id"]: r for h in todo if (r := by_rowid.get(h["_rowid"])) is not None and r["id"] == h["id"]
        }
        if len(found) < len(todo):
            log.debug("search: rows moved under the query; reading them by id", hits=len(todo))
            where = "id IN (" + ", ".join(_sql_str(h["id"]) for h in todo) + ")"
            found = {
                r["id"]: r
                for r in (await self._skills.query().where(where).select(_LIGHT).to_arrow()).to_pylist()
            }
            missing = [h["id"] for h in todo if h["id"] not in found]
            if missing:  # deleted in between: the registry never deletes skill rows
                raise StoreError(f"search: {len(missing)} hit(s) vanished from the store")
        return [h["row"] if h["row"] is not None else found[h["id"]] for h in hits]


# --------------------------------------------------------------------------- registry


class Registry:
    """All versions of all skills in one LanceDB store. See the module docstring."""

    def __init__(
        self,
        uri: str | Path,
        embedder: EmbedderLike | Literal["auto"] | None = "auto",
        *,
        compact_every: int = 50,
        cleanup_older_than: timedelta = timedelta(hours=1),
        lock_timeout: float = 60.0,
        vector_index_min_rows: int | None = VECTOR_INDEX_MIN_ROWS,
    ) -> None:
        import lancedb  # heavy import, kept local to the registry

        self.uri = str(uri)
        self.compact_every = max(1, int(compact_every))
        # None: never build a vector index (every search scans all vectors).
        self.vector_index_min_rows = (
            None if vector_index_min_rows is None else max(1, int(vector_index_min_rows))
        )
        self.cleanup_older_than = cleanup_older_than
        self._local = _is_local(self.uri)
        if self._local:
            root = _local_path(self.uri)
            root.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            self._file_lock: Any = FileLock(str(root / LOCK_NAME), timeout=lock_timeout)
        else:
            self._file_lock = None
            log.info("registry store is not local: a single writer process is assumed", uri=self.uri)
        self._thread_lock = threading.RLock()
        self._searcher_lock = threading.Lock()
        self._search: _Searcher | None = None
        self._db = lancedb.connect(self.uri, read_consistency_interval=timedelta(0))
        self._tables: dict[str, Any] = {}
        self._embedder_arg = embedder
        self._embedder: EmbedderLike | None = None
        self._embedder_resolved = False
        self._warned_no_embedder = False
        if isinstance(embedder, str):
            if embedder != "auto":
                raise ValueError(f"embedder must be an Embedder, 'auto' or None, not {embedder!r}")
        elif embedder is not None:
            self._set_embedder(embedder)

    # ----------------------------------------------------------------- plumbing

    def _set_embedder(self, embedder: EmbedderLike) -> None:
        if int(getattr(embedder, "dim", -1)) != DIM:
            raise ValueError(f"embedder dim {getattr(embedder, 'dim', None)!r} != {DIM}")
        self._embedder = embedder
        self._embedder_resolved = True

    @property
    def embedder(self) -> EmbedderLike | None:
        """The embedder in use; with embedder="auto" it is loaded on first need."""
        if not self._embedder_resolved:
            emb: EmbedderLike | None = None
            if self._embedder_arg == "auto":
                try:
                    from runtime.embeddings import load_embedder
                except ImportError as exc:
                    log.warning("runtime.embeddings unavailable; no vectors", error=str(exc))
                else:
                    emb = load_embedder()
            if emb is not None:
                self._set_embedder(emb)
            self._embedder_resolved = True
        return self._embedder

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers: the thread lock always, the file lock for local stores."""
        with self._thread_lock:
            if self._file_lock is None:
                yield
                return
            from filelock import Timeout

            try:
                self._file_lock.acquire()
            except Timeout as exc:
                raise StoreError(f"registry lock busy: {self._file_lock.lock_file}") from exc
            try:
                yield
            finally:
                self._file_lock.release()

    def _table(self, name: str) -> Any:
        tbl = self._tables.get(name)
        if tbl is None:
            self._ensure_tables()
            tbl = self._tables[name]
        return tbl

    def _ensure_tables(self) -> None:
        if self._db is None:
            raise StoreError("registry is closed")
        try:  # fast path: everything exists already
            opened = {n: self._db.open_table(n) for n in _SCHEMAS}
            if not self._missing_indexes(opened) and not self._missing_columns(opened[SKILLS]):
                self._tables.update(opened)
                return
        except ValueError:  # "Table '...' was not found"
            pass
        with self._locked():
            self._migrate()  # before create_table: exist_ok=True refuses a different schema
            for n, schema in _SCHEMAS.items():
                self._tables[n] = self._db.create_table(n, schema=schema, exist_ok=True)
            for table_name, column, kind in self._missing_indexes(self._tables):
                self._create_index(table_name, column, kind)

    @staticmethod
    def _missing_columns(table: Any) -> list[str]:
        """Columns of SKILLS_SCHEMA that a skills table made by older code lacks."""
        have = set(table.schema.names)
        return [n for n in SKILLS_SCHEMA.names if n not in have]

    def _migrate(self) -> None:
        """Bring a skills table made by older code up to SKILLS_SCHEMA (under the lock).

        The only column added so far is `listing`: added empty, then filled in for every
        row (one merge_insert per 5k rows; the rewritten rows are folded back into the
        indexes by the compaction that follows). Search reads a row without a listing by
        a second query, so a row an older process writes later is still found.
        """
        try:
            table = self._db.open_table(SKILLS)
        except ValueError:  # a new store
            return
        missing = self._missing_columns(table)
        if not missing:
            return
        if missing != ["listing"]:
            raise StoreError(f"skills table lacks columns {missing}: not a store this code can migrate")
        started = time.perf_counter()
        table.add_columns(pa.field("listing", pa.string()))
        rows = table.search().where("listing IS NULL").select(_LIGHT).limit(None).to_arrow().to_pylist()
        for i in range(0, len(rows), 5_000):
            chunk = rows[i : i + 5_000]
            batch = pa.table({"id": [r["id"] for r in chunk], "listing": [_listing(r) for r in chunk]})
            table.merge_insert("id").when_matched_update_all().execute(batch)
        log.info(
            "migrated the skills table: added `listing`",
            rows=len(rows),
            seconds=round(time.perf_counter() - started, 2),
        )
        if rows:
            self._tables[SKILLS] = table
            self._compact_table(SKILLS)

    @staticmethod
    def _missing_indexes(tables: dict[str, Any]) -> list[tuple[str, str, str]]:
        """(table, column, kind) of the FTS and scalar indexes a table lacks."""
        wanted = [(SKILLS, "search_text", "FTS")]
        wanted += [(t, col, kind) for t, specs in _SCALAR_INDEXES.items() for col, kind in specs]
        have = {
            n: {(tuple(ix.columns), str(ix.index_type).lower()) for ix in tables[n].list_indices()}
            for n in {t for t, _, _ in wanted}
        }
        return [(t, col, kind) for t, col, kind in wanted if ((col,), kind.lower()) not in have[t]]

    def _create_index(self, table_name: str, column: str, kind: str) -> None:
        """One FTS or scalar index; optimize() keeps it up to date, newer rows are scanned."""
        from lancedb.index import FTS, Bitmap, BTree

        config = {"FTS": FTS, "Bitmap": Bitmap, "BTree": BTree}[kind]()
        self._tables[table_name].create_index(column, config=config, replace=True)
        log.info("created index", table=table_name, column=column, kind=kind)

    @staticmethod
    def _vector_indexes(table: Any) -> list[Any]:
        """Index configs on the vector column (normally none or one)."""
        return [ix for ix in table.list_indices() if list(ix.columns) == ["vector"]]

    @classmethod
    def _vector_index(cls, table: Any) -> Any | None:
        """The vector column's index config, if there is one."""
        return next(iter(cls._vector_indexes(table)), None)

    def _maintain_vector_index(self, table: Any) -> str | None:
        """Build the vector index once the table is big enough for a flat scan to hurt,
        and rebuild it (re-train the partitions) when it no longer fits the table.

        Called under the registry lock, after optimize(). Returns what was done.
        """
        if self.vector_index_min_rows is None:
            return None
        indexes = self._vector_indexes(table)
        if not indexes:
            if table.count_rows() < self.vector_index_min_rows:  # cheap: from metadata
                return None
            # Stores without an embedder hold null vectors; they cannot train an index.
            # (A filtered count reads the column: ~0.2 s at 100k rows, once per compaction.)
            rows = table.count_rows("vector IS NOT NULL")
            if rows < self.vector_index_min_rows:
                return None
            action = "created"
        else:
            rows = self._vector_index_stale(table, indexes)
            if rows is None:
                return None
            action = "rebuilt"
        from lancedb.index import IvfSq

        partitions = max(1, rows // VECTOR_ROWS_PER_PARTITION)
        name = f"{VECTOR_INDEX_PREFIX}{rows}"
        started = time.perf_counter()
        table.create_index(
            "vector", config=IvfSq(distance_type="cosine", num_partitions=partitions), name=name, replace=True
        )
        for old in indexes:  # only after the new one exists: search never lacks an index
            if old.name != name:
                table.drop_index(old.name)
        log.info(
            f"vector index {action}",
            table=SKILLS,
            rows=rows,
            partitions=partitions,
            seconds=round(time.perf_counter() - started, 2),
        )
        return action

    @staticmethod
    def _vector_index_stale(table: Any, indexes: list[Any]) -> int | None:
        """The number of vectors to re-train on, or None while the index still fits.

        Stale when optimize() has stacked up more than VECTOR_INDEX_MAX_SEGMENTS delta
        segments (each is searched on its own, with the old centroids), when the table
        has grown past VECTOR_INDEX_REBUILD_GROWTH times the rows the partitions were
        trained on (partitions fill up: more rows per probe, slower), and when the index
        is not ours (trained rows unknown; perhaps another distance type).
        """
        trained = _trained_rows(indexes[0].name) if len(indexes) == 1 else None
        if (
            trained is None
            or (table.index_stats(indexes[0].name).num_indices or 1) > VECTOR_INDEX_MAX_SEGMENTS
        ):
            return table.count_rows("vector IS NOT NULL")
        if table.count_rows() <= VECTOR_INDEX_REBUILD_GROWTH * trained:  # cheap check first
            return None
        rows = table.count_rows("vector IS NOT NULL")
        return rows if rows > VECTOR_INDEX_REBUILD_GROWTH * trained else None  # else: rows without vectors

    def _write(self, table_name: str, op: Callable[[Any], Any], attempts: int = 6) -> Any:
        """Run one write, retrying LanceDB's retryable commit conflicts (they did not commit)."""
        table = self._table(table_name)
        before = table.version
        for i in range(attempts):
            try:
                result = op(table)
                break
            except Exception as exc:  # noqa: BLE001 -- filtered by _is_retryable
                if i == attempts - 1 or not _is_retryable(exc):
                    raise
                log.debug("commit conflict, retrying", table=table_name, attempt=i + 1)
                threading.Event().wait(0.01 * (2**i))
        after = table.version
        if after // self.compact_every != before // self.compact_every:
            self._compact_table(table_name)
        return result

    def _compact_table(self, table_name: str) -> bool:
        """``optimize()`` one table: merge small fragments, fold new rows into the
        indexes, prune versions older than ``cleanup_older_than``; for ``skills``, also
        build or rebuild the vector index (``_maintain_vector_index``).

        Best effort: skipped if another writer holds the lock; a concurrent lock-free
        writer (record_call) can pre-empt it too. Either way it is retried next time.
        Cost note: LanceDB 0.40's optimize() merges *every* fragment under 1M rows, so
        each run rewrites the whole ``packages`` table (all blobs) -- fine for registry
        sizes (1k packages of 20 KB = 20 MB per run, once per `compact_every` adds), and
        the old files go at the next run after ``cleanup_older_than``. Tuning that
        (compact_files with a target size, or cleanup without compaction) needs the
        `pylance` package, which is not a dependency.
        """
        if self._file_lock is not None:
            from filelock import Timeout

            try:
                self._file_lock.acquire(timeout=0)  # re-entrant if we already hold it
            except Timeout:
                log.debug("compaction deferred: registry lock busy", table=table_name)
                return False
        try:
            table = self._table(table_name)
            table.optimize(cleanup_older_than=self.cleanup_older_than)
        except Exception as exc:  # noqa: BLE001 -- never fail a write because tidying failed
            log.warning("compaction skipped", table=table_name, error=_first_line(exc))
            return False
        else:
            if table_name == SKILLS:
                try:
                    self._maintain_vector_index(table)
                except Exception as exc:  # noqa: BLE001 -- search still works, by flat scan
                    log.warning("vector index not built", table=table_name, error=_first_line(exc))
        finally:
            if self._file_lock is not None:
                self._file_lock.release()
        log.debug("compacted", table=table_name, version=table.version)
        return True

    def compact(self) -> dict[str, bool]:
        """Optimise every table now (merge fragments, update the indexes, prune old versions;
        build the vector index once the skills table is big enough)."""
        with self._locked():
            return {n: self._compact_table(n) for n in _SCHEMAS}

    def _rows(
        self, table_name: str, where: str | None, columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        q = self._table(table_name).search()
        if where:
            q = q.where(where)
        if columns:
            q = q.select(columns)
        return q.limit(None).to_arrow().to_pylist()

    def _usage(self, where: str | None) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["name"], r["version"]): r for r in self._rows(USAGE, where)}

    def _record(self, row: dict[str, Any], usage: dict[tuple[str, int], dict[str, Any]]) -> SkillRecord:
        u = usage.get((row["name"], row["version"]), {})
        name, version = row["name"], row["version"]
        rec = SkillRecord(
            id=row["id"],
            name=name,
            version=version,
            content_hash=row["content_hash"],
            status=row["status"],
            current=bool(row["current"]),
            description=row["description"] or "",
            tags=list(row["tags"] or []),
            gate=GateSummary(
                passed=bool(row["gate_passed"]),
                tests=row["gate_tests"] or 0,
                failures=row["gate_failures"] or 0,
                errors=row["gate_errors"] or 0,
                skipped=row["gate_skipped"] or 0,
                coverage=row["gate_coverage"],
                duration_s=row["gate_duration_s"] or 0.0,
                reasons=list(row["gate_reasons"] or []),
            ),
            calls=u.get("calls") or 0,
            failures=u.get("failures") or 0,
            last_used=_utc(u.get("last_used")),
            created_at=_utc(row["created_at"]),
            updated_at=_utc(row["updated_at"]),
        )
        rec._report_loader = lambda: self.gate_report(name, version)
        return rec

    def _records(
        self, where: str | None, usage_where: str | None = None, *, usage: bool = True
    ) -> list[SkillRecord]:
        rows = self._rows(SKILLS, where, _LIGHT)
        if not rows:
            return []
        counters = self._usage(usage_where if usage_where is not None else where) if usage else {}
        return [self._record(r, counters) for r in rows]

    def _event(self, kind: str, name: str | None, version: int | None, **detail: Any) -> None:
        row = {
            "ts": _now(),
            "name": name,
            "version": version,
            "kind": kind,
            "detail": json.dumps(detail, sort_keys=True, default=str),
        }
        self._write(EVENTS, lambda t: t.add(pa.Table.from_pylist([row], schema=EVENTS_SCHEMA)))

    @staticmethod
    def _head(records: list[SkillRecord]) -> SkillRecord | None:
        """The current version if any, else the latest."""
        if not records:
            return None
        for r in records:
            if r.current:
                return r
        return max(records, key=lambda r: r.version)

    # ----------------------------------------------------------------- writes

    def add_version(
        self,
        name: str,
        content_hash: str,
        status: str,
        description: str,
        tags: list[str],
        instructions: str,
        gate: GateSummary,
        gate_report: dict[str, Any],
        package: bytes,
    ) -> SkillRecord:
        """Store a new version (next number for the name). A registered one becomes current."""
        validate_name(name)
        _validate_hash(content_hash)
        if status not in ("registered", "blocked"):
            raise ValueError(f"a new version is 'registered' or 'blocked', not {status!r}")
        if status == "registered" and not gate.passed:
            raise RegistryError(f"{name}: cannot register a version whose gate failed")
        if not isinstance(package, (bytes, bytearray, memoryview)) or not package:
            raise ValueError("package must be non-empty bytes")
        tags = [str(t) for t in (tags or [])]
        description = description or ""
        instructions = instructions or ""
        report_json = json.dumps(gate_report, sort_keys=True)  # fails loudly on non-JSON values

        vector = None
        if self.embedder is not None:  # before taking the lock: embedding is the slow part
            vector = np.asarray(self.embedder.embed([_embed_text(name, description, tags)])[0], np.float32)
            if vector.shape != (DIM,) or not np.isfinite(vector).all():
                raise RegistryError(f"embedder gave shape {vector.shape} or non-finite values; want ({DIM},)")

        self._table(SKILLS)  # make sure tables exist before locking (creation locks too)
        with self._locked():
            q_name = _sql_str(name)
            existing = self._rows(SKILLS, f"name = {q_name}", ["version"])
            version = max((r["version"] for r in existing), default=0) + 1
            now = _now()
            row = {
                "id": uuid.uuid4().hex,
                "name": name,
                "version": version,
                "content_hash": content_hash,
                "status": status,
                "current": status == "registered",
                "description": description,
                "tags": tags,
                "instructions": instructions,
                "search_text": _search_text(name, description, tags, instructions),
                "vector": vector,
                "gate_passed": bool(gate.passed),
                "gate_tests": int(gate.tests),
                "gate_failures": int(gate.failures),
                "gate_errors": int(gate.errors),
                "gate_skipped": int(gate.skipped),
                "gate_coverage": None if gate.coverage is None else float(gate.coverage),
                "gate_duration_s": float(gate.duration_s),
                "gate_reasons": [str(r) for r in gate.reasons],
                "gate_report": report_json,
                "created_at": now,
                "updated_at": now,
            }
            row["listing"] = _listing(row)
            rows = [row]
            previous = None
            if status == "registered":
                # Clear the old current in the same commit that inserts the new row.
                old = self._rows(SKILLS, f"name = {q_name} AND current = true")
                for o in old:
                    previous = o["version"]
                    o.update(current=False, updated_at=now)
                    o["listing"] = _listing(o)
                rows += old
            data = bytes(package)
            # Package and counters first; the skills row is the commit point. A crash
            # in between leaves rows for a version number that will be allocated again:
            # harmless, as package() selects by (name, version, content_hash) -- equal
            # hashes mean equal bytes -- and the usage row is upserted.
            pkg = pa.Table.from_pylist(
                [
                    {
                        "name": name,
                        "version": version,
                        "content_hash": content_hash,
                        "size": len(data),
                        "data": data,
                    }
                ],
                schema=PACKAGES_SCHEMA,
            )
            self._write(PACKAGES, lambda t: t.add(pkg))
            use = pa.Table.from_pylist(
                [{"name": name, "version": version, "calls": 0, "failures": 0, "last_used": None}],
                schema=USAGE_SCHEMA,
            )
            self._write(
                USAGE,
                lambda t: (
                    t.merge_insert(["name", "version"])
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(use)
                ),
            )
            batch = pa.Table.from_pylist(rows, schema=SKILLS_SCHEMA)
            # on_bad_vectors="null": lancedb counts a null vector (no embedder) as "bad";
            # real vectors were shape- and NaN-checked above.
            self._write(
                SKILLS,
                lambda t: (
                    t.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute(batch, on_bad_vectors="null")
                ),
            )
            detail: dict[str, Any] = {
                "content_hash": content_hash,
                "gate": {
                    "tests": gate.tests,
                    "failures": gate.failures,
                    "errors": gate.errors,
                    "coverage": gate.coverage,
                },
            }
            if status == "blocked":
                detail["reasons"] = list(gate.reasons)
            elif previous is not None:
                detail["previous"] = previous
            self._event(status, name, version, **detail)
        log.info(
            "skill version added",
            skill=name,
            version=version,
            status=status,
            current=row["current"],
            vectors=vector is not None,
        )
        rec = self._record(row, {})
        rec._report = json.loads(report_json)
        return rec

    def rollback(self, name: str, version: int) -> SkillRecord:
        """Make an earlier registered version current again (its row and package are untouched)."""
        validate_name(name)
        version = _validate_version(version)
        q_name = _sql_str(name)
        with self._locked():
            rows = self._rows(SKILLS, f"name = {q_name}")
            target = next((r for r in rows if r["version"] == version), None)
            if target is None:
                raise NotFound(f"{name} v{version} does not exist")
            if target["status"] != "registered":
                raise RegistryError(f"cannot roll {name} back to v{version}: it is {target['status']}")
            previous = [r for r in rows if r["current"] and r["version"] != version]
            if target["current"] and not previous:
                log.info("rollback: already current", skill=name, version=version)
            else:
                now = _now()
                target.update(current=True, updated_at=now)
                target["listing"] = _listing(target)
                for r in previous:
                    r.update(current=False, updated_at=now)
                    r["listing"] = _listing(r)
                batch = pa.Table.from_pylist([target, *previous], schema=SKILLS_SCHEMA)
                self._write(
                    SKILLS,
                    lambda t: (
                        t.merge_insert("id").when_matched_update_all().execute(batch, on_bad_vectors="null")
                    ),
                )
                self._event("rollback", name, version, previous=[r["version"] for r in previous] or None)
                log.info(
                    "skill rolled back",
                    skill=name,
                    version=version,
                    previous=[r["version"] for r in previous],
                )
        rec = self.get(name, version)
        if rec is None:  # only if the store changed under us
            raise NotFound(f"{name} v{version} does not exist")
        return rec

    def set_status(
        self, name: str, status: str, version: int | None = None, *, reason: str | None = None
    ) -> SkillRecord:
        """Change one version's status (default: the head, i.e. current else latest).

        - ``retired``: the version stays (history is kept); a retired head keeps its
          ``current`` flag so the skill lists as retired, but it is never searched.
        - ``blocked``: also clears ``current``.
        - ``registered``: reinstates a retired version; refused for a version whose
          gate did not pass (that would bypass the gate).
        """
        validate_name(name)
        _validate_status(status)
        if version is not None:
            version = _validate_version(version)
        q_name = _sql_str(name)
        with self._locked():
            recs = self._records(f"name = {q_name}", usage=False)
            if version is None:
                target = self._head(recs)
            else:
                target = next((r for r in recs if r.version == version), None)
            if target is None:
                raise NotFound(f"{name}" + (f" v{version}" if version else "") + " does not exist")
            if status == "registered" and not target.gate.passed:
                raise RegistryError(f"{name} v{target.version} failed its gate: it cannot be registered")
            if target.status != status:
                values: dict[str, Any] = {"status": status, "updated_at": _now()}
                if status == "blocked":
                    values["current"] = False
                where = f"id = {_sql_str(target.id)}"
                row = self._rows(SKILLS, where, _LIGHT)[0]
                values["listing"] = _listing({**row, **values})  # ASCII JSON: value_to_sql quotes it
                self._write(SKILLS, lambda t: t.update(where=where, values=values))
                self._event(
                    status,
                    name,
                    target.version,
                    previous_status=target.status,
                    reason=reason,
                    via="set_status",
                )
                log.info(
                    "skill status changed",
                    skill=name,
                    version=target.version,
                    status=status,
                    previous=target.status,
                )
        rec = self.get(name, target.version)
        if rec is None:  # only if the store changed under us
            raise NotFound(f"{name} v{target.version} does not exist")
        return rec

    def record_call(self, name: str, version: int, ok: bool) -> None:
        """Count one call (and a failure if not ok); lock-free and safe across processes."""
        validate_name(name)
        version = _validate_version(version)
        values_sql = {"calls": "calls + 1", "last_used": "now()"}
        if not ok:
            values_sql["failures"] = "failures + 1"
        where = f"name = {_sql_str(name)} AND version = {version}"
        result = self._write(USAGE, lambda t: t.update(where=where, values_sql=values_sql))
        if getattr(result, "rows_updated", 1) == 0:
            raise NotFound(f"{name} v{version} does not exist")

    # ----------------------------------------------------------------- reads

    def find(self, name: str, content_hash: str) -> SkillRecord | None:
        """The latest version of `name` with this content hash, if any."""
        validate_name(name)
        _validate_hash(content_hash)
        recs = self._records(
            f"name = {_sql_str(name)} AND content_hash = {_sql_str(content_hash)}",
            usage_where=f"name = {_sql_str(name)}",
        )
        return max(recs, key=lambda r: r.version) if recs else None

    def get(self, name: str, version: int | None = None) -> SkillRecord | None:
        """A given version, or (version=None) the current one, else the latest."""
        validate_name(name)
        where = f"name = {_sql_str(name)}"
        if version is not None:
            where += f" AND version = {_validate_version(version)}"
        recs = self._records(where)
        return recs[0] if version is not None and recs else self._head(recs)

    def list(self, status: str | None = None) -> list[SkillRecord]:
        """One record per name (current version, else latest), optionally by that record's status."""
        if status is not None:
            _validate_status(status)
        by_name: dict[str, list[SkillRecord]] = {}
        for r in self._records(None):
            by_name.setdefault(r.name, []).append(r)
        heads = [h for recs in by_name.values() if (h := self._head(recs)) is not None]
        return sorted((h for h in heads if status is None or h.status == status), key=lambda r: r.name)

    def versions(self, name: str) -> list[SkillRecord]:
        validate_name(name)
        return sorted(self._records(f"name = {_sql_str(name)}"), key=lambda r: r.version)

    def package(self, name: str, version: int) -> bytes:
        validate_name(name)
        version = _validate_version(version)
        where = f"name = {_sql_str(name)} AND version = {version}"
        found = self._rows(SKILLS, where, ["content_hash"])
        if not found:
            raise NotFound(f"{name} v{version} does not exist")
        where += f" AND content_hash = {_sql_str(_validate_hash(found[0]['content_hash']))}"
        rows = self._table(PACKAGES).search().where(where).select(["data"]).limit(1).to_arrow().to_pylist()
        if not rows:
            raise NotFound(f"{name} v{version}: package missing")
        return rows[0]["data"]

    def gate_report(self, name: str, version: int) -> dict[str, Any]:
        validate_name(name)
        version = _validate_version(version)
        rows = self._rows(SKILLS, f"name = {_sql_str(name)} AND version = {version}", ["gate_report"])
        if not rows:
            raise NotFound(f"{name} v{version} does not exist")
        return json.loads(rows[0]["gate_report"] or "{}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, oldest first: dicts with ts, name, version, kind, detail (a dict)."""
        where = None if name is None else f"name = {_sql_str(validate_name(name))}"
        rows = self._rows(EVENTS, where)
        for r in rows:
            r["detail"] = json.loads(r["detail"] or "{}")
        return sorted(rows, key=lambda r: r["ts"])

    def search(
        self, query: str, limit: int = 5, *, min_similarity: float = 0.2
    ) -> list[tuple[SkillRecord, float]]:
        """Current registered skills matching `query`, best first, with a score.

        Hybrid when an embedder is available: BM25 full-text over name, description,
        tags and instructions, plus cosine similarity of the description vectors,
        fused by reciprocal rank (RRF, k=60); the score is the RRF relevance. A hit
        found only by the vector leg is dropped when its cosine similarity is below
        `min_similarity` (the vector leg always returns *something*; for
        all-MiniLM-L6-v2, unrelated texts score about -0.1..0.15, paraphrases 0.3+).
        Without an embedder: full-text only, score = BM25, and a warning is logged.
        Scores are comparable within one result list only.

        Cost (see ``_Searcher``): the query is embedded (~7 ms on ONNX Runtime; on numpy,
        ~12-18 ms, with the full-text leg running beside it), the legs run, are fused
        and the hits' counters read. Past `vector_index_min_rows` vectors the vector
        leg uses the IVF_SQ index (rows added since the last compaction are still
        scanned, so nothing is missed).
        """
        if not isinstance(query, str):
            raise TypeError("query must be a str")
        limit = int(limit)
        if not query.strip() or limit < 1:
            return []
        self._table(SKILLS)  # tables and indexes exist (made under the lock if not)
        searcher = self._searcher()
        emb = self.embedder
        if emb is None:
            if not self._warned_no_embedder:
                log.warning("no embedder: search is full-text only", uri=self.uri)
                self._warned_no_embedder = True
            found = searcher.run(searcher.search_text(query, limit))
        else:
            # With the numpy encoder (~12-18 ms a query, one BLAS thread: see
            # embeddings.SINGLE_THREAD_MAX_TOKENS) the text leg runs on the loop thread
            # while this one embeds. A fast encoder (ONNX Runtime, ~7 ms on two threads)
            # goes first and the legs run together after it: overlapping it with the text
            # leg measured ~6% slower, idle or with a core busy (they share two cores).
            overlap = getattr(emb, "encoder", None) == "numpy"
            refreshed = searcher.submit(searcher.refresh())  # runs on the loop while this thread embeds
            text = searcher.submit(searcher.text_leg(query, limit, refreshed)) if overlap else None
            try:
                qv = np.asarray(emb.embed([query])[0], dtype=np.float32)
            except BaseException:
                if text is not None:
                    text.cancel()
                raise
            found = searcher.run(searcher.search_hybrid(query, refreshed, text, qv, limit, min_similarity))
        return [(self._record(row, usage), score) for row, score, usage in found]

    def _searcher(self) -> _Searcher:
        """The search loop and its table handles, made on first use.

        Use spawn, not fork, for processes that search: LanceDB's Rust runtime does not
        survive fork() (a forked child that searched crashed with SIGSEGV in our tests).
        The pid check only keeps a child from waiting forever on the parent's loop thread,
        which does not exist there."""
        with self._searcher_lock:
            if self._search is None or self._search.pid != os.getpid():
                self._search = _Searcher(self.uri)
                # A Registry dropped without close() must not leave its thread behind.
                weakref.finalize(self, self._search.close).atexit = False
            return self._search

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self._searcher_lock:
            searcher, self._search = self._search, None
        if searcher is not None:
            searcher.close()
        self._tables.clear()
        db, self._db = self._db, None
        if db is not None and hasattr(db, "close"):
            try:
                db.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing the connection failed", error=str(exc))

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
