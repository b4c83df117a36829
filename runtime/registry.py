"""The version store: every version of every skill, in LanceDB (the tables are described
in runtime/records.py; plumbing, locks, retries, compaction and migrations are
runtime/lancestore.py's; search is runtime/search.py's).

Invariants: at most one row per name has ``current = true``; it is always a
version whose gate passed or one of tier ``instructions`` (status ``registered``, or
``retired`` after the skill was retired -- the head keeps its flag so the skill still
lists as retired). Blocked versions are kept with their reasons and report but are
never current. A version's tier (runtime/records.py) is set when it is added and never
changes; ``registered`` goes with tier ``instructions`` or ``verified`` only.

Concurrency: allocating a version and moving the ``current`` flag happen under the
registry's lock (``<store>/.registry.lock``). ``record_call`` takes no lock: it is a
single ``UPDATE ... SET calls = calls + 1``, which LanceDB commits without lost updates
across processes. Every write makes a table version, so writes are kept few: moving
the ``current`` flag and inserting the new row is one ``merge_insert``. Rows not yet in
an index are still searched, so a skill is findable the moment ``add_version`` returns.

Indexes: see INDEXES. Compaction also builds the IVF_SQ vector index once ``skills``
holds ``vector_index_min_rows`` vectors (runtime/search.py).

Write failures raise StoreError (the store's one rule); a refused change raises
RegistryError; a version that does not exist, NotFound.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog

from . import search as searching
from .errors import NotFound, RegistryError
from .lancestore import LanceStore, sql_str, sql_ts
from .migrations import REGISTRY_MIGRATIONS
from .names import is_skill_name, validate_name
from .records import (
    ALIASES,
    DIM,
    EVENTS,
    INSTRUCTIONS,
    LIGHT_COLUMNS,
    MAX_ALIAS_HOPS,
    PACKAGES,
    SCHEMAS,
    SKILLS,
    USAGE,
    EmbedderLike,
    GateSummary,
    SkillRecord,
    embed_text,
    head,
    new_version_row,
    pack_listing,
    record_from_row,
    restamp,
    tier_of_verdict,
    validate_hash,
    validate_status,
    validate_tier,
    validate_version,
)
from .search import VECTOR_INDEX_MIN_ROWS, Searcher
from .times import utc_now

log = structlog.get_logger(__name__)

# Scalar indexes, made with the tables (and added to older stores on open). Without
# them the searchable prefilter reads `current` and `status` of every row, and the
# usage lookup after each search scans the whole usage table (measured at 100k rows:
# ~10 ms and ~30 ms per search). optimize() folds new rows into them.
INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    SKILLS: (("search_text", "FTS"), ("status", "Bitmap"), ("current", "Bitmap")),
    PACKAGES: (("name", "BTree"),),
    USAGE: (("name", "BTree"),),
}


JOURNAL_WRITER_RE = re.compile(r"^[0-9a-f]{16}$")


def _journal_writer(writer: str) -> str:
    """A journal's writer id (runtime/journal.py), checked before it reaches SQL."""
    if not isinstance(writer, str) or not JOURNAL_WRITER_RE.fullmatch(writer):
        raise ValueError(f"not a journal writer id: {writer!r}")
    return writer


def _after_compact(vector_index_min_rows: int | None, table_name: str, table: Any) -> None:
    if table_name == SKILLS:
        searching.maintain_vector_index(table, vector_index_min_rows)


