"""What the ledger's rows add up to: tokens invested in each skill, what a use saves, the
break-even point, and the one cost report the CLI and the HTTP API both show.

Token arithmetic. A call's tokens are ``prompt_tokens + completion_tokens`` (cached
prompt tokens are a subset of the prompt tokens, as in the OpenAI usage object, and
are reported but not added again). Tokens *invested* in a skill are those of its
``create``, ``fix``, ``retry``, ``learn`` (extraction and the keep/merge decision that
produced a version of it) and ``merge`` calls. Several baseline rows are averaged.

Uses. A use is a ``uses`` row (a call by a caller) or a ``proxy_uses`` row (one proxied
chat request that had the skill in its context: its context tokens are what it put into
the upstream's prompts over every round; its tool runs inside that request are part of
the use, not uses of their own). The proxy's part is also reported on its own: requests,
tokens spent in the upstream's prompts, tool runs, what its successful uses saved, and
the usage the upstream reported for those requests.

Break-even. With ``s = baseline - context`` tokens saved per use, the skill has paid
for itself after ``N* = ceil(invested / s)`` uses (see :func:`break_even`). Only
successful uses save anything (see :class:`SkillCost`).

Failed creations. Calls left under a creation's placeholder label are not a skill:
the report lists them as unattributed failed-creation cost (:func:`unattributed`).

Accounting writes never fail the work they account for: they go through
:func:`best_effort`, which logs a failed write and counts it (:func:`lost_writes`).
"""

from __future__ import annotations

import atexit
import functools
import threading
import time
import uuid
from bisect import insort
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from .errors import UnknownSkill
from .journal import Journal, orphans
from .ledger import PURPOSES, Ledger, is_learning, is_placeholder, non_negative_int, use_row
from .times import utc_now

if TYPE_CHECKING:  # pragma: no cover
    from .package import SkillPackage
    from .registry import Registry
    from .yard import Yard

log = structlog.get_logger(__name__)

INVESTED_PURPOSES = ("create", "fix", "retry", "learn", "merge")
FIX_PURPOSES = ("fix", "retry")
T = TypeVar("T")


class _LostWrites:
    """How many accounting writes this process could not store (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> int:
        with self._lock:
            self.count += 1
            return self.count


_LOST = _LostWrites()


def best_effort(what: str, write: Callable[[], T], **context: Any) -> T | None:
    """Run an accounting write; if it fails, log it (``accounting_write_lost``, with the
    running count) and return None instead of failing the caller's own work."""
    try:
        return write()
    except Exception as exc:  # noqa: BLE001 - accounting never breaks what it accounts for
        lost = _LOST.add()
        log.error("accounting_write_lost", what=what, error=str(exc)[:200], lost_so_far=lost, **context)
        return None


def lost_writes() -> int:
    """Accounting writes this process could not store (each one was logged)."""
    return _LOST.count


@dataclass(frozen=True)
class Use:
    """One use of a skill (an accounted call): its ledger row and one count on its counters."""

    id: str
    ts: datetime
    skill: str
    version: int
    ok: bool
    outcome: str
    context_tokens: int | None
    duration_ms: float

    @classmethod
    def of(
        cls,
        *,
        call_id: str | None = None,
        skill: str,
        version: int,
        ok: bool,
        outcome: str,
        context_tokens: int | None,
        duration_ms: float,
    ) -> Use:
        """A new use, checked as its ledger row will be (ValueError on a bad field).
        `context_tokens` None: counted when the use is merged (tokenising is not free).
        `call_id` (32 hex digits) names the use: accounting the same call again adds nothing."""
        use_id = call_id or uuid.uuid4().hex
        use = cls(use_id, utc_now(), skill, version, ok, outcome, context_tokens, duration_ms)
        replace(use, context_tokens=context_tokens or 0).row()
        return use

    def row(self) -> dict[str, Any]:
        """Its ``uses`` row (ledger.use_row: the same checks, the same id)."""
        if self.context_tokens is None:
            raise ValueError("the use's context tokens are not counted yet")
        return use_row(
            skill=self.skill,
            version=self.version,
            context_tokens=self.context_tokens,
            outcome=self.outcome,
            duration_ms=self.duration_ms,
            ts=self.ts,
            row_id=self.id,
        )

    def to_data(self) -> dict[str, Any]:
        """As a journal line's data (JSON)."""
        return {**asdict(self), "ts": self.ts.isoformat()}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Use:
        """Back from a journal line's data."""
        return cls(**{**data, "ts": datetime.fromisoformat(data["ts"])})


