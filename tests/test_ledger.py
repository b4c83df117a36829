"""Token ledger tests: real LanceDB stores in tmp_path, real processes for concurrency,
the real `cost` / `ledger` click commands. Nothing of the project is mocked."""

from __future__ import annotations

import json
import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime import logs
from runtime.accounting import SkillCost, break_even, cost_report, totals, unattributed
from runtime.cli.cost import cost_command, ledger_group
from runtime.config import Settings, get_settings
from runtime.ledger import LLM_CALLS_SCHEMA, Ledger
from runtime.package import pack_files, package_from_files, unpack_files
from runtime.records import GateSummary
from runtime.registry import Registry
from runtime.tokens import count_tokens

PASS = GateSummary(
    passed=True, tests=2, failures=0, errors=0, skipped=0, coverage=100.0, duration_s=0.5, reasons=[]
)


# --------------------------------------------------------------------------- helpers


def skill_files(
    name: str, description: str, *, baseline: int | None = None, body: str = "Use it.\n"
) -> dict[str, bytes]:
    files = {"SKILL.md": f"---\nname: {name}\ndescription: {description}\n---\n# {name}\n{body}".encode()}
    if baseline is not None:
        files["skillyard.yaml"] = f"baseline_tokens: {baseline}\ntags: [test]\n".encode()
    return files


def register(
    reg: Registry,
    name: str,
    description: str,
    *,
    baseline: int | None = None,
    body: str = "Use it.\n",
    status: str = "registered",
):
    files = skill_files(name, description, baseline=baseline, body=body)
    pkg = package_from_files(name, files)  # validates the package like `skillyard add` would
    gate = PASS if status == "registered" else GateSummary(False, 2, 1, 0, 0, 50.0, 0.5, ["1 test failed"])
    rec = reg.add_version(
        name=name,
        content_hash=pkg.content_hash,
        status=status,
        description=description,
        tags=pkg.config.tags,
        instructions=pkg.instructions,
        gate=gate,
        gate_report={"passed": gate.passed},
        package=pack_files(files),
    )
    return rec, pkg


def packages_of(reg: Registry):
    def get(name: str):
        rec = reg.get(name)
        if rec is None:
            return None
        files, executable = unpack_files(reg.package(rec.name, rec.version))
        return package_from_files(name, files, executable)

    return get


def call(led: Ledger, skill: str | None, purpose: str, prompt: int, completion: int = 0, **kw) -> str:
    args = dict(
        skill=skill,
        version=kw.pop("version", None),
        purpose=purpose,
        model="gpt-4o-mini",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=kw.pop("cached", 0),
        tiktoken_prompt_tokens=kw.pop("tiktoken", prompt),
        cost_usd=kw.pop("cost", 0.0),
        latency_ms=kw.pop("latency", 12.5),
        outcome=kw.pop("outcome", "ok"),
    )
    args.update(kw)
    return led.record_llm_call(**args)


@pytest.fixture
def led(tmp_path: Path):
    ledger = Ledger(str(tmp_path / "store"))
    yield ledger
    ledger.close()


@pytest.fixture
def reg(tmp_path: Path):
    r = Registry(str(tmp_path / "store"), embedder=None)
    yield r
    r.close()


# --------------------------------------------------------------------------- break-even


@pytest.mark.parametrize(
    ("invested", "baseline", "context", "expected"),
    [
        (383_000, 150_000, 2_000, 3),  # s = 148,000: 2 uses save 296,000 < 383,000 <= 444,000
        (296_000, 150_000, 2_000, 2),  # exact division: 2 * 148,000 == 296,000
        (296_001, 150_000, 2_000, 3),  # one token over: one more use
        (300, 100, 0, 3),
        (301, 100, 0, 4),
        (1, 5, 4, 1),  # s = 1
        (0, 150_000, 2_000, 0),  # nothing invested: paid off from the start
        (383_000, 2_000, 2_000, None),  # s == 0: never
        (383_000, 1_000, 2_000, None),  # s < 0: the skill costs more context than it saves
        (0, 1_000, 2_000, None),  # s < 0 wins over invested == 0
        (10**15 + 1, 10**9, 0, 10**6 + 1),  # big exact ints, no float rounding
    ],
)
def test_break_even_arithmetic(invested, baseline, context, expected):
    assert break_even(invested, baseline, context) == expected


