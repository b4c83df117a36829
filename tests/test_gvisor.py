"""gVisor (runsc) as the runtime: the same guarantees through a user-space kernel.

`make test` registers runsc with the engine (scripts/ensure-gvisor.sh); `make test-gvisor`
runs the whole sandbox and attack suites under it.
"""

from __future__ import annotations

import pytest

from sandbox import Limits

GV = Limits(runtime="runsc")


@pytest.fixture(scope="module", autouse=True)
def _runsc_registered(docker_client):
    runtimes = docker_client.info().get("Runtimes") or {}
    assert "runsc" in runtimes, "runsc is not registered with the engine: run `make gvisor`"


def test_runs_under_the_gvisor_kernel(sandbox):
    r = sandbox.run(["sh", "-c", "id -u; uname -r; dmesg 2>/dev/null | head -1; exit 3"], limits=GV)
    assert r.exit_code == 3 and r.error is None
    uid, kernel, *_ = r.stdout.decode().splitlines()
    assert uid == "65534"
    runc = sandbox.run(["uname", "-r"])
    assert kernel != runc.stdout.decode().strip()  # gVisor reports its own kernel version


def test_limits_hold_under_gvisor(sandbox):
    fork = sandbox.run(
        ["python3", "-c", "import os\nwhile True: os.fork()"], limits=GV.replace(pids=32, timeout=10)
    )
    assert not fork.timed_out and fork.exit_code != 0  # stopped by RLIMIT_NPROC (runsc refuses pids_limit)
    oom = sandbox.run(["python3", "-c", "a = bytearray(400 * 1024 * 1024)"], limits=GV.replace(memory="128m"))
    assert oom.oom_killed
    spin = sandbox.run(["python3", "-c", "while True: pass"], limits=GV.replace(timeout=2))
    assert spin.timed_out


def test_isolation_holds_under_gvisor(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    code = (
        "import os, socket\n"
        "print('key' if 'OPENAI_API_KEY' in os.environ else 'nokey')\n"
        "try:\n    open('/etc/x', 'w')\n    print('rootrw')\nexcept OSError:\n    print('rootro')\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('net')\n"
        "except OSError:\n    print('nonet')\n"
    )
    r = sandbox.run(["python3", "-c", code], limits=GV)
    assert r.stdout.split() == [b"nokey", b"rootro", b"nonet"], r.stderr


def test_a_skill_gates_and_runs_under_gvisor(yard, tmp_path):
    from tests.conftest import write_skill

    d = write_skill(
        tmp_path,
        "gv-echo",
        script="def run(p):\n    return {'y': p['x'] + 1}\n",
        tests={
            "test_m.py": "from scripts.main import run\n\n"
            "def test_y():\n    assert run({'x': 1}) == {'y': 2}\n"
        },
        sidecar="entrypoint: scripts/main.py:run\n",
    )
    yard.settings.runtime = "runsc"
    assert yard.add(d).status == "registered"
    r = yard.run("gv-echo", {"x": 41})
    assert r.ok and r.output == {"y": 42} and r.limits["runtime"] == "runsc"
