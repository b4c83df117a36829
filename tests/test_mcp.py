"""The MCP server, through the SDK's own clients: stdio (a real `skillyard mcp` subprocess)
and streamable HTTP (uvicorn on 127.0.0.1). Real Docker, real LanceDB in tmp dirs."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from runtime.config import Settings
from runtime.registry import Registry
from runtime.tenants import Tenants
from sandbox import Sandbox
from tests.conftest import ROOT, WHEELHOUSE, write_skill
from tests.helpers import ServerThread, make_factory

NAME = "mcp-echo"
INPUT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "times": {"type": "integer", "minimum": 1}},
    "required": ["text"],
    "additionalProperties": False,
}
SCRIPT = textwrap.dedent("""
    def run(params):
        return {"echo": params["text"] * params.get("times", 1), "length": len(params["text"])}
""")
TESTS = textwrap.dedent("""
    from scripts.main import run

    def test_run():
        assert run({"text": "ab", "times": 2}) == {"echo": "abab", "length": 2}
        assert run({"text": "xyz"}) == {"echo": "xyz", "length": 3}
""")
SIDECAR = (
    "entrypoint: scripts/main.py:run\ninput_schema: "
    + json.dumps(INPUT_SCHEMA)
    + "\noutput_schema: {type: object, required: [echo, length]}\n"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory, backend, runner_image):
    """A state folder holding one registered skill in the shared store, and a tenant."""
    from runtime.yard import Yard

    root = tmp_path_factory.mktemp("mcp")
    settings = Settings(home=root / "home", wheelhouse=WHEELHOUSE)
    yard = Yard(settings, sandbox=Sandbox(backend), pool=False)
    yard.runner = runner_image
    src = write_skill(
        root / "src",
        NAME,
        script=SCRIPT,
        tests={"test_main.py": TESTS},
        sidecar=SIDECAR,
        description="Repeat a text a number of times.",
    )
    outcome = yard.add(src)
    assert outcome.status == "registered", outcome.reasons
    key = Tenants(settings.home).add_tenant("agent")
    return {"settings": settings, "key": key}


def _command() -> list[str]:
    """`python -m runtime mcp`: the one entry point, as an agent's configuration starts it."""
    return ["-m", "runtime", "mcp", "--transport", "stdio"]


def test_stdio_server_lists_and_runs_skills(home, runner_image):
    settings = home["settings"]
    env = {
        **os.environ,
        "SKILLYARD_HOME": str(settings.home),
        "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE),
        "SKILLYARD_RUNNER_IMAGE": runner_image,
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": "",
    }
    params = StdioServerParameters(command=sys.executable, args=_command(), env=env, cwd=str(ROOT))

    async def session() -> None:
        async with Client(params, cache=None, read_timeout_seconds=120) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert {"search_skills", "test_skill", "fix_skill", NAME} <= set(tools)
            assert tools[NAME].input_schema == INPUT_SCHEMA
            assert tools[NAME].description == "Repeat a text a number of times."

            result = await client.call_tool(NAME, {"text": "ab", "times": 3})
            assert result.is_error is False
            assert json.loads(result.content[0].text) == {"echo": "ababab", "length": 2}
            assert result.structured_content == {"echo": "ababab", "length": 2}

            bad = await client.call_tool(NAME, {"text": 5})
            assert bad.is_error is True and "invalid_input" in bad.content[0].text
            unknown = await client.call_tool("no-such-skill", {})
            assert unknown.is_error is True and "no skill" in unknown.content[0].text

            found = await client.call_tool("search_skills", {"query": "repeat text"})
            assert found.is_error is False and NAME in {
                h["name"] for h in found.structured_content["results"]
            }
            fix = await client.call_tool("fix_skill", {"name": NAME})
            assert fix.is_error is True and "OPENAI_BASE_URL" in fix.content[0].text

            # the list is the registry's state at request time: retire the skill, it is gone;
            # reinstate it, it is back
            reg = Registry(settings.store, embedder=None)
            reg.set_status(NAME, "retired")
            assert NAME not in {t.name for t in (await client.list_tools()).tools}
            gone = await client.call_tool(NAME, {"text": "x"})
            assert gone.is_error is True
            reg.set_status(NAME, "registered")
            assert NAME in {t.name for t in (await client.list_tools()).tools}

    anyio.run(session)