@pytest.mark.parametrize("bad", [(-1, 10, 0), (10, -1, 0), (10, 10, -1), (1.5, 10, 0), (True, 10, 0)])
def test_break_even_rejects_bad_numbers(bad):
    with pytest.raises(ValueError):
        break_even(*bad)


# --------------------------------------------------------------------------- record and query


def test_record_and_query_round_trip_keeps_exact_values(led: Ledger, tmp_path: Path):
    assert led.llm_calls() == [] and led.uses() == [] and led.skills() == []  # no tables yet: empty, no error
    assert not (tmp_path / "store" / "llm_calls.lance").exists()  # reads create nothing
    big = 2**53 + 1  # not representable as a float64
    rid = led.record_llm_call(
        skill="alpha",
        version=2,
        purpose="fix",
        model="gpt-4o",
        prompt_tokens=big,
        completion_tokens=123_457,
        cached_tokens=4_096,
        tiktoken_prompt_tokens=big - 7,
        cost_usd=0.012345,
        latency_ms=842.25,
        outcome="malformed",
        detail='bad JSON: ‘unterminated’ "string" it\'s',
        request_id="req_abc123",
    )
    call(led, "alpha", "create", 383_000, 17, outcome="ok")
    call(led, None, "create", 999, 1, outcome="error")
    led.record_use(skill="alpha", version=2, context_tokens=2_001, outcome="ok", duration_ms=33.5)
    led.record_use(skill="alpha", version=2, context_tokens=2_003, outcome="exception", duration_ms=1.0)

    rows = led.llm_calls("alpha")
    assert [r["purpose"] for r in rows] == ["fix", "create"]  # oldest first
    r = rows[0]
    assert r["id"] == rid and type(r["prompt_tokens"]) is int
    assert (r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"], r["tiktoken_prompt_tokens"]) == (
        big,
        123_457,
        4_096,
        big - 7,
    )
    assert r["total_tokens"] == big + 123_457
    assert (r["skill"], r["version"], r["model"], r["outcome"]) == ("alpha", 2, "gpt-4o", "malformed")
    assert r["cost_usd"] == 0.012345 and r["latency_ms"] == 842.25
    assert r["detail"] == 'bad JSON: ‘unterminated’ "string" it\'s' and r["request_id"] == "req_abc123"
    assert r["ts"].tzinfo is not None and abs(datetime.now(UTC) - r["ts"]) < timedelta(minutes=5)

    assert len(led.llm_calls()) == 3
    assert [r["purpose"] for r in led.llm_calls(purpose="create")] == ["create", "create"]
    assert [r["skill"] for r in led.llm_calls(limit=1)] == [None]  # the newest
    assert led.llm_calls(limit=0) == []
    assert [u["context_tokens"] for u in led.uses("alpha")] == [2_001, 2_003]
    assert led.uses("nobody") == [] and led.skills() == ["alpha"]

    t = totals(led, "alpha")
    assert t["llm_calls"] == 2 and t["creation_tokens"] == 383_017 and t["fix_tokens"] == big + 123_457
    assert t["invested_tokens"] == 383_017 + big + 123_457 and t["baseline_tokens"] is None
    assert (t["uses"], t["failures"], t["use_context_tokens"]) == (2, 1, 4_004)
    assert t["calls_by_outcome"] == {"malformed": 1, "ok": 1}
    loose = totals(led, None)
    assert (loose["llm_calls"], loose["total_tokens"]) == (1, 1_000)

    # another handle (a second process would be the same) sees everything at once
    with Ledger(str(tmp_path / "store")) as other:
        assert [r["id"] for r in other.llm_calls()] == [r["id"] for r in led.llm_calls()]


def test_since_filter_and_explicit_timestamps(led: Ledger):
    now = datetime.now(UTC)
    call(led, "s", "create", 10, ts=now - timedelta(days=3))
    call(led, "s", "fix", 20, ts=(now - timedelta(days=1)).replace(tzinfo=None))  # naive means UTC
    call(led, "s", "retry", 30, ts=now)
    assert [r["prompt_tokens"] for r in led.llm_calls("s", since=now - timedelta(days=2))] == [20, 30]
    assert [r["prompt_tokens"] for r in led.llm_calls(since=now - timedelta(hours=1))] == [30]
    assert totals(led, "s")["fix_tokens"] == 50 and totals(led, "s")["creation_tokens"] == 10


