"""Auto-fix and creation against a scripted OpenAI-compatible server on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime

import pytest

from runtime import notes
from runtime.accounting import totals
from runtime.config import Settings
from runtime.fixer import Fixer, FixError
from runtime.llm import LLM, LLMUnavailable
from sandbox import Sandbox
from tests.conftest import WHEELHOUSE, write_skill
from tests.llm_server import ScriptedLLM

BUGGY = (
    "def run(params):\n    a, b = params['a'], params['b']\n"
    "    return {'sum': a + b + 1, 'product': a * b + 1}\n"
)
HALF = (
    "def run(params):\n    a, b = params['a'], params['b']\n    return {'sum': a + b, 'product': a * b + 1}\n"
)
FIXED = "def run(params):\n    a, b = params['a'], params['b']\n    return {'sum': a + b, 'product': a * b}\n"
TESTS = textwrap.dedent("""
    from scripts.main import run

    def test_sum():
        assert run({"a": 2, "b": 3})["sum"] == 5

    def test_product():
        assert run({"a": 2, "b": 3})["product"] == 6
""")


def answer(files: dict[str, str], explanation: str = "fixed the arithmetic") -> str:
    return json.dumps(
        {"files": [{"path": p, "content": c} for p, c in files.items()], "explanation": explanation}
    )


@pytest.fixture
def llm_server():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm_yard(tmp_path, backend, runner_image, llm_server):
    from runtime.yard import Yard

    settings = Settings(
        home=tmp_path / "home",
        wheelhouse=WHEELHOUSE,
        openai_base_url=llm_server.url,
        openai_api_key="sk-test",
        model="gpt-4o-mini",
        price_input_per_mtok=0.15,
        price_output_per_mtok=0.60,
    )
    y = Yard(settings, sandbox=Sandbox(backend), pool=False)
    y.runner = runner_image
    yield y
    y.close()


@pytest.fixture
def blocked_skill(llm_yard, tmp_path):
    d = write_skill(tmp_path / "src", "adder", script=BUGGY, tests={"test_main.py": TESTS})
    outcome = llm_yard.add(d)
    assert outcome.status == "blocked"
    return d


def fixer_for(yard, **llm_kwargs) -> Fixer:
    return Fixer(yard, LLM(yard.settings, **llm_kwargs))


def test_fix_succeeds_at_attempt_two_and_ledger_matches_usage(llm_yard, llm_server, blocked_skill):
    llm_server.reply(
        answer({"scripts/main.py": HALF}), prompt_tokens=1200, completion_tokens=300, cached_tokens=200
    )
    llm_server.reply(answer({"scripts/main.py": FIXED}), prompt_tokens=1500, completion_tokens=400)
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert outcome.status == "fixed", outcome.to_dict()
    assert [a.outcome for a in outcome.attempts] == ["blocked", "registered"]
    assert outcome.version == 3 and llm_yard.registry.get("adder").version == 3
    rows = sorted(llm_yard.ledger.llm_calls(skill="adder"), key=lambda r: r["prompt_tokens"])
    assert [(r["purpose"], r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"]) for r in rows] == [
        ("fix", 1200, 300, 200),
        ("fix", 1500, 400, 0),
    ]
    assert rows[0]["cost_usd"] == pytest.approx(1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6)
    assert all(r["tiktoken_prompt_tokens"] > 100 for r in rows)  # our own count of what was sent
    # The prompt carried the failing test's traceback and the files, with our key as auth.
    first = llm_server.requests[0]["body"]["messages"][1]["content"]
    assert "test_product" in first and "scripts/main.py" in first
    assert llm_server.requests[0]["auth"] == "Bearer sk-test"
    assert "fixed it" in llm_yard.memory_text("adder")
    assert outcome.tokens == 1200 + 300 + 1500 + 400


def test_each_fix_call_is_tagged_with_the_version_it_repaired(llm_yard, llm_server, blocked_skill):
    """Audit #8: every call of a loop was tagged v1, even the one that repaired v2."""
    llm_server.reply(answer({"scripts/main.py": HALF}), prompt_tokens=1200)
    llm_server.reply(answer({"scripts/main.py": FIXED}), prompt_tokens=1500)
    assert fixer_for(llm_yard).fix("adder", max_attempts=3).status == "fixed"
    rows = llm_yard.ledger.llm_calls(skill="adder")
    assert [(r["prompt_tokens"], r["version"], r["outcome"]) for r in rows] == [
        (1200, 1, "ok"),
        (1500, 2, "ok"),
    ]
    assert all(r["usage_source"] == "api" for r in rows)


