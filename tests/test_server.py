"""The HTTP API over real HTTP (uvicorn on 127.0.0.1), real Docker, real LanceDB in tmp dirs.

One server for the module: tenants root (admin), alice, bob, carol (1 concurrent run) and
dave (whose home is broken on purpose); a shared skill imported by root and a private one
imported by alice, both through the API.
"""

from __future__ import annotations

import gzip
import http.client
import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from runtime.client import SkillyardClient, SkillyardError
from runtime.config import Settings
from runtime.errors import TenantError
from runtime.http import create_app
from runtime.package import load_package, pack_files
from runtime.tenants import Tenants
from tests.conftest import WHEELHOUSE, write_skill
from tests.helpers import ServerThread, make_factory

SCRIPT = textwrap.dedent("""
    import time

    def run(params):
        mode = params.get("mode", "echo")
        if mode == "sleep":
            time.sleep(params.get("seconds", 1))
        if mode == "raise":
            raise ValueError("asked to fail")
        return {"echo": params.get("text", ""), "mode": mode}
""")
TESTS = textwrap.dedent("""
    import time

    import pytest
    from scripts.main import run

    def test_echo():
        assert run({"text": "hi"}) == {"echo": "hi", "mode": "echo"}
        assert run({}) == {"echo": "", "mode": "echo"}

    def test_sleep_waits_and_echo_does_not():
        started = time.monotonic()
        assert run({"mode": "sleep", "seconds": 0.3}) == {"echo": "", "mode": "sleep"}
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        assert run({"mode": "sleep"}) == {"echo": "", "mode": "sleep"}
        assert time.monotonic() - started >= 1.0  # one second unless told otherwise
        started = time.monotonic()
        run({"text": "x", "seconds": 5})  # only the sleep mode sleeps
        assert time.monotonic() - started < 4.0

    def test_raise():
        with pytest.raises(ValueError, match="asked to fail"):
            run({"mode": "raise"})
""")
SIDECAR = textwrap.dedent("""
    entrypoint: scripts/main.py:run
    input_schema:
      type: object
      properties:
        text: {type: string}
        mode: {enum: [echo, sleep, raise]}
        seconds: {type: number, minimum: 0, maximum: 5}
      additionalProperties: false
    output_schema:
      type: object
      required: [echo]
    limits:
      timeout: 8
""")
SHARED, SECRET = "sy-shared", "sy-secret"
_BODIES: list[str] = []  # every response body this module saw (checked for tracebacks at the end)


def _record(resp: httpx.Response) -> None:
    if "text/event-stream" not in resp.headers.get("content-type", ""):
        resp.read()
        _BODIES.append(resp.text)


def api_client(base: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base, headers=headers, timeout=120, event_hooks={"response": [_record]})


def archive(folder: Path, prefix: bool = True) -> bytes:
    pkg = load_package(folder)
    if not prefix:
        return pkg.to_archive()
    return pack_files(
        {f"{pkg.name}/{k}": v for k, v in pkg.files.items()}, {f"{pkg.name}/{k}" for k in pkg.executable}
    )


