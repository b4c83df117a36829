"""The token ledger: every LLM call spent on a skill, every use of a skill, and the
break-even report built from them.

Like ``llm logs`` (simonw/llm), every call is one row in a local database that the
CLI can query; here the database is the registry's own LanceDB store, in three extra
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
    own replays of failing inputs are not uses and are not recorded.
``baselines``
    estimates or measurements of the tokens an agent spends on a skill's task
    *without* the skill (source "creation": the model's estimate when it wrote the
    skill). Not tokens spent: they never count in call totals or investment.

Token arithmetic. A call's tokens are ``prompt_tokens + completion_tokens`` (cached
prompt tokens are a subset of the prompt tokens, as in the OpenAI usage object, and
are reported but not added again). Tokens *invested* in a skill are those of its
``create``, ``fix`` and ``retry`` calls. Several baseline rows are averaged. (Stores
written before the ``baselines`` table kept estimates as ``purpose = baseline`` rows
of ``llm_calls``; those are still read as baselines, never as tokens.)

Break-even. With ``s = baseline - context`` tokens saved per use, the skill has paid
for itself after ``N* = ceil(invested / s)`` uses (see :func:`break_even`). Only
successful uses save anything (see :class:`SkillCost`).

Failed creations. A creation that never produced a package leaves its calls under
its placeholder label ``(creating-XXXXXXXX)``; the cost report lists those as
unattributed failed-creation cost (:func:`unattributed`), not as a skill.

Concurrency. Rows are only ever appended (plus the rare ``reassign`` update), and
LanceDB commits concurrent appends from several processes without losing any; a
retryable commit conflict (an append racing a compaction or an update) is retried
with backoff, and a write that still conflicts after that is logged, not raised: an
accounting row must never break the call being accounted for. Table creation and
compaction take a file lock at ``<store>/.ledger.lock``. The connection uses
``read_consistency_interval=0`` so reads see other processes' rows at once.

SQL safety. Skill names reach LanceDB filters, and the ledger also holds names a
registry would refuse (the ``(creating)`` placeholder used before a new skill is
named), so names are checked against a printable alphabet with no quotes,
backslashes or control characters, and are quoted besides. Purposes come from a
fixed set, timestamps are formatted by us, versions are ints.
"""

from __future__ import annotations

import math
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import structlog

from .errors import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from .package import SkillPackage
    from .registry import Registry

log = structlog.get_logger(__name__)

LLM_CALLS, USES, BASELINES = "llm_calls", "uses", "baselines"
LOCK_NAME = ".ledger.lock"
PURPOSES = ("create", "fix", "retry")
LEGACY_BASELINE = "baseline"  # old stores: estimates kept as llm_calls rows of this purpose (read only)
TIKTOKEN_USAGE_NOTE = "usage: tiktoken count (the endpoint reported none)"
PLACEHOLDER_PREFIX = "(creating"
INVESTED_PURPOSES = ("create", "fix", "retry")
FIX_PURPOSES = ("fix", "retry")
# A skill label in the ledger: a registry name, or a placeholder such as "(creating)".
SKILL_RE = re.compile(r"^[A-Za-z0-9()\[\]<>._:@+/#=, -]{1,128}$")
OUTCOME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_TS = pa.timestamp("us", tz="UTC")
MIN_CLEANUP_AGE = timedelta(minutes=1)

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
_SCHEMAS = {LLM_CALLS: LLM_CALLS_SCHEMA, USES: USES_SCHEMA, BASELINES: BASELINES_SCHEMA}
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def is_placeholder(label: str | None) -> bool:
    """A creation's placeholder label (the skill had no name yet), not a skill."""
    return bool(label) and str(label).startswith(PLACEHOLDER_PREFIX)


def usage_source(row: dict[str, Any]) -> str:
    """Where a call row's token counts come from: "api", "tiktoken" (our count) or "none"."""
    if str(row.get("detail") or "").startswith(TIKTOKEN_USAGE_NOTE):
        return "tiktoken"
    if row.get("outcome") == "error" and not (row.get("prompt_tokens") or row.get("completion_tokens")):
        return "none"
    return "api"


# --------------------------------------------------------------------------- validation


