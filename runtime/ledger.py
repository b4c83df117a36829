"""The token ledger's rows: every LLM call spent on a skill, every use of a skill, and
the baseline estimates. (What they add up to -- break-even, the cost report -- is
runtime/accounting.py's.)

Like ``llm logs`` (simonw/llm), every call is one row in a local database that the
CLI can query; here the database is the registry's own LanceDB store, in three
append-only tables (created on first write):

``llm_calls``
    one row per HTTP request to the LLM (each request once, with its final outcome):
    ts (UTC), skill (None while the name is unknown), version (the version the call
    was repairing; for a creation, the version it created), purpose (create | fix |
    retry), model, prompt/completion/cached tokens as the API reported them,
    tiktoken's own count of the prompt, cost in USD, latency, outcome (ok, malformed,
    refused, invalid, unchanged, error), a short detail and the provider's request id.
    When the endpoint reported no usage the tokens are tiktoken's count and the
    detail starts with :data:`TIKTOKEN_USAGE_NOTE`; reads derive ``usage_source``
    ("api", "tiktoken" or "none" for a failed request) from that.
``uses``
    one row per run of a skill by a caller: ts, skill, version, the context tokens the
    skill cost the agent (its SKILL.md as loaded), outcome and duration. The fixer's
    own replays of failing inputs are not uses and are not recorded. A use recorded
    with its call's id (``call_id``) has that id as its row id and is written as an
    upsert keyed on it: the same call recorded twice (a write retried after a lost
    answer, a replayed journal, a server on another node) stays one row.
    own replays of failing inputs are not uses and are not recorded.
``proxy_uses``
    one row per (proxied chat request, skill): what the skill put into the upstream
    model's prompts for that request (its instructions, its tool definition and the
    results of its tool runs, over every round: ``context_tokens``), how often the
    proxy ran it as a tool and how often that failed, and the usage the upstream
    reported for the whole request (the same figures on each skill's row of one
    request; ``request_id`` tells them apart). A row is one use of the skill: the
    proxy's tool runs inside the request are part of it and are not ``uses`` rows.
    (Added by a named migration.)
``baselines``
    estimates or measurements of the tokens an agent spends on a skill's task
    *without* the skill (source "creation": the model's estimate when it wrote the
    skill). Not tokens spent. (Stores written before this table kept estimates as
    ``llm_calls`` rows of purpose ``baseline``; a named migration moves them here.)

Failed creations. A creation that never produced a package leaves its calls under
its placeholder label ``(creating-XXXXXXXX)`` (see :func:`is_placeholder`). Learning
does the same with ``(learning-XXXXXXXX)``: an extraction that added or merged a skill
moves its rows to that skill, one that learnt nothing (a discard, a dry run) leaves them
under its placeholder.

Concurrency and failures follow runtime/lancestore.py: rows are only ever appended
(plus the rare ``reassign``/``tag_version`` update), commit conflicts are retried, and
a write that still fails raises StoreError. Accounting must never break the work it
accounts for, so the callers write through ``accounting.best_effort``, which logs and
counts a lost row instead. Table creation and compaction take ``<store>/.ledger.lock``.

SQL safety. Skill names reach LanceDB filters, and the ledger also holds names a
registry would refuse (the ``(creating)`` placeholder used before a new skill is
named), so labels are checked against a printable alphabet with no quotes,
backslashes or control characters, and are quoted besides. Purposes come from a
fixed set, timestamps are formatted by us, versions are ints.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import structlog

from .lancestore import LanceStore, sql_str, sql_ts
from .migrations import LEDGER_MIGRATIONS, PROXY_USES
from .times import as_utc, utc_now

log = structlog.get_logger(__name__)

LLM_CALLS, USES, BASELINES = "llm_calls", "uses", "baselines"
# learn: extraction and the keep/merge decision (runtime/learning.py); merge: folding one
# registered skill into another (runtime/merging.py)
PURPOSES = ("create", "fix", "retry", "learn", "merge")
TIKTOKEN_USAGE_NOTE = "usage: tiktoken count (the endpoint reported none)"
PLACEHOLDER_PREFIX = "(creating"
LEARNING_PREFIX = "(learning"
# A skill label in the ledger: a registry name, or a placeholder such as "(creating)".
SKILL_RE = re.compile(r"^[A-Za-z0-9()\[\]<>._:@+/#=, -]{1,128}$")
OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TS = pa.timestamp("us", tz="UTC")

LLM_CALLS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("skill", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("purpose", pa.string(), nullable=False),
        pa.field("model", pa.string()),
        pa.field("prompt_tokens", pa.int64(), nullable=False),
        pa.field("completion_tokens", pa.int64(), nullable=False),
        pa.field("cached_tokens", pa.int64(), nullable=False),
        pa.field("tiktoken_prompt_tokens", pa.int64(), nullable=False),
        pa.field("cost_usd", pa.float64(), nullable=False),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
        pa.field("request_id", pa.string()),
    ]
)
USES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("skill", pa.string(), nullable=False),
        pa.field("version", pa.int64()),
        pa.field("context_tokens", pa.int64(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("duration_ms", pa.float64(), nullable=False),
    ]
)
BASELINES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("skill", pa.string(), nullable=False),
        pa.field("version", pa.int64()),
        pa.field("baseline_tokens", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
    ]
)
PROXY_USES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", _TS, nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("tenant", pa.string()),
        pa.field("skill", pa.string(), nullable=False),
        pa.field("version", pa.int64()),
        pa.field("mode", pa.string(), nullable=False),  # inject, tool, inject+tool
        pa.field("context_tokens", pa.int64(), nullable=False),
        pa.field("tool_runs", pa.int64(), nullable=False),
        pa.field("tool_failures", pa.int64(), nullable=False),
        pa.field("rounds", pa.int64(), nullable=False),
        pa.field("upstream_prompt_tokens", pa.int64(), nullable=False),
        pa.field("upstream_completion_tokens", pa.int64(), nullable=False),
        pa.field("upstream_cached_tokens", pa.int64(), nullable=False),
        pa.field("usage_source", pa.string(), nullable=False),  # api, tiktoken, none
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("duration_ms", pa.float64(), nullable=False),
    ]
)
SCHEMAS = {
    LLM_CALLS: LLM_CALLS_SCHEMA,
    USES: USES_SCHEMA,
    BASELINES: BASELINES_SCHEMA,
    PROXY_USES: PROXY_USES_SCHEMA,
}
PROXY_MODES = ("inject", "tool", "inject+tool")
USAGE_SOURCES = ("api", "tiktoken", "none")
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def is_placeholder(label: str | None) -> bool:
    """A creation's or a learning run's placeholder label (no skill yet), not a skill."""
    return bool(label) and str(label).startswith((PLACEHOLDER_PREFIX, LEARNING_PREFIX))


def is_learning(label: str | None) -> bool:
    """A learning run's placeholder label: an extraction that learnt nothing (yet)."""
    return bool(label) and str(label).startswith(LEARNING_PREFIX)