def wait_job(c: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {job}"
        time.sleep(0.2)


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


def _settled_tree(root: Path, quiet_s: float = 1.0, timeout: float = 30) -> dict[str, int]:
    """The tree once earlier requests' background accounting writes (the yards' writer threads) are done:
    unchanged for `quiet_s`."""
    deadline = time.monotonic() + timeout
    last = tree(root)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = tree(root)
        if now == last:
            return now
        last = now
    return last


@pytest.fixture(scope="module")
def env(tmp_path_factory, backend, runner_image):
    root = tmp_path_factory.mktemp("api")
    home = root / "home"
    settings = Settings(home=home, wheelhouse=WHEELHOUSE, openai_base_url=None, openai_api_key=None)
    tenants = Tenants(home)
    keys = {
        "root": tenants.add_tenant("root", admin=True),
        "alice": tenants.add_tenant("alice"),
        "bob": tenants.add_tenant("bob"),
        "carol": tenants.add_tenant("carol", max_concurrent_runs=1),
        "dave": tenants.add_tenant("dave"),
    }
    (home / "tenants").mkdir(parents=True, exist_ok=True)
    (home / "tenants" / "dave").write_text("not a folder: every store access for dave fails")
    app = create_app(settings, yard_factory=make_factory(backend, runner_image))
    with ServerThread(app) as srv:
        clients = {name: api_client(srv.url, key) for name, key in keys.items()}
        src = root / "src"
        shared_dir = write_skill(
            src,
            SHARED,
            script=SCRIPT,
            tests={"test_main.py": TESTS},
            sidecar=SIDECAR,
            description="Echo text back for everyone.",
        )
        secret_dir = write_skill(
            src,
            SECRET,
            script=SCRIPT,
            tests={"test_main.py": TESTS},
            sidecar=SIDECAR,
            description="Alice's private echo with secret sauce.",
        )
        r1 = clients["root"].post(
            "/v1/skills",
            params={"shared": "true"},
            content=archive(shared_dir),
            headers={"Content-Type": "application/gzip"},
        )
        # alice uploads as multipart, files at the archive's root
        r2 = clients["alice"].post(
            "/v1/skills", files={"file": ("x.tar.gz", archive(secret_dir, prefix=False), "application/gzip")}
        )
        assert r1.status_code == 202 and r2.status_code == 202, (r1.text, r2.text)
        jobs = {
            "shared": wait_job(clients["root"], r1.json()["id"]),
            "secret": wait_job(clients["alice"], r2.json()["id"]),
        }
        for job in jobs.values():
            assert job["state"] == "succeeded" and job["result"]["status"] == "registered", job
        yield {
            "url": srv.url,
            "keys": keys,
            "c": clients,
            "home": home,
            "app": app,
            "jobs": jobs,
            "src": src,
            "settings": settings,
        }
        for c in clients.values():
            c.close()


# -- auth ------------------------------------------------------------------------------------------------
def _v1_routes(app) -> list[tuple[str, str]]:
    """Every /v1 operation the app documents (a new endpoint is covered without editing this test)."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        if path.startswith("/v1"):
            for method in sorted(ops):
                concrete = (
                    path.replace("{name}", SHARED)
                    .replace("{job_id}", "0" * 32)
                    .replace("{version}", "1")
                    .replace("{tenant}", "bob")
                    .replace("{key_id}", "a" * 12)
                )
                out.append((method.upper(), concrete))
    return out


def test_every_v1_endpoint_needs_a_valid_key(env):
    routes = _v1_routes(env["app"])
    assert len(routes) >= 30, routes
    real_id = env["keys"]["bob"].split("_")[1]
    bad_keys = [
        None,
        "Bearer",
        "Bearer sy_nope",
        "Basic cm9vdDpyb290",
        f"Bearer sy_{real_id}_{'A' * 43}",
        f"Bearer {env['keys']['bob']}x",
        "Bearer " + env["keys"]["bob"].replace("sy_", "xy_"),
    ]
    with httpx.Client(base_url=env["url"], timeout=30, event_hooks={"response": [_record]}) as c:
        for method, path in routes:
            for auth in bad_keys:
                headers = {"Authorization": auth} if auth else {}
                r = c.request(method, path, headers=headers, json={"input": {}} if method == "POST" else None)
                assert r.status_code == 401, (method, path, auth, r.status_code, r.text)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "API key" in r.json()["error"] and r.json()["request_id"] == r.headers["x-request-id"]
        # the same key, unmangled, gets in: the 401s above are about the key
        assert (
            c.get("/v1/skills", headers={"Authorization": f"Bearer {env['keys']['bob']}"}).status_code == 200
        )
        assert c.get("/healthz").status_code == 200 and c.get("/openapi.json").status_code == 200


def test_tenants_file_is_private_and_holds_no_key(env):
    path = env["home"] / "tenants.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    text = path.read_text()
    for key in env["keys"].values():
        assert key not in text and key.split("_", 2)[2] not in text
    assert Tenants(env["home"]).authenticate(env["keys"]["alice"]).name == "alice"
    assert Tenants(env["home"]).authenticate(env["keys"]["alice"][:-1] + "x") is None
    assert Tenants(env["home"]).authenticate(env["keys"]["alice"] + "\n") is None
    for bad in ("alice\n", "../x", "A", "-x", "x" * 33, ""):
        with pytest.raises(TenantError):
            Tenants(env["home"]).add_tenant(bad)


# -- running ---------------------------------------------------------------------------------------------
def test_tenant_runs_shared_and_own_skills(env):
    bob, alice = env["c"]["bob"], env["c"]["alice"]
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "hello"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] and body["output"] == {"echo": "hello", "mode": "echo"} and body["scope"] == "shared"
    assert body["limits"]["network"] == "none" and body["duration_ms"] > 0
    r = alice.post(f"/v1/skills/{SECRET}/run", json={"input": {"text": "mine"}})
    assert r.status_code == 200 and r.json()["output"]["echo"] == "mine" and r.json()["scope"] == "private"
    # the skill's own failure: the call ran, so 200 with ok=false and the error (no traceback text)
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"mode": "raise"}})
    assert r.status_code == 200 and r.json()["ok"] is False
    err = r.json()["error"]
    assert err["kind"] == "exception" and err["type"] == "ValueError" and "asked to fail" in err["message"]
    assert err["location"].startswith("scripts/main.py:") and "traceback" not in err
    # input that does not fit the skill's schema
    # a call that never reached the skill is an error answer, not a result
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": 5}})
    assert r.status_code == 422 and r.json()["kind"] == "invalid_input" and "ok" not in r.json()
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "x"}, "version": 9})
    assert r.status_code == 404


def test_python_client_mirrors_the_api(env, tmp_path):
    with SkillyardClient(env["url"], env["keys"]["alice"]) as sy:
        names = {s["name"]: s["scope"] for s in sy.list()}
        assert names == {SHARED: "shared", SECRET: "private"}
        assert sy.get(SECRET)["config"]["entrypoint"] == "scripts/main.py:run"
        assert sy.skill_md(SECRET).startswith("---\nname: sy-secret")
        assert sy.run(SECRET, {"text": "c"})["output"]["echo"] == "c"
        with pytest.raises(SkillyardError) as refused:
            sy.run(SECRET, {"text": 1})
        assert refused.value.status == 422 and refused.value.remote_kind == "invalid_input"
        assert [v["version"] for v in sy.versions(SECRET)] == [1]
        assert {h["name"] for h in sy.search("secret sauce echo", limit=5)} >= {SECRET}
        target = sy.export(SECRET, tmp_path)
        assert load_package(target).content_hash == load_package(env["src"] / SECRET).content_hash
        job = sy.run(SECRET, {"text": "later"}, async_=True)
        done = sy.wait(job["id"], timeout=60)
        assert done["state"] == "succeeded" and done["result"]["output"]["echo"] == "later"
        assert [e for e, _ in sy.events(job["id"])][-1] == "result"
        assert any(row["skill"] == SECRET for row in sy.cost())
        with pytest.raises(SkillyardError) as info:
            sy.get("sy-nothing")
        assert info.value.status == 404 and info.value.request_id


# -- isolation ----------------------------------------------------------------------------------------------
def test_tenant_isolation_on_every_endpoint(env):
    alice, bob = env["c"]["alice"], env["c"]["bob"]
    job_id = env["jobs"]["secret"]["id"]
    # positive control: alice sees her skill and her job
    assert alice.get(f"/v1/skills/{SECRET}").status_code == 200
    assert alice.get(f"/v1/jobs/{job_id}").status_code == 200

    def probes(name: str) -> list[tuple[str, str, dict | None]]:
        return [
            ("GET", f"/v1/skills/{name}", None),
            ("GET", f"/v1/skills/{name}?scope=private", None),
            ("GET", f"/v1/skills/{name}?scope=shared", None),
            ("GET", f"/v1/skills/{name}/skill.md", None),
            ("POST", f"/v1/skills/{name}/run", {"input": {"text": "x"}}),
            ("POST", f"/v1/skills/{name}/run", {"input": {"text": "x"}, "async": True}),
            ("GET", f"/v1/skills/{name}/versions", None),
            ("POST", f"/v1/skills/{name}/rollback", {"version": 1}),
            ("GET", f"/v1/skills/{name}/export", None),
            ("POST", f"/v1/skills/{name}/fix", {}),
            ("POST", f"/v1/skills/{name}/test", {}),
            ("GET", f"/v1/cost/{name}", None),
        ]

    for (method, path, body), (_, other, _) in zip(probes(SECRET), probes("sy-nothing"), strict=True):
        r = bob.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        # exactly what a name nobody has gets: nothing tells bob alice's skill exists
        r2 = bob.request(method, other, json=body)
        assert r2.status_code == 404
        assert r.json()["error"].replace(SECRET, "X") == r2.json()["error"].replace("sy-nothing", "X")
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events"):
        r = bob.get(path)
        assert r.status_code == 404 and r.json()["error"] == "no such job", path
    assert SECRET not in {s["name"] for s in bob.get("/v1/skills").json()}
    assert bob.get("/v1/skills", params={"scope": "private"}).json() == []
    assert SECRET not in {h["name"] for h in bob.get("/v1/search", params={"q": "secret sauce"}).json()}
    assert SECRET not in {row["skill"] for row in bob.get("/v1/cost").json()}
    assert job_id not in {j["id"] for j in bob.get("/v1/jobs").json()}
    assert all(e["tenant"] == "bob" for e in bob.get("/v1/audit").json())
    assert bob.get("/v1/audit", params={"tenant": "alice"}).status_code == 403
    # and on disk: bob's store has no trace of alice's skill
    assert not (env["home"] / "tenants" / "bob" / "skills" / SECRET).exists()


def test_shared_skills_are_read_only_for_tenants(env, tmp_path):
    bob, root = env["c"]["bob"], env["c"]["root"]
    assert bob.post(f"/v1/skills/{SHARED}/rollback", json={"version": 1}).status_code == 403
    assert bob.post(f"/v1/skills/{SHARED}/fix", json={}).status_code == 403
    r = bob.post(
        "/v1/skills",
        params={"shared": "true"},
        content=archive(env["src"] / SHARED),
        headers={"Content-Type": "application/gzip"},
    )
    assert r.status_code == 403 and "admin" in r.json()["error"]
    assert bob.post("/v1/create", json={"task": "anything", "shared": True}).status_code == 403
    assert bob.get("/v1/cost", params={"scope": "shared"}).status_code == 403
    assert bob.get(f"/v1/cost/{SHARED}").status_code == 403
    assert bob.get(f"/v1/skills/{SHARED}").json()["memory"] is None
    # the admin may
    r = root.post(f"/v1/skills/{SHARED}/rollback", json={"version": 1})
    assert r.status_code == 200 and r.json()["current"] is True
    r = root.post(f"/v1/skills/{SHARED}/rollback", json={"version": 7})
    assert r.status_code == 404
    assert root.get(f"/v1/cost/{SHARED}").status_code == 200
    assert root.get(f"/v1/skills/{SHARED}").json()["memory"] is not None
    # fix and create need an LLM endpoint: none is configured -> 503, saying so
    r = root.post(f"/v1/skills/{SHARED}/fix", json={"max_attempts": 1})
    assert r.status_code == 503 and "OPENAI_BASE_URL" in r.json()["error"]
    assert root.post("/v1/create", json={"task": "count words"}).status_code == 503
    # a tenant's own calls of a shared skill leave their notes in that tenant's folder, not the shared one
    bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"mode": "raise"}})
    assert (env["home"] / "tenants" / "bob" / "shared" / "skills" / SHARED / "failures.jsonl").exists()
    assert not (env["home"] / "skills" / SHARED / "failures.jsonl").exists()


# -- hostile input ------------------------------------------------------------------------------------------
def test_path_traversal_in_names_and_ids_touches_nothing(env):
    home = env["home"]
    env["c"]["bob"].get("/v1/skills")  # bob's stores exist before the snapshot
    before = _settled_tree(home)
    bad = [
        "..",
        "%2e%2e",
        "%2E%2E",
        "..%2f..%2fetc",
        "a%2fb",
        "a/b",
        "..%5c..%5cwin",
        "%00",
        "a" * 300,
        "sy-shared%2f..%2f..",
        "sy-shared%0a",
        "sy-shared%0d%0a",
        "Sy-Shared",
        "-x",
        ".",
        "%2e",
        "~root",
        "x..y",
        "..;",
        "a%20b",
    ]
    conn = http.client.HTTPConnection("127.0.0.1", int(env["url"].rsplit(":", 1)[1]), timeout=30)
    auth = {"Authorization": f"Bearer {env['keys']['bob']}", "Content-Type": "application/json"}
    seen = 0
    for name in bad:
        for method, path, body in [
            ("GET", f"/v1/skills/{name}", None),
            ("GET", f"/v1/skills/{name}/skill.md", None),
            ("POST", f"/v1/skills/{name}/run", b'{"input": {}}'),
            ("GET", f"/v1/skills/{name}/export", None),
            ("POST", f"/v1/skills/{name}/rollback", b'{"version": 1}'),
            ("GET", f"/v1/jobs/{name}", None),
            ("GET", f"/v1/jobs/{name}/events", None),
            ("GET", f"/v1/skills/../../{name}", None),
            ("GET", f"/v1/cost/{name}", None),
        ]:
            conn.request(method, path, body=body, headers=auth)
            resp = conn.getresponse()
            text = resp.read().decode()
            _BODIES.append(text)
            assert resp.status in (404, 422), (method, path, resp.status, text)
            assert json.loads(text)["error"]
            seen += 1
    conn.close()
    assert seen == len(bad) * 9
    assert tree(home) == before, "a rejected request changed the state folder"
    assert not (home.parent / "etc").exists() and not (home / "x").exists()


def test_body_limits(env, tmp_path):
    bob = env["c"]["bob"]
    big = b"\0" * (20 * 1024 * 1024 + 1)
    r = bob.post("/v1/skills", content=big, headers={"Content-Type": "application/gzip"})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(21):
            yield b"\0" * (1024 * 1024)

    r = bob.post("/v1/skills", content=chunks(), headers={"Content-Type": "application/gzip"})
    assert r.status_code == 413
    # A run may carry a command's input files (base64): it gets the upload limit, not the JSON one.
    r = bob.post(
        f"/v1/skills/{SHARED}/run",
        content=b'{"input": "' + b"x" * (20 * 1024 * 1024 + 1) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = bob.post(f"/v1/skills/{SHARED}/tests", json={"x": "y" * (4 * 1024 * 1024)})
    assert r.status_code == 413  # any other JSON body: the JSON limit
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))  # 40 MB of zeros in ~40 KB
    assert len(bomb) < 100_000
    r = bob.post("/v1/skills", content=bomb, headers={"Content-Type": "application/gzip"})
    assert r.status_code == 413 and "expands" in r.json()["error"]
    r = bob.post("/v1/skills", content=b"not an archive", headers={"Content-Type": "application/gzip"})
    assert r.status_code == 422 and "tar.gz" in r.json()["error"]
    # a package with a bad name fails validation with a message naming the problem
    bad = pack_files({"SKILL.md": b"---\nname: Bad_Name\ndescription: x\n---\n"})
    r = bob.post("/v1/skills", content=bad, headers={"Content-Type": "application/gzip"})
    assert r.status_code == 422 and "SKILL.md" in r.json()["error"]


def test_malformed_json_is_422_with_a_clear_message(env):
    bob = env["c"]["bob"]
    for path in (f"/v1/skills/{SHARED}/run", f"/v1/skills/{SHARED}/rollback", "/v1/create"):
        r = bob.post(path, content=b'{"input": {', headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "malformed JSON" in r.json()["error"], (path, r.text)
    r = bob.post(
        f"/v1/skills/{SHARED}/run",
        content=b"[" * 200_000 + b"]" * 200_000,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": {}, "asynchronous": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "asynchronous"]
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    r = bob.post(f"/v1/skills/{SHARED}/run", json={"input": deep})
    assert r.status_code == 422 and "nested deeper" in r.json()["error"]


def test_internal_errors_are_opaque(env):
    r = env["c"]["dave"].get("/v1/skills")
    assert r.status_code == 500
    assert r.json() == {
        "error": "internal error",
        "kind": "internal",
        "request_id": r.headers["x-request-id"],
    }


# -- jobs ---------------------------------------------------------------------------------------------------
def test_gate_job_streams_progress_over_sse(env):
    alice = env["c"]["alice"]
    r = alice.post(f"/v1/skills/{SECRET}/test", json={})
    assert r.status_code == 202 and r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
    job_id = r.json()["id"]
    events: list[tuple[str, dict]] = []
    with alice.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        kind, data = None, None
        for line in resp.iter_lines():
            assert "Traceback" not in line
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
            elif line == "" and kind:
                events.append((kind, data))
                kind = None
    kinds = [k for k, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "result", kinds
    assert "progress" in kinds and any("gate" in d.get("message", "") for k, d in events if k == "progress")
    final = events[-1][1]
    assert (
        final["state"] == "succeeded" and final["result"]["passed"] is True and final["result"]["tests"] == 3
    )
    # a reconnect with Last-Event-ID replays only what came after
    with alice.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "1"}) as resp:
        ids = [int(line[3:]) for line in resp.iter_lines() if line.startswith("id:")]
    assert ids and min(ids) == 2
    entries = env["c"]["root"].get("/v1/audit", params={"skill": SECRET, "event": "gate"}).json()
    assert entries and entries[-1]["tenant"] == "alice" and entries[-1]["outcome"] == "passed"


def test_concurrent_run_limit_is_429(env):
    carol = env["c"]["carol"]  # max_concurrent_runs=1
    r = carol.post(f"/v1/skills/{SHARED}/run", json={"input": {"mode": "sleep", "seconds": 3}, "async": True})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    r = carol.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "second"}})
    assert r.status_code == 429 and "limit is 1" in r.json()["error"] and r.headers["retry-after"]
    # other tenants are not held back by carol's limit
    assert env["c"]["bob"].post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "b"}}).status_code == 200
    job = wait_job(carol, job_id, timeout=60)
    assert job["state"] == "succeeded" and job["result"]["output"]["mode"] == "sleep"
    r = carol.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "third"}})
    assert r.status_code == 200 and r.json()["output"]["echo"] == "third"


def test_audit_log_records_calls_and_is_queryable(env):
    from runtime.audit import AuditLog

    bob = env["c"]["bob"]
    for body in ({"text": "a"}, {"mode": "raise"}, {"text": 3}):
        bob.post(f"/v1/skills/{SHARED}/run", json={"input": body})
    log = AuditLog(env["home"])
    calls = log.query(tenant="bob", skill=SHARED, event="call")
    assert calls and all(e["tenant"] == "bob" and e["skill"] == SHARED for e in calls)
    entry = calls[-1]
    for field in ("ts", "version", "scope", "outcome", "duration_ms", "limits"):
        assert field in entry, field
    assert {e["outcome"] for e in calls} >= {"ok", "exception", "invalid_input"}
    assert log.query(tenant="bob", since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert len(log.query(since="10m")) >= len(calls)
    admin_view = env["c"]["root"].get("/v1/audit", params={"limit": 10000}).json()
    assert {"alice", "bob", "root"} <= {e["tenant"] for e in admin_view}
    assert env["c"]["root"].get("/v1/audit", params={"tenant": "bob", "limit": 10000}).json() == [
        e for e in admin_view if e["tenant"] == "bob"
    ]
    for path in log.files():  # one trail per tenant, each private
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert {p.name for p in log.files()} >= {"alice.jsonl", "bob.jsonl", "root.jsonl"}
    out = subprocess.run(
        [sys.executable, "-m", "runtime", "audit", "--tenant", "bob", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "SKILLYARD_HOME": str(env["home"])},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert all(json.loads(line)["tenant"] == "bob" for line in out.stdout.splitlines()) and out.stdout


def test_openapi_describes_the_api(env):
    spec = httpx.get(env["url"] + "/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/skills",
        "/v1/skills/{name}",
        "/v1/skills/{name}/skill.md",
        "/v1/search",
        "/v1/skills/{name}/run",
        "/v1/skills/{name}/versions",
        "/v1/skills/{name}/rollback",
        "/v1/skills/{name}/export",
        "/v1/skills/{name}/test",
        "/v1/skills/{name}/fix",
        "/v1/create",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/cost",
        "/v1/cost/{name}",
        "/v1/audit",
    ):
        assert path in paths, path
    run = spec["components"]["schemas"]["RunRequest"]["properties"]
    assert set(run) == {"input", "version", "async", "stream", "argv", "stdin_b64", "files", "outputs"}
    assert paths["/v1/skills/{name}/run"]["post"]["security"] == [{"apiKey": []}]
    assert "multipart/form-data" in paths["/v1/skills"]["post"]["requestBody"]["content"]


def test_schemathesis_finds_no_server_errors(tmp_path, backend, runner_image):
    """Property-based requests from /openapi.json: no 5xx. Bounded: few examples, a time budget,
    an empty store (nothing to run) and an LLM endpoint that is configured but down."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency: pip install -e '.[dev]'"
    home = tmp_path / "home"
    settings = Settings(
        home=home, wheelhouse=WHEELHOUSE, openai_base_url="http://127.0.0.1:9/v1", openai_api_key="none"
    )
    key = Tenants(home).add_tenant("fuzz")
    with ServerThread(create_app(settings, yard_factory=make_factory(backend, runner_image))) as srv:
        out = subprocess.run(
            [
                st,
                "run",
                f"{srv.url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "5",
                "--max-time",
                "80",
                # One worker: CPython 3.11.7 can fail "AST constructor recursion depth mismatch"
                # when two threads parse code at once (schemathesis compiles in each worker).
                "--workers",
                "1",
                "--seed",
                "7",
                "--no-color",
                "--request-timeout",
                "30",
                "--phases",
                "coverage,fuzzing",
                "--header",
                f"Authorization: Bearer {key}",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    text = out.stdout + out.stderr
    errors = text[text.find("ERRORS") :][:4000] if "ERRORS" in text else ""
    failures = text[text.find("FAILURES") :][:4000] if "FAILURES" in text else ""
    assert out.returncode == 0, errors or failures or text[-3000:]
    assert "Traceback" not in out.stdout


def test_zz_no_response_body_carries_a_traceback(env):
    """Every body this module saw (and a sweep of error paths, so this holds when run alone)."""
    bob = env["c"]["bob"]
    bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"mode": "raise"}})
    bob.post(f"/v1/skills/{SHARED}/run", content=b"{", headers={"Content-Type": "application/json"})
    bob.post("/v1/skills", content=b"\x1f\x8bnot gzip", headers={"Content-Type": "application/gzip"})
    bob.get("/v1/skills/sy-nothing/versions")
    bob.get("/v1/jobs/" + "f" * 32)
    env["c"]["dave"].get("/v1/search", params={"q": "x"})
    assert len(_BODIES) > 10
    leaking = [b[:300] for b in _BODIES if "Traceback" in b or 'File "/' in b]
    assert not leaking, leaking