def test_streamable_http_server_needs_a_key_and_serves_the_tenant(home, backend, runner_image):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from runtime.mcp_server import SkillTools, http_app

    def factory(s: Settings):
        from runtime.yard import Yard

        y = Yard(s, sandbox=Sandbox(backend))
        y.runner = runner_image
        return y

    tools = SkillTools(home["settings"], http=True, yard_factory=factory)
    try:
        with ServerThread(http_app(tools)) as srv:
            url = f"{srv.url}/mcp"
            r = httpx.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            r = httpx.post(url, json={}, headers={"Authorization": "Bearer sy_aaaaaaaaaaaa_" + "b" * 43})
            assert r.status_code == 401

            async def session() -> None:
                async with httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {home['key']}"}, timeout=120
                ) as http_client:
                    transport = streamable_http_client(url, http_client=http_client)
                    async with Client(transport, cache=None, read_timeout_seconds=120) as client:
                        listed = {t.name: t for t in (await client.list_tools()).tools}
                        assert listed[NAME].input_schema == INPUT_SCHEMA
                        result = await client.call_tool(NAME, {"text": "hi"})
                        assert result.is_error is False and result.structured_content == {
                            "echo": "hi",
                            "length": 2,
                        }
                        bad = await client.call_tool(NAME, {"text": "hi", "extra": 1})
                        assert bad.is_error is True and "invalid_input" in bad.content[0].text
                        gate = await client.call_tool("test_skill", {"name": NAME})
                        assert gate.is_error is False
                        assert (
                            gate.structured_content["passed"] is True
                            and gate.structured_content["tests"] == 1
                        )

            anyio.run(session)
    finally:
        tools.close()
    calls = [e for e in tools.service.audit.query(tenant="agent") if e["event"] == "call"]
    assert [e["outcome"] for e in calls] == ["ok", "invalid_input"] and all(e["via"] == "mcp" for e in calls)


def test_max_concurrent_runs_comes_from_the_environment(home, backend, runner_image, monkeypatch):
    """SKILLYARD_MAX_CONCURRENT_RUNS applies to the MCP server as to the HTTP one (per process); a
    refused call is audited."""
    from runtime.mcp_server import SkillTools

    monkeypatch.setenv("SKILLYARD_MAX_CONCURRENT_RUNS", "1")
    tools = SkillTools(home["settings"], yard_factory=make_factory(backend, runner_image))
    try:
        assert tools.service.runs.limit_for(None) == 1
        view = tools.service.yards.view(None)
        assert tools.service.runs.try_acquire(view.tenant)  # one run in flight: the limit is reached
        try:
            busy = tools.call(view, NAME, {"text": "x"})
        finally:
            tools.service.runs.release(view.tenant)
        assert busy["is_error"] and "the limit is 1" in busy["content"][0]["text"]
        assert tools.call(view, NAME, {"text": "x"})["is_error"] is False
    finally:
        tools.close()
    calls = [e for e in tools.service.audit.query(tenant="local", skill=NAME) if e["event"] == "call"]
    refused = [e for e in calls if e["outcome"] == "refused"]  # refusals are counted, then written
    assert [(e["error"], e["count"], e["via"]) for e in refused] == [("too_many_runs", 1, "mcp")]
    assert calls[-1]["outcome"] == "ok" or calls[-2]["outcome"] == "ok"
    assert SkillTools(home["settings"], max_concurrent_runs=3).service.runs.limit_for(None) == 3
    monkeypatch.delenv("SKILLYARD_MAX_CONCURRENT_RUNS")
    assert SkillTools(home["settings"]).service.runs.limit_for(None) == 4


def test_error_texts_point_to_mcp_ways_and_reject_non_finite_input(home, backend, runner_image):
    from runtime.mcp_server import SkillTools

    tools = SkillTools(home["settings"], yard_factory=make_factory(backend, runner_image))
    try:
        view = tools.service.yards.view(None)
        for name, args in (
            ("no-such-skill", {}),
            ("Bad Name", {}),
            ("test_skill", {"name": "no-such-skill"}),
        ):
            text = tools.call(view, name, args)["content"][0]["text"]
            assert "/v1/" not in text and "search_skills" in text and "tools/list" in text, text
        nan = tools.call(view, NAME, {"text": "x", "times": float("inf")})
        assert nan["is_error"] and "finite" in nan["content"][0]["text"]
    finally:
        tools.close()
