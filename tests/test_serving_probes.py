"""Serving under attack: the probes an adversarial tenant runs against the HTTP API, each a
test. Compression bombs (every gzip member and header record counted), cheap refusals
(the run limiter before any store look-up, refusals aggregated in the audit trail),
per-tenant audit, reserved tenant names, credentials in URLs, undeclared media types.

Two servers: `skillyard serve` as a subprocess (its own memory, its own access log, as an
operator runs it) and an in-thread app over real HTTP whose skills are host functions
(runtime.testing), so a run can be held open on purpose without a container engine.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from runtime.audit import AuditLog
from runtime.config import Settings
from runtime.errors import TenantError
from runtime.package import pack_files
from runtime.tenants import Tenants
from runtime.testing import register
from tests.conftest import WHEELHOUSE
from tests.helpers import ScriptedServer, free_port, skill_files

MiB = 1024 * 1024


# -- the probes' archives ------------------------------------------------------------------------------------
def pax_bomb(record_bytes: int, *, members: int) -> bytes:
    """A .tar.gz whose first header is a pax record of `record_bytes`: the header block in the first
    gzip member, the record's bytes (zeros) spread over `members` more members."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = record_bytes
    out = [gzip.compress(header.tobuf(format=tarfile.USTAR_FORMAT), compresslevel=9)]
    per, rest = divmod(record_bytes, members)
    for i in range(members):
        out.append(gzip.compress(b"\0" * (per + (rest if i == members - 1 else 0)), compresslevel=9))
    return b"".join(out)


def skill_archive(name: str = "probe-echo") -> bytes:
    md = f"---\nname: {name}\ndescription: Echo for the probes.\n---\n# {name}\nUse it.\n".encode()
    return pack_files(
        {
            f"{name}/SKILL.md": md,
            f"{name}/skillyard.yaml": b"entrypoint: scripts/main.py:run\n",
            f"{name}/scripts/main.py": b"def run(params):\n    return params\n",
            f"{name}/tests/test_main.py": b"from scripts.main import run\n\n"
            b"def test_run():\n    assert run({'a': 1}) == {'a': 1}\n",
        }
    )


# -- `skillyard serve` as an operator runs it ------------------------------------------------------------
class Served:
    """A `skillyard serve` subprocess on a free port, its log in a file."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home, self.log_path = home, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SKILLYARD_HOME": str(home),
            "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE),
            "SKILLYARD_POOL_SIZE": "0",
        }
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.2)
        # the embedder warms up in the background: wait for it, so memory peaks are the requests'
        deadline = time.monotonic() + 60
        while "embedding" not in self.log() and time.monotonic() < deadline:
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def peak_rss(self) -> int:
        """The server's peak resident memory so far (VmHWM), bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, docker_client):
    root = tmp_path_factory.mktemp("served")
    home = root / "home"
    key = Tenants(home).add_tenant("mallory")
    server = Served(home, root / "server.log")
    try:
        yield server, key
    finally:
        server.stop()


def test_a_multi_member_gzip_bomb_is_413_and_costs_the_server_no_memory(served):
    server, key = served
    bomb = pax_bomb(260 * MiB, members=64)
    assert len(bomb) < 400 * 1024  # a quarter MB on the wire
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/gzip"}
    httpx.get(f"{server.url}/v1/skills", headers=auth, timeout=30)  # the tenant's yards exist
    before = server.peak_rss()
    r = httpx.post(f"{server.url}/v1/skills", content=bomb, headers=auth, timeout=120)
    grown = server.peak_rss() - before
    assert grown < 64 * MiB, f"the server's peak memory grew by {grown / MiB:.0f} MiB ({r.status_code})"
    assert r.status_code == 413 and "expands" in r.json()["error"], r.text
    # the same shape in one gzip member, and a pax record that fits the cap: refused or rejected
    one = gzip.compress(gzip.decompress(pax_bomb(30 * MiB, members=1)), compresslevel=9)
    r = httpx.post(f"{server.url}/v1/skills", content=one, headers=auth, timeout=120)
    assert r.status_code == 413, r.text
    small = pax_bomb(2 * MiB, members=4)
    r = httpx.post(f"{server.url}/v1/skills", content=small, headers=auth, timeout=120)
    assert r.status_code in (413, 422) and r.json()["error"], r.text
    # a valid package split over several gzip members is still a valid package
    tar = gzip.decompress(skill_archive())
    split = b"".join(gzip.compress(tar[i : i + 700]) for i in range(0, len(tar), 700))
    from runtime.http.uploads import parse_upload

    assert parse_upload(split, Settings(home=server.home)).name == "probe-echo"