ContextTokens = Callable[[str, int], int]  # (skill, version) -> tokens of its SKILL.md


def merge_uses(
    registry: Registry,
    ledger: Ledger,
    writer: str,
    uses: list[tuple[int, Use]],
    *,
    replay: bool,
    context_tokens: ContextTokens | None = None,
) -> None:
    """Store journaled uses (seq, use) of journal `writer`: their ledger rows in one append,
    then one counters update per skill version, carrying the journal's mark in the same
    update. Idempotent with `replay`: rows the ledger holds and uses the marks cover are
    skipped, so a batch that failed half-way, or a killed process's journal, is merged again
    with nothing counted twice. A fresh batch (without `replay`) skips the uses whose call
    the ledger holds already (one read per batch): a call accounted twice counts once.
    Uses journaled before their context was counted get it from `context_tokens`.
    Raises StoreError when a write does not commit."""
    present = ledger.use_ids([use.id for _, use in uses])
    if not replay:
        # A use whose call was accounted already (another server, a retry) counts nothing more.
        seen: set[str] = set(present)
        fresh = []
        for seq, use in uses:
            if use.id not in seen:
                seen.add(use.id)
                fresh.append((seq, use))
        uses = fresh
    rows = [_counted(use, context_tokens).row() for _, use in uses if use.id not in present]
    ledger.append_uses(rows)
    marks = registry.journal_marks(writer) if replay else {}
    by_version: dict[tuple[str, int], list[tuple[int, Use]]] = {}
    for seq, use in uses:
        by_version.setdefault((use.skill, use.version), []).append((seq, use))
    for (skill, version), group in by_version.items():
        todo = [(seq, use) for seq, use in group if seq > marks.get((skill, version), 0)]
        if not todo:
            continue
        found = registry.count_calls(
            skill,
            version,
            calls=len(todo),
            failures=sum(1 for _, use in todo if not use.ok),
            last_used=max(use.ts for _, use in todo),
            mark=(writer, max(seq for seq, _ in todo)),
        )
        if not found:
            log.warning("accounting_counters_missing", skill=skill, version=version, calls=len(todo))


def _counted(use: Use, context_tokens: ContextTokens | None) -> Use:
    if use.context_tokens is not None:
        return use
    if context_tokens is None:
        raise ValueError(f"no way to count the context tokens of {use.skill} v{use.version}")
    return replace(use, context_tokens=context_tokens(use.skill, use.version))


