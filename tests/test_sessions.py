"""Sessions and command runs on every surface: Python, CLI, HTTP (with server-sent events)
and MCP, on a real engine, real LanceDB and real HTTP. The skills here are registered
without a gate (runtime.testing.register): what is tested is what happens around them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
import time

import docker
import httpx
import pytest

from runtime.client import SkillyardClient
from runtime.config import Settings
from runtime.errors import ApiError, NotFound, SkillError, UnknownSkill
from runtime.http import create_app
from runtime.package import package_from_files
from runtime.records import GateSummary
from runtime.sessions import session_limits
from runtime.skill_images import session_family
from runtime.tenants import Tenants
from runtime.testing import register
from sandbox import Sandbox
from tests.conftest import ROOT, WHEELHOUSE
from tests.helpers import ServerThread, make_factory

TOOL = "sess-tool"
REV = textwrap.dedent("""
    import sys, time
    def main(argv):
        if argv and argv[0] == "--slow":
            for i in range(3):
                print(f"tick {i}", flush=True)
                time.sleep(0.5)
            return 0
        source, target = argv
        with open(source, "rb") as f:
            data = f.read()
        with open(target, "wb") as f:
            f.write(data[::-1])
        print(f"reversed {len(data)} bytes")
        return 0
    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
""")
ECHO = textwrap.dedent("""
    import time
    def run(params):
        for i in range(params.get("ticks", 0)):
            print(f"working {i}", flush=True)
            time.sleep(0.4)
        return {"echo": params.get("text", "")}