def test_reply_that_edits_a_test_is_refused(llm_yard, llm_server, blocked_skill):
    weakened = TESTS.replace("== 6", "== 7")
    llm_server.reply(answer({"scripts/main.py": FIXED, "tests/test_main.py": weakened}))
    llm_server.reply(answer({"scripts/main.py": FIXED}))
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert [a.outcome for a in outcome.attempts] == ["refused", "registered"]
    assert outcome.status == "fixed"
    final = llm_yard.package("adder", outcome.version)
    assert final.files["tests/test_main.py"].decode() == TESTS  # the tests were never weakened
    assert "refused" in llm_yard.memory_text("adder")
    second = llm_server.requests[1]["body"]["messages"][1]["content"]
    assert "tests are frozen" in second  # the model is told why


def test_a_refused_answer_is_one_ledger_row_with_its_tokens(llm_yard, llm_server, blocked_skill):
    """Audit #4: a refused answer was recorded twice (ok with tokens + refused with 0 tokens)."""
    weakened = TESTS.replace("== 6", "== 7")
    llm_server.reply(
        answer({"scripts/main.py": FIXED, "tests/test_main.py": weakened}),
        prompt_tokens=1111,
        completion_tokens=222,
    )
    llm_server.reply(answer({"scripts/main.py": FIXED}), prompt_tokens=1333, completion_tokens=444)
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert [a.outcome for a in outcome.attempts] == ["refused", "registered"]
    rows = llm_yard.ledger.llm_calls(skill="adder")
    assert len(llm_server.requests) == 2 == len(rows)  # one row per HTTP request
    assert [(r["outcome"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("refused", 1111, 222),
        ("ok", 1333, 444),
    ]
    assert "tests/test_main.py" in rows[0]["detail"]


def test_attempts_exhausted_leaves_skill_blocked(llm_yard, llm_server, blocked_skill):
    for _ in range(2):
        llm_server.reply(answer({"tests/test_main.py": "def test_ok():\n    assert True\n"}))
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=2)
    assert outcome.status == "blocked"
    assert outcome.stop_reason.startswith("gave up after 2 attempts")
    assert llm_yard.registry.get("adder").status == "blocked"
    assert llm_yard.run("adder", {"a": 1, "b": 1}).error.kind == "not_registered"


def test_no_progress_stops_the_loop(llm_yard, llm_server, blocked_skill):
    still_wrong = BUGGY.replace("+ 1}", "+ 2}")
    llm_server.reply(answer({"scripts/main.py": still_wrong}))
    llm_server.reply(answer({"scripts/main.py": FIXED}))  # never asked for
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert outcome.status == "blocked" and "no progress" in outcome.stop_reason
    assert len(llm_server.requests) == 1


def test_malformed_reply_gets_one_corrective_retry_then_a_clear_error(llm_yard, llm_server, blocked_skill):
    llm_server.reply("Sure! Here is the fix: def run(...)", prompt_tokens=800, completion_tokens=50)
    llm_server.reply('{"files": "not a list"}', prompt_tokens=900, completion_tokens=20)
    versions_before = len(llm_yard.versions("adder"))
    with pytest.raises(FixError, match="malformed twice"):
        fixer_for(llm_yard).fix("adder")
    assert len(llm_yard.versions("adder")) == versions_before
    rows = sorted(llm_yard.ledger.llm_calls(skill="adder"), key=lambda r: r["prompt_tokens"])
    assert [(r["purpose"], r["outcome"], r["prompt_tokens"]) for r in rows] == [
        ("fix", "malformed", 800),
        ("retry", "malformed", 900),
    ]
    retry_msgs = llm_server.requests[1]["body"]["messages"]
    assert retry_msgs[-1]["role"] == "user" and "not usable" in retry_msgs[-1]["content"]


def test_malformed_then_good_is_charged_and_works(llm_yard, llm_server, blocked_skill):
    llm_server.reply("```json\n{oops\n```", prompt_tokens=700, completion_tokens=10)
    llm_server.reply(
        "```json\n" + answer({"scripts/main.py": FIXED}) + "\n```", prompt_tokens=750, completion_tokens=200
    )
    outcome = fixer_for(llm_yard).fix("adder")
    assert outcome.status == "fixed"
    purposes = sorted((r["purpose"], r["outcome"]) for r in llm_yard.ledger.llm_calls(skill="adder"))
    assert purposes == [("fix", "malformed"), ("retry", "ok")]


@pytest.mark.parametrize("fault", ["down", "429", "timeout", "500"])
def test_endpoint_faults_give_clear_errors_and_lose_nothing(llm_yard, llm_server, blocked_skill, fault):
    kwargs = {"max_retries": 1}
    if fault == "down":
        llm_yard.settings.openai_base_url = "http://127.0.0.1:9/v1"
        expect = "cannot reach the LLM endpoint"
    elif fault == "429":
        llm_server.error(429, "slow down").error(429, "slow down")
        expect = "rate-limiting"
    elif fault == "timeout":
        llm_server.delay(3).delay(3)
        kwargs["timeout"] = 0.5
        expect = "did not answer in time"
    else:
        llm_server.error(500, "boom").error(500, "boom")
        expect = "HTTP 500"
    before = [(v.version, v.status) for v in llm_yard.versions("adder")]
    with pytest.raises(FixError, match=expect):
        fixer_for(llm_yard, **kwargs).fix("adder")
    assert [(v.version, v.status) for v in llm_yard.versions("adder")] == before
    rows = llm_yard.ledger.llm_calls(skill="adder")
    # One row per HTTP request: the first and its one retry (max_retries=1).
    assert [r["outcome"] for r in rows] == ["error", "error"]
    if fault != "down":
        assert len(llm_server.requests) == len(rows)
    assert [r["detail"].split(" ", 2)[:2] for r in rows] == [["request", "1"], ["request", "2"]]
    # Audit #8: the prompt we sent is known, so tiktoken counts it; no usage came back
    assert all(r["tiktoken_prompt_tokens"] > 100 and r["prompt_tokens"] == 0 for r in rows)
    assert all(r["usage_source"] == "none" and r["version"] == 1 for r in rows)


def test_llm_timeout_and_retries_come_from_settings(llm_yard, llm_server, blocked_skill, monkeypatch):
    """Audit #3: timeout and retries were fixed at 120 s / 2; the message named neither
    attempts nor total time."""
    monkeypatch.setenv("SKILLYARD_LLM_TIMEOUT", "7.5")
    monkeypatch.setenv("SKILLYARD_LLM_MAX_RETRIES", "4")
    assert (Settings().llm_timeout, Settings().llm_max_retries) == (7.5, 4)
    llm_yard.settings.llm_timeout = 0.5
    llm_yard.settings.llm_max_retries = 1
    llm_server.delay(3).delay(3).delay(3)
    started = time.monotonic()
    with pytest.raises(FixError, match=r"did not answer in time: 2 attempts in \d+\.\d s") as info:
        Fixer(llm_yard, LLM(llm_yard.settings)).fix("adder")
    assert time.monotonic() - started < 6
    assert len(llm_server.requests) == 2 and "SKILLYARD_LLM_TIMEOUT" in str(info.value)
    rows = llm_yard.ledger.llm_calls(skill="adder")
    assert len(rows) == 2  # each request that timed out is its own row
    assert all(r["outcome"] == "error" and r["latency_ms"] >= 500 for r in rows)
    assert all("failed (timeout)" in r["detail"] for r in rows)


def test_usage_missing_from_the_answer_is_marked_as_our_count(llm_yard, llm_server, blocked_skill):
    """Audit #8: the tiktoken fallback looked like API-reported usage."""
    llm_server.reply(answer({"scripts/main.py": FIXED}), usage=False)
    assert fixer_for(llm_yard).fix("adder").status == "fixed"
    (row,) = llm_yard.ledger.llm_calls(skill="adder")
    assert row["usage_source"] == "tiktoken" and row["detail"].startswith("usage: tiktoken count")
    assert row["prompt_tokens"] == row["tiktoken_prompt_tokens"] > 100


def test_memory_merge_keeps_the_newest_text_and_date(tmp_path):
    """Audit #2: three merged entries "v0/v1/v2 blocked" read "(x3) v0 blocked"."""
    path = tmp_path / ".memory.md"
    for i in range(3):
        notes.add_entry(
            path, "gate", f"v{i} blocked: 1 test failed", now=datetime(2025, 1, 1 + i, tzinfo=UTC)
        )
    assert "- 2025-01-03 [gate] (x3) v2 blocked: 1 test failed" in path.read_text()
    (entry,) = notes.entries(path.read_text())
    assert (entry.day, entry.kind, entry.count, entry.text) == (
        "2025-01-03",
        "gate",
        3,
        "v2 blocked: 1 test failed",
    )


def test_without_an_endpoint_fix_says_so(tmp_path):
    settings = Settings(home=tmp_path / "h", openai_base_url=None, openai_api_key=None)
    with pytest.raises(LLMUnavailable, match="OPENAI_BASE_URL"):
        LLM(settings)


CREATED = {
    "SKILL.md": "---\nname: reverse-words\n"
    "description: Reverse the order of words in a sentence. Use to flip word order.\n"
    'license: MIT\n---\n# reverse-words\nPass {"text": "..."}; get {"reversed": "..."}.\n',
    "skillyard.yaml": "entrypoint: scripts/rev.py:run\n"
    "input_schema:\n  type: object\n  properties:\n    text: {type: string}\n"
    "  required: [text]\noutput_schema:\n  type: object\ntags: [text]\nexamples:\n  - input: {text: a b c}\n",
    "scripts/rev.py": "def run(params):\n    text = params['text']\n    if not isinstance(text, str):\n"
    "        raise ValueError('text must be a string')\n"
    "    return {'reversed': ' '.join(reversed(text.split()))}\n",
    "tests/test_rev.py": "import pytest\nfrom scripts.rev import run\n\ndef test_rev():\n"
    "    assert run({'text': 'a b c'}) == {'reversed': 'c b a'}\n\ndef test_bad():\n"
    "    with pytest.raises(ValueError):\n        run({'text': 3})\n",
}


def test_creation_end_to_end(llm_yard, llm_server):
    reply = json.dumps(
        {
            "name": "reverse-words",
            "files": [{"path": p, "content": c} for p, c in CREATED.items()],
            "explanation": "simple",
            "baseline_tokens": 2500,
        }
    )
    llm_server.reply(reply, prompt_tokens=2000, completion_tokens=900)
    added, fixed = fixer_for(llm_yard).create("reverse the words of a sentence")
    assert added.status == "registered" and fixed is None
    assert llm_yard.run("reverse-words", {"text": "one two"}).output == {"reversed": "two one"}
    rows = llm_yard.ledger.llm_calls(skill="reverse-words")
    # Audit #6/#8: one row per request, tagged with the version it created; the estimate is no call
    assert [(r["purpose"], r["prompt_tokens"], r["completion_tokens"], r["version"]) for r in rows] == [
        ("create", 2000, 900, 1)
    ]
    assert [(b["baseline_tokens"], b["version"]) for b in llm_yard.ledger.baselines("reverse-words")] == [
        (2500, 1)
    ]
    assert totals(llm_yard.ledger, "reverse-words")["baseline_tokens"] == 2500
    assert "created from task" in llm_yard.memory_text("reverse-words")


def test_nothing_to_fix_after_a_creation_that_registered(llm_yard, llm_server):
    """Audit #1: the `[create]` memory note was sent to the LLM as a "runtime error"."""
    reply = json.dumps(
        {"name": "reverse-words", "files": [{"path": p, "content": c} for p, c in CREATED.items()]}
    )
    llm_server.reply(reply)
    added, _ = fixer_for(llm_yard).create("reverse the words of a sentence")
    assert added.status == "registered" and "[create]" in llm_yard.memory_text("reverse-words")
    llm_server.reply(answer({"scripts/rev.py": "never asked for"}))
    outcome = fixer_for(llm_yard).fix("reverse-words")
    assert len(llm_server.requests) == 1  # the creation's only
    assert (
        outcome.status == "fixed"
        and outcome.attempts == []
        and outcome.stop_reason.startswith("nothing to fix")
    )


DIVIDER = "def run(params):\n    return {'r': 10 // params['x']}\n"
DIVIDER_FIXED = "def run(params):\n    x = params['x']\n    return {'r': 10 // x if x else 0}\n"
DIVIDER_TESTS = "from scripts.main import run\n\ndef test_div():\n    assert run({'x': 2}) == {'r': 5}\n"


def test_a_repaired_runtime_error_is_not_sent_again_and_replays_are_not_uses(llm_yard, llm_server, tmp_path):
    """Audit #1/#7: after a fix repaired v1's runtime error, the next `fix` sent v1's error again;
    the fixer's replays of the failing inputs were recorded as uses."""
    d = write_skill(tmp_path / "src", "divider", script=DIVIDER, tests={"test_main.py": DIVIDER_TESTS})
    assert llm_yard.add(d).status == "registered"
    assert fixer_for(llm_yard).fix("divider").stop_reason.startswith("nothing to fix")  # no error yet
    assert llm_yard.run("divider", {"x": 0}).error.kind == "exception"
    assert llm_yard.run("divider", {"x": 5}).ok
    llm_server.reply(answer({"scripts/main.py": DIVIDER_FIXED}, "guard zero"))
    outcome = fixer_for(llm_yard).fix("divider")
    assert outcome.status == "fixed" and outcome.version == 2
    sent = llm_server.requests[0]["body"]["messages"][1]["content"]
    section = sent.split("## Recent runtime errors\n", 1)[1].split("\n## ", 1)[0]
    assert "v1 exception" in section and "- - " not in section and "[" not in section.splitlines()[0]
    assert "1/1 recorded failing inputs now succeed" in llm_yard.memory_text("divider")
    # the replay was the fixer's own check: no use, no registry call
    assert [(u["version"], u["outcome"]) for u in llm_yard.ledger.uses("divider")] == [
        (1, "exception"),
        (1, "ok"),
    ]
    assert sum(v.calls for v in llm_yard.versions("divider")) == 2
    again = fixer_for(llm_yard).fix("divider")
    assert len(llm_server.requests) == 1 and again.stop_reason.startswith("nothing to fix")


def test_creation_with_broken_code_goes_through_the_fix_loop(llm_yard, llm_server):
    broken = dict(CREATED)
    broken["scripts/rev.py"] = CREATED["scripts/rev.py"].replace("reversed(text.split())", "text.split()")
    llm_server.reply(
        json.dumps(
            {"name": "reverse-words", "files": [{"path": p, "content": c} for p, c in broken.items()]}
        ),
        prompt_tokens=2000,
        completion_tokens=900,
    )
    llm_server.reply(
        answer({"scripts/rev.py": CREATED["scripts/rev.py"]}), prompt_tokens=1800, completion_tokens=300
    )
    added, fixed = fixer_for(llm_yard).create("reverse the words of a sentence", name="reverse-words")
    assert added.status == "blocked" and fixed.status == "fixed"
    assert [v.status for v in llm_yard.versions("reverse-words")] == ["blocked", "registered"]
    purposes = sorted(r["purpose"] for r in llm_yard.ledger.llm_calls(skill="reverse-words"))
    assert purposes == ["create", "fix"]


def test_creation_with_invalid_package_retries_then_fails_cleanly(llm_yard, llm_server):
    bad = json.dumps({"name": "Bad Name", "files": [{"path": "SKILL.md", "content": "no frontmatter"}]})
    llm_server.reply(bad).reply(bad)
    with pytest.raises(FixError, match="malformed twice"):
        fixer_for(llm_yard).create("anything")
    assert llm_yard.list() == []


# -- frozen tests (issue: the gate that cannot be forged) --------------------------------------------
CONFTEST_PATCH = (
    "import scripts.main as m\n\ndef _run(params):\n    a, b = params['a'], params['b']\n"
    "    return {'sum': a + b, 'product': a * b}\n\nm.run = _run\n"
)


@pytest.mark.parametrize(
    "files, why",
    [
        ({"tests/conftest.py": CONFTEST_PATCH}, "tests are frozen"),  # the issue's own trick
        ({"conftest.py": CONFTEST_PATCH}, "conftest.py"),
        ({"json.py": "dumps = None\n"}, "import name 'json'"),
        (
            {"scripts/plugin.py": "def pytest_collection_modifyitems(items):\n    items.clear()\n"},
            "pytest hooks",
        ),
        ({"pytest_sy.py": "X = 1\n"}, "pytest plugin"),
        ({"tests/test_main.py": None}, "tests are frozen"),  # deleting a frozen test
    ],
    ids=["tests-conftest", "root-conftest", "shadowing", "hooks", "plugin-name", "delete-test"],
)
def test_answers_that_touch_the_judge_are_refused(llm_yard, llm_server, blocked_skill, files, why):
    edits = [{"path": p, "content": c} for p, c in files.items()]
    llm_server.reply(json.dumps({"files": edits, "explanation": "trick"}))
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=1)
    assert [a.outcome for a in outcome.attempts] == ["refused"], outcome.attempts
    assert why in outcome.attempts[0].reasons[0]
    assert [v.status for v in llm_yard.versions("adder")] == ["blocked"]  # nothing was gated
    (row,) = llm_yard.ledger.llm_calls(skill="adder")
    assert row["outcome"] == "refused"


