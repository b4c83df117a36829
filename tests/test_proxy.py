"""`skillyard proxy`: the real `openai` SDK as the client, the proxy served by uvicorn on
loopback, in front of a scripted upstream model (real HTTP), streamed and not; real
LanceDB. The module's server runs skills with sandbox.testing.ScriptedBackend (the calls'
results, not their isolation, are what these tests are about); the last test runs a tool
call in a real sandbox on Docker.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI

from runtime import accounting, tiers
from runtime.config import Settings
from runtime.http import create_app
from runtime.llm import LLM
from runtime.package import package_from_files
from runtime.tenants import Tenants
from runtime.testing import PrebuiltImages, register, skill_calls
from runtime.yard import Yard
from sandbox import Sandbox
from sandbox.testing import ScriptedBackend
from tests.conftest import WHEELHOUSE, write_skill
from tests.helpers import ServerThread, make_factory
from tests.llm_server import ScriptedLLM

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
TEMP_SKILL = {
    "SKILL.md": b"---\nname: temp-convert\ndescription: Convert a temperature from Celsius to Fahrenheit "
    b"exactly.\n---\nCall it with `celsius`; it returns `fahrenheit`.\n",
    "skillyard.yaml": b"entrypoint: scripts/main.py:run\ninput_schema:\n  type: object\n  properties:\n"
    b"    celsius: {type: number}\n  required: [celsius]\n",
    "scripts/main.py": b"def run(p):\n    return {'fahrenheit': p['celsius'] * 9 / 5 + 32}\n",
}
METRIC_SKILL = {
    "SKILL.md": b"---\nname: metric-units\ndescription: Answer with metric units, lengths in metres and "
    b"kilometres, weights in kilograms.\n---\nNever use miles, feet or pounds. Convert them to metric.\n",
}
SECRET_SKILL = {
    "SKILL.md": b"---\nname: alice-house-style\ndescription: Alice's house style for writing haiku poems "
    b"about cats.\n---\nThree lines, no rhyme.\n",
}


def host_convert(params):
    if params["celsius"] < -273.15:
        raise ValueError("below absolute zero")
    return {"fahrenheit": params["celsius"] * 9 / 5 + 32}


class Env:
    """The module's proxy: its URL, keys, servers and yards."""

    def __init__(self, srv, app, keys, upstream, teacher, factory, settings):
        self.srv, self.app, self.keys = srv, app, keys
        self.upstream, self.teacher = upstream, teacher
        self.factory, self.settings = factory, settings

    def client(self, tenant: str = "alice", **options) -> OpenAI:
        return OpenAI(base_url=f"{self.srv.url}/v1", api_key=self.keys[tenant], max_retries=0, **options)

    def http(self, tenant: str = "alice") -> httpx.Client:
        return httpx.Client(
            base_url=self.srv.url, headers={"Authorization": f"Bearer {self.keys[tenant]}"}, timeout=60
        )

    @property
    def state(self):
        return self.app.state.skillyard

    def flush(self) -> None:
        self.state.proxy.writer.flush()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("proxy") / "home"
    upstream = ScriptedLLM(models=("gpt-up", "gpt-up-mini")).start()
    teacher = ScriptedLLM().start()  # the model learning asks (OPENAI_BASE_URL)
    settings = Settings(
        home=home,
        wheelhouse=WHEELHOUSE,
        openai_base_url=teacher.url,
        openai_api_key="sk-teacher",
        model="teach",
    )
    backend = ScriptedBackend(skill_calls({"temp-convert": host_convert}))

    def factory(s: Settings) -> Yard:
        return Yard(s, sandbox=Sandbox(backend), images=PrebuiltImages(), pool=False, long_lived=True)

    shared = factory(settings)
    register(shared, TEMP_SKILL)
    tiers.register(shared, package_from_files("metric-units", dict(METRIC_SKILL)))
    shared.close()
    tenants = Tenants(home)
    keys = {"root": tenants.add_tenant("root", admin=True), "alice": tenants.add_tenant("alice")}
    keys["bob"] = tenants.add_tenant("bob")
    llm = LLM(settings, base_url=upstream.url, api_key=UPSTREAM_KEY, model="gpt-up", max_retries=0)
    app = create_app(settings, yard_factory=factory, upstream=llm)
    alice = app.state.skillyard.service.view(tenants.authenticate(keys["alice"])).private
    tiers.register(alice, package_from_files("alice-house-style", dict(SECRET_SKILL)))
    with ServerThread(app) as srv:
        yield Env(srv, app, keys, upstream, teacher, factory, settings)
    upstream.stop()
    teacher.stop()