def test_credentials_in_the_url_never_reach_the_log(served):
    server, key = served
    secret = key.split("_", 2)[2]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/v1/skills", params={"api_key": key})  # a key only in the URL: not accepted
        assert r.status_code == 401 and "Authorization" in r.json()["error"]
        r = c.get("/v1/skills", params={"api_key": key}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        c.get("/v1/skills", params={"token": secret, "scope": "all"})
        c.get("/v1/skills", params={"access_token": key, "password": "hunter2-probe"})
        c.get(f"/v1/skills/{key}")
        c.get(f"/v1/search?q={key}")
    deadline = time.monotonic() + 10
    while "/v1/search" not in server.log() and time.monotonic() < deadline:  # access lines are flushed
        time.sleep(0.1)
    log = server.log()
    assert "/v1/skills" in log and "/v1/search" in log, log[-2000:]  # the requests were logged...
    assert secret not in log and "hunter2-probe" not in log  # ...without their credentials
    assert "api_key=[redacted]" in log and "scope=all" in log


# -- an in-thread server whose skills are host functions ------------------------------------------------
class Scripted(ScriptedServer):
    """Tenants root (admin), bob, carol (one run at a time), eve (one run); shared skills
    `echo` and `hold` (which holds its run until `release` is set)."""

    def __init__(self, tmp: Path) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

        def hold(params):
            self.entered.release()
            self.release.wait(30)
            return {"held": True}

        super().__init__(
            tmp,
            {"hold": hold, "echo": lambda p: p},
            tenants={"root": (True, None), "bob": (False, None), "carol": (False, 1), "eve": (False, 1)},
        )
        self.register_shared("hold")
        self.register_shared("echo")


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    env = Scripted(tmp_path_factory.mktemp("scripted"))
    with env:
        yield env


class Held:
    """`tenant` holds its one run slot (an async run of `hold`) until the block ends."""

    def __init__(self, env: Scripted, tenant: str) -> None:
        self.env, self.tenant = env, tenant

    def __enter__(self) -> Held:
        self.env.release.clear()
        with self.env.client(self.tenant) as c:
            r = c.post("/v1/skills/hold/run", json={"input": {}, "async": True})
            assert r.status_code == 202, r.text
            self.job = r.json()["id"]
        assert self.env.entered.acquire(timeout=30), "the held run never started"
        return self

    def __exit__(self, *exc) -> None:
        self.env.release.set()
        with self.env.client(self.tenant) as c:
            deadline = time.monotonic() + 30
            while c.get(f"/v1/jobs/{self.job}").json()["state"] not in ("succeeded", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            deadline = time.monotonic() + 10  # the slot is given back just after the job finishes
            while c.post("/v1/skills/echo/run", json={"input": {}}).status_code == 429:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_a_refusal_is_decided_before_the_skill_is_looked_up(scripted):
    with Held(scripted, "carol"), scripted.client("carol") as carol:
        # over the limit, a name nobody has is refused like any other: the store was never asked
        for name in ("no-such-skill", "echo", "a" * 64):
            r = carol.post(f"/v1/skills/{name}/run", json={"input": {}})
            assert r.status_code == 429 and r.headers["retry-after"], (name, r.text)
            assert r.json()["kind"] == "too_many_runs"
    with scripted.client("carol") as carol:  # the slot is back: the same names answer for themselves
        assert carol.post("/v1/skills/no-such-skill/run", json={"input": {}}).status_code == 404
        assert carol.post("/v1/skills/echo/run", json={"input": {"a": 1}}).json()["output"] == {"a": 1}


def test_repeated_refusals_are_one_audit_entry_with_a_count(scripted):
    with Held(scripted, "eve"), scripted.client("eve") as eve:
        for _ in range(60):
            assert eve.post("/v1/skills/echo/run", json={"input": {}}).status_code == 429
    with scripted.client("root") as root:
        refused = [
            e
            for e in root.get("/v1/audit", params={"tenant": "eve", "limit": 10000}).json()
            if e["outcome"] == "refused"
        ]
    assert sum(e.get("count", 1) for e in refused) == 60, refused
    assert len(refused) <= 3, f"{len(refused)} audit entries for 60 refusals"
    assert all(e["error"] == "too_many_runs" and e["skill"] == "echo" for e in refused)
    assert all(e["request_id"] and e["first_ts"] <= e["ts"] for e in refused)
    audit_files = [p for p in scripted.home.rglob("*") if p.is_file() and "audit" in p.name]
    lines = sum(line.count('"eve"') for p in audit_files for line in p.read_text().splitlines())
    assert lines < 10, f"{lines} audit lines of eve's on disk"


def test_one_tenants_refusals_never_push_out_another_tenants_history(tmp_path):
    log = AuditLog(tmp_path, max_bytes=64 * 1024, backups=1)
    log.record("call", tenant="bob", skill="echo", outcome="ok", request_id="bob-1")
    for i in range(5000):  # eve's flood, written one line each as a server without aggregation would
        log.record("call", tenant="eve", skill="echo", outcome="refused", error="too_many_runs", n=i)
    assert [e["request_id"] for e in log.query(tenant="bob")] == ["bob-1"]
    eve = log.query(tenant="eve", limit=100000)
    assert 0 < len(eve) < 5000 and eve[-1]["n"] == 4999  # eve's own history is bounded, newest kept
    every = log.query(limit=100000)
    assert {e["tenant"] for e in every} == {"bob", "eve"} and every[-1]["n"] == 4999


def test_the_operators_audit_name_is_no_tenant_name(tmp_path, scripted):
    for reserved in ("local", "shared", "private", "all"):
        with pytest.raises(TenantError, match="reserved"):
            Tenants(tmp_path).add_tenant(reserved)
    # a tenants file written by older code that holds a tenant named `local`: its key opens nothing,
    # so the operator's entries (audited as `local`) stay the operator's
    AuditLog(scripted.home).record("call", tenant="local", skill="echo", outcome="ok", request_id="operator")
    key = Tenants(scripted.home).add_tenant("loca1")
    raw = json.loads((scripted.home / "tenants.json").read_text())
    raw["tenants"]["local"] = raw["tenants"].pop("loca1")
    (scripted.home / "tenants.json").write_text(json.dumps(raw))
    with httpx.Client(base_url=scripted.server.url, timeout=30) as c:
        r = c.get("/v1/audit", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401 and "operator" not in r.text, r.text
    with scripted.client("root") as root:
        r = root.post("/v1/tenants", json={"name": "local"})
        assert r.status_code == 422 and "reserved" in r.json()["error"], r.text


def test_media_types_the_openapi_document_does_not_declare_are_415(scripted):
    spec = httpx.get(f"{scripted.server.url}/openapi.json").json()
    archive = skill_archive("probe-media")
    with scripted.client("bob") as bob:
        for ctype in ("application/json", "text/html", "text/plain", "application/x-www-form-urlencoded"):
            r = bob.post("/v1/skills", content=archive, headers={"Content-Type": ctype})
            assert r.status_code == 415, (ctype, r.status_code, r.text)
            assert "application/gzip" in r.json()["error"] and r.json()["kind"] == "unsupported_media_type"
        assert bob.post("/v1/skills", content=archive).status_code == 415  # no Content-Type at all
        assert bob.get("/v1/jobs").json() == []  # no job started for any of them
        # every operation that takes a body: an undeclared type is 415, a declared one is not
        checked = 0
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                declared = set((op.get("requestBody") or {}).get("content") or {})
                if not declared:
                    continue
                url = (
                    path.replace("{name}", "echo")
                    .replace("{version}", "1")
                    .replace("{tenant}", "bob")
                    .replace("{key_id}", "a" * 12)
                )
                r = bob.request(
                    method.upper(), url, content=b"<html></html>", headers={"Content-Type": "text/html"}
                )
                assert r.status_code == 415, (method, path, r.status_code, r.text)
                assert all(t in r.json()["error"] for t in declared), r.text
                checked += 1
        assert checked >= 6
        r = bob.post(
            "/v1/skills/echo/run",
            content=b'{"input": {"x": 1}}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 200 and r.json()["output"] == {"x": 1}
        r = bob.post("/v1/skills", content=archive, headers={"Content-Type": "application/gzip"})
        assert r.status_code == 202, r.text


def test_a_tenants_refusals_are_paced_and_only_its_own():
    from runtime.http.guard import RefusalPacer

    pacer = RefusalPacer(rate=10.0, burst=3)
    waits = [pacer.delay("eve") for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # a burst is answered at once
    for i, wait in enumerate(waits[3:], start=1):  # then one every 0.1 s: each waits its turn
        assert wait == pytest.approx(0.1 * i, abs=0.05), waits
    assert pacer.delay("bob") == 0.0  # another tenant's refusals have their own budget


def test_a_tenant_at_its_job_limit_is_refused_before_its_upload_is_read(tmp_path):
    from sandbox import RunResult

    env = ScriptedServer(
        tmp_path, {"echo": lambda p: p}, tenants={"gus": (False, None)}, max_jobs_per_tenant=1
    )
    tests = b"from scripts.main import run\n\n\ndef test_run():\n    assert run({'a': 1}) == {'a': 1}\n"
    register(env.shared, {**skill_files("echo"), "tests/test_main.py": tests})
    release, judging = threading.Event(), threading.Event()
    answer = env.backend.handler

    def handler(spec):
        if spec.owner == "gate":  # the gate's judge: hold the job (and the tenant's one job slot)
            judging.set()
            release.wait(30)
            return RunResult(exit_code=1, error="released by the test")
        return answer(spec)

    env.backend.handler = handler
    with env, env.client("gus") as gus:
        assert gus.post("/v1/skills/echo/test", json={}).status_code == 202
        assert judging.wait(30)
        try:
            # the upload is never read, the skill never looked up: the refusal comes first
            r = gus.post(
                "/v1/skills", content=b"not an archive", headers={"Content-Type": "application/gzip"}
            )
            assert r.status_code == 429 and r.json()["kind"] == "too_many_jobs", r.text
            r = gus.post("/v1/skills/no-such-skill/test", json={})
            assert r.status_code == 429 and r.json()["kind"] == "too_many_jobs", r.text
        finally:
            release.set()