def test_new_test_files_need_leave_and_run_apart_from_the_frozen_ones(llm_yard, llm_server, blocked_skill):
    failing_new = (
        "from scripts.main import run\n\ndef test_more():\n    assert run({'a': 1, 'b': 1})['sum'] == 3\n"
    )
    passing_new = (
        "from scripts.main import run\n\ndef test_more():\n    assert run({'a': 1, 'b': 1})['sum'] == 2\n"
    )
    llm_server.reply(answer({"scripts/main.py": FIXED, "tests/test_more.py": failing_new}))
    llm_server.reply(answer({"scripts/main.py": FIXED, "tests/test_more.py": passing_new}))
    outcome = fixer_for(llm_yard).fix("adder", max_attempts=2, allow_test_edits=True)
    first, second = outcome.attempts
    assert first.outcome == "blocked"
    assert any(r.startswith("the test files the fix added:") for r in first.reasons), first.reasons
    assert second.outcome == "registered" and outcome.status == "fixed"
    report = llm_yard.versions("adder")[-1].gate_report
    names = [c["name"] for c in report["cases"]]
    assert (
        "tests/test_main.py::test_sum" in names
        and "(added by the fix) tests/test_more.py::test_more" in names
    )


def test_attempt_numbers_continue_across_fix_runs(llm_yard, llm_server, blocked_skill):
    still_wrong = BUGGY.replace("+ 1}", "+ 2}")
    llm_server.reply(answer({"scripts/main.py": still_wrong}))
    first = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert [a.number for a in first.attempts] == [1]  # no progress: it stopped after one
    llm_server.reply(answer({"scripts/main.py": FIXED}))
    second = fixer_for(llm_yard).fix("adder", max_attempts=3)
    assert [a.number for a in second.attempts] == [2] and second.status == "fixed"
    assert "attempt 1 (v2) still blocked" in llm_yard.memory_text("adder")