def wait_job(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (job := http.get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def sent(env: Env, since: int) -> list[dict]:
    return [r["body"] for r in env.upstream.requests[since:]]


def system_text(body: dict) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


# --------------------------------------------------------------------------- not streamed


def test_a_skill_runs_as_a_tool_and_its_result_goes_back_to_the_model(env: Env):
    since = len(env.upstream.requests)
    env.upstream.tool_call("temp-convert", {"celsius": 100}, prompt_tokens=300, completion_tokens=20)
    env.upstream.reply("100 °C is 212 °F.", prompt_tokens=350, completion_tokens=12)
    answer = env.client().chat.completions.create(
        model="gpt-up", messages=[{"role": "user", "content": "Convert 100 degrees celsius to fahrenheit"}]
    )
    assert answer.choices[0].message.content == "100 °C is 212 °F."
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
    assert answer.usage.prompt_tokens == 650 and answer.usage.completion_tokens == 32  # both rounds
    assert answer.id.startswith("chatcmpl-sy")
    first, second = sent(env, since)
    assert "## temp-convert" in system_text(first) and "Call it with `celsius`" in system_text(first)
    assert [t["function"]["name"] for t in first["tools"]] == ["temp-convert"]
    assert first["model"] == "gpt-up"
    # the model's call, then the skill's result computed by running it, fed back as a tool message
    call, result = second["messages"][-2:]
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == "temp-convert"
    assert result == {
        "role": "tool",
        "tool_call_id": call["tool_calls"][0]["id"],
        "content": '{"fahrenheit": 212.0}',
    }
    # the upstream got the upstream key; the tenant key never left the proxy
    assert {r["auth"] for r in env.upstream.requests[since:]} == {f"Bearer {UPSTREAM_KEY}"}


def test_a_skill_that_fails_tells_the_model_why(env: Env):
    since = len(env.upstream.requests)
    env.upstream.tool_call("temp-convert", {"celsius": -500})
    env.upstream.reply("That is below absolute zero.")
    env.upstream.tool_call("temp-convert", {"celsius": "hot"})
    env.upstream.reply("I could not convert that.")
    for text in ("Convert -500 celsius to fahrenheit", "Convert hot celsius to fahrenheit"):
        env.client().chat.completions.create(model="gpt-up", messages=[{"role": "user", "content": text}])
    raised = json.loads(sent(env, since)[1]["messages"][-1]["content"])
    assert raised["error"]["kind"] == "exception" and "below absolute zero" in raised["error"]["message"]
    refused = json.loads(sent(env, since)[3]["messages"][-1]["content"])  # checked against the schema first
    assert refused["error"]["kind"] == "invalid_input" and "celsius" in refused["error"]["message"]


def test_the_last_round_must_answer(env: Env):
    since = len(env.upstream.requests)
    rounds = env.settings.proxy_max_rounds
    for _ in range(rounds):
        env.upstream.tool_call("temp-convert", {"celsius": 1})
    answer = env.client().chat.completions.create(
        model="gpt-up",
        messages=[{"role": "user", "content": "Convert 1 degree celsius to fahrenheit, repeatedly"}],
    )
    bodies = sent(env, since)
    assert len(bodies) == rounds and bodies[-1]["tool_choice"] == "none"
    assert all("tool_choice" not in b for b in bodies[:-1])
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls


# --------------------------------------------------------------------------- streamed


def test_a_streamed_answer_is_one_completion_with_the_skill_run_in_between(env: Env):
    since = len(env.upstream.requests)
    env.upstream.reply(
        "Let me compute. ", tool_calls=[{"name": "temp-convert", "arguments": {"celsius": 37}}]
    )
    env.upstream.reply("37 °C is 98.6 °F.", prompt_tokens=400, completion_tokens=9)
    stream = env.client().chat.completions.create(
        model="gpt-up",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Convert 37 celsius to fahrenheit"}],
    )
    chunks = list(stream)
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-sy")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Let me compute. 37 °C is 98.6 °F."
    assert not any(
        c.choices[0].delta.tool_calls for c in chunks if c.choices
    )  # the skill's call is the proxy's
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1000 + 400
    assert sent(env, since)[1]["messages"][-1]["content"] == '{"fahrenheit": 98.6}'


def test_the_raw_stream_is_openai_server_sent_events(env: Env):
    env.upstream.reply("Plain answer.")
    with (
        env.http() as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "gpt-up",
                "stream": True,
                "messages": [{"role": "user", "content": "Say something"}],
            },
        ) as resp,
    ):
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    events = [e for e in body.split("\n\n") if e and not e.startswith(":")]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert "".join(p["choices"][0]["delta"].get("content", "") for p in payloads) == "Plain answer."
    assert UPSTREAM_KEY not in body


