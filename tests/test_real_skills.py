"""A repository of skills shaped like the public collections (tests/data/real-world) imports
as a user expects, over the CLI, Python, HTTP and MCP: spec-valid instructions become tier
`instructions` (searchable, readable, never run), code without tests is blocked with its
next step, packages that break the rules are rejected with the reason, and discovery says
what it passed over. None of it needs an image: the images are a double that fails the
test if anything asks it to build."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from runtime.cli import cli
from runtime.errors import SkillError
from runtime.http import create_app
from runtime.mcp_server import RESOURCE_PREFIX, SkillTools, build_server
from runtime.records import BLOCKED, INSTRUCTIONS
from runtime.testing import PrebuiltImages
from runtime.validation import validate_path
from runtime.yard import Yard, discover
from sandbox import Sandbox
from sandbox.testing import ScriptedBackend

REPO = Path(__file__).resolve().parent / "data" / "real-world"
INSTRUCTION_SKILLS = {"brand-voice", "meeting-notes", "pptx-style"}
UNTESTED_CODE = {"pdf-extract", "docx-tools", "web-research", "xlsx"}
REJECTED = {"bad-keys": "outside the spec", "données": "valid by the Agent Skills spec"}
SKIPPED = {".claude": "hidden folder", "docs": "no SKILL.md", "template": "no SKILL.md"}


class NoBuilds(PrebuiltImages):
    """Images that must never be built: every package here is settled by the cheap checks."""

    def build(self, pkg):
        raise AssertionError(f"an image was asked for {pkg.name}")

    def judge_image(self, pkg):
        raise AssertionError(f"a judge image was asked for {pkg.name}")

    @property
    def runner(self):
        raise AssertionError("the runner image was asked for")


@pytest.fixture
def repo(tmp_path) -> Path:
    target = tmp_path / "real-world"
    shutil.copytree(REPO, target)
    return target


@pytest.fixture
def yard(settings):
    y = Yard(settings, sandbox=Sandbox(ScriptedBackend()), images=NoBuilds(), pool=False)
    yield y
    y.close()


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- validation: nothing built, nothing written ----------------------------------------------------
def test_validate_says_what_each_skill_is_and_what_was_skipped(repo, settings):
    before = snapshot(repo)
    report = validate_path(repo, settings)
    plans = {r.name: r.plan for r in report.results}
    assert plans == {
        **dict.fromkeys(INSTRUCTION_SKILLS, "instructions"),
        **dict.fromkeys(UNTESTED_CODE, "blocked"),
        **dict.fromkeys(REJECTED, "rejected"),
    }
    by_name = {r.name: r for r in report.results}
    for name in UNTESTED_CODE:
        assert by_name[name].spec_valid and by_name[name].code_files
        assert f"skillyard create --tests-for {name}" in by_name[name].reasons[0]
    for name, fragment in REJECTED.items():
        assert fragment in by_name[name].problems[0]
    assert not by_name["bad-keys"].spec_valid and by_name["données"].spec_valid
    # The repository's edge cases: a numeric metadata value, an empty `metadata:`, a
    # lower-case skill.md, code in core/ and at the skill's root, a node script, requirements.txt.
    assert by_name["docx-tools"].code_files == ["core/convert.py"]
    assert any("skill.md is read as SKILL.md" in n for n in by_name["docx-tools"].notes)
    assert by_name["xlsx"].code_files == ["recalc.py"]
    assert by_name["web-research"].code_files == ["scripts/readable.js"]
    assert by_name["pdf-extract"].requirements == ["pypdf>=4.0"]
    assert {s.path.name: s.reason for s in report.skipped}.keys() == SKIPPED.keys()
    for skipped in report.skipped:
        assert SKIPPED[skipped.path.name] in skipped.reason
    assert not report.ok
    assert snapshot(repo) == before and not settings.home.exists()


def test_validate_cli_json_and_exit_codes(repo, settings, monkeypatch):
    monkeypatch.setenv("SKILLYARD_HOME", str(settings.home))
    runner = CliRunner()
    mixed = runner.invoke(cli, ["validate", "--json", str(repo)])
    assert mixed.exit_code == 2, mixed.output
    data = json.loads(mixed.stdout)
    assert {s["name"]: s["plan"] for s in data["skills"]}["meeting-notes"] == "instructions"
    assert {s["path"].rsplit("/", 1)[-1] for s in data["skipped"]} == set(SKIPPED)
    blocked = next(s for s in data["skills"] if s["name"] == "pdf-extract")
    assert "skillyard create --tests-for pdf-extract" in blocked["next_step"]
    fine = runner.invoke(cli, ["validate", str(repo / "skills" / "brand-voice")])
    assert fine.exit_code == 0 and "instructions" in fine.stdout
    table = runner.invoke(cli, ["validate", str(repo)])
    assert table.exit_code == 2 and "skipped" in table.stdout and "hidden folder" in table.stdout


# -- adding: Python ----------------------------------------------------------------------------------
def test_adding_the_repository_registers_instructions_and_blocks_untested_code(repo, yard):
    outcomes = {o.name: o for o in yard.add_many(discover(repo))}
    for name in INSTRUCTION_SKILLS:
        assert (outcomes[name].status, outcomes[name].tier) == ("registered", INSTRUCTIONS)
        assert not outcomes[name].built and outcomes[name].report is None
    for name in UNTESTED_CODE:
        assert (outcomes[name].status, outcomes[name].tier) == ("blocked", BLOCKED)
        assert f"skillyard create --tests-for {name}" in outcomes[name].reasons[0]
    for name, fragment in REJECTED.items():
        assert outcomes[name].status == "rejected" and fragment in outcomes[name].reasons[0]

    listed = {r.name: (r.status, r.tier) for r in yard.list()}
    assert listed["brand-voice"] == ("registered", INSTRUCTIONS)
    assert listed["pdf-extract"] == ("blocked", BLOCKED)
    assert {r.name for r in yard.list(tier=INSTRUCTIONS)} == INSTRUCTION_SKILLS
    assert yard.record("brand-voice").current and not yard.record("brand-voice").runnable

    # Searchable by what they say, readable, never run, never gated.
    assert (
        yard.search("summarise a meeting transcript into action items", limit=3)[0][0].name == "meeting-notes"
    )
    assert yard.search("banned words for marketing copy", limit=3)[0][0].name == "brand-voice"
    shown = yard.show("brand-voice")
    assert "Never use" in shown["package"].instructions and shown["package"].files["references/glossary.md"]
    refused = yard.run("brand-voice", {})
    assert refused.error.kind == "not_runnable" and "load_skill" in refused.error.message
    assert yard.run("pdf-extract", {}).error.kind == "not_registered"
    with pytest.raises(SkillError, match="instructions only"):
        yard.test("meeting-notes")

    # The same content again is unchanged; its tier and verdict stand.
    again = {o.name: o for o in yard.add_many(discover(repo))}
    assert again["brand-voice"].status == "unchanged" and again["brand-voice"].tier == INSTRUCTIONS
    assert (
        again["pdf-extract"].status == "unchanged"
        and again["pdf-extract"].reasons == outcomes["pdf-extract"].reasons
    )


def test_adding_tests_to_a_blocked_skill_sends_it_to_the_gate(repo, yard, settings):
    """Once the untested skill has tests, the cheap checks pass and the gate has to decide:
    the image is asked for (here: the double refuses, proving no build happened before)."""
    assert yard.add(repo / "skills" / "pdf-extract").status == "blocked"
    tests = repo / "skills" / "pdf-extract" / "tests"
    tests.mkdir()
    (tests / "test_extract.py").write_text("def test_nothing_yet():\n    assert 1 + 1 == 2\n")
    with pytest.raises(AssertionError, match="an image was asked for pdf-extract"):
        yard.add(repo / "skills" / "pdf-extract")


def test_an_instructions_skill_that_older_code_blocked_is_registered_when_added_again(repo, yard):
    from runtime.package import load_package
    from runtime.records import GateSummary

    pkg = load_package(repo / "skills" / "meeting-notes")
    fail = GateSummary(False, 0, 0, 0, 0, None, 0.1, ["no test files: add tests/test_*.py"])
    yard.registry.add_version(  # what the code before tiers recorded (migrated: tier blocked)
        name=pkg.name,
        content_hash=pkg.content_hash,
        status="blocked",
        description=pkg.description,
        tags=[],
        instructions=pkg.instructions,
        gate=fail,
        gate_report={"passed": False},
        package=pkg.to_archive(),
    )
    outcome = yard.add(repo / "skills" / "meeting-notes")
    assert (outcome.status, outcome.tier, outcome.version) == ("registered", INSTRUCTIONS, 2)
    assert yard.record("meeting-notes").current


# -- adding: the CLI ---------------------------------------------------------------------------------
def test_cli_add_list_show_run(repo, settings, monkeypatch):
    monkeypatch.setenv("SKILLYARD_HOME", str(settings.home))
    from runtime.config import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        added = runner.invoke(cli, ["add", "--json", str(repo)])
        assert added.exit_code == 2, added.output  # some were blocked or rejected
        outcomes = {o["name"]: o for o in json.loads(added.stdout)}
        assert outcomes["meeting-notes"]["tier"] == "instructions"
        assert outcomes["xlsx"]["status"] == "blocked" and outcomes["xlsx"]["built"] is False
        assert "hidden folder" in added.stderr
        listed = runner.invoke(cli, ["list", "--tier", "instructions", "--json"])
        assert {r["name"] for r in json.loads(listed.stdout)} == INSTRUCTION_SKILLS
        shown = runner.invoke(cli, ["show", "pptx-style"])
        assert shown.exit_code == 0 and "One idea per slide" in shown.stdout
        assert "None%" not in shown.stdout and "gate: none (instructions only" in shown.stdout
        blocked = runner.invoke(cli, ["show", "web-research"])
        assert "coverage not measured" in blocked.stdout and "None%" not in blocked.stdout
        run = runner.invoke(cli, ["run", "brand-voice", "--input", "{}"])
        assert run.exit_code == 1 and "not_runnable" in run.stderr
    finally:
        get_settings.cache_clear()


# -- the HTTP API and the Python client's shape ------------------------------------------------------
def _archive(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def _wait(client, headers, job_id: str) -> dict:
    for _ in range(600):
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_http_imports_lists_serves_and_refuses_to_run_instructions(repo, yard, settings):
    from runtime.tenants import Tenants

    key = Tenants(settings.home).add_tenant("root", admin=True)
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(settings, yard_factory=lambda s: yard)
    with TestClient(app) as client:
        for folder in ("skills/brand-voice", "skills/docx-tools", "skills/pdf-extract"):
            sent = client.post(
                "/v1/skills",
                params={"shared": "true"},
                content=_archive(repo / folder),
                headers={**headers, "Content-Type": "application/gzip"},
            )
            assert sent.status_code == 202, sent.text
            job = _wait(client, headers, sent.json()["id"])
            assert job["state"] == "succeeded", job
        listed = {s["name"]: s for s in client.get("/v1/skills", headers=headers).json()}
        assert (listed["brand-voice"]["status"], listed["brand-voice"]["tier"]) == (
            "registered",
            "instructions",
        )
        assert (listed["docx-tools"]["status"], listed["docx-tools"]["tier"]) == ("blocked", "blocked")
        only = client.get("/v1/skills", params={"tier": "instructions"}, headers=headers).json()
        assert [s["name"] for s in only] == ["brand-voice"]
        md = client.get("/v1/skills/brand-voice/skill.md", headers=headers)
        assert md.status_code == 200 and "Never use" in md.text
        hits = client.get(
            "/v1/search", params={"q": "brand voice for marketing copy"}, headers=headers
        ).json()
        assert hits[0]["name"] == "brand-voice" and hits[0]["tier"] == "instructions"
        run = client.post("/v1/skills/brand-voice/run", json={"input": {}}, headers=headers)
        assert run.status_code == 409 and run.json()["kind"] == "not_runnable", run.json()
        detail = client.get("/v1/skills/pdf-extract", headers=headers).json()
        assert "skillyard create --tests-for pdf-extract" in detail["gate"]["reasons"][0]


# -- MCP: resources, prompts and load_skill over the protocol ----------------------------------------
def test_mcp_serves_instructions_as_resources_prompts_and_load_skill(repo, yard, settings):
    from mcp import Client

    yard.add_many(discover(repo))
    tools = SkillTools(settings, yard_factory=lambda s: yard)

    async def session() -> dict:
        async with Client(build_server(tools)) as client:
            listed = await client.list_tools()
            resources = await client.list_resources()
            read = await client.read_resource(f"{RESOURCE_PREFIX}brand-voice/SKILL.md")
            glossary = await client.read_resource(f"{RESOURCE_PREFIX}brand-voice/references/glossary.md")
            prompts = await client.list_prompts()
            prompt = await client.get_prompt("meeting-notes")
            loaded = await client.call_tool("load_skill", {"name": "pptx-style"})
            deeper = await client.call_tool(
                "load_skill", {"name": "brand-voice", "path": "references/glossary.md"}
            )
            missing = await client.call_tool("load_skill", {"name": "brand-voice", "path": "nope.md"})
            run = await client.call_tool("brand-voice", {})
            found = await client.call_tool("search_skills", {"query": "slide deck style rules"})
            return locals()

    got = asyncio.run(session())
    tool_names = {t.name for t in got["listed"].tools}
    assert {"search_skills", "load_skill", "test_skill", "fix_skill"} <= tool_names
    assert not tool_names & (INSTRUCTION_SKILLS | UNTESTED_CODE)  # read, not called; blocked: neither
    assert {r.name for r in got["resources"].resources} == INSTRUCTION_SKILLS
    assert "Never use" in got["read"].contents[0].text
    assert "capital S" in got["glossary"].contents[0].text
    assert {p.name for p in got["prompts"].prompts} == INSTRUCTION_SKILLS
    assert "Action items" in got["prompt"].messages[0].content.text
    assert "One idea per slide" in got["loaded"].content[0].text and not got["loaded"].is_error
    assert "capital S" in got["deeper"].content[0].text
    assert got["missing"].is_error and "references/glossary.md" in got["missing"].content[0].text
    assert got["run"].is_error and "not_runnable" in got["run"].content[0].text
    hits = got["found"].structured_content["results"]
    assert hits[0]["name"] == "pptx-style" and hits[0]["tier"] == "instructions"


# -- the LLM's prompts for skills without an entrypoint -------------------------------------------------
def test_tests_for_a_command_skill_and_no_fix_for_instructions(repo, settings, yard):
    """`create --tests-for` on untested command-line code tells the model what the code is
    (no entrypoint assumed); the model's answer is checked like any (here: it writes outside
    tests/, so it is refused and no gate runs). An instructions-only skill has nothing to fix
    or test, and no LLM request is made for it."""
    from runtime.config import Settings
    from runtime.errors import FixError
    from runtime.fixer import Fixer
    from runtime.llm import LLM
    from tests.llm_server import ScriptedLLM

    server = ScriptedLLM().start()
    try:
        llm_settings = Settings(
            home=settings.home, openai_base_url=server.url, openai_api_key="sk-test", model="gpt-4o-mini"
        )
        yard.settings = llm_settings
        yard.add_many(discover(repo))
        fixer = Fixer(yard, LLM(llm_settings))
        bad = json.dumps(
            {"files": [{"path": "scripts/extract.py", "content": "x = 1\n"}], "explanation": "."}
        )
        server.reply(bad).reply(bad)
        with pytest.raises(FixError, match="write only files under tests"):
            fixer.create_tests("pdf-extract", max_attempts=1)
        prompt = server.requests[0]["body"]["messages"][1]["content"]
        assert "`pdf-extract` has no entrypoint" in prompt and "scripts/extract.py" in prompt
        assert "is called through its entrypoint" not in prompt
        asked = len(server.requests)
        with pytest.raises(FixError, match="instructions only"):
            fixer.fix("brand-voice")
        with pytest.raises(FixError, match="instructions-only skill needs no tests"):
            fixer.create_tests("brand-voice")
        assert len(server.requests) == asked
    finally:
        server.stop()


def test_the_python_client_over_real_http(repo, yard, settings):
    """The Python client against a served app on loopback: a folder with a lower-case
    skill.md and untested code imports as blocked, an instructions skill as instructions;
    the tier filter, SKILL.md and the refused run."""
    from runtime.client import SkillyardClient
    from runtime.errors import ApiError
    from runtime.tenants import Tenants
    from tests.helpers import ServerThread

    key = Tenants(settings.home).add_tenant("root", admin=True)
    with (
        ServerThread(create_app(settings, yard_factory=lambda s: yard)) as srv,
        SkillyardClient(srv.url, key) as sy,
    ):
        notes = sy.import_package(repo / "skills" / "meeting-notes", shared=True, wait=True)
        assert notes["result"]["status"] == "registered" and notes["result"]["tier"] == "instructions"
        docx = sy.import_package(repo / "skills" / "docx-tools", shared=True, wait=True)
        assert docx["result"]["status"] == "blocked" and docx["result"]["tier"] == "blocked"
        assert [s["name"] for s in sy.list(tier="instructions")] == ["meeting-notes"]
        assert [s["name"] for s in sy.list(status="blocked")] == ["docx-tools"]
        assert "Action items" in sy.skill_md("meeting-notes")
        with pytest.raises(ApiError) as refused:  # it did not run: an error, not a call result
            sy.run("meeting-notes", {})
        assert refused.value.status == 409 and refused.value.remote_kind == "not_runnable"
        with pytest.raises(ApiError) as missing:
            sy.skill_md("no-such-skill")
        assert missing.value.status == 404