class Registry:
    """All versions of all skills in one LanceDB store. See the module docstring.

    `embedder`: "auto" (runtime.embeddings, loaded on first need), an embedder, or None
    (no vectors: search is full text only). `vector_index_min_rows` None: never build a
    vector index (every search scans all vectors). `store` is the LanceStore underneath:
    its tables are the registry's testable boundary.
    """

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
        self.uri = str(uri)
        self.vector_index_min_rows = (
            None if vector_index_min_rows is None else max(1, int(vector_index_min_rows))
        )
        self.store = LanceStore(
            self.uri,
            owner="registry",
            schemas=SCHEMAS,
            indexes=INDEXES,
            migrations=REGISTRY_MIGRATIONS,
            compact_every=compact_every,
            cleanup_older_than=cleanup_older_than,
            lock_timeout=lock_timeout,
            after_compact=functools.partial(_after_compact, self.vector_index_min_rows),
        )
        self._searcher_lock = threading.Lock()
        self._searcher: Searcher | None = None
        self._embedder_arg = embedder
        self._embedder: EmbedderLike | None = None
        self._embedder_resolved = False
        self._warned_no_embedder = False
        if isinstance(embedder, str):
            if embedder != "auto":
                raise ValueError(f"embedder must be an Embedder, 'auto' or None, not {embedder!r}")
        elif embedder is not None:
            self._set_embedder(embedder)

    # -- the embedder ----------------------------------------------------------------------
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

    # -- store access ----------------------------------------------------------------------
    def _rows(
        self, table_name: str, where: str | None, columns: list[str] | None = None
    ) -> list[dict[str, Any]]:
        self.store.ensure()
        return self.store.rows(table_name, where, columns)

    def _write(self, table_name: str, op: Callable[[Any], Any], *, what: str = "write") -> Any:
        self.store.ensure()
        return self.store.write(table_name, op, what=what)

    def _usage(self, where: str | None) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["name"], r["version"]): r for r in self._rows(USAGE, where)}

    def _record(self, row: dict[str, Any], usage: dict[tuple[str, int], dict[str, Any]]) -> SkillRecord:
        name, version = row["name"], row["version"]
        return record_from_row(
            row, usage.get((name, version)), report_loader=lambda: self.gate_report(name, version)
        )

    def _records(
        self, where: str | None, usage_where: str | None = None, *, usage: bool = True
    ) -> list[SkillRecord]:
        rows = self._rows(SKILLS, where, LIGHT_COLUMNS)
        if not rows:
            return []
        counters = self._usage(usage_where if usage_where is not None else where) if usage else {}
        return [self._record(r, counters) for r in rows]

    def _event(self, kind: str, name: str | None, version: int | None, **detail: Any) -> None:
        event = {"ts": utc_now(), "name": name, "version": version, "kind": kind}
        self._write_rows(EVENTS, [{**event, "detail": json.dumps(detail, sort_keys=True, default=str)}])

    def _write_rows(self, table_name: str, rows: list[dict[str, Any]], **upsert: Any) -> Any:
        """Append `rows`, or with `on=` (and `insert=`) upsert them (LanceStore.upsert)."""
        self.store.ensure()
        what = f"write {table_name}"
        if upsert:
            return self.store.upsert(table_name, rows, what=what, **upsert)
        return self.store.append(table_name, rows, what=what)

    # -- writes ----------------------------------------------------------------------------
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
        tier: str | None = None,
    ) -> SkillRecord:
        """Store a new version (next number for the name). A registered one becomes current.

        `tier` (default: from the verdict, verified or blocked): ``instructions`` registers a
        version that was never gated (it has no code); it must come with status registered."""
        validate_name(name)
        validate_hash(content_hash)
        if status not in ("registered", "blocked"):
            raise ValueError(f"a new version is 'registered' or 'blocked', not {status!r}")
        tier = tier_of_verdict(gate.passed) if tier is None else validate_tier(tier)
        if status == "registered" and not gate.passed and tier != INSTRUCTIONS:
            raise RegistryError(f"{name}: cannot register a version whose gate failed")
        if (status == "registered") != (tier != "blocked"):
            raise RegistryError(f"{name}: a version of tier {tier} cannot be {status}")
        if not isinstance(package, (bytes, bytearray, memoryview)) or not package:
            raise ValueError("package must be non-empty bytes")
        tags = [str(t) for t in (tags or [])]
        description = description or ""
        instructions = instructions or ""
        report_json = json.dumps(gate_report, sort_keys=True)  # fails loudly on non-JSON values

        vector = None
        if self.embedder is not None:  # before taking the lock: embedding is the slow part
            vector = np.asarray(self.embedder.embed([embed_text(name, description, tags)])[0], np.float32)
            if vector.shape != (DIM,) or not np.isfinite(vector).all():
                raise RegistryError(f"embedder gave shape {vector.shape} or non-finite values; want ({DIM},)")

        self.store.ensure()  # tables exist before locking (creating them locks too)
        with self.store.locked():
            q_name = sql_str(name)
            existing = self._rows(SKILLS, f"name = {q_name}", ["version"])
            version = max([*(r["version"] for r in existing), self._last_deleted(q_name)]) + 1
            now = utc_now()
            row = new_version_row(
                name=name,
                version=version,
                content_hash=content_hash,
                status=status,
                tier=tier,
                description=description,
                tags=tags,
                instructions=instructions,
                vector=vector,
                gate=gate,
                report_json=report_json,
                now=now,
            )
            rows = [row]
            previous = None
            if status == "registered":
                # Clear the old current in the same commit that inserts the new row.
                for old in self._rows(SKILLS, f"name = {q_name} AND current = true"):
                    previous = old["version"]
                    rows.append(restamp(old, now, current=False))
            data = bytes(package)
            # Package and counters first; the skills row is the commit point. A crash
            # in between leaves rows for a version number that will be allocated again:
            # harmless, as package() selects by (name, version, content_hash) -- equal
            # hashes mean equal bytes -- and the usage row is upserted.
            blob = {"name": name, "version": version, "content_hash": content_hash, "data": data}
            self._write_rows(PACKAGES, [{**blob, "size": len(data)}])
            counters = {"name": name, "version": version, "calls": 0, "failures": 0, "last_used": None}
            self._write_rows(USAGE, [counters], on=["name", "version"])
            # A null vector (no embedder) is stored as null; real ones were shape- and NaN-checked above.
            self._write_rows(SKILLS, rows, on=["id"])
            detail: dict[str, Any] = {
                "content_hash": content_hash,
                "tier": tier,
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
        return record_from_row(row, report=json.loads(report_json))

    def rollback(self, name: str, version: int) -> SkillRecord:
        """Make an earlier registered version current again (its row and package are untouched)."""
        validate_name(name)
        version = validate_version(version)
        q_name = sql_str(name)
        with self.store.locked():
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
                now = utc_now()
                rows = [restamp(target, now, current=True)] + [
                    restamp(r, now, current=False) for r in previous
                ]
                self._write_rows(SKILLS, rows, on=["id"], insert=False)
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
        validate_status(status)
        if version is not None:
            version = validate_version(version)
        q_name = sql_str(name)
        with self.store.locked():
            recs = self._records(f"name = {q_name}", usage=False)
            if version is None:
                target = head(recs)
            else:
                target = next((r for r in recs if r.version == version), None)
            if target is None:
                raise NotFound(f"{name}" + (f" v{version}" if version else "") + " does not exist")
            if status == "registered" and target.tier == "blocked":
                raise RegistryError(f"{name} v{target.version} failed its gate: it cannot be registered")
            if status == "registered" and self._rows(ALIASES, f"name = {q_name}"):
                # Reinstated: the name stands for itself again, not for the skill that absorbed it.
                self._write(ALIASES, lambda t: t.delete(f"name = {q_name}"), what="drop an alias")
            if target.status != status:
                values: dict[str, Any] = {"status": status, "updated_at": utc_now()}
                if status == "blocked":
                    values["current"] = False
                where = f"id = {sql_str(target.id)}"
                row = self._rows(SKILLS, where, LIGHT_COLUMNS)[0]
                values["listing"] = pack_listing({**row, **values})  # ASCII JSON: value_to_sql quotes it
                self._write(SKILLS, lambda t: t.update(where=where, values=values), what="set status")
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

    def retire_into(self, name: str, survivor: str, *, reason: str) -> SkillRecord:
        """Retire `name` (its head version) as absorbed by `survivor`: calls, exports and
        look-ups of `name` then resolve to `survivor` (see `resolve`). Refused unless
        `survivor` is a current registered skill other than `name` that does not itself
        resolve to `name` (no cycles). Returns the retired record."""
        validate_name(name)
        validate_name(survivor)
        if name == survivor:
            raise RegistryError(f"{name} cannot be merged into itself")
        q_name = sql_str(name)
        with self.store.locked():
            kept = self.get(survivor)
            if kept is None or kept.status != "registered":
                state = "missing" if kept is None else kept.status
                raise RegistryError(f"cannot retire {name} into {survivor}: {survivor} is {state}")
            if self.resolve(survivor) == name:
                raise RegistryError(f"cannot retire {name} into {survivor}: {survivor} resolves to {name}")
            target = head(self._records(f"name = {q_name}", usage=False))
            if target is None:
                raise NotFound(f"{name} does not exist")
            self._write_rows(
                ALIASES,
                [
                    {
                        "name": name,
                        "alias_of": survivor,
                        "version": target.version,
                        "reason": reason[:500],
                        "created_at": utc_now(),
                    }
                ],
                on=["name"],
            )
            if target.status != "retired":
                now = utc_now()
                where = f"id = {sql_str(target.id)}"
                row = self._rows(SKILLS, where, LIGHT_COLUMNS)[0]
                values: dict[str, Any] = {"status": "retired", "updated_at": now}
                values["listing"] = pack_listing({**row, **values})
                self._write(SKILLS, lambda t: t.update(where=where, values=values), what="retire into")
            self._event(
                "retired",
                name,
                target.version,
                previous_status=target.status,
                reason=reason[:500],
                alias_of=survivor,
                via="retire_into",
            )
            log.info("skill retired into another", skill=name, version=target.version, survivor=survivor)
        rec = self.get(name, target.version)
        if rec is None:  # only if the store changed under us
            raise NotFound(f"{name} v{target.version} does not exist")
        return rec

    def alias_of(self, name: str) -> str | None:
        """The skill that absorbed `name` (one hop), or None."""
        validate_name(name)
        rows = self._rows(ALIASES, f"name = {sql_str(name)}", ["alias_of"])
        return rows[0]["alias_of"] if rows else None

    def aliases(self) -> dict[str, str]:
        """Every retired name and the skill that absorbed it (one hop)."""
        return {r["name"]: r["alias_of"] for r in self._rows(ALIASES, None, ["name", "alias_of"])}

    def resolve(self, name: str) -> str:
        """The name a call of `name` runs: `name` itself, or -- when a merge retired it --
        the skill that absorbed it, followed through later merges (at most MAX_ALIAS_HOPS;
        a longer chain or a cycle raises RegistryError)."""
        validate_name(name)
        seen = [name]
        current = name
        for _ in range(MAX_ALIAS_HOPS):
            nxt = self.alias_of(current)
            if nxt is None:
                return current
            if nxt in seen:
                raise RegistryError(f"the aliases of {name} form a cycle: {' -> '.join([*seen, nxt])}")
            seen.append(nxt)
            current = nxt
        raise RegistryError(f"{name} resolves through more than {MAX_ALIAS_HOPS} merges")

    def record_call(self, name: str, version: int, ok: bool) -> None:
        """Count one call (and a failure if not ok); lock-free and safe across processes."""
        validate_name(name)
        version = validate_version(version)
        values_sql = {"calls": "calls + 1", "last_used": "now()"}
        if not ok:
            values_sql["failures"] = "failures + 1"
        where = f"name = {sql_str(name)} AND version = {version}"
        result = self._write(
            USAGE, lambda t: t.update(where=where, values_sql=values_sql), what="count a call"
        )
        if getattr(result, "rows_updated", 1) == 0:
            raise NotFound(f"{name} v{version} does not exist")

    def count_calls(
        self,
        name: str,
        version: int,
        *,
        calls: int,
        failures: int,
        last_used: datetime,
        mark: tuple[str, int] | None = None,
    ) -> bool:
        """Add `calls` and `failures` to one version's counters in one lock-free update
        (like record_call). With `mark` = (journal writer, seq), the same update records
        that this journal's calls up to `seq` are counted here (records.py: ``journal``),
        which is what lets a replay skip them. False if the version has no counters row."""
        validate_name(name)
        version = validate_version(version)
        values_sql = {
            "calls": f"calls + {int(calls)}",
            "failures": f"failures + {int(failures)}",
            "last_used": f"coalesce(greatest(last_used, {sql_ts(last_used)}), {sql_ts(last_used)})",
        }
        if mark is not None:
            writer, seq = _journal_writer(mark[0]), int(mark[1])
            values_sql["journal"] = (
                f"concat(regexp_replace(coalesce(journal, ''), ';{writer}:[0-9]+', ''), ';{writer}:{seq}')"
            )
        where = f"name = {sql_str(name)} AND version = {version}"
        result = self._write(
            USAGE, lambda t: t.update(where=where, values_sql=values_sql), what="count calls"
        )
        return getattr(result, "rows_updated", 1) != 0

    def journal_marks(self, writer: str) -> dict[tuple[str, int], int]:
        """Per (name, version), the last sequence number of journal `writer` counted there."""
        writer = _journal_writer(writer)
        token = re.compile(f";{writer}:([0-9]+)")
        marks = {}
        for row in self._rows(USAGE, f"journal LIKE '%;{writer}:%'", ["name", "version", "journal"]):
            found = token.search(row["journal"] or "")
            if found:
                marks[(row["name"], row["version"])] = int(found.group(1))
        return marks

    def forget_journal(self, writer: str) -> None:
        """Drop journal `writer`'s marks (its file is gone: nothing of it can be replayed)."""
        writer = _journal_writer(writer)
        self._write(
            USAGE,
            lambda t: t.update(
                where=f"journal LIKE '%;{writer}:%'",
                values_sql={"journal": f"regexp_replace(journal, ';{writer}:[0-9]+', '')"},
            ),
            what="forget a journal",
        )

    def delete(self, name: str, version: int | None = None) -> list[SkillRecord]:
        """Delete every version of `name`, or one version that is not current; returns the
        records deleted. History stays: an ``events`` row (kind ``deleted``) names each
        version and its content hash, the ledger (another owner's tables) is untouched, and
        version numbers are never given out again (add_version counts the deleted ones).
        The skills rows go first: they are the commit point, as in add_version."""
        validate_name(name)
        q_name = sql_str(name)
        with self.store.locked():
            recs = self._records(f"name = {q_name}", usage=False)
            if not recs:
                raise NotFound(f"no skill {name}")
            where = f"name = {q_name}"
            doomed = recs
            if version is not None:
                version = validate_version(version)
                doomed = [r for r in recs if r.version == version]
                if not doomed:
                    raise NotFound(f"{name} v{version} does not exist")
                if doomed[0].current and len(recs) > 1:
                    raise RegistryError(
                        f"{name} v{version} is the current version: roll back to another one first, "
                        "or delete the whole skill"
                    )
                where += f" AND version = {version}"
            self._write(SKILLS, lambda t: t.delete(where), what="delete versions")
            self._write(PACKAGES, lambda t: t.delete(where), what="delete packages")
            self._write(USAGE, lambda t: t.delete(where), what="delete call counters")
            self._event(
                "deleted",
                name,
                max(r.version for r in doomed),
                versions=[
                    {"version": r.version, "content_hash": r.content_hash, "status": r.status} for r in doomed
                ],
            )
        log.info("skill versions deleted", skill=name, versions=[r.version for r in doomed])
        return sorted(doomed, key=lambda r: r.version)

    def _last_deleted(self, q_name: str) -> int:
        """The highest version number of `name` ever deleted (0: none), so none is reused."""
        rows = self._rows(EVENTS, f"name = {q_name} AND kind = 'deleted'", ["version"])
        return max((int(r["version"] or 0) for r in rows), default=0)

    # ----------------------------------------------------------------- reads

    def skills_version(self) -> int:
        """The skills table's current version (any process's commit moves it): what a cache
        of records is keyed on (LanceStore.table_version: a stat while the table stands still)."""
        self.store.ensure()
        return self.store.table_version(SKILLS)

    def find(self, name: str, content_hash: str) -> SkillRecord | None:
        """The latest version of `name` with this content hash, if any."""
        validate_name(name)
        validate_hash(content_hash)
        recs = self._records(
            f"name = {sql_str(name)} AND content_hash = {sql_str(content_hash)}",
            usage_where=f"name = {sql_str(name)}",
        )
        return max(recs, key=lambda r: r.version) if recs else None

    def get(self, name: str, version: int | None = None) -> SkillRecord | None:
        """A given version, or (version=None) the current one, else the latest."""
        validate_name(name)
        where = f"name = {sql_str(name)}"
        if version is not None:
            where += f" AND version = {validate_version(version)}"
        recs = self._records(where)
        return recs[0] if version is not None and recs else head(recs)

    def list(self, status: str | None = None) -> list[SkillRecord]:
        """One record per name (current version, else latest), optionally by that record's status."""
        if status is not None:
            validate_status(status)
        by_name: dict[str, list[SkillRecord]] = {}
        for r in self._records(None):
            by_name.setdefault(r.name, []).append(r)
        heads = [h for recs in by_name.values() if (h := head(recs)) is not None]
        return sorted((h for h in heads if status is None or h.status == status), key=lambda r: r.name)

    def all_versions(self) -> list[SkillRecord]:
        """Every version of every skill, with its counters (image retention reads them)."""
        return self._records(None)

    def versions(self, name: str) -> list[SkillRecord]:
        """Every version of `name`, oldest first (none: an empty list)."""
        validate_name(name)
        return sorted(self._records(f"name = {sql_str(name)}"), key=lambda r: r.version)

    def package(self, name: str, version: int) -> bytes:
        """The package archive (tar.gz) of one version."""
        validate_name(name)
        version = validate_version(version)
        where = f"name = {sql_str(name)} AND version = {version}"
        found = self._rows(SKILLS, where, ["content_hash"])
        if not found:
            raise NotFound(f"{name} v{version} does not exist")
        where += f" AND content_hash = {sql_str(validate_hash(found[0]['content_hash']))}"
        rows = self._rows(PACKAGES, where, ["data"])[:1]
        if not rows:
            raise NotFound(f"{name} v{version}: package missing")
        return rows[0]["data"]

    def gate_report(self, name: str, version: int) -> dict[str, Any]:
        """The full gate report of one version."""
        validate_name(name)
        version = validate_version(version)
        rows = self._rows(SKILLS, f"name = {sql_str(name)} AND version = {version}", ["gate_report"])
        if not rows:
            raise NotFound(f"{name} v{version} does not exist")
        return json.loads(rows[0]["gate_report"] or "{}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The audit trail, oldest first: dicts with ts, name, version, kind, detail (a dict)."""
        where = None if name is None else f"name = {sql_str(validate_name(name))}"
        rows = self._rows(EVENTS, where)
        for r in rows:
            r["detail"] = json.loads(r["detail"] or "{}")
        return sorted(rows, key=lambda r: r["ts"])

    # -- search ----------------------------------------------------------------------------
    def search(
        self, query: str, limit: int = 5, *, min_similarity: float = 0.2, query_vector: Any = None
    ) -> list[tuple[SkillRecord, float]]:
        """Current registered skills matching `query`, best first, with a score.

        Hybrid when an embedder is available: BM25 full-text over name, description,
        tags and instructions, plus cosine similarity of the description vectors,
        fused by reciprocal rank (RRF, k=60); the score is the RRF relevance. A hit
        found only by the vector leg is dropped when its cosine similarity is below
        `min_similarity` (the vector leg always returns *something*; for
        all-MiniLM-L6-v2, unrelated texts score about -0.1..0.15, paraphrases 0.3+).
        Without an embedder: full-text only, score = BM25, and a warning is logged.
        Scores are comparable within one result list only. `query_vector`: the query as
        this registry's embedder embeds it, when the caller has it already.

        Cost (see search.Searcher): the query is embedded (~7 ms on ONNX Runtime; on
        numpy, ~12-18 ms, with the full-text leg running beside it), the legs run, are
        fused and the hits' counters read. Past `vector_index_min_rows` vectors the
        vector leg uses the IVF_SQ index (rows added since the last compaction are
        still scanned, so nothing is missed).
        """
        if not isinstance(query, str):
            raise TypeError("query must be a str")
        limit = int(limit)
        if not query.strip() or limit < 1:
            return []
        self.store.ensure()  # tables and indexes exist (made under the lock if not)
        embedder = self.embedder
        if embedder is None and not self._warned_no_embedder:
            log.warning("no embedder: search is full-text only", uri=self.uri)
            self._warned_no_embedder = True
        found = searching.search(self.searcher, embedder, query, limit, min_similarity, query_vector)
        hits = [(self._record(row, usage), score) for row, score, usage in found]
        return self._with_survivor(query.strip(), hits, limit)

    def _with_survivor(
        self, query: str, hits: list[tuple[SkillRecord, float]], limit: int
    ) -> list[tuple[SkillRecord, float]]:
        """A query that is the name of a skill a merge retired finds the skill that absorbed
        it, first (the retired one is never a hit). One small read, for name-like queries only."""
        if not is_skill_name(query) or self.alias_of(query) is None:
            return hits
        survivor = self.get(self.resolve(query))
        if survivor is None or survivor.status != "registered" or not survivor.current:
            return hits
        top = max((score for _, score in hits), default=1.0)
        rest = [(rec, score) for rec, score in hits if rec.name != survivor.name]
        return [(survivor, top), *rest][:limit]

    @property
    def searcher(self) -> Searcher:
        """The search loop and its table handles, made on first use.

        Use spawn, not fork, for processes that search: LanceDB's Rust runtime does not
        survive fork() (a forked child that searched crashed with SIGSEGV in our tests).
        The pid check only keeps a child from waiting forever on the parent's loop thread,
        which does not exist there."""
        self.store.ensure()
        with self._searcher_lock:
            if self._searcher is None or self._searcher.pid != os.getpid():
                self._searcher = Searcher(self.uri)
                # A Registry dropped without close() must not leave its thread behind.
                weakref.finalize(self, self._searcher.close).atexit = False
            return self._searcher

    def vector_indexes(self) -> list[Any]:
        """The index configs on the skills table's vector column (normally none or one)."""
        self.store.ensure()
        return searching.vector_indexes(self.store.table(SKILLS))

    # -- upkeep and lifecycle --------------------------------------------------------------
    def compact(self) -> dict[str, bool]:
        """Optimise every table now (merge fragments, update the indexes, prune old versions;
        build the vector index once the skills table is big enough)."""
        self.store.ensure()
        return self.store.compact()

    def close(self) -> None:
        """Stop the search loop and close the store; later use raises StoreError."""
        with self._searcher_lock:
            searcher, self._searcher = self._searcher, None
        if searcher is not None:
            searcher.close()
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