# --------------------------------------------------------------------------- the client's own tools

CLIENT_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look an order up",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
    },
}


def test_the_clients_tools_stay_the_clients(env: Env):
    since = len(env.upstream.requests)
    env.upstream.reply(None, tool_calls=[{"name": "lookup_order", "arguments": {"id": "A7"}}])
    answer = env.client().chat.completions.create(
        model="gpt-up",
        tools=[CLIENT_TOOL],
        messages=[
            {"role": "user", "content": "Where is order A7? Convert its 20 celsius storage temperature too."}
        ],
    )
    call = answer.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup_order", {"id": "A7"})
    assert answer.choices[0].finish_reason == "tool_calls"
    offered = [t["function"]["name"] for t in sent(env, since)[0]["tools"]]
    assert offered == ["lookup_order", "temp-convert"]

    # streamed: the client's call comes as tool-call deltas; a skill call in the same round is not run
    env.upstream.reply(
        None,
        tool_calls=[
            {"name": "temp-convert", "arguments": {"celsius": 20}},
            {"name": "lookup_order", "arguments": {"id": "B9"}},
        ],
    )
    stream = env.client().chat.completions.create(
        model="gpt-up",
        stream=True,
        tools=[CLIENT_TOOL],
        messages=[
            {"role": "user", "content": "Where is order B9? Convert its 20 celsius storage temperature too."}
        ],
    )
    chunks = list(stream)
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert {d.index for d in deltas} == {0}  # re-indexed: the client sees only its own call
    assert deltas[0].function.name == "lookup_order" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"id": "B9"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert len(env.upstream.requests) == since + 2  # the skill call was not run: no second round


# --------------------------------------------------------------------------- retrieval


def test_instructions_are_injected_and_an_unrelated_request_gets_nothing(env: Env):
    since = len(env.upstream.requests)
    env.upstream.reply("It is about 42 km.")
    env.upstream.reply("Here is a joke.")
    env.client().chat.completions.create(
        model="gpt-up",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "How far is a marathon in miles? Answer with metric units."},
        ],
    )
    env.client().chat.completions.create(
        model="gpt-up", messages=[{"role": "user", "content": "Tell me a joke about penguins"}]
    )
    metric, joke = sent(env, since)
    assert metric["messages"][0] == {"role": "system", "content": "Be brief."}  # the client's own stays first
    assert (
        "## metric-units" in metric["messages"][1]["content"]
        and "Never use miles" in metric["messages"][1]["content"]
    )
    assert all(
        t["function"]["name"] != "metric-units" for t in metric.get("tools", [])
    )  # instructions: no tool
    assert (
        joke["messages"] == [{"role": "user", "content": "Tell me a joke about penguins"}]
        and "tools" not in joke
    )