def test_baseline_rows_average_and_are_not_investment(led: Ledger):
    call(led, "b", "create", 1_000, 500)
    led.record_baseline(skill="b", version=1, baseline_tokens=10_000)
    led.record_baseline(skill="b", version=1, baseline_tokens=10_001)
    t = totals(led, "b")
    assert t["invested_tokens"] == 1_500 and t["baseline_tokens"] == 10_001  # mean 10,000.5 rounds half up
    assert t["baseline_rows"] == 2 and t["llm_calls"] == 1


def test_baseline_estimates_are_not_tokens_spent(home: Settings):
    """Audit #6: an estimate stored as an LLM-call row made `ledger calls` overcount spent tokens."""
    led = Ledger(home.store)
    call(led, "b", "create", 1_000, 500)
    led.record_baseline(skill="b", version=1, baseline_tokens=2_500, detail="model's estimate")
    with pytest.raises(ValueError, match="record_baseline"):
        call(led, "b", "baseline", 2_500, outcome="estimate")
    rows = led.llm_calls("b")
    assert [r["purpose"] for r in rows] == ["create"] and sum(r["total_tokens"] for r in rows) == 1_500
    assert [(b["baseline_tokens"], b["source"]) for b in led.baselines("b")] == [(2_500, "creation")]
    t = totals(led, "b")
    assert (t["total_tokens"], t["prompt_tokens"], t["baseline_tokens"]) == (1_500, 1_000, 2_500)
    led.close()


def test_baseline_estimates_of_an_old_store_are_moved_by_a_migration(home: Settings):
    """A store written before the baselines table kept estimates as llm_calls rows of
    purpose "baseline". Opening it runs the named migration once: the rows move to
    baselines (never tokens spent), the migration is recorded, and reads know nothing of
    the old form."""
    import lancedb

    legacy = {
        "id": "f" * 32,
        "ts": datetime.now(UTC),
        "skill": "b",
        "version": 1,
        "purpose": "baseline",
        "model": "m",
        "prompt_tokens": 3_500,
        "completion_tokens": 0,
        "cached_tokens": 0,
        "tiktoken_prompt_tokens": 0,
        "cost_usd": 0.0,
        "latency_ms": 0.0,
        "outcome": "estimate",
        "detail": "",
        "request_id": "",
    }
    real = {
        **legacy,
        "id": "e" * 32,
        "purpose": "create",
        "prompt_tokens": 1_000,
        "completion_tokens": 500,
        "outcome": "ok",
    }
    lancedb.connect(home.store).create_table("llm_calls", [legacy, real], schema=LLM_CALLS_SCHEMA)
    led = Ledger(home.store)
    rows = led.llm_calls("b")
    assert [r["purpose"] for r in rows] == ["create"] and sum(r["total_tokens"] for r in rows) == 1_500
    assert [(b["id"], b["baseline_tokens"], b["source"]) for b in led.baselines("b")] == [
        ("f" * 32, 3_500, "creation")
    ]
    t = totals(led, "b")
    assert (t["total_tokens"], t["llm_calls"], t["baseline_tokens"], t["baseline_rows"]) == (
        1_500,
        1,
        3_500,
        1,
    )
    assert "ledger-0001-baselines-out-of-llm-calls" in led.store.applied_migrations()
    calls = CliRunner().invoke(ledger_group, ["calls", "--skill", "b"], catch_exceptions=False)
    assert "1 call(s), 1,500 tokens" in calls.stdout
    led.close()
    with Ledger(home.store) as again:  # recorded: nothing runs twice
        assert len(again.baselines("b")) == 1 and len(again.llm_calls("b")) == 1


def test_tag_version_sets_only_untagged_rows(led: Ledger):
    a = call(led, "s", "create", 10)
    b = call(led, "s", "retry", 20)
    c = call(led, "s", "fix", 30, version=1)
    assert led.tag_version([a, b, c, "not-an-id' OR 1=1"], 2) == 2
    assert [r["version"] for r in led.llm_calls("s")] == [2, 2, 1]


