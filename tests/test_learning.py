"""Learning skills from experience: extraction decisions (add, merge, discard) on scripted
conversations and event records, against a scripted OpenAI-compatible model on loopback
(real HTTP), real LanceDB; the skills with code go through the real gate on Docker.

Most tests need no engine: instructions-only skills are never gated or run.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from runtime import accounting
from runtime.audit import AuditLog
from runtime.config import Settings
from runtime.experience import Experience, ExperienceIn
from runtime.learning import Learner, bump_patch, semver_of
from runtime.llm import LLM
from runtime.testing import PrebuiltImages
from runtime.yard import Yard
from sandbox import Sandbox
from tests.conftest import WHEELHOUSE
from tests.llm_server import ScriptedLLM

PREFERENCE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What's the weather like in Oslo tomorrow?"},
    {"role": "assistant", "content": "Tomorrow Oslo will be around 50°F with light rain."},
    {
        "role": "user",
        "content": "Please always give temperatures in Celsius, never Fahrenheit. "
        "From now on use metric units.",
    },
    {"role": "assistant", "content": "Understood: about 10 °C with light rain."},
]
ONE_OFF = [
    {"role": "user", "content": "What is the capital of Australia?"},
    {"role": "assistant", "content": "Canberra."},
]
CORRECTION = [
    {"role": "user", "content": "How warm is a sauna usually?"},
    {"role": "assistant", "content": "Usually 80-100 °C, which is 353-373 K."},
    {"role": "user", "content": "No, don't add Kelvin, and round temperatures to whole degrees."},
    {"role": "assistant", "content": "Usually 80-100 °C."},
]
METRIC_INSTRUCTIONS = "Give every temperature in Celsius and every length in metres. Never use Fahrenheit."


def candidate(
    name: str = "metric-units",
    *,
    evidence: list[str] | None = None,
    description: str = "Answer with metric units: temperatures in Celsius, lengths in metres.",
    instructions: str = METRIC_INSTRUCTIONS,
    kind: str = "preference",
    files: dict[str, str] | None = None,
    reason: str = "the user set a lasting preference",
) -> str:
    skill = {
        "name": name,
        "description": description,
        "instructions": instructions,
        "kind": kind,
        "evidence": evidence or ["always give temperatures in Celsius, never Fahrenheit"],
        "tags": ["units"],
        "files": [{"path": p, "content": c} for p, c in (files or {}).items()],
    }
    return json.dumps({"skill": skill, "reason": reason})


def nothing(reason: str = "a one-off factual question") -> str:
    return json.dumps({"skill": None, "reason": reason})


def decision(action: str, target: str | None = None, **merged: str) -> str:
    return json.dumps({"action": action, "target": target, "reason": f"{action} it", **merged})


@pytest.fixture
def llm_server():
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm_settings(tmp_path, llm_server) -> Settings:
    return Settings(
        home=tmp_path / "home",
        wheelhouse=WHEELHOUSE,
        mutants=6,
        openai_base_url=llm_server.url,
        openai_api_key="sk-test",
        model="gpt-4o-mini",
    )


@pytest.fixture
def instr_yard(llm_settings, scripted_backend):
    """A yard with no engine: instructions-only skills need none."""
    y = Yard(llm_settings, sandbox=Sandbox(scripted_backend), images=PrebuiltImages(), pool=False)
    yield y
    y.close()


def learner(yard: Yard, **options) -> Learner:
    return Learner(yard, LLM(yard.settings, max_retries=0), audit=AuditLog(yard.home), **options)


def audit_entries(yard: Yard) -> list[dict]:
    return AuditLog(yard.home).query(event="learn")


# --------------------------------------------------------------------------- durable signals


def test_signals_tell_durable_lessons_from_one_off_requests():
    assert Experience.of_messages(ONE_OFF).signals() == []
    assert Experience.of_messages([{"role": "user", "content": "Translate 'dog' to French."}]).signals() == []
    kinds = {s.kind for s in Experience.of_messages(PREFERENCE).signals()}
    assert kinds == {"preference"}
    assert {s.kind for s in Experience.of_messages(CORRECTION).signals()} >= {"correction"}
    steps = "To release: 1. bump the version\n2. tag it\n3. push the tag"
    assert [s.kind for s in Experience.of_messages([{"role": "user", "content": steps}]).signals()] == [
        "procedure"
    ]
    # only what the user said counts: an assistant's "always" teaches nothing about the user
    said = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "I always answer in rhyme."}]
    assert Experience.of_messages(said).signals() == []
    events = Experience.of_events([{"type": "user_correction", "text": "the date format of the report"}])
    assert [s.kind for s in events.signals()] == ["events"]
    assert Experience.of_events([{"type": "click", "text": "opened a page"}]).signals() == []


def test_experience_input_is_checked_at_the_boundary():
    with pytest.raises(ValueError, match="either a non-empty `messages` list or a non-empty `events`"):
        ExperienceIn.model_validate({"messages": ONE_OFF, "events": [{"type": "x"}]})
    with pytest.raises(ValueError):
        ExperienceIn.model_validate({"messages": []})
    with pytest.raises(ValueError):
        ExperienceIn.model_validate({"messages": [{"role": "wizard", "content": "hi"}]})
    parts = {
        "role": "user",
        "content": [{"type": "text", "text": "always "}, {"type": "text", "text": "metric"}],
    }
    exp = ExperienceIn.model_validate({"messages": [parts]}).experience()
    assert exp.user_texts() == ["always metric"] and exp.contains("ALWAYS   metric")


def test_semver_patch_bumps():
    assert bump_patch(None) == "0.1.1" and bump_patch("0.1.0") == "0.1.1" and bump_patch("2.3.9") == "2.3.10"
    assert bump_patch("not-a-version") == "0.1.1"


# --------------------------------------------------------------------------- decisions


def test_a_one_off_request_is_discarded_without_asking_the_model(instr_yard, llm_server):
    outcome = learner(instr_yard).learn(Experience.of_messages(ONE_OFF))
    assert outcome.decision == "discard" and "one-off request" in outcome.reason
    assert outcome.tokens == 0 and llm_server.requests == []  # not one token spent
    assert instr_yard.list() == [] and instr_yard.ledger.llm_calls() == []
    [entry] = audit_entries(instr_yard)
    assert entry["outcome"] == "discard" and "one-off" in entry["reason"] and entry["tokens"] == 0


def test_now_forces_extraction_and_a_model_that_finds_nothing_adds_nothing(instr_yard, llm_server):
    llm_server.reply(nothing(), prompt_tokens=700, completion_tokens=20)
    outcome = learner(instr_yard).learn(Experience.of_messages(ONE_OFF), now=True)
    assert outcome.decision == "discard" and outcome.reason == "a one-off factual question"
    assert outcome.tokens == 720 and len(llm_server.requests) == 1
    sent = llm_server.requests[0]["body"]["messages"]
    assert "AT MOST ONE skill" in sent[0]["content"] and "capital of Australia" in sent[1]["content"]
    assert instr_yard.list() == []
    [row] = instr_yard.ledger.llm_calls()
    assert row["purpose"] == "learn" and row["skill"].startswith("(learning-")
    loose = accounting.unattributed(instr_yard.ledger)
    assert loose["learning_without_skill"] == {
        "count": 1,
        "llm_calls": 1,
        "total_tokens": 720,
        "cost_usd": 0.0,
    }


def test_a_durable_preference_becomes_an_instructions_skill(instr_yard, llm_server):
    llm_server.reply(candidate(), prompt_tokens=900, completion_tokens=150)
    outcome = learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    assert (outcome.decision, outcome.status, outcome.version, outcome.tier) == (
        "add",
        "registered",
        1,
        "instructions",
    )
    assert outcome.semver == "0.1.0" and len(llm_server.requests) == 1  # nothing similar: no decision call
    rec = instr_yard.registry.get("metric-units")
    assert rec.status == "registered" and rec.gate.tests == 0  # instructions: registered, never gated
    pkg = instr_yard.package("metric-units", 1)
    assert pkg.files.keys() == {"SKILL.md"} and semver_of(pkg) == "0.1.0"
    assert pkg.meta.metadata["learned-from"] == "conversation" and METRIC_INSTRUCTIONS in pkg.instructions
    # its tokens are the skill's, as learning invested in it
    [row] = instr_yard.ledger.llm_calls(skill="metric-units")
    assert (row["purpose"], row["version"], row["prompt_tokens"]) == ("learn", 1, 900)
    [cost] = accounting.report(instr_yard, "metric-units")
    assert cost.learning_tokens == 1050 and cost.invested_tokens == 1050
    [entry] = audit_entries(instr_yard)
    assert (entry["outcome"], entry["skill"], entry["version"], entry["tokens"]) == (
        "add",
        "metric-units",
        1,
        1050,
    )
    assert "no similar skill" in entry["reason"]
    assert "learn" in instr_yard.memory_text("metric-units")


def test_a_correction_merges_into_the_similar_skill_as_a_new_patch_version(instr_yard, llm_server):
    llm_server.reply(candidate(), prompt_tokens=900, completion_tokens=150)
    assert learner(instr_yard).learn(Experience.of_messages(PREFERENCE)).version == 1
    merged_text = METRIC_INSTRUCTIONS + " Round temperatures to whole degrees; never add Kelvin."
    llm_server.reply(
        candidate(
            "metric-temperatures",
            description="Give temperatures in Celsius, rounded, without Kelvin.",
            instructions="Round temperatures to whole degrees Celsius. Do not add Kelvin.",
            kind="correction",
            evidence=["don't add Kelvin"],
        ),
        prompt_tokens=800,
        completion_tokens=100,
    )
    llm_server.reply(
        decision(
            "merge",
            "metric-units",
            description="Answer with metric units: temperatures in whole degrees Celsius, lengths in metres.",
            instructions=merged_text,
        ),
        prompt_tokens=1200,
        completion_tokens=200,
    )
    outcome = learner(instr_yard).learn(Experience.of_messages(CORRECTION))
    assert (outcome.decision, outcome.skill, outcome.version, outcome.status) == (
        "merge",
        "metric-units",
        2,
        "registered",
    )
    assert (outcome.previous_semver, outcome.semver) == ("0.1.0", "0.1.1")
    assert [r.record.name for r in outcome.related] == ["metric-units"]
    # the decision saw the candidate and the existing skill
    shown = llm_server.requests[2]["body"]["messages"][1]["content"]
    assert "metric-temperatures" in shown and "Existing skill metric-units v1" in shown
    # history kept: v1 and v2, v2 current with the merged instructions
    assert [(v.version, v.status, v.current) for v in instr_yard.versions("metric-units")] == [
        (1, "registered", False),
        (2, "registered", True),
    ]
    assert "never add Kelvin" in instr_yard.package("metric-units", 2).instructions
    assert instr_yard.registry.get("metric-temperatures") is None
    # both learning runs' tokens are the skill's
    rows = instr_yard.ledger.llm_calls(skill="metric-units")
    assert sorted((r["version"], r["prompt_tokens"]) for r in rows) == [(1, 900), (2, 800), (2, 1200)]
    assert audit_entries(instr_yard)[-1]["outcome"] == "merge"


def test_a_candidate_already_known_is_discarded(instr_yard, llm_server):
    llm_server.reply(candidate())
    learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    llm_server.reply(candidate("celsius-please", description="Use Celsius for temperatures, not Fahrenheit."))
    llm_server.reply(decision("discard"))
    outcome = learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    assert outcome.decision == "discard" and outcome.version is None
    assert [r.name for r in instr_yard.list()] == ["metric-units"] and len(
        instr_yard.versions("metric-units")
    ) == 1
    assert audit_entries(instr_yard)[-1]["outcome"] == "discard"


def test_a_decision_naming_a_skill_not_shown_gets_one_correction(instr_yard, llm_server):
    llm_server.reply(candidate())
    learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    llm_server.reply(candidate("celsius-please", description="Use Celsius for temperatures, not Fahrenheit."))
    llm_server.reply(decision("merge", "no-such-skill", description="d", instructions="i"))
    llm_server.reply(decision("discard"))
    outcome = learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    assert outcome.decision == "discard"
    retry = llm_server.requests[-1]["body"]["messages"][-1]["content"]
    assert "target must be one of ['metric-units']" in retry
    outcomes = [r["outcome"] for r in instr_yard.ledger.llm_calls()]
    assert outcomes.count("malformed") == 1


def test_invented_evidence_is_not_learnt(instr_yard, llm_server):
    llm_server.reply(candidate(evidence=["I love the imperial system"]))
    outcome = learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    assert outcome.decision == "discard" and "not in the experience" in outcome.reason
    assert instr_yard.list() == []


def test_a_dry_run_shows_the_decision_and_writes_nothing(instr_yard, llm_server):
    llm_server.reply(candidate())
    outcome = learner(instr_yard).learn(Experience.of_messages(PREFERENCE), dry_run=True)
    assert outcome.dry_run and outcome.decision == "add" and outcome.version is None
    assert outcome.skill_md is not None and METRIC_INSTRUCTIONS in outcome.skill_md
    assert instr_yard.list() == [] and not instr_yard.workspace("metric-units").exists()
    [entry] = audit_entries(instr_yard)
    assert entry["outcome"] == "dry_run" and entry["decision"] == "add" and entry["dry_run"] is True
    # the model's tokens were spent: they stay on the learning run, not on a skill
    assert accounting.unattributed(instr_yard.ledger)["learning_without_skill"]["count"] == 1


def test_event_records_teach_a_procedure(instr_yard, llm_server):
    events = [
        {"type": "user_correction", "text": "Release notes must list breaking changes first."},
        {"type": "deploy", "text": "ran the release script", "outcome": "ok"},
    ]
    llm_server.reply(
        candidate(
            "release-notes-order",
            description="Write release notes with breaking changes first.",
            instructions="List breaking changes first, then features, then fixes.",
            kind="procedure",
            evidence=["must list breaking changes first"],
        )
    )
    outcome = learner(instr_yard).learn(Experience.of_events(events))
    assert (outcome.decision, outcome.status) == ("add", "registered")
    sent = llm_server.requests[0]["body"]["messages"][1]["content"]
    assert "event records" in sent and "[event user_correction]" in sent
    assert instr_yard.package("release-notes-order", 1).meta.metadata["learned-from"] == "events"


def test_a_malformed_candidate_gets_one_correction_then_fails_cleanly(instr_yard, llm_server):
    llm_server.reply("not json at all")
    llm_server.reply(json.dumps({"skill": {"name": "Bad Name!"}, "reason": "x"}))
    with pytest.raises(Exception, match="malformed twice"):
        learner(instr_yard).learn(Experience.of_messages(PREFERENCE))
    assert instr_yard.list() == []
    [entry] = audit_entries(instr_yard)
    assert entry["outcome"] == "error" and entry["error"] == "fix"
    assert [r["outcome"] for r in instr_yard.ledger.llm_calls()] == ["malformed", "malformed"]


# --------------------------------------------------------------------------- code: the gate decides

CONVERT = textwrap.dedent("""
    def run(params):
        c = params["celsius"]
        if not isinstance(c, (int, float)):
            raise ValueError("celsius must be a number")
        return {"fahrenheit": round(c * 9 / 5 + 32, 1)}