def test_retrieval_preview_shows_scores_thresholds_and_scopes(env: Env):
    with env.http() as http:
        hits = http.get("/v1/retrieval/preview", params={"q": "convert celsius to fahrenheit"}).json()
        assert hits["skills"][0]["name"] == "temp-convert" and hits["skills"][0]["selected"]
        assert hits["skills"][0]["tool"] and hits["skills"][0]["score"] >= hits["threshold"]
        assert "## temp-convert" in hits["system_message"]
        strict = http.get(
            "/v1/retrieval/preview", params={"q": "convert celsius to fahrenheit", "threshold": 0.99}
        )
        assert not any(s["selected"] for s in strict.json()["skills"])
        assert "below the threshold" in strict.json()["skills"][0]["why"]
        convo = http.post(
            "/v1/retrieval/preview",
            json={
                "messages": [{"role": "user", "content": "a haiku about cats in Alice's house style"}],
                "top_k": 1,
            },
        ).json()
        assert convo["skills"][0]["name"] == "alice-house-style" and convo["skills"][0]["scope"] == "private"
        assert sum(s["selected"] for s in convo["skills"]) == 1
        shared_only = http.post(
            "/v1/retrieval/preview",
            json={"query": "a haiku about cats in Alice's house style", "scope": "shared"},
        ).json()
        assert all(s["scope"] == "shared" for s in shared_only["skills"])
        bad = http.post("/v1/retrieval/preview", json={"query": "x", "top_k": 99})
        assert bad.status_code == 422 and "top_k" in bad.json()["error"]
    with env.http("bob") as http:  # another tenant never sees alice's private skill
        convo = http.get(
            "/v1/retrieval/preview", params={"q": "a haiku about cats in Alice's house style"}
        ).json()
        assert all(s["name"] != "alice-house-style" for s in convo["skills"])


def test_the_scope_header_narrows_what_a_request_may_use(env: Env):
    since = len(env.upstream.requests)
    env.upstream.reply("ok")
    env.client(default_headers={"X-Skillyard-Scope": "private"}).chat.completions.create(
        model="gpt-up", messages=[{"role": "user", "content": "Convert 5 celsius to fahrenheit"}]
    )
    assert "tools" not in sent(env, since)[0] and system_text(sent(env, since)[0]) == ""


# --------------------------------------------------------------------------- errors


def test_upstream_failures_reach_the_client_as_openai_errors(env: Env):
    client = env.client()
    ask = {"model": "gpt-up", "messages": [{"role": "user", "content": "hello"}]}
    env.upstream.error(400, "This model's maximum context length is 8192 tokens")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(**ask)
    assert bad.value.status_code == 400 and "maximum context length" in bad.value.message
    assert bad.value.body["type"] == "invalid_request_error"
    env.upstream.error(429, "slow down")
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(**ask)
    assert limited.value.response.headers["retry-after"] == "1"
    env.upstream.error(500, "upstream exploded at 10.0.0.7")
    with pytest.raises(openai.InternalServerError) as broken:
        client.chat.completions.create(**ask)
    assert broken.value.status_code == 502 and "10.0.0.7" not in broken.value.message
    env.upstream.error(401, f"Incorrect API key provided: {UPSTREAM_KEY}")
    with pytest.raises(openai.InternalServerError) as refused:
        client.chat.completions.create(**ask, stream=True)  # before the stream starts: an HTTP error
    assert refused.value.status_code == 502 and "credentials" in refused.value.message
    assert UPSTREAM_KEY not in refused.value.response.text
    env.upstream.stream_error("Half an ans", "the connection to the model was lost")
    with pytest.raises(openai.APIError, match="broke off"):
        list(client.chat.completions.create(**ask, stream=True))


