"""Search over the registry: hybrid full-text + vector search, fused by rank, and the
vector index that keeps the vector leg fast.

A search is two legs over the current registered versions (``SEARCHABLE``): BM25 over
``search_text`` and cosine similarity of the ``vector`` column, fused by reciprocal
rank (:func:`fuse`); then one read of the hits' call counters. The legs run on LanceDB's
async API, on a loop thread of their own (:class:`Searcher`). Without an embedder a
search is the full-text leg alone.

The vector index (IVF_SQ, cosine) is built by compaction once the skills table holds
enough vectors, and rebuilt when it no longer fits the table
(:func:`maintain_vector_index`, called by the registry after each compaction).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import threading
import time
from typing import Any

import numpy as np
import pyarrow as pa
import structlog

from .errors import StoreError
from .lancestore import sql_str
from .names import validate_name
from .records import LIGHT_COLUMNS, SKILLS, USAGE, EmbedderLike, unpack_listing

log = structlog.get_logger(__name__)

SEARCHABLE = "current = true AND status = 'registered'"
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
# Skill names whose usage rows a searcher keeps between searches (see Searcher.usage_of);
# past this the cache starts over. A few hundred bytes a name.
USAGE_CACHE_NAMES = 10_000


def trained_rows(index_name: str) -> int | None:
    """Rows the vector index was trained on, from its name; None if not ours."""
    m = re.fullmatch(re.escape(VECTOR_INDEX_PREFIX) + r"(\d+)", index_name)
    return int(m.group(1)) if m else None


def fuse(
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


class Searcher:
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
        """Schedule `coro` on the search loop; its future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Any) -> Any:
        """Run `coro` on the search loop and wait for its result."""
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
        hits = fuse(text_hits, vector_hits, limit, min_similarity)
        usage = await self.usage_of({h["name"] for h, _ in hits})
        return await self._result(hits, usage)

    async def _result(
        self, hits: list[tuple[dict[str, Any], float]], usage: dict[tuple[str, int], dict[str, Any]]
    ) -> list[tuple[dict[str, Any], float, dict[tuple[str, int], dict[str, Any]]]]:
        if not hits:
            return []
        rows = await self.rows_of([h for h, _ in hits])
        return [(row, score, usage) for row, (_, score) in zip(rows, hits, strict=True)]

    @staticmethod
    def _hits(table: pa.Table) -> list[dict[str, Any]]:
        """A leg's result as dicts: its columns, and `name` and `row` (the LIGHT_COLUMNS
        columns, None when the row has no `listing`) from the packed listing."""
        hits = table.to_pylist()
        for h in hits:
            listing = h.pop("listing")
            h["row"] = None if listing is None else unpack_listing(h["id"], listing)
            h["name"] = h["row"]["name"] if listing is not None else h.pop("name")
        return hits

    async def text_leg(
        self, query: str, limit: int, refreshed: concurrent.futures.Future[Any] | None = None
    ) -> list[dict[str, Any]]:
        """BM25 top `limit` of the searchable rows: id, name, row, `_score`, `_rowid`;
        after `refreshed` (the search's ``refresh``) when given."""
        if refreshed is not None:
            await asyncio.wrap_future(refreshed)
        q = self._skills.query().nearest_to_text(query).where(SEARCHABLE)
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
            .where(SEARCHABLE)
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
        searches the counters mostly stay put. Any write to the usage table (a call
        recorded by this or another process, a compaction) moves its version, and the
        next search drops the whole cache. Rows read are filed under the version seen
        *before* the query: a commit landing in between makes them look older than they
        are, so they are dropped too early, never kept too long.
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
            where = "name IN (" + ", ".join(sql_str(validate_name(n)) for n in missing) + ")"
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

    def cached_names(self) -> set[str]:
        """Skill names whose usage rows are cached now (see usage_of)."""
        return set(self._usage_cache)

    async def rows_of(self, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The LIGHT_COLUMNS columns of `hits`, in order: from their listing, else (rows written
        without one) read by row id and checked against their ids -- a compaction
        committed in between can move rows, and then they are looked up by id."""
        todo = [h for h in hits if h["row"] is None]
        if not todo:
            return [h["row"] for h in hits]
        taken = (
            await self._skills.take_row_ids([h["_rowid"] for h in todo])
            .select(LIGHT_COLUMNS)
            .with_row_id()
            .to_arrow()
        )
        by_rowid = {r["_rowid"]: r for r in taken.to_pylist()}
        found = {
            h["id"]: r for h in todo if (r := by_rowid.get(h["_rowid"])) is not None and r["id"] == h["id"]
        }
        if len(found) < len(todo):
            log.debug("search: rows moved under the query; reading them by id", hits=len(todo))
            where = "id IN (" + ", ".join(sql_str(h["id"]) for h in todo) + ")"
            found = {
                r["id"]: r
                for r in (
                    await self._skills.query().where(where).select(LIGHT_COLUMNS).to_arrow()
                ).to_pylist()
            }
            missing = [h["id"] for h in todo if h["id"] not in found]
            if missing:  # deleted in between: the registry never deletes skill rows
                raise StoreError(f"search: {len(missing)} hit(s) vanished from the store")
        return [h["row"] if h["row"] is not None else found[h["id"]] for h in hits]


def vector_indexes(table: Any) -> list[Any]:
    """Index configs on the vector column (normally none or one)."""
    return [ix for ix in table.list_indices() if list(ix.columns) == ["vector"]]


def vector_index(table: Any) -> Any | None:
    """The vector column's index config, if there is one."""
    return next(iter(vector_indexes(table)), None)


def maintain_vector_index(table: Any, min_rows: int | None) -> str | None:
    """Build the vector index once the table holds `min_rows` vectors (a flat scan starts
    to hurt there; None: never), and rebuild it (re-train the partitions) when it no
    longer fits the table. Called under the registry lock, after optimize(). Returns
    what was done ("created", "rebuilt") or None.
    """
    if min_rows is None:
        return None
    indexes = vector_indexes(table)
    if not indexes:
        if table.count_rows() < min_rows:  # cheap: from metadata
            return None
        # Stores without an embedder hold null vectors; they cannot train an index.
        # (A filtered count reads the column: ~0.2 s at 100k rows, once per compaction.)
        rows = table.count_rows("vector IS NOT NULL")
        if rows < min_rows:
            return None
        action = "created"
    else:
        rows = vector_index_stale(table, indexes)
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


def vector_index_stale(table: Any, indexes: list[Any]) -> int | None:
    """The number of vectors to re-train on, or None while the index still fits.

    Stale when optimize() has stacked up more than VECTOR_INDEX_MAX_SEGMENTS delta
    segments (each is searched on its own, with the old centroids), when the table
    has grown past VECTOR_INDEX_REBUILD_GROWTH times the rows the partitions were
    trained on (partitions fill up: more rows per probe, slower), and when the index
    is not ours (trained rows unknown; perhaps another distance type).
    """
    trained = trained_rows(indexes[0].name) if len(indexes) == 1 else None
    segments = 0 if trained is None else table.index_stats(indexes[0].name).num_indices or 1
    if trained is None or segments > VECTOR_INDEX_MAX_SEGMENTS:
        return table.count_rows("vector IS NOT NULL")
    if table.count_rows() <= VECTOR_INDEX_REBUILD_GROWTH * trained:  # cheap check first
        return None
    rows = table.count_rows("vector IS NOT NULL")
    # not grown after all: the rows past the threshold have no vectors
    return rows if rows > VECTOR_INDEX_REBUILD_GROWTH * trained else None


Hit = tuple[dict[str, Any], float, dict[tuple[str, int], dict[str, Any]]]


def search(
    searcher: Searcher,
    embedder: EmbedderLike | None,
    query: str,
    limit: int,
    min_similarity: float,
    query_vector: np.ndarray | None = None,
) -> list[Hit]:
    """The hits for `query`, best first: (row of LIGHT_COLUMNS, score, usage rows by
    (name, version)). Hybrid with an embedder, full text without; see Registry.search.
    `query_vector`: the query already embedded (by the same embedder): not embedded again."""
    if embedder is None:
        return searcher.run(searcher.search_text(query, limit))
    if query_vector is not None:
        refreshed = searcher.submit(searcher.refresh())
        qv = np.asarray(query_vector, dtype=np.float32)
        return searcher.run(searcher.search_hybrid(query, refreshed, None, qv, limit, min_similarity))
    # With the numpy encoder (~12-18 ms a query, one BLAS thread: see
    # embeddings.SINGLE_THREAD_MAX_TOKENS) the text leg runs on the loop thread
    # while this one embeds. A fast encoder (ONNX Runtime, ~7 ms on two threads)
    # goes first and the legs run together after it: overlapping it with the text
    # leg measured ~6% slower, idle or with a core busy (they share two cores).
    overlap = getattr(embedder, "encoder", None) == "numpy"
    refreshed = searcher.submit(searcher.refresh())  # runs on the loop while this thread embeds
    text = searcher.submit(searcher.text_leg(query, limit, refreshed)) if overlap else None
    try:
        qv = np.asarray(embedder.embed([query])[0], dtype=np.float32)
    except BaseException:
        if text is not None:
            text.cancel()
        raise
    return searcher.run(searcher.search_hybrid(query, refreshed, text, qv, limit, min_similarity))
