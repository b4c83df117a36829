"""The console's parts that need no browser, engine or server: the run form, cost curves
and their charts, version diffs, sessions and CSRF tokens, tiers and gate report sections.
(tests/test_console.py drives the whole console in a real browser.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtime.accounting import SkillCost
from runtime.costcurve import CurvePoint, curve_end, history, projection
from runtime.diffs import MAX_DIFF_LINES, file_diffs
from runtime.errors import InvalidInput
from runtime.http.ui import sessions as sessions_module
from runtime.http.ui.charts import HEIGHT, LEFT, MAX_POINTS, RIGHT, TOP, WIDTH, chart, tokens_text
from runtime.http.ui.forms import form_input, run_form
from runtime.http.ui.present import gate_view, tier_of
from runtime.http.ui.sessions import ConsoleSessions
from runtime.records import GateSummary, SkillRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- the run form ---------------------------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "required": ["text", "count"],
    "properties": {
        "text": {"type": "string", "description": "Words."},
        "code": {"type": "string", "maxLength": 8},
        "count": {"type": "integer", "minimum": 1, "maximum": 9},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean"},
        "mode": {"enum": ["a", 1, None]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


def test_the_form_has_one_field_per_property_with_a_widget_for_its_type():
    form = run_form(SCHEMA, {"text": "hi", "count": 2, "mode": 1})
    assert not form.raw
    widgets = {f.name: f.widget for f in form.fields}
    assert widgets == {
        "text": "textarea",
        "code": "text",
        "count": "integer",
        "ratio": "number",
        "loud": "boolean",
        "mode": "select",
        "tags": "json",
    }
    by_name = {f.name: f for f in form.fields}
    assert by_name["text"].required and by_name["count"].required and not by_name["ratio"].required
    assert (by_name["count"].minimum, by_name["count"].maximum) == (1, 9)
    assert [c.value for c in by_name["mode"].choices] == ['"a"', "1", "null"]
    # prefilled from the example, each in its field's own text
    assert (by_name["text"].value, by_name["count"].value, by_name["mode"].value) == ("hi", "2", "1")
    assert by_name["text"].form_name == "in.text"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object"},
        {"type": "array"},
        {"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"required": ["a"]}]},
    ],
)
def test_a_schema_without_simple_properties_gets_one_json_box(schema):
    form = run_form(schema, {"a": 1})
    assert form.raw and form.fields == [] and form.raw_value == '{"a": 1}'
    assert form_input(form, {"input": ' {"b": [1, 2]} '}) == {"b": [1, 2]}
    assert form_input(form, {"input": ""}) == {}
    with pytest.raises(InvalidInput, match="not valid JSON"):
        form_input(form, {"input": "{'b': 1}"})
    with pytest.raises(InvalidInput, match="NaN is not JSON"):
        form_input(form, {"input": '{"b": NaN}'})


def test_posted_text_becomes_typed_input_and_empty_optional_fields_are_left_out():
    form = run_form(SCHEMA)
    posted = {
        "in.text": "a <b>",
        "in.code": "",
        "in.count": " 3 ",
        "in.ratio": "0.5",
        "in.loud": "false",
        "in.mode": "null",
        "in.tags": '["x"]',
    }
    assert form_input(form, posted) == {
        "text": "a <b>",
        "count": 3,
        "ratio": 0.5,
        "loud": False,
        "mode": None,
        "tags": ["x"],
    }
    assert form_input(form, {"in.text": "", "in.count": "1", "in.ratio": "2"}) == {
        "text": "",  # a required text box may be empty: the schema decides
        "count": 1,
        "ratio": 2,
    }


def test_every_field_that_cannot_be_read_is_named():
    form = run_form(SCHEMA)
    posted = {
        "in.text": "x",
        "in.count": "",
        "in.ratio": "inf",
        "in.loud": "yes",
        "in.mode": '"b"',
        "in.tags": "[",
    }
    with pytest.raises(InvalidInput) as info:
        form_input(form, posted)
    message = str(info.value)
    for problem in (
        "count: required",
        "ratio: not a finite number",
        "loud: choose true or false",
        "mode: not one of the choices",
        "tags: not valid JSON",
    ):
        assert problem in message, message
    with pytest.raises(InvalidInput, match="count: not a whole number"):
        form_input(form, {"in.text": "x", "in.count": "1.5"})


# -- cost curves and charts -------------------------------------------------------------------------------
def cost(skill: str = "s", *, invested: int = 5000, context: int = 100, baseline: int = 2100, uses: int = 1):
    saved = baseline - context
    n_star = None if saved <= 0 else -(-invested // saved)
    return SkillCost(
        skill=skill,
        creation_tokens=invested,
        fix_tokens=0,
        llm_calls=1,
        cost_usd=0.0,
        uses=uses,
        failures=0,
        context_tokens=context,
        baseline_tokens=baseline,
        savings_per_use=saved,
        break_even_uses=n_star,
        paid_off=False,
        net_tokens=0,
        baseline_source="skill",
        successful_uses=uses,
    )


def test_a_projection_meets_at_n_star_and_runs_past_it():
    curve = projection(cost())  # saves 2,000 a use: N* = ceil(5000 / 2000) = 3
    assert curve.break_even == 3 and not curve.never
    assert curve.points[0] == CurvePoint(0, 5000, 0)
    end = curve.points[-1]
    assert end.uses == curve_end(cost()) == 5 and (end.cost, end.savings) == (5000 + 5 * 100, 5 * 2100)
    assert curve.marker == CurvePoint(3, 5300, 6300)  # on the savings line, past the cost line
    assert curve.marker.savings >= curve.marker.cost
    never = projection(cost(baseline=100))
    assert never.never and never.break_even is None and never.marker is None
    assert curve_end(cost(invested=10**9, baseline=101)) == 100_000  # capped


def _call(minutes: int, skill: str, tokens: int, purpose: str = "fix") -> dict:
    return {"ts": T0 + timedelta(minutes=minutes), "skill": skill, "purpose": purpose, "total_tokens": tokens}


def _use(minutes: int, skill: str, outcome: str = "ok", context: int = 100) -> dict:
    return {
        "ts": T0 + timedelta(minutes=minutes),
        "skill": skill,
        "outcome": outcome,
        "context_tokens": context,
    }


def test_a_history_follows_the_ledger_and_breaks_even_for_good_only():
    costs = [cost("a", baseline=1100), cost("b", baseline=600)]
    calls = [
        _call(0, "a", 1000, "create"),
        _call(5, "a", 2500),
        _call(1, "zzz", 99_999),
        _call(2, "b", 7, "other"),
    ]
    uses = [_use(1, "a"), _use(2, "b", "exception"), _use(3, "a"), _use(6, "a"), _use(7, "b")]
    curve = history("all", costs, calls, uses)
    assert [(p.uses, p.cost, p.savings) for p in curve.points] == [
        (0, 0, 0),
        (0, 1000, 0),  # a's creation
        (1, 1100, 1100),  # a use of a: covered already
        (2, 1200, 1100),  # b failed: its context is a cost, it saves nothing
        (3, 1300, 2200),
        (3, 3800, 2200),  # a fix: no longer covered
        (4, 3900, 3300),
        (5, 4000, 3900),
    ]
    assert curve.uses_so_far == 5 and curve.break_even is None and curve.marker is None
    later = history("all", costs, calls, [*uses, _use(8, "a")])
    assert later.break_even == 6 and later.broke_even_at == T0 + timedelta(minutes=8)
    assert later.marker == CurvePoint(6, 4100, 5000, T0 + timedelta(minutes=8))


def test_a_chart_stays_in_its_plot_and_marks_n_star():
    geometry = chart(projection(cost()))
    points = [tuple(map(float, p.split(","))) for p in (geometry.cost + " " + geometry.savings).split()]
    for x, y in points:
        assert LEFT <= x <= WIDTH - RIGHT and TOP <= y <= HEIGHT - 36
    assert geometry.break_even is not None and geometry.break_even.label == "N* = 3"
    assert geometry.uses_so_far is not None and geometry.uses_so_far.label == "uses so far: 1"
    assert [t.label for t in geometry.x_ticks] == ["0", "1", "2", "3", "4", "5"]
    assert geometry.y_ticks[0].label == "0" and geometry.y_ticks[-1].at == TOP  # the axis ends on a tick
    assert geometry.summary == "s: it breaks even at N* = 3 uses; 1 use so far."
    assert (tokens_text(950), tokens_text(12_400), tokens_text(1_250_000)) == ("950", "12k", "1.2M")


def test_a_long_history_is_thinned_but_keeps_its_ends_and_break_even():
    costs = [cost("a", invested=0, context=0, baseline=10)]
    uses = [_use(i, "a", "exception" if i < 1500 else "ok", context=0) for i in range(3000)]
    calls = [_call(-1, "a", 1)]
    curve = history("a", costs, calls, uses)
    assert curve.break_even == 1501
    geometry = chart(curve)
    drawn = geometry.cost.split()
    assert len(drawn) <= MAX_POINTS + 2
    assert drawn[-1].startswith(f"{WIDTH - RIGHT}.0,") or drawn[-1].startswith(f"{WIDTH - RIGHT},")
    assert geometry.break_even is not None and geometry.break_even.label == "N* = 1,501"
    assert "broke even at use 1,501" in geometry.summary


# -- version diffs ----------------------------------------------------------------------------------------
def test_every_path_of_two_versions_is_listed_with_its_change():
    old = {"a.py": b"x = 1\ny = 2\n", "gone.txt": b"bye\n", "same.md": b"s\n", "blob": b"\xff\x00"}
    new = {"a.py": b"x = 1\ny = 3\n", "new.txt": b"hi\n", "same.md": b"s\n", "blob": b"\xff\x01"}
    diffs = {d.path: d for d in file_diffs(old, new, "v1", "v2")}
    assert [d for d in diffs] == sorted(diffs)
    assert {p: d.change for p, d in diffs.items()} == {
        "a.py": "changed",
        "blob": "changed",
        "gone.txt": "removed",
        "new.txt": "added",
        "same.md": "same",
    }
    assert diffs["a.py"].lines == [
        "--- v1/a.py",
        "+++ v2/a.py",
        "@@ -1,2 +1,2 @@",
        " x = 1",
        "-y = 2",
        "+y = 3",
    ]
    assert diffs["blob"].binary and diffs["blob"].lines == []
    assert diffs["new.txt"].lines[-1] == "+hi" and diffs["gone.txt"].lines[-1] == "-bye"
    assert diffs["same.md"].lines == []
    big = file_diffs({"f": b""}, {"f": "\n".join(map(str, range(3 * MAX_DIFF_LINES))).encode()}, "a", "b")[0]
    assert big.truncated and len(big.lines) == MAX_DIFF_LINES


# -- sessions and CSRF ---------------------------------------------------------------------------------------
def test_a_session_is_found_by_its_token_only_and_ends_when_closed():
    table = ConsoleSessions()
    token = table.open("sy_key", "alice")
    session = table.get(token)
    assert session is not None and session.tenant == "alice" and session.key == "sy_key"
    assert table.get(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert table.get(None) is None and table.get("x" * 200) is None
    assert "sy_key" not in repr(session) and session.csrf not in repr(session)
    assert (
        session.csrf_ok(session.csrf) and not session.csrf_ok(session.csrf[:-1]) and not session.csrf_ok(None)
    )
    other = table.open("sy_key", "alice")
    assert other != token and table.get(other).csrf != session.csrf  # a token per sign-in
    table.close(token)
    assert table.get(token) is None and table.get(other) is not None


def test_sessions_expire_when_idle_or_old(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: now[0])
    table = ConsoleSessions()
    token = table.open("k", "alice")
    now[0] += sessions_module.IDLE_S - 1
    assert table.get(token) is not None  # touched: idle time starts again
    now[0] += sessions_module.IDLE_S - 1
    assert table.get(token) is not None
    now[0] += sessions_module.IDLE_S + 1
    assert table.get(token) is None and len(table) == 0
    token = table.open("k", "alice")
    for _ in range(sessions_module.MAX_AGE_S // 3600 + 1):
        now[0] += 3600
        found = table.get(token)
    assert found is None  # however busy, a session ends after MAX_AGE_S


def test_the_oldest_sessions_go_first_past_the_cap(monkeypatch):
    monkeypatch.setattr(sessions_module, "MAX_SESSIONS", 3)
    table = ConsoleSessions()
    first, second = table.open("k", "a"), table.open("k", "b")
    table.get(first)  # used: the least recently used is now the second
    table.open("k", "c")
    table.open("k", "d")
    assert len(table) == 3 and table.get(second) is None and table.get(first) is not None


def test_a_sign_in_token_belongs_to_its_nonce_and_its_process():
    table = ConsoleSessions()
    nonce, token = table.login_nonce()
    assert table.login_ok(nonce, token)
    other_nonce, _ = table.login_nonce()
    assert (
        not table.login_ok(other_nonce, token)
        and not table.login_ok(nonce, "")
        and not table.login_ok(None, token)
    )
    assert not ConsoleSessions().login_ok(nonce, token)  # another process's secret


# -- tiers and gate reports -------------------------------------------------------------------------------
def record(status: str = "registered", **extra) -> SkillRecord:
    gate = GateSummary(
        passed=status == "registered", tests=1, failures=0, errors=0, skipped=0, coverage=None, duration_s=0
    )
    rec = SkillRecord(
        id="x",
        name="s",
        version=1,
        content_hash="h",
        status=status,
        tier="verified" if status == "registered" else "blocked",
        current=True,
        description="",
        tags=[],
        gate=gate,
        calls=0,
        failures=0,
        last_used=None,
        created_at=T0,
        updated_at=T0,
    )
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_a_tier_is_the_records_own():
    assert tier_of(record()) == "verified"
    assert tier_of(record("blocked")) == "blocked"
    assert tier_of(record(tier="instructions")) == "instructions"


def test_a_gate_report_in_sections():
    report = {
        "passed": False,
        "reasons": ["the tests killed 1 of 3 mutants"],
        "tests": 2,
        "failures": 1,
        "coverage": 87.5,
        "cases": [
            {"name": "test_a", "status": "passed"},
            {"name": "test_b", "status": "failed", "message": "assert 1 == 2", "detail": "tb"},
        ],
        "mutation": {
            "score": 33.3,
            "mutants": [
                {"file": "scripts/m.py", "line": 3, "before": "a + b", "after": "a - b", "killed": False},
                {"file": "scripts/m.py", "line": 4, "before": "x < 1", "after": "x <= 1", "killed": True},
                {"file": "scripts/m.py", "line": 5, "before": "y", "after": "not y", "killed": None},
            ],
        },
    }
    view = gate_view(report)
    assert view.present and not view.passed and view.coverage == 87.5
    assert [(c.name, c.message) for c in view.failing] == [("test_b", "assert 1 == 2")]
    assert view.passing == ["test_a"]
    assert [s.label for s in view.survivors] == ["scripts/m.py:3 a + b -> a - b"]  # not the unrun one
    labels_only = gate_view({"mutation": {"survivors": ["scripts/m.py:7 a == b -> a != b"]}})
    assert [(s.file, s.line, s.before, s.after) for s in labels_only.survivors] == [
        ("scripts/m.py", 7, "a == b", "a != b")
    ]
    assert not gate_view(None).present and not gate_view({}).present