def test_keys_and_bad_requests_get_openai_shaped_errors(env: Env):
    bad_key = OpenAI(base_url=f"{env.srv.url}/v1", api_key="sk-not-a-tenant", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        bad_key.chat.completions.create(model="gpt-up", messages=[{"role": "user", "content": "hi"}])
    assert (
        denied.value.body["type"] == "authentication_error" and denied.value.body["code"] == "invalid_api_key"
    )
    with env.http() as http:
        missing = http.post("/v1/chat/completions", json={"model": "gpt-up"})
        assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error"
        assert "messages" in missing.json()["error"]["message"]
        garbled = http.post(
            "/v1/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"}
        )
        assert garbled.status_code == 400 and "malformed JSON" in garbled.json()["error"]["message"]
        # the skillyard API beside it keeps its own error shape
        assert isinstance(http.get("/v1/skills/nope").json()["error"], str)


def test_models_are_the_upstreams(env: Env):
    assert [m.id for m in env.client().models.list()] == ["gpt-up", "gpt-up-mini"]


# --------------------------------------------------------------------------- accounting


def test_every_token_the_proxy_spends_is_attributed_to_its_skill(env: Env):
    env.flush()
    shared = env.state.service.yards.shared
    before = {r["request_id"] for r in shared.ledger.proxy_uses("temp-convert")}
    env.upstream.tool_call("temp-convert", {"celsius": 10}, prompt_tokens=500, completion_tokens=30)
    env.upstream.reply("50 °F", prompt_tokens=560, completion_tokens=4)
    env.client().chat.completions.create(
        model="gpt-up", messages=[{"role": "user", "content": "Convert 10 celsius to fahrenheit"}]
    )
    env.flush()
    [row] = [r for r in shared.ledger.proxy_uses("temp-convert") if r["request_id"] not in before]
    assert (row["mode"], row["tool_runs"], row["tool_failures"], row["rounds"], row["outcome"]) == (
        "inject+tool",
        1,
        0,
        2,
        "ok",
    )
    assert (row["upstream_prompt_tokens"], row["upstream_completion_tokens"], row["usage_source"]) == (
        1060,
        34,
        "api",
    )
    # instructions + tool definition in both rounds, and its result in the second
    retrieval = env.state.proxy.retriever.retrieve(
        env.state.service.view(None), [{"role": "user", "content": "Convert 10 celsius to fahrenheit"}]
    )
    [cand] = [c for c in retrieval.selected if c.name == "temp-convert"]
    from runtime.tokens import count_tokens

    assert row["context_tokens"] == 2 * (cand.tokens + cand.tool_tokens) + count_tokens(
        '{"fahrenheit": 50.0}'
    )
    # the tool run counted as a call of the skill, and no second ledger use
    assert shared.ledger.uses("temp-convert") == []
    assert shared.registry.get("temp-convert").calls >= 1
    [cost] = accounting.report(shared, "temp-convert")
    rows = shared.ledger.proxy_uses("temp-convert")
    assert cost.proxy_requests == len(rows) and cost.uses == len(rows)
    assert cost.proxy_spent_tokens == sum(r["context_tokens"] for r in rows)
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert cost.proxy_saved_tokens == len(ok) * cost.baseline_tokens - sum(r["context_tokens"] for r in ok)
    assert cost.proxy_upstream_prompt_tokens == sum(r["upstream_prompt_tokens"] for r in rows)
    audit = env.state.service.audit.query(event="chat")
    assert any(e.get("skills") == ["temp-convert"] and e["outcome"] == "ok" for e in audit)
    assert any(e.get("via") == "proxy" for e in env.state.service.audit.query(event="call"))


# --------------------------------------------------------------------------- learning