# -- packages that cannot be built, refused attempts, audit of failures -------------------------------------
def _tar(*entries: tuple[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_unbuildable_packages_are_422_not_a_failed_job(env):
    """Each of these once got 202 and a job failing with a bare 'internal error' (the engine's 500)."""
    bob = env["c"]["bob"]
    md = b"---\nname: bob-bad\ndescription: A package the engine cannot write.\n---\n# bob-bad\n"
    cases = {
        "file and also a folder": [
            ("SKILL.md", md),
            ("resources/stopwords.txt", b"a"),
            ("resources/stopwords.txt/x", b"b"),
        ],
        "limit is 255": [("SKILL.md", md), ("resources/" + "a" * 300, b"a")],
        "limit is 1024": [("SKILL.md", md), ("/".join(["d" * 200] * 6), b"a")],
        "SKILL.md: is in the archive twice": [
            ("SKILL.md", md),
            ("SKILL.md", md.replace(b"A package", b"Other")),
        ],
        "x: is in the archive twice": [("SKILL.md", md), ("x", b"1"), ("./x", b"2")],
    }
    before = len(bob.get("/v1/jobs").json())
    for fragment, entries in cases.items():
        for prefix in ("", "bob-bad/"):  # files at the root, or in one top folder
            blob = _tar(
                *(
                    (n.replace("./", "./" + prefix) if n.startswith("./") else prefix + n, d)
                    for n, d in entries
                )
            )
            r = bob.post("/v1/skills", content=blob, headers={"Content-Type": "application/gzip"})
            assert r.status_code == 422, (fragment, prefix, r.status_code, r.text)
            assert (
                r.json()["error"].startswith("package rejected: ")
                and fragment.split(": ")[-1] in r.json()["error"]
            )
    assert len(bob.get("/v1/jobs").json()) == before  # no job was started for any of them


def test_refused_attempts_are_audited(env):
    bob, carol, root = env["c"]["bob"], env["c"]["carol"], env["c"]["root"]
    assert bob.post(f"/v1/skills/{SHARED}/rollback", json={"version": 1}).status_code == 403
    assert (
        bob.post(
            "/v1/skills",
            params={"shared": "true"},
            content=archive(env["src"] / SHARED),
            headers={"Content-Type": "application/gzip"},
        ).status_code
        == 403
    )
    r = carol.post(f"/v1/skills/{SHARED}/run", json={"input": {"mode": "sleep", "seconds": 1}, "async": True})
    assert r.status_code == 202
    assert carol.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "2"}}).status_code == 429
    wait_job(carol, r.json()["id"], timeout=60)
    refused = [e for e in root.get("/v1/audit", params={"limit": 10000}).json() if e["outcome"] == "refused"]
    seen = {(e["tenant"], e["event"], e.get("skill"), e["error"]) for e in refused}
    assert {
        ("bob", "rollback", SHARED, "forbidden"),
        ("bob", "import", None, "forbidden"),
        ("carol", "call", SHARED, "too_many_runs"),
    } <= seen, seen
    assert all(e["request_id"] for e in refused)