class Writer:
    """A yard's accounting of its calls (each a `Use`: a ledger row and its counters).

    In a one-shot process (`background` False) each use is written at once, through
    best_effort. In a long-lived one it is journaled -- on disk before `record` returns, so
    before the call is acknowledged (runtime/journal.py) -- and the writer thread merges
    the journal into LanceDB in batches (`merge_uses`): every `interval` seconds, as soon
    as `batch_size` uses wait, and on `flush` and `close`. Two LanceDB writes per batch
    per skill version instead of two per call. A batch that does not commit stays queued
    and is merged again (idempotently) after a pause; journals that killed processes of
    the same home left behind are replayed when the thread starts (`recover`).

    Invariants: every recorded use reaches the store exactly once (its journal line is
    durable first, and every merge is idempotent); batches are merged in journal order,
    one at a time, so a journal's mark on a counter covers every earlier use of it."""

    def __init__(
        self,
        *,
        background: bool,
        journal_dir: Path | None = None,
        registry: Callable[[], Registry] | None = None,
        ledger: Callable[[], Ledger] | None = None,
        context_tokens: ContextTokens | None = None,
        interval: float = 0.25,
        batch_size: int = 256,
    ) -> None:
        self.background = background
        self.journal_dir = journal_dir
        self._registry = registry
        self._ledger = ledger
        self._context_tokens = context_tokens
        self.interval = interval
        self.batch_size = batch_size
        self._cond = threading.Condition()
        self._pending: list[tuple[int, Use]] = []  # journaled, not yet merged, in seq order
        self._journal: Journal | None = None
        self._thread: threading.Thread | None = None
        self._flushes = 0  # flush requests so far
        self._attempts = 0  # merge attempts finished so far
        self._merged_seq = 0
        self._retry = False  # the last attempt failed: merge the next one as a replay
        self._stopping = False
        # Other ledger writes (the proxy's rows): best effort, off the caller's thread, not
        # journaled (a use is; these describe uses), waited for by flush and close.
        self._others: ThreadPoolExecutor | None = None
        self._other_futures: list[Future[Any]] = []

    @property
    def running(self) -> bool:
        """Whether the writer thread has started (it starts with the first use)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def journal(self) -> Journal | None:
        """This writer's journal, once a use has been recorded in the background."""
        return self._journal

    def record(self, use: Use) -> None:
        """Account for `use`: durable when this returns (journaled, or written inline).
        Never raises: a journal that cannot be written falls back to writing inline."""
        if self.background:
            try:
                self._enqueue(use)
                return
            except OSError as exc:
                log.error("accounting_journal_failed", error=str(exc)[:200], skill=use.skill)
        self._write_now(use)

    def _write_now(self, use: Use) -> None:
        registry, ledger = self._stores()
        added = best_effort(
            "record a use",
            lambda: ledger.append_uses([_counted(use, self._context_tokens).row()]),
            skill=use.skill,
        )
        if added == 0:
            return  # the ledger holds this call's row already: it was counted then
        best_effort(
            "count a call",
            lambda: registry.count_calls(
                use.skill, use.version, calls=1, failures=0 if use.ok else 1, last_used=use.ts
            ),
            skill=use.skill,
        )

    def _stores(self) -> tuple[Registry, Ledger]:
        if self._registry is None or self._ledger is None:
            raise RuntimeError("this accounting writer has no store")
        return self._registry(), self._ledger()

    def _enqueue(self, use: Use) -> None:
        with self._cond:
            if self._journal is None or self._journal.closed:
                if self.journal_dir is None:
                    raise OSError("no journal folder")
                self._journal = Journal(self.journal_dir)
                # A new journal numbers its lines from 1; nothing of an old one is queued here
                # (close() merged it all, or left it on disk for the next process).
                self._pending, self._merged_seq, self._retry = [], 0, False
                self._stopping = False
            journal = self._journal
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True, name="skillyard-accounting")
                self._thread.start()
                atexit.register(self.close)
        seq = journal.append(use.to_data())  # outside the lock: appends share their syncs
        with self._cond:
            # Appends may return out of order; the queue stays in journal order.
            insort(self._pending, (seq, use), key=lambda item: item[0])
            if len(self._pending) >= self.batch_size:
                self._cond.notify_all()

    def _loop(self) -> None:
        self.recover()
        while True:
            with self._cond:
                self._wait_for_work()
                batch = self._ready_batch()
                if not batch:
                    self._attempts += 1
                    self._cond.notify_all()
                    if self._stopping:
                        return
                    continue
                replay, journal = self._retry, self._journal
            ok = self._merge_batch(batch, journal, replay=replay)
            with self._cond:
                self._attempts += 1
                if ok:
                    del self._pending[: len(batch)]
                    self._merged_seq = batch[-1][0]
                    self._retry = False
                else:
                    self._retry = True
                self._cond.notify_all()
                merged, idle = self._merged_seq, not self._pending
            if ok and idle and journal is not None:
                try:
                    journal.truncate_if_merged(merged)
                except OSError as exc:
                    log.warning("accounting_journal_truncate_failed", error=str(exc)[:200])
            if not ok:
                if self._stopping:
                    return  # close() leaves the journal for the next process to replay
                time.sleep(min(5.0, self.interval * 4))

    def _wait_for_work(self) -> None:
        """(Holding the lock.) Until a batch is full, a flush or a stop is asked for, or the
        interval has passed with something pending."""
        flushes = self._flushes
        deadline = time.monotonic() + self.interval
        while not self._stopping and self._flushes == flushes and len(self._pending) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self._pending:
                    return
                deadline, remaining = time.monotonic() + self.interval, self.interval
            self._cond.wait(remaining)

    def _ready_batch(self) -> list[tuple[int, Use]]:
        """The oldest pending uses, at most batch_size, if all of them are contiguous in the
        journal (an append that has its seq but is not queued yet keeps later ones waiting)."""
        batch = self._pending[: self.batch_size]
        expected = self._merged_seq + 1
        for i, (seq, _) in enumerate(batch):
            if seq != expected + i:
                return batch[:i]
        return batch

    def _merge_batch(self, batch: list[tuple[int, Use]], journal: Journal | None, *, replay: bool) -> bool:
        if journal is None:
            return False
        try:
            registry, ledger = self._stores()
            merge_uses(
                registry, ledger, journal.writer, batch, replay=replay, context_tokens=self._context_tokens
            )
            return True
        except Exception as exc:  # noqa: BLE001 - the uses stay journaled and queued: merged again later
            log.error("accounting_merge_failed", uses=len(batch), error=str(exc)[:200], retry=True)
            return False

    def recover(self) -> int:
        """Merge the journals that dead processes of this home left behind (each locked
        while we do); returns the uses merged. A journal that fails to merge is left for
        the next attempt."""
        if self.journal_dir is None:
            return 0
        merged = 0
        for orphan in orphans(self.journal_dir):
            try:
                registry, ledger = self._stores()
                uses = [(entry.seq, Use.from_data(entry.data)) for entry in orphan.entries()]
                if uses:
                    tokens = self._context_tokens
                    merge_uses(registry, ledger, orphan.writer, uses, replay=True, context_tokens=tokens)
            except Exception as exc:  # noqa: BLE001 - left in place: the next start replays it
                log.error("accounting_replay_failed", journal=orphan.path.name, error=str(exc)[:200])
                orphan.release()
                continue
            orphan.done()
            best_effort("forget a journal", functools.partial(registry.forget_journal, orphan.writer))
            merged += len(uses)
            log.info("accounting_journal_replayed", journal=orphan.path.name, uses=len(uses))
        return merged

    def submit(self, what: str, write: Callable[[], object], **context: Any) -> None:
        """Run another ledger write (not a use) off the caller's thread, best effort: a write
        that fails is logged and counted (lost_writes), never the caller's error. Inline when
        the writer is not a background one."""
        if not self.background:
            best_effort(what, write, **context)
            return
        with self._cond:
            if self._others is None:
                self._others = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skillyard-ledger")
            self._other_futures = [f for f in self._other_futures if not f.done()]
            self._other_futures.append(self._others.submit(best_effort, what, write, **context))

    def _wait_for_others(self) -> None:
        with self._cond:
            futures = list(self._other_futures)
        for future in futures:
            future.result()  # best_effort never raises

    def flush(self) -> None:
        """Merge everything recorded so far, and wait for it (or for one failed attempt)."""
        self._wait_for_others()
        with self._cond:
            if not self.running:
                return
            target = self._pending[-1][0] if self._pending else self._merged_seq
            self._flushes += 1
            attempts = self._attempts
            self._cond.notify_all()
            while self.running and self._merged_seq < target:
                if self._retry and self._attempts > attempts:
                    return  # the store refuses: the journal keeps the uses for later
                self._cond.wait(0.5)
            # One more pass after the target so that a recovery in progress is done too.
            while self.running and self._attempts <= attempts:
                self._cond.wait(0.5)

    def close(self) -> None:
        """Merge what is pending, stop the thread, and remove the journal if all of it is
        merged (else leave it for the next process to replay)."""
        self.flush()
        if self._others is not None:
            self._others.shutdown(wait=True)
            self._others = None
        with self._cond:
            thread, journal = self._thread, self._journal
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=30)
        with self._cond:
            done = not self._pending
            if not done:
                self._pending = []  # on disk, for the next process (its marks are that journal's)
        if journal is None or journal.closed:
            return
        if not done:
            journal.abandon()
            log.warning("accounting_left_in_journal", journal=str(journal.path))
            return
        journal.retire()
        if self._registry is not None:
            best_effort("forget a retired journal", lambda: self._registry().forget_journal(journal.writer))