def test_learning_runs_after_the_answer_never_on_its_path(env: Env):
    release = threading.Event()
    started = threading.Event()

    def slow_extraction(body):
        started.set()
        assert release.wait(60)
        skill = {
            "name": "km-not-miles",
            "description": "Give distances in kilometres, never in miles.",
            "instructions": "Always state distances in kilometres.",
            "kind": "preference",
            "evidence": ["always give distances in kilometres"],
        }
        return json.dumps({"skill": skill, "reason": "a lasting preference"})

    env.teacher.reply(slow_extraction)  # alice has no similar skill: no decision request follows
    env.upstream.reply("Noted: 5 km.")
    answer = env.client(timeout=30).chat.completions.create(  # learning on its path would time it out
        model="gpt-up",
        messages=[{"role": "user", "content": "From now on always give distances in kilometres, not miles."}],
    )
    assert answer.choices[0].message.content == "Noted: 5 km."  # answered while extraction waits
    assert started.wait(30) and not release.is_set()
    with env.http() as http:
        [job] = [j for j in http.get("/v1/jobs").json() if j["kind"] == "learn"]
        assert job["state"] == "running"
        release.set()
        with http.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            lines = "".join(events.iter_text())
        assert "event: progress" in lines and "learn: durable signals" in lines and "event: result" in lines
        result = http.get(f"/v1/jobs/{job['id']}").json()
    assert result["state"] == "succeeded", result
    assert (result["result"]["decision"], result["result"]["status"], result["result"]["scope"]) == (
        "add",
        "registered",
        "private",
    )
    teaching = env.teacher.requests[-1]["body"]["messages"][1]["content"]
    assert "always give distances in kilometres" in teaching and "Noted: 5 km." in teaching
    entries = env.state.service.audit.query(event="learn", tenant="alice")
    assert entries[-1]["outcome"] == "add" and entries[-1]["via"] == "proxy"


def test_a_retried_request_is_learnt_from_once(env: Env):
    env.teacher.reply(json.dumps({"skill": None, "reason": "nothing new"}))
    ask = [{"role": "user", "content": "From now on, always answer me in French please."}]
    for _ in range(2):
        env.upstream.reply("D'accord.")
        env.client("root").chat.completions.create(model="gpt-up", messages=ask)
    with env.http("root") as http:
        learning = [j for j in http.get("/v1/jobs").json() if j["kind"] == "learn"]
        assert len(learning) == 1
        assert wait_job(http, learning[0]["id"])["result"]["decision"] == "discard"


def test_experiences_endpoint_learns_as_a_job_with_events(env: Env):
    env.teacher.reply(json.dumps({"skill": None, "reason": "nothing durable"}))
    with env.http("bob") as http:
        job = http.post(
            "/v1/experiences",
            json={"events": [{"type": "user_feedback", "text": "the report was late"}], "dry_run": True},
        )
        assert job.status_code == 202 and job.headers["location"].startswith("/v1/jobs/")
        with http.stream("GET", f"/v1/jobs/{job.json()['id']}/events") as events:
            stream = "".join(events.iter_text())
        final = json.loads(stream.rsplit("event: result\ndata: ", 1)[1])
        assert final["result"]["decision"] == "discard" and final["result"]["dry_run"]
        one_off = http.post("/v1/experiences", json={"messages": [{"role": "user", "content": "hi"}]}).json()
        done = wait_job(http, one_off["id"])
        assert done["result"]["decision"] == "discard" and done["result"]["tokens"] == 0
        both = http.post(
            "/v1/experiences",
            json={"messages": [{"role": "user", "content": "x"}], "events": [{"type": "y"}]},
        )
        assert both.status_code == 422 and isinstance(both.json()["error"], str)
        shared = http.post(
            "/v1/experiences", json={"messages": [{"role": "user", "content": "x"}], "shared": True}
        )
        assert shared.status_code == 403
    assert env.state.service.audit.query(event="learn", tenant="bob")[-1]["error"] == "forbidden"