def _skill(value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not SKILL_RE.fullmatch(value):
        raise ValueError(
            f"invalid ledger skill label {value!r}: 1-128 printable chars, no quotes or backslashes"
        )
    return value


def _count(field: str, value: object) -> int:
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


def _purpose(value: object, *, reading: bool = False) -> str:
    if value == LEGACY_BASELINE and reading:
        return value
    if value == LEGACY_BASELINE:
        raise ValueError("a baseline is not an LLM call: record it with Ledger.record_baseline")
    if value not in PURPOSES:
        raise ValueError(f"invalid purpose {value!r}: want one of {PURPOSES}")
    return str(value)


def _utc(ts: datetime | None) -> datetime:
    if ts is None:
        return datetime.now(UTC)
    if not isinstance(ts, datetime):
        raise ValueError(f"timestamp must be a datetime, not {ts!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_ts(ts: datetime) -> str:
    # isoformat of a UTC datetime: digits, '-', ':', '.', 'T' and '+00:00' only.
    return f"arrow_cast({_sql_str(_utc(ts).isoformat())}, 'Timestamp(Microsecond, Some(\"UTC\"))')"


def _is_retryable(exc: Exception) -> bool:
    """A commit conflict: the write did not commit, so running it again cannot duplicate it.

    (Nothing else is retried for writes: an error raised *after* a commit -- say a
    pruned manifest while reloading -- would turn a retried append into two rows.)"""
    text = str(exc).lower()
    return "retryable commit conflict" in text or "commitconflict" in text or "commit conflict" in text


def _is_pruned(exc: Exception) -> bool:
    """A read raced a compaction that pruned the version it was reading: retry the read."""
    text = str(exc).lower()
    return "not found" in text and (".manifest" in text or ".lance" in text)


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


# --------------------------------------------------------------------------- break-even


def break_even(invested_tokens: int, baseline_tokens: int, context_tokens: int) -> int | None:
    """Uses needed for a skill to pay back the tokens invested in it.

    Each use saves ``s = baseline_tokens - context_tokens`` tokens: the agent would
    have spent ``baseline_tokens`` solving the task unaided, and instead pays the
    ``context_tokens`` of loading the skill's SKILL.md. If ``s <= 0`` the skill never
    breaks even and the result is None. Otherwise the result is the smallest integer
    ``N`` with ``N * s >= invested_tokens``, i.e. ``ceil(invested / s)`` (0 when
    nothing was invested). Exact integer arithmetic, no floats.

    >>> break_even(383_000, 150_000, 2_000)   # s = 148,000; 2 uses save 296,000 < 383,000
    3
    >>> break_even(300, 100, 0), break_even(0, 10, 1), break_even(10, 5, 5)
    (3, 0, None)
    """
    invested = _count("invested_tokens", invested_tokens)
    saved = _count("baseline_tokens", baseline_tokens) - _count("context_tokens", context_tokens)
    if saved <= 0:
        return None
    return -(-invested // saved)


# --------------------------------------------------------------------------- the ledger


class Ledger:
    """The two ledger tables in the LanceDB store at `uri` (the registry's store)."""

    def __init__(
        self,
        uri: str | Path,
        *,
        compact_every: int = 100,
        cleanup_older_than: timedelta = timedelta(hours=1),
        attempts: int = 10,
        lock_timeout: float = 60.0,
    ) -> None:
        import lancedb

        self.uri = str(uri)
        self.compact_every = max(1, int(compact_every))
        # LanceDB: pruning versions that a concurrent reader or writer still uses makes
        # it fail; other processes' operations take well under a minute.
        self.cleanup_older_than = max(cleanup_older_than, MIN_CLEANUP_AGE)
        self.attempts = max(1, int(attempts))
        self._thread_lock = threading.RLock()
        self._file_lock: Any = None
        if _is_local(self.uri):
            root = Path(self.uri.removeprefix("file://")).expanduser()
            root.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            self._file_lock = FileLock(str(root / LOCK_NAME), timeout=lock_timeout)
        self._db: Any = lancedb.connect(self.uri, read_consistency_interval=timedelta(0))
        self._tables: dict[str, Any] = {}

    # ----------------------------------------------------------------- plumbing

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._file_lock is None:
                yield
                return
            with self._file_lock:
                yield

    def _table(self, name: str, *, create: bool) -> Any | None:
        """The table handle; None when it does not exist yet and `create` is False."""
        tbl = self._tables.get(name)
        if tbl is not None:
            return tbl
        if self._db is None:
            raise StoreError("ledger is closed")
        try:
            tbl = self._db.open_table(name)
        except ValueError:  # "Table '...' was not found"
            if not create:
                return None
            with self._locked():  # one creator across processes; the others then open it
                tbl = self._db.create_table(name, schema=_SCHEMAS[name], exist_ok=True)
            log.debug("ledger table created", table=name, uri=self.uri)
        self._tables[name] = tbl
        return tbl

    def _write(self, table_name: str, op: Callable[[Any], Any], *, what: str) -> Any:
        """One write, retried on retryable commit conflicts (those did not commit).

        After `attempts` conflicts the write is logged as lost and None is returned,
        never raised: the caller's own work must not fail over accounting.
        """
        table = self._table(table_name, create=True)
        before = table.version
        for i in range(self.attempts):
            try:
                result = op(table)
                break
            except Exception as exc:  # noqa: BLE001 -- filtered below
                if not _is_retryable(exc):
                    raise StoreError(
                        f"ledger {what} failed: {(str(exc).splitlines() or [''])[0][:300]}"
                    ) from exc
                if i == self.attempts - 1:
                    log.error(
                        "ledger_write_lost",
                        table=table_name,
                        what=what,
                        attempts=self.attempts,
                        error=(str(exc).splitlines() or [""])[0][:200],
                    )
                    return None
                delay = min(0.5, 0.01 * 2**i) * (0.5 + random.random())
                log.debug("ledger commit conflict, retrying", table=table_name, attempt=i + 1)
                threading.Event().wait(delay)
        try:
            after = table.version
            if after // self.compact_every != before // self.compact_every:
                self._compact_table(table_name)
        except Exception as exc:  # noqa: BLE001 -- tidying never fails a write
            log.debug("ledger compaction check failed", error=str(exc)[:200])
        return result

    def _compact_table(self, table_name: str) -> bool:
        """Best-effort optimize(): skipped when another process holds the ledger lock."""
        table = self._table(table_name, create=False)
        if table is None:
            return False
        with self._thread_lock:
            if self._file_lock is not None:
                from filelock import Timeout

                try:
                    self._file_lock.acquire(timeout=0)
                except Timeout:
                    return False
            try:
                table.optimize(cleanup_older_than=self.cleanup_older_than)
            except Exception as exc:  # noqa: BLE001 -- a concurrent writer won; next time then
                (log.debug if _is_retryable(exc) else log.warning)(
                    "ledger compaction skipped",
                    table=table_name,
                    error=(str(exc).splitlines() or [""])[0][:200],
                )
                return False
            finally:
                if self._file_lock is not None:
                    self._file_lock.release()
        log.debug("ledger compacted", table=table_name, version=table.version)
        return True

    def compact(self) -> dict[str, bool]:
        """Optimise both tables now (merge fragments, prune old table versions)."""
        return {n: self._compact_table(n) for n in _SCHEMAS}

    def _rows(self, table_name: str, where: str | None) -> list[dict[str, Any]]:
        table = self._table(table_name, create=False)
        if table is None:
            return []
        for i in range(3):
            q = table.search()
            if where:
                q = q.where(where)
            try:
                rows = q.limit(None).to_arrow().to_pylist()
                break
            except Exception as exc:  # noqa: BLE001 -- only a version pruned mid-read is retried
                if i == 2 or not _is_pruned(exc):
                    raise
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
            "ts": _utc(ts),
            "skill": _skill(skill, optional=True),
            "version": _version(version),
            "purpose": _purpose(purpose),
            "model": str(model or "")[:200],
            "prompt_tokens": _count("prompt_tokens", prompt_tokens),
            "completion_tokens": _count("completion_tokens", completion_tokens),
            "cached_tokens": _count("cached_tokens", cached_tokens),
            "tiktoken_prompt_tokens": _count("tiktoken_prompt_tokens", tiktoken_prompt_tokens),
            "cost_usd": _amount("cost_usd", cost_usd),
            "latency_ms": _amount("latency_ms", latency_ms),
            "outcome": _outcome(outcome),
            "detail": str(detail or "")[:2000],
            "request_id": str(request_id or "")[:200],
        }
        batch = pa.Table.from_pylist([row], schema=LLM_CALLS_SCHEMA)
        self._write(LLM_CALLS, lambda t: t.add(batch), what="record_llm_call")
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
    ) -> None:
        """Append one run of a skill (context_tokens: its SKILL.md as an agent loads it)."""
        row = {
            "id": uuid.uuid4().hex,
            "ts": _utc(ts),
            "skill": _skill(skill),
            "version": _version(version),
            "context_tokens": _count("context_tokens", context_tokens),
            "outcome": _outcome(outcome),
            "duration_ms": _amount("duration_ms", duration_ms),
        }
        batch = pa.Table.from_pylist([row], schema=USES_SCHEMA)
        self._write(USES, lambda t: t.add(batch), what="record_use")

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
            "ts": _utc(ts),
            "skill": _skill(skill),
            "version": _version(version),
            "baseline_tokens": _count("baseline_tokens", baseline_tokens),
            "source": _outcome(source),
            "detail": str(detail or "")[:2000],
        }
        batch = pa.Table.from_pylist([row], schema=BASELINES_SCHEMA)
        self._write(BASELINES, lambda t: t.add(batch), what="record_baseline")
        return row["id"]

    def tag_version(self, call_ids: list[str], version: int) -> int:
        """Set the version of LLM-call rows recorded before it was known (a creation's calls)."""
        ids = [i for i in call_ids if isinstance(i, str) and _ID_RE.fullmatch(i)]
        version = _version(version)
        if not ids or version is None or self._table(LLM_CALLS, create=False) is None:
            return 0
        where = f"id IN ({', '.join(_sql_str(i) for i in ids)}) AND version IS NULL"
        result = self._write(
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
        where = f"skill = {_sql_str(old)}"
        moved = 0
        for name in _SCHEMAS:
            if self._table(name, create=False) is None:
                continue
            result = self._write(
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
            where.append(f"skill = {_sql_str(_skill(skill))}")
        if since is not None:
            where.append(f"ts >= {_sql_ts(since)}")
        if purpose is not None:
            where.append(f"purpose = {_sql_str(_purpose(purpose, reading=True))}")
        rows = self._rows(LLM_CALLS, " AND ".join(where) or None)
        if limit is not None and limit >= 0:
            rows = rows[len(rows) - limit :] if limit else []
        for r in rows:
            # a legacy baseline row is an estimate, not tokens spent
            r["total_tokens"] = (
                0 if r["purpose"] == LEGACY_BASELINE else r["prompt_tokens"] + r["completion_tokens"]
            )
            r["usage_source"] = "estimate" if r["purpose"] == LEGACY_BASELINE else usage_source(r)
        return rows

    def baselines(self, skill: str | None = None) -> list[dict[str, Any]]:
        """Baseline rows, oldest first."""
        where = f"skill = {_sql_str(_skill(skill))}" if skill is not None else None
        return self._rows(BASELINES, where)

    def uses(
        self, skill: str | None = None, since: datetime | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Skill uses, oldest first (with `limit`: the newest `limit` of them)."""
        where = []
        if skill is not None:
            where.append(f"skill = {_sql_str(_skill(skill))}")
        if since is not None:
            where.append(f"ts >= {_sql_ts(since)}")
        rows = self._rows(USES, " AND ".join(where) or None)
        if limit is not None and limit >= 0:
            rows = rows[len(rows) - limit :] if limit else []
        return rows

    def skills(self) -> list[str]:
        """Every skill label that has a row (calls with no skill are left out)."""
        names: set[str] = set()
        for name in _SCHEMAS:
            table = self._table(name, create=False)
            if table is not None:
                col = table.search().select(["skill"]).limit(None).to_arrow().column("skill").to_pylist()
                names.update(s for s in col if s is not None)
        return sorted(names)

    def totals(self, skill: str | None) -> dict[str, Any]:
        """Sums for one skill (skill=None: the calls not attributed to any skill)."""
        if skill is None:
            calls = self._rows(LLM_CALLS, "skill IS NULL")
            uses: list[dict[str, Any]] = []
            baselines: list[dict[str, Any]] = []
        else:
            calls, uses, baselines = self.llm_calls(skill), self.uses(skill), self.baselines(skill)
        return aggregate(skill, calls, uses, baselines)

    def all_totals(self) -> dict[str | None, dict[str, Any]]:
        """`totals` for every skill label in one scan of each table (key None: unattributed calls)."""
        by: dict[str | None, tuple[list, list, list]] = {}
        for i, table in enumerate((LLM_CALLS, USES, BASELINES)):
            for r in self._rows(table, None):
                by.setdefault(r["skill"], ([], [], []))[i].append(r)
        return {k: aggregate(k, c, u, b) for k, (c, u, b) in by.items()}

    def close(self) -> None:
        self._tables.clear()
        db, self._db = self._db, None
        if db is not None and hasattr(db, "close"):
            try:
                db.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def aggregate(
    skill: str | None,
    calls: list[dict[str, Any]],
    uses: list[dict[str, Any]],
    baseline_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Totals over ledger rows of one skill (see the module docstring for the arithmetic)."""
    by_purpose = {p: 0 for p in PURPOSES}
    by_outcome: dict[str, int] = {}
    baselines: list[int] = [int(b["baseline_tokens"]) for b in baseline_rows or []]
    spent = []
    for c in calls:
        if c["purpose"] == LEGACY_BASELINE:  # an old store's estimate: a baseline, not a call
            baselines.append(c["prompt_tokens"] + c["completion_tokens"])
            continue
        spent.append(c)
        tokens = c["prompt_tokens"] + c["completion_tokens"]
        by_purpose[c["purpose"]] = by_purpose.get(c["purpose"], 0) + tokens
        by_outcome[c["outcome"]] = by_outcome.get(c["outcome"], 0) + 1
    calls = spent
    ok_uses = [u for u in uses if u["outcome"] == "ok"]
    failures = len(uses) - len(ok_uses)
    return {
        "skill": skill,
        "llm_calls": len(calls),
        "prompt_tokens": sum(c["prompt_tokens"] for c in calls),
        "completion_tokens": sum(c["completion_tokens"] for c in calls),
        "cached_tokens": sum(c["cached_tokens"] for c in calls),
        "tiktoken_prompt_tokens": sum(c["tiktoken_prompt_tokens"] for c in calls),
        "total_tokens": sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls),
        "creation_tokens": by_purpose["create"],
        "fix_tokens": sum(by_purpose[p] for p in FIX_PURPOSES),
        "invested_tokens": sum(by_purpose[p] for p in INVESTED_PURPOSES),
        "tokens_by_purpose": by_purpose,
        "calls_by_outcome": by_outcome,
        # mean of the baseline measurements, rounded half up; None without any
        "baseline_tokens": (2 * sum(baselines) + len(baselines)) // (2 * len(baselines))
        if baselines
        else None,
        "baseline_rows": len(baselines),
        "cost_usd": round(sum(c["cost_usd"] for c in calls), 10),
        "latency_ms": round(sum(c["latency_ms"] for c in calls), 3),
        "uses": len(uses),
        "failures": failures,
        "use_context_tokens": sum(u["context_tokens"] for u in uses),
        "ok_uses": len(ok_uses),
        "ok_use_context_tokens": sum(u["context_tokens"] for u in ok_uses),
        "first_call": calls[0]["ts"] if calls else None,
        "last_call": calls[-1]["ts"] if calls else None,
        "last_use": uses[-1]["ts"] if uses else None,
    }


# --------------------------------------------------------------------------- the report


@dataclass
class SkillCost:
    """One skill's token account. All token figures are exact ints.

    - creation_tokens / fix_tokens: tokens of its create / fix+retry LLM calls;
      their sum is the investment to pay back.
    - llm_calls, cost_usd: over all its calls (baseline measurements included).
    - uses / failures / successful_uses: runs of the skill by callers (ledger ``uses``
      rows; when the registry's call counters know of more runs -- runs from before
      the ledger existed -- those count too, at the current context size). The
      fixer's replays of failing inputs are not uses.
    - context_tokens: tokens of the current version's SKILL.md (cl100k_base);
      for a skill only in the ledger, the context of its latest recorded use.
    - baseline_tokens / baseline_source: "skill" (skillyard.yaml baseline_tokens),
      "creation" (the ledger's baseline rows) or "config" (the default).
    - savings_per_use = baseline - context; break_even_uses = :func:`break_even`.
    - net_tokens: savings so far minus the investment. A successful use saves
      baseline - its own context size; a failed use saves nothing and costs its
      context (the agent loaded the skill, then did the task anyway).
    - paid_off: savings_per_use > 0, at least one successful use, and net_tokens >= 0.
      A skill never used successfully has not paid off, even with nothing invested
      (N* = 0): a blocked or unused skill makes no claim.
    """

    skill: str
    creation_tokens: int
    fix_tokens: int
    llm_calls: int
    cost_usd: float
    uses: int
    failures: int
    context_tokens: int
    baseline_tokens: int
    savings_per_use: int
    break_even_uses: int | None
    paid_off: bool
    net_tokens: int
    baseline_source: str
    version: int | None = None
    status: str = ""  # registry status of the head version; "" for ledger-only skills
    successful_uses: int = 0

    @property
    def invested_tokens(self) -> int:
        return self.creation_tokens + self.fix_tokens

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["invested_tokens"] = self.invested_tokens
        return out


def _context_of(pkg: SkillPackage) -> int:
    from .tokens import count_tokens

    return count_tokens(pkg.skill_md)


def cost_report(
    ledger: Ledger, registry: Registry, packages: Callable[[str], SkillPackage | None], default_baseline: int
) -> list[SkillCost]:
    """A SkillCost for every skill in the registry and every skill only in the ledger,
    sorted by name. `packages(name)` returns the current package of a registered
    name (or None); it is not called for ledger-only labels."""
    default_baseline = _count("default_baseline", default_baseline)
    totals = ledger.all_totals()
    totals.pop(None, None)
    for label in [k for k in totals if is_placeholder(k)]:  # failed creations: see unattributed()
        totals.pop(label)
    heads = {rec.name: rec for rec in registry.list()}
    report = []
    for name in sorted(set(heads) | set(totals)):
        t = totals.get(name) or aggregate(name, [], [])
        head = heads.get(name)
        pkg = None
        reg_calls = reg_failures = 0
        if head is not None:
            try:
                pkg = packages(name)
            except Exception as exc:  # noqa: BLE001 -- one unreadable package must not sink the report
                log.warning("cost report: package unavailable", skill=name, error=str(exc)[:200])
            versions = registry.versions(name)
            reg_calls = sum(v.calls for v in versions)
            reg_failures = sum(v.failures for v in versions)
        if pkg is not None:
            context = _context_of(pkg)
        else:
            last = ledger.uses(name, limit=1) if t["uses"] else []
            context = last[-1]["context_tokens"] if last else 0
        if pkg is not None and pkg.config.baseline_tokens is not None:
            baseline, source = int(pkg.config.baseline_tokens), "skill"
        elif t["baseline_tokens"] is not None:
            baseline, source = int(t["baseline_tokens"]), "creation"
        else:
            baseline, source = default_baseline, "config"
        invested = t["invested_tokens"]
        saved = baseline - context
        # runs the registry counted but the ledger never saw (from before it existed)
        extra_uses = max(0, reg_calls - t["uses"])
        extra_failed = min(extra_uses, max(0, reg_failures - t["failures"]))
        extra_ok = extra_uses - extra_failed
        uses = t["uses"] + extra_uses
        ok_uses = t["ok_uses"] + extra_ok
        failed_context = t["use_context_tokens"] - t["ok_use_context_tokens"]
        realised = (
            (t["ok_uses"] * baseline - t["ok_use_context_tokens"])
            - failed_context
            + extra_ok * saved
            - extra_failed * context
        )
        net = realised - invested
        report.append(
            SkillCost(
                skill=name,
                creation_tokens=t["creation_tokens"],
                fix_tokens=t["fix_tokens"],
                llm_calls=t["llm_calls"],
                cost_usd=t["cost_usd"],
                uses=uses,
                failures=max(t["failures"], reg_failures),
                context_tokens=context,
                baseline_tokens=baseline,
                savings_per_use=saved,
                break_even_uses=break_even(invested, baseline, context),
                paid_off=saved > 0 and ok_uses > 0 and net >= 0,
                net_tokens=net,
                baseline_source=source,
                version=head.version if head else None,
                status=head.status if head else "",
                successful_uses=ok_uses,
            )
        )
    return report


def unattributed(ledger: Ledger) -> dict[str, Any]:
    """LLM spending that belongs to no skill: calls recorded with no skill, and failed
    creations (calls under a ``(creating-...)`` placeholder that never became a skill)."""
    totals = ledger.all_totals()

    def part(ts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "llm_calls": sum(t["llm_calls"] for t in ts),
            "total_tokens": sum(t["total_tokens"] for t in ts),
            "cost_usd": round(sum(t["cost_usd"] for t in ts), 10),
        }

    loose = [totals[None]] if None in totals else []
    failed = [t for k, t in totals.items() if is_placeholder(k) and t["llm_calls"]]
    out = part(loose + failed)
    out["no_skill"] = part(loose)
    out["failed_creations"] = {"count": len(failed), **part(failed)}
    return out