def test_reassign_moves_placeholder_rows(led: Ledger):
    call(led, "(creating)", "create", 100, 10)
    call(led, "(creating)", "retry", 50, 5)
    call(led, "other", "create", 7)
    assert led.reassign("(creating)", "new-skill") == 2
    assert led.llm_calls("(creating)") == []
    assert [r["prompt_tokens"] for r in led.llm_calls("new-skill")] == [100, 50]
    assert totals(led, "new-skill")["invested_tokens"] == 165
    assert led.reassign("nothing-here", "x") == 0 and led.reassign("same", "same") == 0
    assert len(led.llm_calls()) == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"skill": "x' OR '1'='1"},
        {"skill": "a\\b"},
        {"skill": "tab\there"},
        {"skill": ""},
        {"purpose": "lunch"},
        {"outcome": "Not A Word"},
        {"prompt_tokens": -1},
        {"prompt_tokens": 1.0},
        {"completion_tokens": True},
        {"cost_usd": float("nan")},
        {"version": 0},
    ],
)
def test_bad_arguments_are_refused_before_writing(led: Ledger, bad):
    args = dict(
        skill="ok",
        version=1,
        purpose="create",
        model="m",
        prompt_tokens=1,
        completion_tokens=1,
        cached_tokens=0,
        tiktoken_prompt_tokens=1,
        cost_usd=0.0,
        latency_ms=0.0,
        outcome="ok",
    )
    args.update(bad)
    with pytest.raises(ValueError):
        led.record_llm_call(**args)
    with pytest.raises(ValueError):
        led.llm_calls(skill="x' OR '1'='1")
    assert led.llm_calls() == []


# --------------------------------------------------------------------------- concurrency


def _ledger_worker(uri: str, wid: int, n: int, barrier) -> None:
    led = Ledger(uri, compact_every=10)  # compactions race the other writer's appends
    barrier.wait(timeout=120)
    for k in range(n):
        led.record_llm_call(
            skill=f"w{wid}",
            version=1,
            purpose="create",
            model="m",
            prompt_tokens=1_000 * wid + k,
            completion_tokens=k,
            cached_tokens=0,
            tiktoken_prompt_tokens=k,
            cost_usd=0.001,
            latency_ms=1.0,
            outcome="ok",
            detail=f"{wid}/{k}",
        )
        if k % 5 == 0:
            led.record_use(skill="shared", version=1, context_tokens=k, outcome="ok", duration_ms=1.0)
    led.close()


def test_two_processes_record_concurrently_and_lose_nothing(tmp_path: Path):
    uri = str(tmp_path / "store")
    led = Ledger(uri)  # opened before the tables exist: both workers race to create them
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_ledger_worker, args=(uri, w, 50, barrier)) for w in (1, 2)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]

    rows = led.llm_calls()
    assert len(rows) == 100 and len({r["id"] for r in rows}) == 100
    for w in (1, 2):
        mine = led.llm_calls(f"w{w}")
        assert [r["detail"] for r in mine] == [f"{w}/{k}" for k in range(50)]  # each writer's order kept
        assert [r["prompt_tokens"] for r in mine] == [1_000 * w + k for k in range(50)]
        assert totals(led, f"w{w}")["creation_tokens"] == sum(1_000 * w + 2 * k for k in range(50))
    assert sorted(u["context_tokens"] for u in led.uses("shared")) == sorted(list(range(0, 50, 5)) * 2)
    led.close()


def _placeholder_worker(uri: str, wid: int, n: int, barrier) -> None:
    led = Ledger(uri, compact_every=5)  # compactions race the appends and the other process's updates
    barrier.wait(timeout=120)
    for k in range(n):
        led.record_llm_call(
            skill=f"(creating-{k % 3})",
            version=None,
            purpose="create",
            model="m",
            prompt_tokens=k,
            completion_tokens=0,
            cached_tokens=0,
            tiktoken_prompt_tokens=0,
            cost_usd=0.0,
            latency_ms=0.0,
            outcome="ok",
            detail=f"{wid}/{k}",
        )
    led.close()