# --------------------------------------------------------------------------- arithmetic


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
    invested = non_negative_int("invested_tokens", invested_tokens)
    saved = non_negative_int("baseline_tokens", baseline_tokens) - non_negative_int(
        "context_tokens", context_tokens
    )
    if saved <= 0:
        return None
    return -(-invested // saved)


def aggregate(
    skill: str | None,
    calls: list[dict[str, Any]],
    uses: list[dict[str, Any]],
    baseline_rows: list[dict[str, Any]] | None = None,
    proxy_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Totals over the ledger rows of one skill (see the module docstring for the arithmetic).
    The `uses` figures count both kinds of use; the `proxy_*` figures the proxy's alone."""
    proxied = proxy_rows or []
    uses = [*uses, *proxied]
    by_purpose = {p: 0 for p in PURPOSES}
    by_outcome: dict[str, int] = {}
    baselines: list[int] = [int(b["baseline_tokens"]) for b in baseline_rows or []]
    for c in calls:
        tokens = c["prompt_tokens"] + c["completion_tokens"]
        by_purpose[c["purpose"]] = by_purpose.get(c["purpose"], 0) + tokens
        by_outcome[c["outcome"]] = by_outcome.get(c["outcome"], 0) + 1
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
        "learning_tokens": by_purpose["learn"],
        "merge_tokens": by_purpose["merge"],
        "proxy_requests": len(proxied),
        "proxy_ok": sum(1 for p in proxied if p["outcome"] == "ok"),
        "proxy_context_tokens": sum(p["context_tokens"] for p in proxied),
        "proxy_ok_context_tokens": sum(p["context_tokens"] for p in proxied if p["outcome"] == "ok"),
        "proxy_tool_runs": sum(p["tool_runs"] for p in proxied),
        "proxy_tool_failures": sum(p["tool_failures"] for p in proxied),
        "proxy_upstream_prompt_tokens": sum(p["upstream_prompt_tokens"] for p in proxied),
        "proxy_upstream_completion_tokens": sum(p["upstream_completion_tokens"] for p in proxied),
        "proxy_usage_sources": sorted({p["usage_source"] for p in proxied}),
        "first_call": calls[0]["ts"] if calls else None,
        "last_call": calls[-1]["ts"] if calls else None,
        "last_use": max((u["ts"] for u in uses), default=None),
    }


def totals(ledger: Ledger, skill: str | None) -> dict[str, Any]:
    """Sums for one skill (skill=None: the calls not attributed to any skill)."""
    if skill is None:
        return aggregate(None, ledger.llm_calls_without_skill(), [], [])
    return aggregate(
        skill, ledger.llm_calls(skill), ledger.uses(skill), ledger.baselines(skill), ledger.proxy_uses(skill)
    )


def all_totals(ledger: Ledger) -> dict[str | None, dict[str, Any]]:
    """`totals` for every skill label in one scan of each table (key None: unattributed calls)."""
    by: dict[str | None, tuple[list, list, list, list]] = {}
    tables = (ledger.llm_calls(), ledger.uses(), ledger.baselines(), ledger.proxy_uses())
    for i, rows in enumerate(tables):
        for r in rows:
            by.setdefault(r["skill"], ([], [], [], []))[i].append(r)
    return {k: aggregate(k, c, u, b, p) for k, (c, u, b, p) in by.items()}


# --------------------------------------------------------------------------- the report


@dataclass
class SkillCost:
    """One skill's token account. All token figures are exact ints.

    - creation_tokens / fix_tokens / learning_tokens / merge_tokens: tokens of its
      create / fix+retry / learn / merge LLM calls; their sum is the investment to pay back.
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
    - proxy_*: the proxy's part (included in the figures above): chat requests that had
      the skill in context, the tokens it put into the upstream's prompts (spent), its tool
      runs and failures, what its successful proxied uses saved (baseline - their context),
      and the usage the upstream reported for those requests (`proxy_usage_source`: api,
      tiktoken where the upstream gave none, or mixed).
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
    status: str = (
        ""  # the head version's status; "deleted" for a deleted skill, "" for other ledger-only ones
    )
    successful_uses: int = 0
    learning_tokens: int = 0
    merge_tokens: int = 0
    proxy_requests: int = 0
    proxy_spent_tokens: int = 0
    proxy_saved_tokens: int = 0
    proxy_tool_runs: int = 0
    proxy_tool_failures: int = 0
    proxy_upstream_prompt_tokens: int = 0
    proxy_upstream_completion_tokens: int = 0
    proxy_usage_source: str = ""
    alias_of: str | None = None  # retired by a merge: the skill that absorbed it

    @property
    def invested_tokens(self) -> int:
        """Tokens to pay back: creation + fixes + learning + merges."""
        return self.creation_tokens + self.fix_tokens + self.learning_tokens + self.merge_tokens

    def to_dict(self) -> dict[str, Any]:
        """The account as JSON-ready data (the CLI's and the API's shape), with invested_tokens."""
        out = asdict(self)
        out["invested_tokens"] = self.invested_tokens
        return out


def _context_of(pkg: SkillPackage) -> int:
    from .tokens import count_tokens  # tiktoken: only when a report is made

    return count_tokens(pkg.skill_md)


def cost_report(
    ledger: Ledger, registry: Registry, packages: Callable[[str], SkillPackage | None], default_baseline: int
) -> list[SkillCost]:
    """A SkillCost for every skill in the registry and every skill only in the ledger,
    sorted by name. `packages(name)` returns the current package of a registered
    name (or None); it is not called for ledger-only labels."""
    default_baseline = non_negative_int("default_baseline", default_baseline)
    totals = all_totals(ledger)
    totals.pop(None, None)
    for label in [k for k in totals if is_placeholder(k)]:  # failed creations: see unattributed()
        totals.pop(label)
    heads = {rec.name: rec for rec in registry.list()}
    aliases = registry.aliases()
    ledger_only = set(totals) - set(heads)
    deleted = {e["name"] for e in registry.events() if e["kind"] == "deleted"} if ledger_only else set()
    report = []
    for name in sorted(set(heads) | set(totals)):
        sums = totals.get(name) or aggregate(name, [], [])
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
            last = ledger.uses(name, limit=1) if sums["uses"] else []
            context = last[-1]["context_tokens"] if last else 0
        if pkg is not None and pkg.config.baseline_tokens is not None:
            baseline, source = int(pkg.config.baseline_tokens), "skill"
        elif sums["baseline_tokens"] is not None:
            baseline, source = int(sums["baseline_tokens"]), "creation"
        else:
            baseline, source = default_baseline, "config"
        invested = sums["invested_tokens"]
        saved = baseline - context
        # runs the registry counted but the ledger never saw (from before it existed); a
        # proxied request's tool runs are counted there and are part of its one use here
        seen_runs = sums["uses"] - sums["proxy_requests"] + sums["proxy_tool_runs"]
        extra_uses = max(0, reg_calls - seen_runs)
        extra_failed = min(extra_uses, max(0, reg_failures - sums["failures"]))
        extra_ok = extra_uses - extra_failed
        uses = sums["uses"] + extra_uses
        ok_uses = sums["ok_uses"] + extra_ok
        failed_context = sums["use_context_tokens"] - sums["ok_use_context_tokens"]
        realised = (
            (sums["ok_uses"] * baseline - sums["ok_use_context_tokens"])
            - failed_context
            + extra_ok * saved
            - extra_failed * context
        )
        net = realised - invested
        report.append(
            SkillCost(
                skill=name,
                creation_tokens=sums["creation_tokens"],
                fix_tokens=sums["fix_tokens"],
                llm_calls=sums["llm_calls"],
                cost_usd=sums["cost_usd"],
                uses=uses,
                failures=max(sums["failures"], reg_failures),
                context_tokens=context,
                baseline_tokens=baseline,
                savings_per_use=saved,
                break_even_uses=break_even(invested, baseline, context),
                paid_off=saved > 0 and ok_uses > 0 and net >= 0,
                net_tokens=net,
                baseline_source=source,
                version=head.version if head else None,
                status=head.status if head else "deleted" if name in deleted else "",
                successful_uses=ok_uses,
                learning_tokens=sums["learning_tokens"],
                merge_tokens=sums["merge_tokens"],
                proxy_requests=sums["proxy_requests"],
                proxy_spent_tokens=sums["proxy_context_tokens"],
                proxy_saved_tokens=sums["proxy_ok"] * baseline - sums["proxy_ok_context_tokens"],
                proxy_tool_runs=sums["proxy_tool_runs"],
                proxy_tool_failures=sums["proxy_tool_failures"],
                proxy_upstream_prompt_tokens=sums["proxy_upstream_prompt_tokens"],
                proxy_upstream_completion_tokens=sums["proxy_upstream_completion_tokens"],
                proxy_usage_source="/".join(sums["proxy_usage_sources"]),
                alias_of=aliases.get(name) if head is not None and head.status == "retired" else None,
            )
        )
    return report


def unattributed(ledger: Ledger) -> dict[str, Any]:
    """LLM spending that belongs to no skill: calls recorded with no skill, failed
    creations (calls under a ``(creating-...)`` placeholder that never became a skill), and
    learning that produced no skill (a discard or a dry run: ``(learning-...)``)."""
    totals = all_totals(ledger)

    def summed(sums: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "llm_calls": sum(s["llm_calls"] for s in sums),
            "total_tokens": sum(s["total_tokens"] for s in sums),
            "cost_usd": round(sum(s["cost_usd"] for s in sums), 10),
        }

    loose = [totals[None]] if None in totals else []
    failed = [
        sums
        for label, sums in totals.items()
        if is_placeholder(label) and not is_learning(label) and sums["llm_calls"]
    ]
    learnt_nothing = [sums for label, sums in totals.items() if is_learning(label) and sums["llm_calls"]]
    out = summed(loose + failed + learnt_nothing)
    out["no_skill"] = summed(loose)
    out["failed_creations"] = {"count": len(failed), **summed(failed)}
    out["learning_without_skill"] = {"count": len(learnt_nothing), **summed(learnt_nothing)}
    return out


def report(yard: Yard, name: str | None = None) -> list[SkillCost]:
    """The cost report of one yard's store (every skill, or only `name`), with the yard's
    settings for the default baseline. UnknownSkill when `name` has no record anywhere.
    Journals that killed processes left behind are merged first, so their uses count."""
    yard.recover_accounting()

    def current(skill: str) -> SkillPackage | None:
        rec = yard.registry.get(skill)
        return None if rec is None else yard.package(rec.name, rec.version)

    rows = cost_report(yard.ledger, yard.registry, current, yard.settings.default_baseline_tokens)
    if name is None:
        return rows
    rows = [c for c in rows if c.skill == name]
    if not rows:
        raise UnknownSkill(f"no skill {name!r} in the registry or the ledger")
    return rows