def usage_source(row: dict[str, Any]) -> str:
    """Where a call row's token counts come from: "api", "tiktoken" (our count) or "none"."""
    if str(row.get("detail") or "").startswith(TIKTOKEN_USAGE_NOTE):
        return "tiktoken"
    if row.get("outcome") == "error" and not (row.get("prompt_tokens") or row.get("completion_tokens")):
        return "none"
    return "api"


# --------------------------------------------------------------------------- validation


def _skill(value: object, *, optional: bool = False) -> str | None:
    """A skill label: a registry name or a creation's placeholder (never quotes or backslashes)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not SKILL_RE.fullmatch(value):
        raise ValueError(
            f"invalid ledger skill label {value!r}: 1-128 printable chars, no quotes or backslashes"
        )
    return value


def non_negative_int(field: str, value: object) -> int:
    """`value` as an int if it is one >= 0 (a token count), else ValueError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise ValueError(f"{field} must be an int >= 0, not {value!r}")
    return int(value)


def _amount(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} must be a number, not {value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{field} must be finite and >= 0, not {value!r}")
    return out


def _version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"version must be an int >= 1 or None, not {value!r}")
    return int(value)


def _outcome(value: object) -> str:
    if not isinstance(value, str) or not OUTCOME_RE.fullmatch(value):
        raise ValueError(
            f"invalid outcome {value!r}: want a short lower-case word such as 'ok' or 'malformed'"
        )
    return value


def _purpose(value: object) -> str:
    if value == "baseline":
        raise ValueError("a baseline is not an LLM call: record it with Ledger.record_baseline")
    if value not in PURPOSES:
        raise ValueError(f"invalid purpose {value!r}: want one of {PURPOSES}")
    return str(value)


