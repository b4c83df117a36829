"""What API users of a sandbox service expect, over real HTTP and real LanceDB: tenant and
key management for admins (several keys, rotation with an overlap, expiry, last_used),
DELETE of skills and versions that keeps the ledger's history, tool definitions in every
agent's shape, and a run's status that says whether the skill ran.

Skills here are host functions (runtime.testing via tests.helpers.ScriptedServer): these
tests are about what happens around a run; the run itself is tests/test_server.py's.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from runtime import exports
from runtime.client import SkillyardClient
from runtime.errors import ApiError
from runtime.mcp_server import SkillTools
from runtime.records import GateSummary
from runtime.testing import register
from sandbox import RunResult
from tests.helpers import ScriptedServer, skill_files

TALLY = (
    "entrypoint: scripts/main.py:run\n"
    "input_schema: {type: object, properties: {items: {type: array, items: {type: string}}},"
    " required: [items], additionalProperties: false}\n"
    "output_schema: {type: object, properties: {count: {type: integer}}, required: [count]}\n"
)


def tally(params):
    if params["items"] == ["boom"]:
        raise ValueError("boom is not countable")
    return {"count": len(params["items"])}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    env = ScriptedServer(
        tmp_path_factory.mktemp("admin"),
        {"tally": tally, "echo": lambda p: p},
        tenants={"root": (True, None), "ops": (True, None), "alice": (False, None), "bob": (False, None)},
    )
    env.register_shared("echo")
    env.register_shared("tally", description="Counts items, shared.", sidecar=TALLY)
    with env:
        yield env


def status_of(url: str, key: str) -> int:
    return httpx.get(f"{url}/v1/skills", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


# -- tenants and keys --------------------------------------------------------------------------------------
def test_only_admins_manage_tenants_and_every_refusal_is_counted(srv):
    with srv.client("bob") as bob:
        for method, path, body in [
            ("GET", "/v1/tenants", None),
            ("POST", "/v1/tenants", {"name": "mallet"}),
            ("GET", "/v1/tenants/alice", None),
            ("PATCH", "/v1/tenants/bob", {"admin": True}),
            ("DELETE", "/v1/tenants/alice", None),
            ("GET", "/v1/tenants/alice/keys", None),
            ("POST", "/v1/tenants/bob/keys", {}),
            ("POST", "/v1/tenants/alice/keys/aaaaaaaaaaaa/rotate", {}),
            ("DELETE", "/v1/tenants/alice/keys/aaaaaaaaaaaa", None),
        ]:
            r = bob.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["kind"] == "forbidden", (method, path, r.text)
    with srv.client("root") as root:
        assert root.get("/v1/tenants/bob").json()["admin"] is False  # bob's PATCH changed nothing
        refused = root.get("/v1/audit", params={"tenant": "bob", "outcome": "refused"}).json()
    assert sum(e["count"] for e in refused) == 9 and {e["event"] for e in refused} == {"tenant", "key"}


def test_a_tenants_lifecycle_over_http(srv):
    with SkillyardClient(srv.url, srv.keys["root"]) as admin:
        made = admin.create_tenant("dora", max_concurrent_runs=2, label="ci")
        first = made["key"]
        assert made["tenant"]["name"] == "dora" and made["info"]["label"] == "ci"
        assert first.startswith(f"sy_{made['info']['id']}_") and made["info"]["expires_at"] is None
        assert status_of(srv.url, first) == 200
        for bad, kind in (("dora", "conflict"), ("Dora", "invalid_input"), ("local", "invalid_input")):
            with pytest.raises(ApiError) as info:
                admin.create_tenant(bad)
            assert info.value.remote_kind == kind, (bad, info.value)
        # several keys: both work, each with its own id and last use
        second = admin.add_key("dora", label="laptop")
        assert status_of(srv.url, second["key"]) == 200
        keys = {k["id"]: k for k in admin.keys("dora")}
        assert set(keys) == {made["info"]["id"], second["info"]["id"]}
        assert all(k["last_used"] for k in keys.values())  # both were used just now
        # rotation with overlap: the old key keeps working until the overlap ends
        rotated = admin.rotate_key("dora", made["info"]["id"], overlap="1h")
        assert status_of(srv.url, rotated["key"]) == 200 and status_of(srv.url, first) == 200
        ends = datetime.fromisoformat(rotated["previous"]["expires_at"])
        assert timedelta(minutes=59) < ends - datetime.now(UTC) <= timedelta(hours=1)
        # ... and with no overlap it stops at once
        again = admin.rotate_key("dora", rotated["info"]["id"], overlap="0s")
        assert status_of(srv.url, rotated["key"]) == 401 and status_of(srv.url, again["key"]) == 200
        # expiry: a key that expires in 8 s opens requests until then, and nothing after
        brief = admin.add_key("dora", expires_in="8s")
        assert status_of(srv.url, brief["key"]) == 200
        ends = datetime.fromisoformat(brief["info"]["expires_at"])
        time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 1.0)
        assert status_of(srv.url, brief["key"]) == 401
        assert [k["expired"] for k in admin.keys("dora") if k["id"] == brief["info"]["id"]] == [True]
        # revocation: at once
        admin.revoke_key("dora", second["info"]["id"])
        assert status_of(srv.url, second["key"]) == 401
        with pytest.raises(ApiError) as info:
            admin.revoke_key("dora", second["info"]["id"])
        assert info.value.status == 404
        # changes: only what is sent; an admin keeps its own flag
        assert admin.update_tenant("dora", admin=True)["max_concurrent_runs"] == 2
        assert admin.update_tenant("dora", max_concurrent_runs=None)["admin"] is True
        with pytest.raises(ApiError) as info:
            admin.update_tenant("root", admin=False)
        assert info.value.status == 409
        with pytest.raises(ApiError) as info:
            admin.remove_tenant("root")
        assert info.value.status == 409
        # removal: every key stops at once; purge takes the private skills too
        srv.register_private("dora", "dora-notes")
        assert (srv.home / "tenants" / "dora").is_dir()
        assert admin.remove_tenant("dora", purge=True) == {"name": "dora", "removed": True, "purged": True}
        assert status_of(srv.url, again["key"]) == 401
        assert not (srv.home / "tenants" / "dora").exists()
        with pytest.raises(ApiError) as info:
            admin.tenant("dora")
        assert info.value.status == 404
        trail = admin.audit(tenant="root", limit=1000)
    actions = [(e["event"], e["action"]) for e in trail if e["event"] in ("tenant", "key")]
    assert (
        actions[:1] == [("tenant", "add")]
        and ("key", "rotate") in actions
        and actions[-1] == ("tenant", "remove")
    )
    # no key, whole or secret part, is written anywhere: audit, tenants file, last-use file
    for path in srv.home.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl"):
            text = path.read_text(errors="replace")
            for key in (first, second["key"], rotated["key"], again["key"], brief["key"]):
                assert key.split("_", 2)[2] not in text, path


def test_last_use_is_kept_apart_from_the_tenants_file(srv):
    with SkillyardClient(srv.url, srv.keys["root"]) as admin:
        made = admin.create_tenant("eli")
        before = (srv.home / "tenants.json").stat().st_mtime_ns
        assert status_of(srv.url, made["key"]) == 200
        assert (srv.home / "tenants.json").stat().st_mtime_ns == before  # a request never rewrites it
        used = json.loads((srv.home / "keys-used.json").read_text())
        assert made["info"]["id"] in used
        assert oct((srv.home / "keys-used.json").stat().st_mode & 0o777) == "0o600"
        admin.remove_tenant("eli")


# -- DELETE ------------------------------------------------------------------------------------------------
def test_delete_keeps_the_ledgers_history(srv):
    srv.register_private("alice", "tally", description="Alice's tally.", sidecar=TALLY)
    srv.register_private("alice", "tally", description="Alice's tally, v2.", sidecar=TALLY)
    with srv.client("alice") as alice, srv.client("bob") as bob:
        for items in (["a"], ["a", "b"], ["boom"]):
            assert alice.post("/v1/skills/tally/run", json={"input": {"items": items}}).status_code == 200
        # the current version goes only with the skill, or when it is the last
        r = alice.delete("/v1/skills/tally/versions/2")
        assert r.status_code == 409 and "roll back" in r.json()["error"], r.text
        r = alice.delete("/v1/skills/tally/versions/1")
        assert r.status_code == 200 and r.json()["versions"] == [1] and r.json()["skill_deleted"] is False
        assert [v["version"] for v in alice.get("/v1/skills/tally/versions").json()] == [2]
        # another tenant's private skill is as absent as one nobody has
        r1, r2 = bob.delete("/v1/skills/tally", params={"scope": "private"}), bob.delete("/v1/skills/nope")
        assert r1.status_code == r2.status_code == 404
        r = alice.delete("/v1/skills/tally")
        assert r.status_code == 200 and r.json() == {
            "name": "tally",
            "scope": "private",
            "versions": [2],
            "skill_deleted": True,
            "kept": r.json()["kept"],
        }
        # resolution falls through to the shared skill of that name; alice's own is gone
        assert alice.get("/v1/skills/tally").json()["scope"] == "shared"
        assert alice.get("/v1/skills/tally", params={"scope": "private"}).status_code == 404
        # the ledger kept every use: the cost report still has the deleted skill's account
        rows = {(row["skill"], row["scope"]): row for row in alice.get("/v1/cost").json()}
        assert rows[("tally", "private")]["status"] == "deleted" and rows[("tally", "private")]["uses"] == 3
        one = alice.get("/v1/cost/tally", params={"scope": "private"}).json()
        assert one["uses"] == 3 and one["failures"] == 1
        # version numbers are never given out again
        assert srv.register_private("alice", "tally", sidecar=TALLY).version == 3
        # shared skills: only an admin deletes them (a tenant's attempt is refused and counted)
        assert bob.delete("/v1/skills/echo").status_code == 403
    srv.register_shared("doomed")
    with srv.client("root") as root:
        assert root.delete("/v1/skills/doomed").json()["scope"] == "shared"
        assert root.get("/v1/skills/doomed").status_code == 404
        deletes = root.get("/v1/audit", params={"event": "delete", "limit": 100}).json()
    outcomes = {(e["tenant"], e["skill"], e["outcome"]) for e in deletes}
    assert {("alice", "tally", "ok"), ("bob", "echo", "refused"), ("root", "doomed", "ok")} <= outcomes


# -- tool definitions --------------------------------------------------------------------------------------
def test_tool_definitions_in_every_agents_shape(srv):
    srv.register_private("bob", "bob-tally", description="Bob's own tally.", sidecar=TALLY)
    with SkillyardClient(srv.url, srv.keys["bob"]) as bob:
        answers = {fmt: bob.tools(fmt) for fmt in exports.TOOL_FORMATS}
        other = SkillyardClient(srv.url, srv.keys["alice"]).tools("openai")
    names = [s["name"] for s in answers["openai"]["skills"]]
    assert "bob-tally" in names and "tally" in names and "echo" in names
    assert "bob-tally" not in [s["name"] for s in other["skills"]]  # bob's own skills are bob's
    scopes = {s["name"]: s["scope"] for s in answers["openai"]["skills"]}
    assert scopes["bob-tally"] == "private" and scopes["echo"] == "shared"
    i = names.index("tally")
    schema = answers["openai"]["tools"][i]["parameters"]
    assert schema["required"] == ["items"] and schema["type"] == "object"
    assert answers["openai"]["tools"][i] == {
        "type": "function",
        "name": "tally",
        "description": "Counts items, shared.",
        "parameters": schema,
        "strict": False,
    }
    assert answers["openai-chat"]["tools"][i] == {
        "type": "function",
        "function": {k: v for k, v in answers["openai"]["tools"][i].items() if k != "type"},
    }
    assert answers["anthropic"]["tools"][i] == {
        "name": "tally",
        "description": "Counts items, shared.",
        "input_schema": schema,
    }
    mcp = answers["mcp"]["tools"][i]
    assert mcp["inputSchema"] == schema and mcp["outputSchema"]["required"] == ["count"]
    # the MCP shape is what the MCP server lists for the same skill
    listed = SkillTools(srv.settings, yard_factory=srv._factory).skill_tools(
        srv.app.state.skillyard.service.view(None)
    )
    served = next(t for t in listed if t["name"] == "tally")
    assert served["input_schema"] == mcp["inputSchema"] and served["output_schema"] == mcp["outputSchema"]
    # every shape lists the same skills in the same order, and a name filter picks
    assert all(a["skills"] == answers["openai"]["skills"] for a in answers.values())
    with srv.client("bob") as c:
        picked = c.get("/v1/tools", params=[("format", "anthropic"), ("name", "echo"), ("name", "tally")])
        assert [t["name"] for t in picked.json()["tools"]] == ["echo", "tally"]
        assert c.get("/v1/tools", params={"format": "gemini"}).status_code == 422


# -- a run's status ----------------------------------------------------------------------------------------
def test_a_run_is_200_exactly_when_the_skill_ran(srv):
    register(
        srv.shared,
        skill_files("tally", description="Counts, badly.", sidecar=TALLY),
        gate=GateSummary(False, 1, 1, 0, 0, 10.0, 0.1, ["a test failed"]),
    )
    with srv.client("bob") as bob:
        ran = bob.post("/v1/skills/tally/run", json={"input": {"items": ["x", "y"]}})
        assert ran.status_code == 200 and ran.json()["ok"] and ran.json()["output"] == {"count": 2}
        failed = bob.post("/v1/skills/tally/run", json={"input": {"items": ["boom"]}})
        assert failed.status_code == 200 and failed.json()["ok"] is False
        assert (
            failed.json()["error"]["kind"] == "exception" and failed.json()["error"]["type"] == "ValueError"
        )
        blocked = max(v["version"] for v in bob.get("/v1/skills/tally/versions").json())
        for body, status, kind in [
            ({"input": {"items": [1]}}, 422, "invalid_input"),
            ({"input": {"items": ["x"]}, "version": blocked}, 409, "not_registered"),
            ({"input": {"items": ["x"]}, "version": 99}, 404, "not_found"),
        ]:
            r = bob.post("/v1/skills/tally/run", json=body)
            assert r.status_code == status, (body, r.text)
            assert set(r.json()) == {"error", "kind", "request_id"} and r.json()["kind"] == kind, r.text
        # the engine down: the skill never ran, the service failed
        handler = srv.backend.handler
        srv.backend.handler = lambda spec: RunResult(exit_code=None, error="the engine went away")
        try:
            r = bob.post("/v1/skills/echo/run", json={"input": {}})
        finally:
            srv.backend.handler = handler
        assert r.status_code == 503 and r.json()["kind"] == "sandbox" and "engine" in r.json()["error"]
        # an async run: the job succeeds when the skill ran (ok or not), fails when it did not
        job = bob.post("/v1/skills/tally/run", json={"input": {"items": [1]}, "async": True}).json()
        deadline = time.monotonic() + 30
        while (j := bob.get(f"/v1/jobs/{job['id']}").json())["state"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert j["state"] == "failed" and "items" in j["error"] and j["result"] is None
    # the Python client: a result when the skill ran, ApiError (with the kind) when it did not
    with SkillyardClient(srv.url, srv.keys["bob"]) as sy:
        assert sy.run("tally", {"items": ["boom"]})["error"]["kind"] == "exception"
        with pytest.raises(ApiError) as info:
            sy.run("tally", {"items": [1]})
        assert info.value.status == 422 and info.value.remote_kind == "invalid_input"
    spec = httpx.get(f"{srv.url}/openapi.json").json()
    responses = spec["paths"]["/v1/skills/{name}/run"]["post"]["responses"]
    for status in ("404", "409", "422", "429", "503"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorOut"
        }, status


# -- the same from the command line ------------------------------------------------------------------------
def test_the_cli_manages_keys_and_deletes_skills(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from runtime.cli import cli
    from runtime.config import Settings, get_settings
    from runtime.tenants import Tenants
    from runtime.yard import Yard

    home = tmp_path / "home"
    monkeypatch.setenv("SKILLYARD_HOME", str(home))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        first = runner.invoke(cli, ["tenant", "add", "cli-t", "--expires", "30d"]).stdout.strip()
        keys = json.loads(runner.invoke(cli, ["tenant", "keys", "cli-t", "--json"]).stdout)
        assert len(keys) == 1 and keys[0]["expires_at"] and first.startswith(f"sy_{keys[0]['id']}_")
        second = runner.invoke(cli, ["tenant", "add-key", "cli-t", "--label", "ci"]).stdout.strip()
        rotated = runner.invoke(cli, ["tenant", "rotate-key", "cli-t", keys[0]["id"], "--overlap", "0s"])
        assert rotated.exit_code == 0, rotated.output
        third = rotated.stdout.strip()
        store = Tenants(home)
        assert store.authenticate(first) is None and store.authenticate(third).name == "cli-t"
        second_id = second.split("_")[1]
        assert runner.invoke(cli, ["tenant", "revoke-key", "cli-t", second_id]).exit_code == 0
        assert Tenants(home).authenticate(second) is None
        refused = runner.invoke(cli, ["tenant", "add", "local"])
        assert refused.exit_code == 1 and "reserved" in refused.stderr
        # delete: the ledger keeps the skill's rows
        yard = Yard(Settings(home=home), images=None, pool=False)
        register(yard, skill_files("cli-doomed"))
        yard.ledger.record_use(
            skill="cli-doomed", version=1, context_tokens=10, outcome="ok", duration_ms=1.0
        )
        gone = runner.invoke(cli, ["delete", "cli-doomed", "--json"])
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.stdout) == {"name": "cli-doomed", "versions": [1], "skill_deleted": True}
        cost = json.loads(runner.invoke(cli, ["cost", "--json"]).stdout)
        assert [(r["skill"], r["status"], r["uses"]) for r in cost["skills"]] == [
            ("cli-doomed", "deleted", 1)
        ]
        yard.close()
    finally:
        get_settings.cache_clear()