def test_a_retried_request_is_its_own_ledger_row(llm_yard, llm_server, blocked_skill):
    llm_server.error(429, "slow down").error(503, "busy")
    llm_server.reply(answer({"scripts/main.py": FIXED}), prompt_tokens=900, completion_tokens=100)
    outcome = fixer_for(llm_yard, max_retries=2).fix("adder")
    assert outcome.status == "fixed"
    rows = llm_yard.ledger.llm_calls(skill="adder")
    assert len(llm_server.requests) == 3 == len(rows)
    assert [(r["outcome"], r["prompt_tokens"]) for r in rows] == [("error", 0), ("error", 0), ("ok", 900)]
    assert "HTTP 429" in rows[0]["detail"] and "HTTP 503" in rows[1]["detail"]


def test_create_refuses_a_taken_name_unless_told_to_replace(llm_yard, llm_server, blocked_skill):
    with pytest.raises(FixError, match="exists: pass --replace"):
        fixer_for(llm_yard).create("add two numbers", name="adder")
    assert llm_server.requests == []  # refused before any LLM call
    # The model picking a taken name is told to choose another.
    taken = {**CREATED, "SKILL.md": CREATED["SKILL.md"].replace("reverse-words", "adder")}
    llm_server.reply(
        json.dumps({"name": "adder", "files": [{"path": p, "content": c} for p, c in taken.items()]})
    )
    llm_server.reply(
        json.dumps(
            {"name": "reverse-words", "files": [{"path": p, "content": c} for p, c in CREATED.items()]}
        )
    )
    added, _ = fixer_for(llm_yard).create("reverse the words of a sentence")
    assert added.name == "reverse-words"
    assert "already exists: choose another name" in llm_server.requests[1]["body"]["messages"][-1]["content"]