def test_audit_since_accepts_relative_times(env):
    bob = env["c"]["bob"]
    bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"text": "recent"}})
    for since in ("2h", "30m", "1d", "90s", "2000-01-01T00:00:00Z"):
        r = bob.get("/v1/audit", params={"since": since})
        assert r.status_code == 200 and r.json(), (since, r.text)
    assert bob.get("/v1/audit", params={"until": "2000-01-01T00:00:00Z"}).json() == []
    r = bob.get("/v1/audit", params={"since": "yesterday-ish"})
    assert r.status_code == 422 and "30m, 2h, 7d" in r.json()["error"]


def test_json_body_without_json_content_type_says_to_set_it(env):
    bob = env["c"]["bob"]
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        r = bob.post(
            f"/v1/skills/{SHARED}/run", content=b'{"input": {"text": "x"}}', headers={"Content-Type": ctype}
        )
        assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"], r.text
    # with the header the same body runs; a JSON body of the wrong shape still says what is wrong
    r = bob.post(
        f"/v1/skills/{SHARED}/run",
        content=b'{"input": {"text": "x"}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200
    r = bob.post(f"/v1/skills/{SHARED}/run", content=b"[1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "Content-Type" not in r.json()["error"]


def test_non_finite_numbers_in_input_are_422(env):
    bob = env["c"]["bob"]
    failures = env["home"] / "tenants" / "bob" / "shared" / "skills" / SHARED / "failures.jsonl"
    before = failures.read_text() if failures.exists() else ""
    for raw in (
        b'{"input": {"seconds": NaN}}',
        b'{"input": {"seconds": 1e999}}',
        b'{"input": {"text": "x", "n": [1, {"d": -Infinity}]}}',
        b'{"input": Infinity}',
    ):
        r = bob.post(f"/v1/skills/{SHARED}/run", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "finite" in r.json()["error"], (raw, r.text)
    assert (failures.read_text() if failures.exists() else "") == before
    assert (
        bob.post(f"/v1/skills/{SHARED}/run", json={"input": {"seconds": 1e300, "text": "x"}}).status_code
        == 422
    )


def test_python_client_audit_event_cost_scope_and_create_flags(env):
    with SkillyardClient(env["url"], env["keys"]["root"]) as sy:
        sy.run(SHARED, {"text": "for the audit"})
        calls = sy.audit(event="call", since="1h")
        assert calls and {e["event"] for e in calls} == {"call"}
        assert sy.cost(SHARED)["skill"] == SHARED
        assert sy.cost(SHARED, scope="shared")["scope"] == "shared"
        with pytest.raises(SkillyardError) as info:
            sy.cost(SHARED, scope="private")  # root has no private skill of that name
        assert info.value.status == 404
        with pytest.raises(SkillyardError) as info:
            sy.create("count words", allow_test_edits=True)  # sent; no LLM configured here
        assert info.value.status == 503


@pytest.fixture(scope="module")
def lone(tmp_path_factory, backend, runner_image):
    """A server with ONE job worker and an LLM endpoint that is configured but down; tenants root
    (admin), ann and ben; one shared skill."""
    root = tmp_path_factory.mktemp("lone")
    home = root / "home"
    settings = Settings(
        home=home,
        wheelhouse=WHEELHOUSE,
        openai_base_url="http://127.0.0.1:9/v1",
        openai_api_key="none",
        llm_max_retries=0,
    )
    tenants = Tenants(home)
    keys = {n: tenants.add_tenant(n, admin=n == "root") for n in ("root", "ann", "ben")}
    app = create_app(settings, yard_factory=make_factory(backend, runner_image), job_workers=1)
    with ServerThread(app) as srv:
        clients = {name: api_client(srv.url, key) for name, key in keys.items()}
        src = write_skill(
            root / "src",
            SHARED,
            script=SCRIPT,
            tests={"test_main.py": TESTS},
            sidecar=SIDECAR,
            description="Echo text back for everyone.",
        )
        r = clients["root"].post(
            "/v1/skills",
            params={"shared": "true"},
            content=archive(src),
            headers={"Content-Type": "application/gzip"},
        )
        assert r.status_code == 202, r.text
        assert wait_job(clients["root"], r.json()["id"])["result"]["status"] == "registered"
        yield {"c": clients, "app": app, "home": home}
        for c in clients.values():
            c.close()


def test_one_tenants_backlog_does_not_hold_up_another(lone):
    """ann queues 4 gate jobs on the single worker; ben then queues one. ben's job must start as soon as
    the worker frees, before ann's remaining queued jobs (order from the jobs' start times and events)."""
    ann, ben = lone["c"]["ann"], lone["c"]["ben"]
    ann_ids = []
    for _ in range(4):
        r = ann.post(f"/v1/skills/{SHARED}/test", json={})
        assert r.status_code == 202, r.text
        ann_ids.append(r.json()["id"])
    deadline = time.monotonic() + 60
    while ann.get(f"/v1/jobs/{ann_ids[0]}").json()["state"] == "queued":  # the worker has taken ann's first
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = ben.post(f"/v1/skills/{SHARED}/test", json={})
    assert r.status_code == 202
    ben_job = wait_job(ben, r.json()["id"], timeout=300)
    ann_jobs = [wait_job(ann, i, timeout=300) for i in ann_ids]
    assert ben_job["state"] == "succeeded" and all(j["state"] == "succeeded" for j in ann_jobs)
    started = {j["id"]: j["started_at"] for j in [*ann_jobs, ben_job]}
    order = sorted(started, key=lambda i: started[i])
    assert order[0] == ann_ids[0] and order[1] == ben_job["id"], (order, ann_ids, ben_job["id"])
    # one worker: each job started after the previous one finished
    jobs = sorted([*ann_jobs, ben_job], key=lambda j: j["started_at"])
    assert all(a["finished_at"] <= b["started_at"] for a, b in itertools.pairwise(jobs))

    # the events say the same: ben's 'running' event precedes ann's second job's
    def running_ts(c: httpx.Client, job_id: str) -> str:
        return next(e["ts"] for e in _events(c, job_id) if e.get("state") == "running")

    assert running_ts(ben, ben_job["id"]) < running_ts(ann, ann_ids[1])


def _events(c: httpx.Client, job_id: str) -> list[dict]:
    out = []
    with c.stream("GET", f"/v1/jobs/{job_id}/events") as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
    return out


def test_failed_jobs_are_audited_with_the_error_kind(lone):
    root = lone["c"]["root"]
    r = root.post("/v1/create", json={"task": "count the words in a text", "name": "word-count"})
    assert r.status_code == 202, r.text
    job = wait_job(root, r.json()["id"], timeout=120)
    assert job["state"] == "failed" and job["error"]
    entries = [
        e for e in root.get("/v1/audit", params={"event": "create"}).json() if e.get("job_id") == job["id"]
    ]
    assert len(entries) == 1, entries
    assert (
        entries[0]["outcome"] == "error"
        and entries[0]["error"] in ("fix", "llm")
        and entries[0]["tenant"] == "root"
    )
    assert "duration_ms" in entries[0] and "Traceback" not in json.dumps(entries[0])


def test_unexpected_job_failures_say_what_to_do(backend):
    """A job that dies of something unforeseen: the engine refusing an operation, or a plain bug. The
    job's error names what broke and the job id to quote; no traceback."""
    import docker

    from runtime.http.jobs import JobStore

    store = JobStore(workers=1, max_per_tenant=8)
    client = docker.from_env()
    try:
        engine = store.submit(
            "t",
            "import",
            "sy-x",
            "private",
            lambda job: client.images.get("skillyard/no-such-image:nope").attrs,
        )
        bug = store.submit("t", "gate", None, None, lambda job: {}["missing"])
        deadline = time.monotonic() + 30
        while not (engine.done and bug.done):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        store.shutdown()
        client.close()
    assert engine.state == bug.state == "failed"
    assert "container engine" in engine.error and "404" in engine.error and "no-such-image" in engine.error
    assert "import of sy-x" in engine.error and engine.id in engine.error
    assert "KeyError" in bug.error and bug.id in bug.error and "bug" in bug.error
    for text in (engine.error, bug.error):
        assert "Traceback" not in text and 'File "' not in text