def test_appends_racing_reassign_and_compaction_lose_nothing(tmp_path: Path):
    uri = str(tmp_path / "store")
    led = Ledger(uri)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_placeholder_worker, args=(uri, w, 60, barrier)) for w in (1, 2)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    moved = 0
    while any(p.is_alive() for p in procs):  # updates and compactions conflict with the appends
        for k in range(3):
            moved += led.reassign(f"(creating-{k})", f"final-{k}")
        led.compact()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    moved += sum(led.reassign(f"(creating-{k})", f"final-{k}") for k in range(3))
    rows = led.llm_calls()
    assert sorted(r["detail"] for r in rows) == sorted(f"{w}/{k}" for w in (1, 2) for k in range(60))
    assert moved == 120 and all(r["skill"].startswith("final-") for r in rows)
    led.close()


# --------------------------------------------------------------------------- the report


def test_cost_report_break_even_per_skill(reg: Registry, led: Ledger):
    _, alpha = register(reg, "alpha", "Alpha does the first thing.", baseline=150_000)
    _, beta = register(reg, "beta", "Beta does another thing.")
    _, gamma = register(reg, "gamma", "Gamma has a long SKILL.md.", body="word " * 300)
    ctx = {p.name: count_tokens(p.skill_md) for p in (alpha, beta, gamma)}
    assert 10 < ctx["alpha"] < 100 and ctx["gamma"] > 300

    # alpha: 383,000 tokens invested (the MUSE median), baseline from its skillyard.yaml
    call(led, "alpha", "create", 300_000, 60_000, cost=0.25)
    call(led, "alpha", "fix", 15_000, 5_000, cost=0.02)
    call(led, "alpha", "retry", 2_500, 500, outcome="malformed", cost=0.01)
    led.record_baseline(
        skill="alpha", version=1, baseline_tokens=1
    )  # ignored: the skill states its own baseline
    for i in range(3):
        led.record_use(
            skill="alpha",
            version=1,
            context_tokens=ctx["alpha"],
            outcome="ok" if i else "timeout",
            duration_ms=5.0,
        )
    # beta: baseline estimated at creation (the ledger's baseline row)
    call(led, "beta", "create", 40_000, 10_000)
    led.record_baseline(skill="beta", version=1, baseline_tokens=10_000)
    # gamma: no baseline anywhere -> the default (smaller than its context: never breaks even)
    reg.record_call("gamma", 1, ok=True)  # a run the ledger never saw (before it existed)
    reg.record_call("gamma", 1, ok=False)
    # a creation that failed before the skill had a name
    call(led, "(creating)", "create", 5_000, 0, outcome="error")

    report = {c.skill: c for c in cost_report(led, reg, packages_of(reg), default_baseline=300)}
    assert sorted(report) == ["alpha", "beta", "gamma"]  # the failed creation is not a skill

    a = report["alpha"]
    assert isinstance(a, SkillCost)
    assert (a.creation_tokens, a.fix_tokens, a.invested_tokens, a.llm_calls) == (360_000, 23_000, 383_000, 3)
    assert a.cost_usd == pytest.approx(0.28)
    assert (a.baseline_tokens, a.baseline_source, a.context_tokens) == (150_000, "skill", ctx["alpha"])
    assert a.savings_per_use == 150_000 - ctx["alpha"]
    assert a.break_even_uses == 3 == break_even(383_000, 150_000, ctx["alpha"])
    assert (a.uses, a.failures) == (3, 1)
    # the timed-out use saved nothing and cost its context: 2 savings do not cover 383,000
    assert a.net_tokens == 2 * (150_000 - ctx["alpha"]) - ctx["alpha"] - 383_000 and not a.paid_off
    assert a.successful_uses == 2
    assert (a.version, a.status) == (1, "registered")

    b = report["beta"]
    assert (b.baseline_tokens, b.baseline_source, b.invested_tokens) == (10_000, "creation", 50_000)
    assert b.break_even_uses == -(-50_000 // (10_000 - ctx["beta"])) == 6
    assert (b.uses, b.net_tokens, b.paid_off) == (0, -50_000, False)

    g = report["gamma"]
    assert (g.baseline_tokens, g.baseline_source) == (300, "config")
    assert g.savings_per_use == 300 - ctx["gamma"] < 0 and g.break_even_uses is None
    assert (g.uses, g.failures, g.invested_tokens) == (2, 1, 0)  # from the registry's counters
    assert (
        g.net_tokens == (300 - ctx["gamma"]) - ctx["gamma"] and not g.paid_off
    )  # the failed run saved nothing

    loose = unattributed(led)
    assert loose["failed_creations"] == {"count": 1, "llm_calls": 1, "total_tokens": 5_000, "cost_usd": 0.0}

    # a new version with a larger SKILL.md changes the context (and so N*) of the current version
    _, alpha2 = register(reg, "alpha", "Alpha does the first thing.", baseline=150_000, body="more " * 2000)
    a2 = {c.skill: c for c in cost_report(led, reg, packages_of(reg), 300)}["alpha"]
    assert a2.version == 2 and a2.context_tokens == count_tokens(alpha2.skill_md) > 2000
    assert a2.break_even_uses == break_even(383_000, 150_000, a2.context_tokens)
    assert a2.net_tokens == a.net_tokens  # past uses keep the context they had


def test_failed_uses_save_nothing(reg: Registry, led: Ledger):
    """Audit #7: a failed run saved nothing; it costs the context the agent loaded."""
    _, pkg = register(reg, "delta", "Delta does a thing.", baseline=10_000)
    ctx = count_tokens(pkg.skill_md)
    call(led, "delta", "create", 9_000)
    for outcome in ("exception", "timeout", "bad_output"):
        led.record_use(skill="delta", version=1, context_tokens=ctx, outcome=outcome, duration_ms=1.0)
    d = cost_report(led, reg, packages_of(reg), 300)[0]
    assert (
        d.net_tokens == -9_000 - 3 * ctx and not d.paid_off
    )  # before: 3 * (10,000 - ctx) - 9,000 > 0, "paid off"
    assert (d.uses, d.failures, d.successful_uses) == (3, 3, 0)
    led.record_use(skill="delta", version=1, context_tokens=ctx, outcome="ok", duration_ms=1.0)
    d = cost_report(led, reg, packages_of(reg), 300)[0]
    assert d.net_tokens == (10_000 - ctx) - 9_000 - 3 * ctx and d.paid_off


def test_unused_skill_with_nothing_invested_has_not_paid_off(reg: Registry, led: Ledger):
    """Audit #9: a blocked (or never used) skill with 0 tokens invested has N* = 0 but did not pay off."""
    register(reg, "blocked-one", "Blocked one does nothing.", status="blocked")
    register(reg, "idle", "Idle is registered but never used.", baseline=10_000)
    report = {c.skill: c for c in cost_report(led, reg, packages_of(reg), 4_000)}
    for name in ("blocked-one", "idle"):
        c = report[name]
        assert (c.invested_tokens, c.break_even_uses, c.net_tokens, c.uses) == (0, 0, 0, 0)
        assert c.paid_off is False, name
    assert report["blocked-one"].status == "blocked"


def test_failed_creations_are_not_attributed_to_a_skill(home: Settings):
    """Audit #5: a failed creation showed up as a skill `(creating-...)` with N* = 1, its
    retry in "fix tok"."""
    reg = Registry(home.store, embedder=None)
    register(reg, "alpha", "Alpha does the first thing.", baseline=150_000)
    led = Ledger(home.store)
    call(led, "(creating-cbbf46ec)", "create", 2_000, 100, outcome="malformed")
    call(led, "(creating-cbbf46ec)", "retry", 2_200, 100, outcome="malformed")
    call(led, None, "create", 50, outcome="error")
    report = cost_report(led, reg, packages_of(reg), 4_000)
    assert [c.skill for c in report] == ["alpha"]
    assert report[0].fix_tokens == 0
    runner = CliRunner()
    data = json.loads(runner.invoke(cost_command, ["--json"], catch_exceptions=False).stdout)
    assert [d["skill"] for d in data["skills"]] == ["alpha"]
    na = data["not_attributed"]
    assert na["failed_creations"] == {"count": 1, "llm_calls": 2, "total_tokens": 4_400, "cost_usd": 0.0}
    assert na["no_skill"]["total_tokens"] == 50 and na["total_tokens"] == 4_450
    table = runner.invoke(cost_command, [], catch_exceptions=False).stdout
    assert "creating" not in table and "1 failed creation(s): 2 LLM call(s), 4,400 tokens" in table
    reg.close()
    led.close()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def home(tmp_path: Path, monkeypatch):
    """SKILLYARD_HOME in tmp for commands that build their own Yard(); logs on stderr as
    the `skillyard` group sets them up (structlog's default would print to stdout)."""
    logs.configure("WARNING")
    monkeypatch.setenv("SKILLYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKILLYARD_DEFAULT_BASELINE_TOKENS", "4000")
    monkeypatch.delenv("SKILLYARD_STORE_URI", raising=False)
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


def test_cost_command_json_and_plot(home: Settings, tmp_path: Path):
    reg = Registry(home.store, embedder=None)
    _, pkg = register(reg, "alpha", "Alpha does the first thing.", baseline=150_000)
    register(reg, "beta", "Beta does another thing.")
    led = Ledger(home.store)
    call(led, "alpha", "create", 383_000, cost=0.5)
    call(led, "beta", "create", 1_000)
    led.record_use(
        skill="alpha", version=1, context_tokens=count_tokens(pkg.skill_md), outcome="ok", duration_ms=3
    )

    runner = CliRunner()
    png = tmp_path / "out" / "cost.png"
    result = runner.invoke(cost_command, ["--json", "--plot", str(png)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["skills"]
    by = {d["skill"]: d for d in data}
    assert sorted(by) == ["alpha", "beta"]
    assert by["alpha"]["break_even_uses"] == 3 and by["alpha"]["invested_tokens"] == 383_000
    assert by["alpha"]["uses"] == 1 and by["alpha"]["paid_off"] is False
    assert by["beta"]["baseline_source"] == "config" and by["beta"]["baseline_tokens"] == 4000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000

    one = runner.invoke(cost_command, ["alpha", "--json"], catch_exceptions=False)
    assert [d["skill"] for d in json.loads(one.stdout)["skills"]] == ["alpha"]
    table = runner.invoke(cost_command, [], catch_exceptions=False)
    assert (
        table.exit_code == 0
        and "alpha" in table.stdout
        and "beta" in table.stdout
        and "total" in table.stdout
    )
    missing = runner.invoke(cost_command, ["nope"])
    assert missing.exit_code != 0 and "no skill 'nope'" in missing.output

    calls = runner.invoke(ledger_group, ["calls", "--json", "--skill", "alpha"], catch_exceptions=False)
    assert [r["prompt_tokens"] for r in json.loads(calls.stdout)] == [383_000]
    assert "beta" in runner.invoke(ledger_group, ["calls", "--limit", "1"], catch_exceptions=False).stdout
    uses = runner.invoke(ledger_group, ["uses", "--json"], catch_exceptions=False)
    assert [u["skill"] for u in json.loads(uses.stdout)] == ["alpha"]
    assert "alpha" in runner.invoke(ledger_group, ["uses"], catch_exceptions=False).stdout
    reg.close()
    led.close()


def test_cost_command_on_an_empty_store(home: Settings, tmp_path: Path):
    runner = CliRunner()
    png = tmp_path / "empty.png"
    result = runner.invoke(cost_command, ["--json", "--plot", str(png)], catch_exceptions=False)
    assert result.exit_code == 0 and json.loads(result.stdout)["skills"] == []
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "no skills" in runner.invoke(cost_command, [], catch_exceptions=False).stdout
    assert "no LLM calls" in runner.invoke(ledger_group, ["calls"], catch_exceptions=False).stdout


def test_the_store_takes_a_new_connection_every_so_many_writes(tmp_path):
    """A connection's memory grows with each table version it sees (lancestore.RENEW_EVERY):
    a long-lived writer renews it, and reads and writes go on as before."""
    ledger = Ledger(tmp_path / "store")
    ledger.store.renew_every = 3
    for _ in range(7):
        ledger.record_use(skill="echo", version=1, context_tokens=1, outcome="ok", duration_ms=1.0)
    assert ledger.store.renewals == 2
    assert len(ledger.uses("echo")) == 7
    ledger.close()