def test_tests_for_a_skill_without_tests(llm_yard, llm_server, tmp_path):
    d = write_skill(tmp_path / "src", "adder", script=FIXED, tests={})
    blocked = llm_yard.add(d)
    assert blocked.status == "blocked" and "--tests-for adder" in blocked.reasons[0]
    vacuous = "from scripts.main import run\n\ndef test_x():\n    run({'a': 1, 'b': 2})\n"
    llm_server.reply(answer({"tests/test_main.py": vacuous}))
    llm_server.reply(answer({"tests/test_main.py": TESTS}))
    added, _ = fixer_for(llm_yard).create_tests("adder", max_attempts=2)
    assert added.status == "registered"
    assert [v.status for v in llm_yard.versions("adder")] == ["blocked", "blocked", "registered"]
    second = llm_server.requests[1]["body"]["messages"][1]["content"]
    assert "mutants" in second  # the vacuous first try was blocked by the mutation check, and it was said


def test_notes_keep_whole_identifiers(tmp_path):
    path = tmp_path / ".memory.md"
    long_id = "tests/test_main.py::test_" + "x" * 60
    text = "blocked: " + "; ".join(f"{long_id}{i}" for i in range(10))
    notes.add_entry(path, "gate", text)
    (entry,) = notes.entries(path.read_text())
    words = entry.text.rstrip(" …").split()
    assert all(
        w.rstrip(";").startswith("tests/test_main.py::test_") and len(w.rstrip(";")) >= len(long_id) + 1
        for w in words[1:]
    )