""")
CONVERT_TESTS = textwrap.dedent("""
    import pytest
    from scripts.convert import run

    def test_boiling():
        assert run({"celsius": 100}) == {"fahrenheit": 212.0}

    def test_freezing_and_body():
        assert run({"celsius": 0}) == {"fahrenheit": 32.0}
        assert run({"celsius": 37}) == {"fahrenheit": 98.6}
        assert run({"celsius": -40}) == {"fahrenheit": -40.0}

    def test_not_a_number():
        with pytest.raises(ValueError, match="must be a number"):
            run({"celsius": "hot"})
""")
SIDECAR = "entrypoint: scripts/convert.py:run\ninput_schema:\n  type: object\n  required: [celsius]\n"
CONVERSION = [
    {"role": "user", "content": "Convert 30 C to F."},
    {"role": "assistant", "content": "About 86 F."},
    {"role": "user", "content": "Always compute conversions exactly with F = C * 9/5 + 32, rounded to 0.1."},
]


@pytest.fixture
def code_yard(llm_settings, backend, runner_image):
    y = Yard(llm_settings, sandbox=Sandbox(backend), pool=False)
    y.runner = runner_image
    yield y
    y.close()


def code_candidate(script: str) -> str:
    return candidate(
        "celsius-to-fahrenheit",
        description="Convert Celsius to Fahrenheit exactly (F = C * 9/5 + 32, one decimal).",
        instructions="Call the tool with celsius; it returns fahrenheit rounded to 0.1.",
        kind="procedure",
        evidence=["compute conversions exactly with F = C * 9/5 + 32"],
        files={
            "scripts/convert.py": script,
            "tests/test_convert.py": CONVERT_TESTS,
            "skillyard.yaml": SIDECAR,
        },
    )


def test_a_skill_with_code_registers_only_when_its_gate_passes(code_yard, llm_server):
    wrong = CONVERT.replace("+ 32", "+ 33")
    llm_server.reply(code_candidate(wrong))
    blocked = learner(code_yard).learn(Experience.of_messages(CONVERSION))
    assert (blocked.decision, blocked.status, blocked.tier) == ("add", "blocked", "code")
    assert "the gate blocked v1" in blocked.reason and blocked.gate["failures"] >= 1
    assert code_yard.registry.get("celsius-to-fahrenheit").status == "blocked"
    assert code_yard.run("celsius-to-fahrenheit", {"celsius": 100}).error.kind == "not_registered"

    # the lesson learnt again with code that is right: v2 of that skill, and the gate lets it in
    llm_server.reply(code_candidate(CONVERT))
    added = learner(code_yard).learn(Experience.of_messages(CONVERSION))
    assert (added.decision, added.status, added.version) == ("add", "registered", 2), added.to_dict()
    assert added.gate["passed"] and added.gate["tests"] == 3 and added.gate["mutation_score"] >= 60
    assert len(llm_server.requests) == 2  # nothing similar was registered: no decision request
    assert code_yard.run("celsius-to-fahrenheit", {"celsius": 37}).output == {"fahrenheit": 98.6}


# --------------------------------------------------------------------------- the CLI


def test_learn_command_dry_run_and_add(tmp_path: Path, llm_settings, llm_server, monkeypatch):
    from runtime import logs
    from runtime.cli.learn import learn_command
    from runtime.config import get_settings

    logs.configure("WARNING")  # as the `skillyard` group does: logs on stderr, stdout is the JSON
    monkeypatch.setenv("SKILLYARD_HOME", str(llm_settings.home))
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("SKILLYARD_STORE_URI", raising=False)
    get_settings.cache_clear()
    try:
        conversation = tmp_path / "conversation.json"
        conversation.write_text(json.dumps({"messages": PREFERENCE}))
        runner = CliRunner()
        llm_server.reply(candidate())
        dry = runner.invoke(learn_command, [str(conversation), "--dry-run", "--json"], catch_exceptions=False)
        assert dry.exit_code == 0, dry.output
        data = json.loads(dry.stdout)
        assert data["dry_run"] and data["decision"] == "add" and data["version"] is None
        one_off = tmp_path / "one-off.json"
        one_off.write_text(json.dumps(ONE_OFF))  # a bare list of messages
        text = runner.invoke(learn_command, [str(one_off)], catch_exceptions=False)
        assert text.exit_code == 0 and "discard" in text.stdout and "--now" in text.stdout
        llm_server.reply(candidate())
        real = runner.invoke(learn_command, [str(conversation), "--json"], catch_exceptions=False)
        assert json.loads(real.stdout)["status"] == "registered"
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        failed = runner.invoke(learn_command, [str(bad)])
        assert failed.exit_code == 1 and "is not JSON" in failed.output
        assert len(llm_server.requests) == 2
    finally:
        get_settings.cache_clear()
