"""Named migrations of the store's owners, in order: each brings a store made by older
code up to date, runs once per store and is recorded in its ``_migrations`` table (see
runtime/lancestore.py). A store made by current code runs them too; they find nothing to
do. Never rename or reorder one that has shipped: the names are what stores record.

Each migration gets the owner's LanceStore while holding its lock, before the owner's
tables are opened, and must be safe to run again after a crash halfway.
"""

from __future__ import annotations

import time

import pyarrow as pa
import structlog

from .errors import StoreError
from .lancestore import LanceStore, Migration
from .records import ALIASES, LIGHT_COLUMNS, SKILLS, SKILLS_SCHEMA, USAGE, pack_listing, tier_of_verdict

log = structlog.get_logger(__name__)

# Columns of the skills table that a migration after registry-0001 adds.
LATER_COLUMNS = ("tier",)

# The ledger's tables (runtime/ledger.py defines them; named here to keep imports one way).
LLM_CALLS, BASELINES, USES, PROXY_USES = "llm_calls", "baselines", "uses", "proxy_uses"


def skills_listing(store: LanceStore) -> None:
    """Stores made before the `listing` column: add it, then fill it in for every row (one
    merge_insert per 5k rows) and compact. Search still reads a row without a listing
    by a second query, so a row an older process writes later is found too."""
    table = store.open_existing(SKILLS)
    if table is None:  # a new store: nothing to migrate
        return
    # Columns later migrations add are theirs to add (a store this old lacks them too).
    missing = [n for n in SKILLS_SCHEMA.names if n not in table.schema.names and n not in LATER_COLUMNS]
    if not missing:
        return
    if missing != ["listing"]:
        raise StoreError(f"skills table lacks columns {missing}: not a store this code can migrate")
    started = time.perf_counter()
    table.add_columns(pa.field("listing", pa.string()))
    columns = [c for c in LIGHT_COLUMNS if c in table.schema.names]
    rows = table.search().where("listing IS NULL").select(columns).limit(None).to_arrow().to_pylist()
    for i in range(0, len(rows), 5_000):
        chunk = rows[i : i + 5_000]
        batch = pa.table({"id": [r["id"] for r in chunk], "listing": [pack_listing(r) for r in chunk]})
        table.merge_insert("id").when_matched_update_all().execute(batch)
    log.info(
        "migrated the skills table: added `listing`",
        rows=len(rows),
        seconds=round(time.perf_counter() - started, 2),
    )
    if rows:  # fold the rewritten rows back into the indexes
        table.optimize(cleanup_older_than=store.cleanup_older_than)


def skills_tier(store: LanceStore) -> None:
    """Stores made before tiers (runtime/records.py): add the `tier` column and fill it in
    from each row's verdict (verified if its gate passed, else blocked: older code gated
    every package, so none of its rows is an instructions-only registration), repacking the
    row's listing so it agrees. Rows already filled in (a run cut short) are left alone. An
    instructions-only package that older code blocked becomes an `instructions` version the
    next time it is added (runtime/yard.py does not reuse such a verdict)."""
    table = store.open_existing(SKILLS)
    if table is None:
        return
    started = time.perf_counter()
    if "tier" not in table.schema.names:
        table.add_columns(pa.field("tier", pa.string()))
    rows = table.search().where("tier IS NULL").select(LIGHT_COLUMNS).limit(None).to_arrow().to_pylist()
    for i in range(0, len(rows), 5_000):
        chunk = rows[i : i + 5_000]
        for row in chunk:
            row["tier"] = tier_of_verdict(bool(row["gate_passed"]))
        batch = pa.table(
            {
                "id": [r["id"] for r in chunk],
                "tier": [r["tier"] for r in chunk],
                "listing": [pack_listing(r) for r in chunk],
            }
        )
        table.merge_insert("id").when_matched_update_all().execute(batch)
    if rows:
        log.info(
            "migrated the skills table: added `tier`",
            rows=len(rows),
            seconds=round(time.perf_counter() - started, 2),
        )
        table.optimize(cleanup_older_than=store.cleanup_older_than)


def baselines_out_of_llm_calls(store: LanceStore) -> None:
    """Stores written before the `baselines` table kept the model's estimate of a skill's
    baseline as an ``llm_calls`` row of purpose ``baseline``: an estimate, not tokens
    spent. Move each into ``baselines`` (its tokens as ``baseline_tokens``, source
    ``creation``; the row id is kept, so a second run inserts nothing twice), then delete
    them from ``llm_calls``. Afterwards the ledger's reads know only real calls."""
    calls = store.open_existing(LLM_CALLS)
    if calls is None:
        return
    legacy = calls.search().where("purpose = 'baseline'").limit(None).to_arrow().to_pylist()
    if not legacy:
        return
    moved = [
        {
            "id": r["id"],
            "ts": r["ts"],
            "skill": r["skill"] or "(unknown)",
            "version": r["version"],
            "baseline_tokens": int(r["prompt_tokens"]) + int(r["completion_tokens"]),
            "source": "creation",
            "detail": (r["detail"] or "the model's estimate at creation")[:2000],
        }
        for r in legacy
    ]
    baselines = store.table(BASELINES)
    batch = pa.Table.from_pylist(moved, schema=store.schemas[BASELINES])
    store.write_to(baselines, lambda t: t.merge_insert("id").when_not_matched_insert_all().execute(batch))
    store.write_to(calls, lambda t: t.delete("purpose = 'baseline'"))
    log.info("moved baseline estimates out of llm_calls", rows=len(moved))


def uses_id_index(store: LanceStore) -> None:
    """A use is written as an upsert keyed on its call's id (runtime/ledger.py: a call
    accounted twice stays one row), which looks the id up in ``uses``: stores made before
    get the scalar index on ``id`` that new ones are created with. Safe to run again."""
    from lancedb.index import BTree

    uses = store.open_existing(USES)
    if uses is None:
        return
    if any(tuple(ix.columns) == ("id",) for ix in uses.list_indices()):
        return
    started = time.perf_counter()
    uses.create_index("id", config=BTree(), replace=True)
    log.info("indexed the uses table's id", seconds=round(time.perf_counter() - started, 2))


def usage_journal_marks(store: LanceStore) -> None:
    """Stores made before the accounting journal: add the usage table's `journal` column
    (null: no journal has counted anything there yet)."""
    table = store.open_existing(USAGE)
    if table is None or "journal" in table.schema.names:
        return
    table.add_columns(pa.field("journal", pa.string()))
    log.info("migrated the usage table: added `journal`")


def aliases_table(store: LanceStore) -> None:
    """The ``aliases`` table (a retired skill's name -> the skill that absorbed it, set by a
    merge): made empty, with its index. Stores made before it had no merges, so there is
    nothing to fill in."""
    store.table(ALIASES)


def proxy_uses_table(store: LanceStore) -> None:
    """The ``proxy_uses`` table (each skill's share of a proxied chat request): made empty.
    Stores made before it had no proxy, so there is nothing to fill in."""
    store.table(PROXY_USES)


REGISTRY_MIGRATIONS = (
    Migration("registry-0001-skills-listing", skills_listing),
    Migration("registry-0002-skills-tier", skills_tier),
    Migration("registry-0003-usage-journal-marks", usage_journal_marks),
    Migration("registry-0004-aliases", aliases_table),
)
LEDGER_MIGRATIONS = (
    Migration("ledger-0001-baselines-out-of-llm-calls", baselines_out_of_llm_calls),
    Migration("ledger-0002-uses-id-index", uses_id_index),
    Migration("ledger-0003-proxy-uses", proxy_uses_table),
)
