"""The sandbox's sessions: one hardened container running programs one after another, on a
real engine. The working dir lasts; nothing else of one program reaches the next."""

from __future__ import annotations

import time

import pytest

from sandbox import Limits
from sandbox.session import SandboxSession, SessionEnded

LIMITS = Limits(tmpfs={"/tmp": "16m", "/work": "32m"}, timeout=20)


@pytest.fixture
def session(backend, runner_image):
    s = SandboxSession.start(backend, image=runner_image, limits=LIMITS, idle_exit=120, owner="sesstest")
    yield s
    s.close()


def sh(session, script, **kw):
    return session.run(["sh", "-c", script], **kw)


def test_work_lasts_and_nothing_else_does(session):
    first = sh(
        session,
        "echo kept > /work/a; echo scratch > /tmp/b; echo shm > /dev/shm/c; (sleep 301 &) ; echo started",
    )
    assert first.exit_code == 0 and first.stdout == b"started\n", first
    second = sh(
        session,
        "cat /work/a; ls -A /tmp /dev/shm; "
        "for p in /proc/[0-9]*; do cat $p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done "
        "| grep -c '^sleep 30[1]'",
    )
    lines = second.stdout.decode().splitlines()
    assert lines[0] == "kept"
    assert "b" not in lines and "c" not in lines  # /tmp and /dev/shm were emptied
    assert lines[-1] == "0"  # the background sleep was killed after the first program


def test_same_hardening_as_every_run(session):
    result = sh(
        session,
        "id -u; touch /etc/x 2>&1 | grep -c Read-only; "
        "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), timeout=2)' 2>&1 | tail -1",
    )
    out = result.stdout.decode().splitlines()
    assert out[0] == "65534" and out[1] == "1", out
    assert "unreachable" in out[2].lower() or "error" in out[2].lower(), out


def test_files_in_and_out(session):
    session.write_files({"/work/in/data.bin": bytes(range(256))})
    result = sh(
        session,
        "cat in/data.bin | python3 -c "
        "'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])' > out.bin",
    )
    assert result.exit_code == 0, result
    got = session.read_files(["/work/out.bin", "/work/missing"])
    assert got.files == {"/work/out.bin": bytes(range(256))[::-1]}
    assert got.missing_files == ["/work/missing"]
    for bad in ("/tmp/x", "/work/../etc/passwd", "relative", "/work/a//b"):
        with pytest.raises(ValueError):
            session.read_files([bad])
    sh(session, "ln -s /tmp /work/tmplink; echo s > /tmp/secret")
    assert session.read_files(["/work/tmplink/secret"]).files == {}


def test_a_timeout_kills_the_program_not_the_session(session):
    result = sh(session, "sleep 30", timeout=1)
    assert result.timed_out
    assert sh(session, "echo alive").stdout == b"alive\n"


def test_live_output(session):
    seen: list[tuple[str, bytes]] = []
    result = sh(session, "echo one; echo two >&2", on_output=lambda s, d: seen.append((s, d)))
    assert b"".join(d for s, d in seen if s == "stdout") == result.stdout == b"one\n"
    assert b"".join(d for s, d in seen if s == "stderr") == result.stderr == b"two\n"


def test_detached_session_ends_itself_when_idle(backend, runner_image, docker_client):
    s = SandboxSession.start(
        backend, image=runner_image, limits=LIMITS, idle_exit=2, detached=True, owner="sesstest"
    )
    try:
        other = SandboxSession.attach(backend, s.container_id, limits=LIMITS)
        assert sh(other, "echo from another handle").stdout == b"from another handle\n"
        assert s.container_id not in {c["Id"] for c in backend.orphans()}  # running: not gc's
        deadline = time.monotonic() + 30
        while s.alive and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not s.alive
        with pytest.raises(SessionEnded):
            sh(other, "true")
        with pytest.raises(SessionEnded):
            SandboxSession.attach(backend, s.container_id, limits=LIMITS)
        assert s.container_id in {c["Id"] for c in backend.orphans()}  # ended: gc's now
        assert s.container_id in backend.gc()
        assert not docker_client.containers.list(all=True, filters={"id": s.container_id})
    finally:
        s.close()
