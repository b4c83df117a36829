"""What happens around a run, tested with no container engine: the scripted backend
answers each run (sandbox.testing), skills are host functions (runtime.testing), and
the store is real LanceDB in tmp. The call path (accounting, notes, the image retry),
the one tenant call path of the servers, and each surface's one error mapping."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from runtime.cli import cli
from runtime.errors import InvalidInput, TooManyRuns, UnknownSkill
from runtime.http import create_app
from runtime.mcp_server import SkillTools, tool_error
from runtime.records import GateSummary
from runtime.serving import Service, check_input
from runtime.testing import PrebuiltImages, register, skill_calls
from runtime.yard import Yard
from sandbox import ImageMissing, RunResult, RunSpec, Sandbox, SandboxError
from sandbox.testing import ScriptedBackend

SKILL_MD = "---\nname: {name}\ndescription: {description}\n---\n# {name}\nUse it.\n"
SIDECAR = (
    "entrypoint: scripts/main.py:run\n"
    "input_schema: {type: object, properties: {x: {type: integer}}, required: [x],"
    " additionalProperties: false}\n"
)


def files(name: str = "double", description: str = "Doubles a number.") -> dict[str, bytes]:
    return {
        "SKILL.md": SKILL_MD.format(name=name, description=description).encode(),
        "skillyard.yaml": SIDECAR.encode(),
        "scripts/main.py": b"def run(params):\n    return {'value': params['x'] * 2}\n",
    }


def double(params):
    if params["x"] < 0:
        raise ValueError("negative numbers are not supported")
    return {"value": params["x"] * 2}


@pytest.fixture
def yard(scripted_yard, scripted_backend):
    scripted_backend.handler = skill_calls({"double": double})
    register(scripted_yard, files())
    return scripted_yard


# -- the scripted backend ------------------------------------------------------------------------------
def test_scripted_backend_answers_and_records_every_spec():
    backend = ScriptedBackend(results=[RunResult(exit_code=0, stdout=b"hi\n")])
    result = Sandbox(backend, image="any").run(["echo", "hi"], env={"A": "1"})
    assert result.ok and result.stdout == b"hi\n"
    assert [(s.argv, s.env) for s in backend.specs] == [(["echo", "hi"], {"A": "1"})]
    with pytest.raises(SandboxError, match="no result left"):
        Sandbox(backend, image="any").run(["echo"])
    with pytest.raises(ValueError, match="argv"):  # validated as the real backends validate
        backend.run(RunSpec(image="any", argv=[]))


# -- the call path -------------------------------------------------------------------------------------
def test_a_call_is_counted_and_recorded_as_a_use(yard):
    result = yard.run("double", {"x": 21})
    assert result.ok and result.output == {"value": 42}
    rec = yard.registry.get("double")
    assert (rec.calls, rec.failures) == (1, 0)
    assert [(u["skill"], u["outcome"]) for u in yard.ledger.uses("double")] == [("double", "ok")]


def test_a_skills_own_failure_is_noted_and_its_input_kept(yard):
    result = yard.run("double", {"x": -1})
    assert not result.ok and result.error.kind == "exception" and result.error.type == "ValueError"
    assert yard.registry.get("double").failures == 1
    assert "[exception]" in yard.memory_text("double") and "negative numbers" in yard.memory_text("double")
    assert yard.failed_inputs("double") == [{"x": -1}]


def test_what_is_not_a_use_counts_nothing(yard, scripted_backend):
    assert yard.run("double", {"x": "two"}).error.kind == "invalid_input"  # the schema refuses it
    assert yard.run("nope", {}).error.kind == "not_found"
    scripted_backend.handler = lambda spec: RunResult(exit_code=None, error="the engine went away")
    assert yard.run("double", {"x": 1}).error.kind == "sandbox"
    register(
        yard, files(description="Doubles, badly."), gate=GateSummary(False, 1, 1, 0, 0, 10.0, 0.1, ["bad"])
    )
    assert yard.run("double", {"x": 1}, version=2).error.kind == "not_registered"
    assert (yard.registry.get("double", 1).calls, yard.ledger.uses("double"), yard.memory_text("double")) == (
        0,
        [],
        "",
    )


def test_an_image_removed_behind_our_back_is_asked_for_again_once(settings):
    asked: list[bool] = []

    class Images(PrebuiltImages):
        def image_for(self, pkg, *, fresh=False):
            asked.append(fresh)
            return super().image_for(pkg, fresh=fresh)

    answer = skill_calls({"double": double})
    backend = ScriptedBackend(lambda spec: answer(spec) if len(backend.specs) > 1 else _missing())
    yard = Yard(settings, sandbox=Sandbox(backend), images=Images(), pool=False)
    register(yard, files())
    assert yard.run("double", {"x": 2}).output == {"value": 4}
    assert asked == [False, True] and len(backend.specs) == 2
    yard.close()


def _missing() -> RunResult:
    raise ImageMissing("the image is not on the engine")


def test_a_long_lived_yard_accounts_on_its_own_thread(settings, scripted_backend):
    scripted_backend.handler = skill_calls({"double": double})
    strict = Yard(
        settings, sandbox=Sandbox(scripted_backend), images=PrebuiltImages(), pool=False, long_lived=True
    )
    try:
        register(strict, files())
        assert [strict.run("double", {"x": i}).output for i in range(3)] == [
            {"value": i * 2} for i in range(3)
        ]
        assert strict.accounting_thread_running
        strict.flush()
        assert strict.registry.get("double").calls == 3 and len(strict.ledger.uses("double")) == 3
    finally:
        strict.close()


# -- the tenant call path ------------------------------------------------------------------------------
def test_input_is_checked_once_for_every_surface():
    check_input({"a": [1, 2.5, {"b": "x"}]})
    with pytest.raises(InvalidInput, match=r"input\.a\[1\] is not a finite number"):
        check_input({"a": [1, float("nan")]})
    with pytest.raises(InvalidInput, match="nested deeper than 64"):
        check_input(json.loads("[" * 70 + "]" * 70))


def test_the_resolved_record_is_the_one_that_runs(yard, settings):
    service = Service(settings, yard_factory=lambda s: yard, max_concurrent_runs=1)
    view = service.view(None)
    target = view.resolve("double")
    register(yard, files(description="Doubles, version 2."))  # becomes current after the resolve
    assert service.call(view, target, {"x": 1}, via="test").version == 1
    service.acquire_run(view.tenant, "double")
    with pytest.raises(TooManyRuns, match="the limit is 1"):
        service.call(view, target, {"x": 1})
    with pytest.raises(TooManyRuns):
        service.call(view, target, {"x": 2})
    service.release_run(view.tenant)
    entries = [
        (e["outcome"], e.get("error"), e.get("via"), e.get("count"))
        for e in service.audit.query(skill="double")
    ]
    assert entries == [("ok", None, "test", None), ("refused", "too_many_runs", None, 2)]


# -- each surface's error mapping ----------------------------------------------------------------------
@pytest.fixture
def http(yard, settings):
    from runtime.tenants import Tenants

    tenants = Tenants(settings.home)
    keys = {"root": tenants.add_tenant("root", admin=True), "bob": tenants.add_tenant("bob")}
    app = create_app(settings, yard_factory=lambda s: yard if s.home == settings.home else _private(s, yard))
    with TestClient(app) as client:
        yield client, keys


def _private(s, shared):
    return Yard(s, sandbox=shared.sandbox, images=PrebuiltImages(), pool=False)


def test_http_maps_each_error_kind_once(http, yard):
    client, keys = http
    root = {"Authorization": f"Bearer {keys['root']}"}
    bob = {"Authorization": f"Bearer {keys['bob']}"}
    ok = client.post("/v1/skills/double/run", json={"input": {"x": 4}}, headers=bob)
    assert ok.status_code == 200 and ok.json()["output"] == {"value": 8}
    missing = client.get("/v1/skills/nope", headers=bob)
    assert (
        missing.status_code == 404
        and missing.json()["error"] == "no skill nope: list skills with GET /v1/skills"
    )
    as_json = {**bob, "Content-Type": "application/json"}
    bad = client.post("/v1/skills/double/run", content='{"input": {"x": NaN}}', headers=as_json)
    assert bad.status_code == 422 and "input.x is not a finite number" in bad.json()["error"]
    forbidden = client.post("/v1/skills/double/rollback", json={"version": 1}, headers=bob)
    assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]
    gone = client.post("/v1/skills/double/rollback", json={"version": 9}, headers=root)
    assert gone.status_code == 404 and gone.json()["error"] == "double v9 does not exist"
    register(
        yard, files(description="Doubles, badly."), gate=GateSummary(False, 1, 1, 0, 0, 10.0, 0.1, ["bad"])
    )
    conflict = client.post("/v1/skills/double/rollback", json={"version": 2}, headers=root)
    assert (
        conflict.status_code == 409
        and conflict.json()["error"] == "cannot roll double back to v2: it is blocked"
    )
    no_llm = client.post("/v1/skills/double/fix", json={}, headers=root)
    assert no_llm.status_code == 503 and "OPENAI_BASE_URL" in no_llm.json()["error"]
    assert client.get("/v1/jobs/" + "0" * 32, headers=bob).json()["error"] == "no such job"
    audit = client.get("/v1/audit", params={"event": "rollback"}, headers=root).json()
    assert [(e["tenant"], e["outcome"], e["error"]) for e in audit] == [("bob", "refused", "forbidden")]


def test_mcp_maps_each_error_kind_once(yard, settings):
    tools = SkillTools(settings, yard_factory=lambda s: yard)
    view = tools.service.view(None)
    assert "search_skills" in tools.call(view, "Not A Name", {})["content"][0]["text"]
    assert tools.call(view, "double", {"x": float("inf")})["content"][0]["text"].startswith("invalid_input: ")
    assert tools.call(view, "double", {"x": 3})["structured_content"] == {"value": 6}
    engine_down = tool_error(SandboxError("cannot reach the Docker engine at /var/run/docker.sock"))
    assert engine_down["content"][0]["text"] == "the container engine is unavailable; try again later"
    assert tool_error(UnknownSkill("no skill x"))["is_error"]


def test_cli_maps_each_error_kind_once(yard, settings, monkeypatch):
    monkeypatch.setenv("SKILLYARD_HOME", str(settings.home))
    monkeypatch.setenv("SKILLYARD_WHEELHOUSE", str(settings.wheel_dir))
    from runtime.config import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        missing = runner.invoke(cli, ["show", "nope", "--json"])
        assert missing.exit_code == 1
        assert "error: no skill nope: `skillyard list` shows what is registered" in " ".join(
            missing.stderr.split()
        )
        answer = json.loads(missing.stdout)
        assert answer["ok"] is False and answer["error"]["exit_code"] == 1
        assert answer["error"]["message"].startswith("no skill nope: `skillyard list`")
        shown = runner.invoke(cli, ["show", "double", "--json"])
        assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == "double"
        refused = runner.invoke(cli, ["rollback", "double", "7"])
        assert refused.exit_code == 1 and "double v7 does not exist" in refused.stderr
        tenant = runner.invoke(cli, ["tenant", "remove", "nobody"])
        assert tenant.exit_code == 1 and "no tenant 'nobody'" in tenant.stderr
    finally:
        get_settings.cache_clear()