def _row_time(ts: datetime | None) -> datetime:
    """A row's time: `ts` in UTC (naive = UTC), or now."""
    if ts is None:
        return utc_now()
    if not isinstance(ts, datetime):
        raise ValueError(f"timestamp must be a datetime, not {ts!r}")
    return as_utc(ts)


def _sql_ts(ts: datetime) -> str:
    return sql_ts(_row_time(ts))


def use_row(
    *,
    skill: str,
    version: int | None,
    context_tokens: int,
    outcome: str,
    duration_ms: float,
    ts: datetime | None = None,
    row_id: str | None = None,
) -> dict[str, Any]:
    """One checked ``uses`` row (ValueError on a bad field); `row_id` keeps a known id."""
    if row_id is not None and not (isinstance(row_id, str) and _ID_RE.fullmatch(row_id)):
        raise ValueError(f"invalid row id {row_id!r}")
    return {
        "id": row_id or uuid.uuid4().hex,
        "ts": _row_time(ts),
        "skill": _skill(skill),
        "version": _version(version),
        "context_tokens": non_negative_int("context_tokens", context_tokens),
        "outcome": _outcome(outcome),
        "duration_ms": _amount("duration_ms", duration_ms),
    }


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """The ledger's tables in the LanceDB store at `uri` (the registry's store). `store`
    is the LanceStore underneath."""

    def __init__(
        self,
        uri: str | Path,
        *,
        compact_every: int = 100,
        cleanup_older_than: timedelta = timedelta(hours=1),
        lock_timeout: float = 60.0,
    ) -> None:
        self.uri = str(uri)
        self.store = LanceStore(
            self.uri,
            owner="ledger",
            schemas=SCHEMAS,
            migrations=LEDGER_MIGRATIONS,
            # A use is an upsert keyed on its call's id: the index keeps that a look-up, not a scan.
            indexes={USES: [("id", "BTree")]},
            compact_every=compact_every,
            cleanup_older_than=cleanup_older_than,
            lock_timeout=lock_timeout,
        )

    def _rows(self, table_name: str, where: str | None) -> list[dict[str, Any]]:
        rows = self.store.rows(table_name, where)
        rows.sort(key=lambda r: (r["ts"], r["id"]))
        return rows

    # ----------------------------------------------------------------- writes

    def record_llm_call(
        self,
        *,
        skill: str | None,
        version: int | None,
        purpose: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int,
        tiktoken_prompt_tokens: int,
        cost_usd: float,
        latency_ms: float,
        outcome: str,
        detail: str = "",
        request_id: str = "",
        ts: datetime | None = None,
    ) -> str:
        """Append one LLM call; returns its row id. Raises ValueError on bad arguments."""
        row = {
            "id": uuid.uuid4().hex,
            "ts": _row_time(ts),
            "skill": _skill(skill, optional=True),
            "version": _version(version),
            "purpose": _purpose(purpose),
            "model": str(model or "")[:200],
            "prompt_tokens": non_negative_int("prompt_tokens", prompt_tokens),
            "completion_tokens": non_negative_int("completion_tokens", completion_tokens),
            "cached_tokens": non_negative_int("cached_tokens", cached_tokens),
            "tiktoken_prompt_tokens": non_negative_int("tiktoken_prompt_tokens", tiktoken_prompt_tokens),
            "cost_usd": _amount("cost_usd", cost_usd),
            "latency_ms": _amount("latency_ms", latency_ms),
            "outcome": _outcome(outcome),
            "detail": str(detail or "")[:2000],
            "request_id": str(request_id or "")[:200],
        }
        batch = pa.Table.from_pylist([row], schema=LLM_CALLS_SCHEMA)
        self.store.write(LLM_CALLS, lambda t: t.add(batch), what="record_llm_call")
        log.debug(
            "ledger llm call",
            skill=skill,
            purpose=purpose,
            outcome=outcome,
            tokens=row["prompt_tokens"] + row["completion_tokens"],
        )
        return row["id"]

    def record_use(
        self,
        *,
        skill: str,
        version: int | None,
        context_tokens: int,
        outcome: str,
        duration_ms: float,
        ts: datetime | None = None,
        call_id: str | None = None,
    ) -> bool:
        """Record one run of a skill (context_tokens: its SKILL.md as an agent loads it).
        With `call_id` (32 hex digits) the row is the call's, written once however often
        it is recorded: returns whether this write added it (always True without one)."""
        if call_id is not None and not (isinstance(call_id, str) and _ID_RE.fullmatch(call_id)):
            raise ValueError(f"call_id must be 32 lower-case hex digits, not {call_id!r}")
        row = use_row(
            skill=skill,
            version=version,
            context_tokens=context_tokens,
            outcome=outcome,
            duration_ms=duration_ms,
            ts=ts,
            row_id=call_id,
        )
        return self.append_uses([row]) > 0

    def append_uses(self, rows: list[dict[str, Any]]) -> int:
        """Add rows made by `use_row` in one write (the accounting writer's batches); how many
        were new. A row whose id the ledger holds already is not added again: a use is named
        by its call's id, and a call accounted twice (retried, replayed, from two servers) is
        one row."""
        if not rows:
            return 0
        batch = pa.Table.from_pylist(rows, schema=USES_SCHEMA)
        result = self.store.write(
            USES,
            lambda t: t.merge_insert("id").when_not_matched_insert_all().execute(batch),
            what="record uses",
        )
        inserted = getattr(result, "num_inserted_rows", None)
        return len(rows) if inserted is None else int(inserted)

    def use_ids(self, ids: list[str]) -> set[str]:
        """Which of these use-row ids the ledger holds (a journal's replay skips them)."""
        wanted = [i for i in ids if isinstance(i, str) and _ID_RE.fullmatch(i)]
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            where = f"id IN ({', '.join(sql_str(x) for x in wanted[i : i + 500])})"
            found.update(r["id"] for r in self.store.rows(USES, where, ["id"]))
        return found

    def record_baseline(
        self,
        *,
        skill: str,
        version: int | None,
        baseline_tokens: int,
        source: str = "creation",
        detail: str = "",
        ts: datetime | None = None,
    ) -> str:
        """Append a baseline: tokens an agent spends on the skill's task without it (not tokens spent)."""
        row = {
            "id": uuid.uuid4().hex,
            "ts": _row_time(ts),
            "skill": _skill(skill),
            "version": _version(version),
            "baseline_tokens": non_negative_int("baseline_tokens", baseline_tokens),
            "source": _outcome(source),
            "detail": str(detail or "")[:2000],
        }
        batch = pa.Table.from_pylist([row], schema=BASELINES_SCHEMA)
        self.store.write(BASELINES, lambda t: t.add(batch), what="record_baseline")
        return row["id"]

    def record_proxy_use(
        self,
        *,
        request_id: str,
        tenant: str | None,
        skill: str,
        version: int | None,
        mode: str,
        context_tokens: int,
        tool_runs: int,
        tool_failures: int,
        rounds: int,
        upstream_prompt_tokens: int,
        upstream_completion_tokens: int,
        upstream_cached_tokens: int,
        usage_source: str,
        outcome: str,
        duration_ms: float,
        ts: datetime | None = None,
    ) -> str:
        """Append one skill's share of one proxied request (see ``proxy_uses`` above)."""
        if mode not in PROXY_MODES:
            raise ValueError(f"invalid proxy mode {mode!r}: want one of {PROXY_MODES}")
        if usage_source not in USAGE_SOURCES:
            raise ValueError(f"invalid usage source {usage_source!r}: want one of {USAGE_SOURCES}")
        row = {
            "id": uuid.uuid4().hex,
            "ts": _row_time(ts),
            "request_id": str(request_id)[:64],
            "tenant": None if tenant is None else str(tenant)[:64],
            "skill": _skill(skill),
            "version": _version(version),
            "mode": mode,
            "context_tokens": non_negative_int("context_tokens", context_tokens),
            "tool_runs": non_negative_int("tool_runs", tool_runs),
            "tool_failures": non_negative_int("tool_failures", tool_failures),
            "rounds": non_negative_int("rounds", rounds),
            "upstream_prompt_tokens": non_negative_int("upstream_prompt_tokens", upstream_prompt_tokens),
            "upstream_completion_tokens": non_negative_int(
                "upstream_completion_tokens", upstream_completion_tokens
            ),
            "upstream_cached_tokens": non_negative_int("upstream_cached_tokens", upstream_cached_tokens),
            "usage_source": usage_source,
            "outcome": _outcome(outcome),
            "duration_ms": _amount("duration_ms", duration_ms),
        }
        batch = pa.Table.from_pylist([row], schema=PROXY_USES_SCHEMA)
        self.store.write(PROXY_USES, lambda t: t.add(batch), what="record_proxy_use")
        return row["id"]

    def tag_version(self, call_ids: list[str], version: int) -> int:
        """Set the version of LLM-call rows recorded before it was known (a creation's calls)."""
        ids = [i for i in call_ids if isinstance(i, str) and _ID_RE.fullmatch(i)]
        version = _version(version)
        if not ids or version is None or self.store.table(LLM_CALLS, create=False) is None:
            return 0
        where = f"id IN ({', '.join(sql_str(i) for i in ids)}) AND version IS NULL"
        result = self.store.write(
            LLM_CALLS, lambda t: t.update(where=where, values={"version": version}), what="tag_version"
        )
        return int(getattr(result, "rows_updated", 0) or 0)

    def reassign(self, old_skill: str, new_skill: str) -> int:
        """Move every row of `old_skill` to `new_skill` (a creation learns its name late).

        Returns the number of rows moved. Note that a placeholder shared by two
        concurrent creations cannot tell them apart: give each its own placeholder.
        """
        old, new = _skill(old_skill), _skill(new_skill)
        if old == new:
            return 0
        where = f"skill = {sql_str(old)}"
        moved = 0
        for name in SCHEMAS:
            if self.store.table(name, create=False) is None:
                continue
            result = self.store.write(
                name, lambda t: t.update(where=where, values={"skill": new}), what="reassign"
            )
            moved += int(getattr(result, "rows_updated", 0) or 0)
        log.info("ledger rows reassigned", old=old, new=new, rows=moved)
        return moved

    # ----------------------------------------------------------------- reads

    def llm_calls(
        self,
        skill: str | None = None,
        since: datetime | None = None,
        purpose: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """LLM calls, oldest first (with `limit`: the newest `limit` of them). Each dict
        has the stored columns plus ``total_tokens`` (prompt + completion)."""
        where = []
        if skill is not None:
            where.append(f"skill = {sql_str(_skill(skill))}")
        if since is not None:
            where.append(f"ts >= {_sql_ts(since)}")
        if purpose is not None:
            where.append(f"purpose = {sql_str(_purpose(purpose))}")
        rows = self._rows(LLM_CALLS, " AND ".join(where) or None)
        if limit is not None and limit >= 0:
            rows = rows[len(rows) - limit :] if limit else []
        for r in rows:
            r["total_tokens"] = r["prompt_tokens"] + r["completion_tokens"]
            r["usage_source"] = usage_source(r)
        return rows

    def llm_calls_without_skill(self) -> list[dict[str, Any]]:
        """LLM calls recorded with no skill label at all, oldest first."""
        return self._rows(LLM_CALLS, "skill IS NULL")

    def baselines(self, skill: str | None = None) -> list[dict[str, Any]]:
        """Baseline rows, oldest first."""
        where = f"skill = {sql_str(_skill(skill))}" if skill is not None else None
        return self._rows(BASELINES, where)

    def uses(
        self, skill: str | None = None, since: datetime | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Skill uses, oldest first (with `limit`: the newest `limit` of them)."""
        return self._recent(USES, skill, since, limit)

    def proxy_uses(
        self, skill: str | None = None, since: datetime | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Skills' shares of proxied requests, oldest first (with `limit`: the newest `limit`)."""
        return self._recent(PROXY_USES, skill, since, limit)

    def _recent(
        self, table: str, skill: str | None, since: datetime | None, limit: int | None
    ) -> list[dict[str, Any]]:
        where = []
        if skill is not None:
            where.append(f"skill = {sql_str(_skill(skill))}")
        if since is not None:
            where.append(f"ts >= {_sql_ts(since)}")
        rows = self._rows(table, " AND ".join(where) or None)
        if limit is not None and limit >= 0:
            rows = rows[len(rows) - limit :] if limit else []
        return rows

    def skills(self) -> list[str]:
        """Every skill label that has a row (calls with no skill are left out)."""
        names: set[str] = set()
        for name in SCHEMAS:
            names.update(r["skill"] for r in self.store.rows(name, None, ["skill"]) if r["skill"] is not None)
        return sorted(names)

    def compact(self) -> dict[str, bool]:
        """Optimise the tables now (merge fragments, prune old table versions)."""
        return self.store.compact()

    def close(self) -> None:
        """Close the store; later use raises StoreError."""
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