""")


def files_of(name: str, sidecar: str, scripts: dict[str, str]) -> dict[str, bytes]:
    files = {
        "SKILL.md": f"---\nname: {name}\ndescription: A session test skill.\n---\n# {name}\n".encode(),
        "skillyard.yaml": sidecar.encode(),
        "tests/test_x.py": b"def test_x():\n    assert True\n",
    }
    files.update({f"scripts/{k}": v.encode() for k, v in scripts.items()})
    return files


TOOL_FILES = files_of(TOOL, "commands:\n  rev:\n    run: python scripts/rev.py\n", {"rev.py": REV})
ECHO_FILES = files_of(
    "sess-echo",
    "entrypoint: scripts/main.py:run\ncommands:\n  hi: python scripts/main.py\n",
    {"main.py": ECHO},
)
BLOCKED_FILES = files_of(
    "sess-blocked", "commands:\n  rev:\n    run: python scripts/rev.py\n", {"rev.py": REV}
)
BLOCKED = GateSummary(passed=False, tests=1, failures=1, errors=0, skipped=0, coverage=None, duration_s=0.0)


@pytest.fixture(scope="module")
def home(tmp_path_factory, backend, runner_image):
    from runtime.yard import Yard

    root = tmp_path_factory.mktemp("sessions")
    settings = Settings(home=root / "home", wheelhouse=WHEELHOUSE)
    yard = Yard(settings, sandbox=Sandbox(backend), pool=False)
    yard.runner = runner_image
    register(yard, TOOL_FILES)
    register(yard, ECHO_FILES)
    register(yard, BLOCKED_FILES, gate=BLOCKED)
    yield {"settings": settings, "yard": yard, "root": root}
    yard.close()


def session_containers(client: docker.DockerClient) -> list[str]:
    return [
        c.id
        for c in client.containers.list(all=True, filters={"label": f"skillyard.pid={os.getpid()}"})
        if "skillyard.session" in c.labels
    ]


# -- Python --------------------------------------------------------------------------------------
def test_a_session_from_python(home, docker_client):
    yard = home["yard"]
    with yard.session([TOOL]) as session:
        assert session.skills == [{"name": TOOL, "version": 1, "path": f"/skills/{TOOL}"}]
        session.write_file("in/data.bin", b"abc\x00xyz")
        result = session.exec(["python", f"/skills/{TOOL}/scripts/rev.py", "in/data.bin", "out.bin"])
        assert result.ok and result.stdout == b"reversed 7 bytes\n", result
        assert session.read_file("out.bin") == b"zyx\x00cba"
        probe = session.exec(
            [
                "sh",
                "-c",
                f"ls /skills/{TOOL}; touch /skills/{TOOL}/x 2>&1; id -u; (sleep 300 &); ls /work",
            ]
        )
        lines = probe.stdout.decode().splitlines()
        assert "tests" not in lines and "scripts" in lines  # the skill without its tests
        assert any("Read-only" in line for line in lines)
        assert "65534" in lines
        again = session.exec(["sh", "-c", "ls /work/in; ps -e 2>/dev/null | grep -c 'sleep 30[0]' || true"])
        assert again.stdout.decode().split()[0] == "data.bin"  # /work lasts
        with pytest.raises(NotFound):
            session.read_file("never-written")
        with pytest.raises(Exception, match="inside /work"):
            session.read_file("../etc/passwd")
        assert session_containers(docker_client)
    assert not session_containers(docker_client)


def test_only_registered_skills_go_into_a_session(home):
    with pytest.raises(SkillError, match="only registered skills"):
        home["yard"].session(["sess-blocked"])
    with pytest.raises(UnknownSkill):
        home["yard"].session(["no-such-skill"])


def test_one_family_per_session():
    def pkg(name, family):
        return package_from_files(
            name,
            {
                "SKILL.md": f"---\nname: {name}\ndescription: d\n---\n".encode(),
                "skillyard.yaml": f"family: {family}\n".encode(),
            },
        )

    assert session_family([pkg("a", "python"), pkg("b", "node")]) == "node"
    assert session_family([pkg("a", "python")]) == "python"
    with pytest.raises(SkillError, match="different image families"):
        session_family([pkg("a", "node"), pkg("b", "documents")])
    assert session_limits().tmpfs == {"/tmp": 256 * 1024**2, "/work": 512 * 1024**2}


def test_idle_sessions_are_reaped(home, docker_client):
    yard = home["yard"]
    session = yard.session([TOOL], idle_timeout=0.5)
    time.sleep(1.0)
    assert session.id in yard.sessions.reap()
    assert session.sandbox.closed and not session.sandbox.alive
    with pytest.raises(NotFound):
        yard.sessions.get("local", session.id)


def test_pooled_command_runs_share_no_state(home, backend, runner_image):
    from runtime.yard import Yard

    yard = Yard(home["settings"], sandbox=Sandbox(backend), pool=True)
    yard.runner = runner_image
    try:
        argv = ["python", "scripts/rev.py", "in.txt", "out.txt"]
        first = yard.run_command(TOOL, argv, files={"in.txt": b"ab"}, outputs=["out.txt"])
        second = yard.run_command(TOOL, argv, outputs=["out.txt", "in.txt"])  # no input this time
        assert first.ok and first.files == {"out.txt": b"ba"}
        assert second.exit_code == 1 and second.files == {}  # the first run's files are gone
        assert yard.warm_pool is not None and yard.warm_pool.idle_containers()  # they ran warm
    finally:
        yard.close()


# -- CLI -----------------------------------------------------------------------------------------
def cli(home, *args, check=True, stdin=None):
    env = {
        **os.environ,
        "SKILLYARD_HOME": str(home["settings"].home),
        "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE),
    }
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "skillyard"), *args],
        capture_output=True,
        env=env,
        cwd=home["root"],
        timeout=300,
        input=stdin,
    )
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_cli_runs_a_command_with_files(home, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"hello")
    proc = cli(
        home,
        "run",
        TOOL,
        "--file",
        str(tmp_path / "in.txt"),
        "--out",
        str(tmp_path / "o"),
        "--",
        "python",
        "scripts/rev.py",
        "in.txt",
        "out.txt",
    )
    assert proc.stdout == b"reversed 5 bytes\n"
    assert (tmp_path / "o" / "out.txt").read_bytes() == b"olleh"
    refused = cli(home, "run", TOOL, "--", "sh", "-c", "id", check=False)
    assert refused.returncode == 3 and b"must begin with one of the skill's commands" in refused.stderr


def test_cli_session(home, tmp_path, docker_client):
    sid = cli(home, "session", "start", TOOL, "--idle", "120").stdout.decode().strip()
    try:
        (tmp_path / "a.txt").write_bytes(b"12345")
        cli(home, "session", "put", sid, str(tmp_path / "a.txt"))
        proc = cli(
            home, "session", "exec", sid, "--", "python", f"/skills/{TOOL}/scripts/rev.py", "a.txt", "b.txt"
        )
        assert proc.stdout == b"reversed 5 bytes\n"
        failing = cli(home, "session", "exec", sid, "--", "sh", "-c", "echo oops >&2; exit 7", check=False)
        assert failing.returncode == 7 and failing.stderr.startswith(b"oops")
        cli(home, "session", "get", sid, "b.txt", "--out", str(tmp_path / "out"))
        assert (tmp_path / "out" / "b.txt").read_bytes() == b"54321"
        listed = json.loads(cli(home, "session", "list", "--json").stdout)
        assert [s["id"] for s in listed if s["state"] == "running"] == [sid]
    finally:
        cli(home, "session", "stop", sid)
    assert json.loads(cli(home, "session", "list", "--json").stdout) == []


# -- HTTP ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(home, backend, runner_image):
    settings = home["settings"]
    tenants = Tenants(settings.home)
    keys = {"alice": tenants.add_tenant("alice", admin=True), "bob": tenants.add_tenant("bob")}
    app = create_app(settings, yard_factory=make_factory(backend, runner_image))
    with ServerThread(app) as srv:
        clients = {name: SkillyardClient(srv.url, key, timeout=300) for name, key in keys.items()}
        yield {"url": srv.url, "keys": keys, "c": clients}
        for c in clients.values():
            c.close()


def test_http_command_run_with_files(server):
    alice = server["c"]["alice"]
    result = alice.run_command(
        TOOL,
        ["python", "scripts/rev.py", "in.bin", "out.bin"],
        files={"in.bin": b"\x01\x02\x03"},
        outputs=["out.bin"],
    )
    assert result["ok"] and result["command"] == "rev", result
    assert result["files"] == {"out.bin": b"\x03\x02\x01"}
    assert result["stdout"] == "reversed 3 bytes\n"
    with pytest.raises(ApiError) as refused:  # it did not run: an error, not a result
        alice.run_command(TOOL, ["python", "-c", "print(1)"])
    assert refused.value.status == 422 and refused.value.remote_kind == "invalid_input", refused.value
    with httpx.Client(
        base_url=server["url"], headers={"Authorization": f"Bearer {server['keys']['alice']}"}
    ) as c:
        bad = c.post(
            f"/v1/skills/{TOOL}/run", json={"argv": ["python", "scripts/rev.py"], "files": {"../x": "AA=="}}
        )
        assert bad.status_code == 422 and "plain relative path" in bad.json()["error"], bad.json()
        both = c.post(f"/v1/skills/{TOOL}/run", json={"argv": ["python"], "input": {}})
        assert both.status_code == 422 and "not both" in both.json()["error"]


def test_http_streams_a_long_run(server):
    alice = server["c"]["alice"]
    started = time.monotonic()
    events = []
    for event, data in alice.run_stream("sess-echo", {"text": "done", "ticks": 3}):
        events.append((event, data, time.monotonic() - started))
    kinds = [e for e, _, _ in events]
    assert kinds[-1] == "result" and events[-1][1]["output"] == {"echo": "done"}
    text = "".join(d["text"] for e, d, _ in events if e == "stdout")
    assert text == "working 0\nworking 1\nworking 2\n"
    first = next(t for e, d, t in events if e == "stdout")
    assert first < events[-1][2] - 0.5  # the first line came while the skill still ran
    command = list(alice.run_stream(TOOL, argv=["python", "scripts/rev.py", "--slow"]))
    assert [e for e, _ in command if e == "stdout"] and command[-1][0] == "result"
    assert command[-1][1]["exit_code"] == 0


def test_http_sessions_belong_to_one_tenant(server, docker_client):
    alice, bob = server["c"]["alice"], server["c"]["bob"]
    session = alice.session_start([TOOL], idle_timeout=300)
    sid = session["id"]
    try:
        assert [s["id"] for s in alice.sessions()] == [sid]
        assert bob.sessions() == []
        for attempt in (
            lambda: bob.session(sid),
            lambda: bob.session_exec(sid, ["id"]),
            lambda: bob.session_get(sid, "x"),
        ):
            with pytest.raises(Exception) as caught:
                attempt()
            assert getattr(caught.value, "status", None) == 404
        alice.session_put(sid, "dir/in.txt", b"abc")
        ran = alice.session_exec(sid, ["python", f"/skills/{TOOL}/scripts/rev.py", "dir/in.txt", "out.txt"])
        assert ran["exit_code"] == 0 and ran["stdout"] == "reversed 3 bytes\n"
        assert alice.session_get(sid, "out.txt") == b"cba"
        streamed = list(
            alice.session_exec_stream(sid, ["python", f"/skills/{TOOL}/scripts/rev.py", "--slow"])
        )
        assert "".join(d["text"] for e, d in streamed if e == "stdout") == "tick 0\ntick 1\ntick 2\n"
        assert streamed[-1][0] == "result" and streamed[-1][1]["exit_code"] == 0
        with pytest.raises(Exception) as missing:
            alice.session_get(sid, "nope.txt")
        assert missing.value.status == 404
    finally:
        alice.session_close(sid)
    with pytest.raises(Exception) as gone:
        alice.session(sid)
    assert gone.value.status == 404


def test_server_shutdown_closes_its_sessions(home, backend, runner_image, docker_client):
    settings = home["settings"]
    key = Tenants(settings.home).add_tenant("carol")
    app = create_app(settings, yard_factory=make_factory(backend, runner_image))
    with ServerThread(app) as srv, SkillyardClient(srv.url, key, timeout=300) as carol:
        sid = carol.session_start([TOOL])["id"]
        assert any(docker_client.containers.list(filters={"label": f"skillyard.session={sid}"}))
    assert not docker_client.containers.list(all=True, filters={"label": f"skillyard.session={sid}"})


# -- MCP -----------------------------------------------------------------------------------------
def test_mcp_command_and_session_tools(home):
    from runtime.mcp_server import SkillTools

    tools = SkillTools(
        home["settings"], yard_factory=make_factory(home["yard"].sandbox.backend, home["yard"].runner)
    )
    try:
        view = tools.service.view(None)
        listed = {t["name"]: t for t in tools.list_tools(view)}
        assert "rev" in listed[TOOL]["description"] and "argv" in listed[TOOL]["input_schema"]["properties"]
        for name in (
            "run_command",
            "session_start",
            "session_exec",
            "session_write_file",
            "session_read_file",
        ):
            assert name in listed
        ran = tools.call(
            view,
            TOOL,
            {
                "argv": ["python", "scripts/rev.py", "a", "b"],
                "files": {"a": base64.b64encode(b"xy").decode()},
                "outputs": ["b"],
            },
        )
        assert not ran["is_error"] and ran["structured_content"]["files"] == {
            "b": base64.b64encode(b"yx").decode()
        }
        refused = tools.call(view, "run_command", {"skill": TOOL, "argv": ["cat", "/etc/passwd"]})
        assert refused["is_error"] and "invalid_input" in refused["content"][0]["text"]
        started = tools.call(view, "session_start", {"skills": [TOOL]})
        sid = started["structured_content"]["id"]
        wrote = tools.call(view, "session_write_file", {"session": sid, "path": "t.txt", "content": "héllo"})
        assert not wrote["is_error"], wrote
        ran = tools.call(
            view,
            "session_exec",
            {"session": sid, "argv": ["python", f"/skills/{TOOL}/scripts/rev.py", "t.txt", "r.bin"]},
        )
        assert ran["structured_content"]["exit_code"] == 0, ran
        read = tools.call(view, "session_read_file", {"session": sid, "path": "r.bin"})
        assert (
            read["structured_content"]["content_base64"] == base64.b64encode("héllo".encode()[::-1]).decode()
        )
        assert not tools.call(view, "session_close", {"session": sid})["is_error"]
        gone = tools.call(view, "session_exec", {"session": sid, "argv": ["true"]})
        assert gone["is_error"] and "no session" in gone["content"][0]["text"]
    finally:
        tools.close()