# --------------------------------------------------------------------------- the command


def test_skillyard_proxy_serves_with_the_upstream_key_from_the_environment(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import free_port

    upstream = ScriptedLLM().start()
    home = tmp_path / "home"
    key = Tenants(home).add_tenant("cli-user")
    port = free_port()
    environ = {
        **os.environ,
        "SKILLYARD_HOME": str(home),
        "SKILLYARD_UPSTREAM_BASE_URL": upstream.url,
        "SKILLYARD_UPSTREAM_API_KEY": UPSTREAM_KEY,
        "SKILLYARD_LLM_MAX_RETRIES": "0",
    }
    environ.pop("OPENAI_BASE_URL", None)
    environ.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime",
            "proxy",
            "--port",
            str(port),
            "--no-learn",
            "--log-level",
            "warning",
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.2)
        upstream.reply("hello from upstream")
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        answer = client.chat.completions.create(model="gpt-up", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "hello from upstream"
        assert upstream.requests[-1]["auth"] == f"Bearer {UPSTREAM_KEY}"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        upstream.stop()
    assert "in front of" in err and UPSTREAM_KEY not in err


# --------------------------------------------------------------------------- a real sandbox

SCALE = (
    "import hashlib\n\n"
    "def run(params):\n"
    "    text = params['text']\n"
    "    return {'sha256': hashlib.sha256(text.encode()).hexdigest()[:16], 'length': len(text)}\n"
)
SCALE_TESTS = (
    "import hashlib\n"
    "from scripts.main import run\n\n"
    "def test_digest_and_length():\n"
    "    assert run({'text': 'abc'}) == {'sha256': 'ba7816bf8f01cfea', 'length': 3}\n"
    "    assert run({'text': ''}) == {'sha256': 'e3b0c44298fc1c14', 'length': 0}\n\n"
    "def test_unicode():\n"
    "    assert run({'text': 'é'})['length'] == 1\n"
    "    assert run({'text': 'é'})['sha256'] == hashlib.sha256('é'.encode()).hexdigest()[:16]\n"
)


def test_a_tool_call_runs_in_the_sandbox(tmp_path, backend, runner_image):
    upstream = ScriptedLLM().start()
    settings = Settings(home=tmp_path / "home", wheelhouse=WHEELHOUSE, mutants=6, pool_size=0)
    folder = write_skill(
        tmp_path / "src",
        "text-digest",
        script=SCALE,
        tests={"test_main.py": SCALE_TESTS},
        sidecar="entrypoint: scripts/main.py:run\ninput_schema:\n  type: object\n  required: [text]\n",
        description="Compute the SHA-256 digest (first 16 hex digits) and the length of a text.",
    )
    factory = make_factory(backend, runner_image)
    yard = factory(settings)
    assert yard.add(folder).status == "registered"
    yard.close()
    key = Tenants(settings.home).add_tenant("ops", admin=True)
    llm = LLM(settings, base_url=upstream.url, api_key=UPSTREAM_KEY, model="gpt-up", max_retries=0)
    app = create_app(settings, yard_factory=factory, upstream=llm)
    upstream.tool_call("text-digest", {"text": "skillyard"})
    upstream.reply("Done.")
    try:
        with ServerThread(app) as srv:
            client = OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)
            stream = client.chat.completions.create(
                model="gpt-up",
                stream=True,
                messages=[{"role": "user", "content": "Compute the SHA-256 digest of the text 'skillyard'"}],
            )
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Done."
    finally:
        upstream.stop()
    import hashlib

    fed_back = json.loads(upstream.requests[1]["body"]["messages"][-1]["content"])
    assert fed_back == {"sha256": hashlib.sha256(b"skillyard").hexdigest()[:16], "length": 9}
    shared = Yard(settings, sandbox=Sandbox(backend), pool=False)
    assert shared.registry.get("text-digest").calls == 1
    shared.close()
