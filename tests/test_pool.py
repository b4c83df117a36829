"""Warm pools: one round trip per call, and no state or process crosses from one call to the next."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import sandbox
from sandbox import Limits, RunSpec
from sandbox.pool import WarmPool


@pytest.fixture
def pool(backend):
    p = WarmPool(backend, size=1, max_calls=5)
    yield p
    p.close()


def spec(image, argv, **kw) -> RunSpec:
    return RunSpec(image=image, argv=argv, limits=kw.pop("limits", Limits()), owner="pooltest", **kw)


def test_warm_calls_are_exact_and_reuse_one_container(pool, runner_image):
    results = [pool.run(spec(runner_image, ["sh", "-c", f"echo call{i}; exit {i}"])) for i in range(3)]
    assert [r.stdout for r in results] == [b"call0\n", b"call1\n", b"call2\n"]
    assert [r.exit_code for r in results] == [0, 1, 2]
    assert len({r.container_id for r in results}) == 1


def test_nothing_crosses_between_calls(pool, runner_image, docker_client):
    first = pool.run(
        spec(
            runner_image,
            [
                "sh",
                "-c",
                "echo secret > /tmp/work/x; echo x > /tmp/stray; "
                "(setsid sleep 300 >/dev/null 2>&1 &); echo started",
            ],
        )
    )
    assert first.stdout == b"started\n"
    second = pool.run(spec(runner_image, ["sh", "-c", "ls -A /tmp /tmp/work; ls /proc | grep -c '^[0-9]'"]))
    assert second.container_id == first.container_id
    listing = second.stdout.decode()
    assert "stray" not in listing and "\nx\n" not in listing
    # Only PID 1 (the supervisor), the shell and its children: the sleeper was killed.
    assert int(listing.strip().splitlines()[-1]) <= 4, listing


def test_files_and_stdin_per_call(pool, runner_image):
    r = pool.run(
        spec(
            runner_image,
            ["sh", "-c", "cat /tmp/work/in.txt; cat"],
            files={"/tmp/work/in.txt": b"file\n"},
            stdin=b"stdin\n",
        )
    )
    assert r.stdout == b"file\nstdin\n"
    again = pool.run(
        spec(runner_image, ["sh", "-c", "test -e /tmp/work/in.txt && echo leaked || echo clean"])
    )
    assert again.stdout == b"clean\n"


def test_limit_breach_recycles_the_container(pool, runner_image):
    before = pool.run(spec(runner_image, ["true"]))
    spin = pool.run(spec(runner_image, ["python3", "-c", "while True: pass"], limits=Limits(timeout=1)))
    assert spin.timed_out
    after = pool.run(spec(runner_image, ["true"]))
    assert after.exit_code == 0 and after.container_id != before.container_id


def test_oom_in_a_warm_container_is_reported_and_recycled(pool, runner_image):
    hog = pool.run(
        spec(runner_image, ["python3", "-c", "a = bytearray(200 * 1024 * 1024)"], limits=Limits(memory="64m"))
    )
    assert hog.oom_killed and hog.exit_code == 137
    ok = pool.run(spec(runner_image, ["true"], limits=Limits(memory="64m")))
    assert ok.exit_code == 0 and ok.container_id != hog.container_id


def test_recycled_after_max_calls(pool, runner_image):
    ids = [pool.run(spec(runner_image, ["true"])).container_id for _ in range(7)]
    assert len(set(ids[:5])) == 1 and ids[5] != ids[0]


def test_tenants_never_share_a_container(pool, runner_image):
    a = pool.run(spec(runner_image, ["true"], tenant="alice"))
    b = pool.run(spec(runner_image, ["true"], tenant="bob"))
    a2 = pool.run(spec(runner_image, ["true"], tenant="alice"))
    assert a.container_id != b.container_id and a2.container_id == a.container_id


def test_close_leaves_no_container(backend, runner_image, docker_client):
    p = WarmPool(backend, size=2)
    p.run(spec(runner_image, ["true"]))
    time.sleep(0.5)  # let the background top-up start a container
    p.close()
    left = docker_client.api.containers(
        all=True, filters={"label": ["skillyard.pool=1", "skillyard.owner=pooltest"]}
    )
    assert left == []


def test_yard_calls_use_the_pool(yard, tmp_path):
    from tests.conftest import write_skill

    d = write_skill(
        tmp_path,
        "echo-x",
        script="def run(p):\n    return {'x': p['x']}\n",
        tests={
            "test_m.py": "from scripts.main import run\n\n"
            "def test_x():\n    assert run({'x': 1}) == {'x': 1}\n"
        },
    )
    assert yard.add(d).status == "registered"
    yard.use_pool = True
    try:
        outs = [yard.run("echo-x", {"x": i}) for i in range(3)]
        assert [o.output for o in outs] == [{"x": 0}, {"x": 1}, {"x": 2}]
    finally:
        yard.close()


# A program that reads its stdin first, then reports its own pid, its start time relative to the
# call's input, what it finds in the writable dirs, and the file the call placed.
PRESTART_PROGRAM = (
    "import os, sys, time\n"
    "t0 = time.time()\n"
    "data = sys.stdin.read()\n"
    "waited = time.time() - t0\n"
    "placed = open('/tmp/work/in.txt').read()\n"
    "print(os.getpid(), round(waited, 3), sorted(os.listdir('/tmp/work')), placed, data)\n"
    "open('/tmp/work/left-by-' + data, 'w').write('x')\n"
)


def test_prestart_serves_the_next_call_from_a_process_started_ahead(pool, runner_image):
    def call(i: int, **kw):
        return pool.run(
            spec(
                runner_image,
                ["python3", "-c", PRESTART_PROGRAM],
                stdin=f"call{i}".encode(),
                files={"/tmp/work/in.txt": f"file{i}".encode()},
                prestart=True,
                **kw,
            )
        )

    first = call(0)
    time.sleep(0.5)  # idle time: the next call's process starts now and waits for its input
    second = call(1)
    time.sleep(0.5)
    third = call(2)
    assert [r.exit_code for r in (first, second, third)] == [0, 0, 0], (first.stderr, second.stderr)
    assert len({r.container_id for r in (first, second, third)}) == 1
    assert (first.prestarted, second.prestarted, third.prestarted) == (False, True, True)
    pids, waited = [], []
    for i, r in enumerate((first, second, third)):
        pid, wait_s, rest = r.stdout.decode().split(" ", 2)
        pids.append(int(pid))
        waited.append(float(wait_s))
        # Its own file and input only: the previous call's leftovers were wiped before it started.
        assert rest.strip() == f"['.keep', 'in.txt'] file{i} call{i}", rest
    assert len(set(pids)) == 3  # a fresh process every call
    # The started-ahead processes sat blocked on stdin until their call arrived; the first did not.
    assert waited[0] < 0.3 and waited[1] > 0.3 and waited[2] > 0.3, waited


def test_prestarted_process_is_not_used_for_another_program(pool, runner_image):
    first = pool.run(
        spec(runner_image, ["python3", "-c", "import sys; sys.stdin.read(); print('a')"], prestart=True)
    )
    other = pool.run(spec(runner_image, ["sh", "-c", "echo b; ls /proc | grep -c '^[0-9]'"], prestart=True))
    assert first.stdout == b"a\n" and not other.prestarted
    assert other.stdout.splitlines()[0] == b"b"
    # The discarded process is gone: PID 1, the shell, ls and grep at most.
    assert int(other.stdout.splitlines()[1]) <= 4, other.stdout
    env = pool.run(
        spec(runner_image, ["sh", "-c", "echo b; ls /proc | grep -c '^[0-9]'"], prestart=True, env={"X": "1"})
    )
    assert not env.prestarted and env.container_id == other.container_id  # env differs: not the same program


def test_prestarted_process_killed_while_idle_is_replaced(pool, runner_image, docker_client):
    program = ["python3", "-c", "import sys; sys.stdin.read(); print('ok')"]
    first = pool.run(spec(runner_image, program, prestart=True))
    container = docker_client.containers.get(first.container_id)
    time.sleep(0.3)  # the supervisor starts the next process just after answering
    # Kill the waiting process from outside (as the OOM killer could): the next call must not use it.
    top = container.top()
    pid, ppid = top["Titles"].index("PID"), top["Titles"].index("PPID")
    pids = {row[pid] for row in top["Processes"]}
    waiting = [row[pid] for row in top["Processes"] if row[ppid] in pids]  # the supervisor's child
    assert len(waiting) == 1, top
    os.kill(int(waiting[0]), signal.SIGKILL)  # a host pid: top shows those
    time.sleep(0.2)
    second = pool.run(spec(runner_image, program, prestart=True))
    assert second.exit_code == 0 and second.stdout == b"ok\n" and not second.prestarted
    assert second.container_id == first.container_id


FORK_SERVER_PROGRAM = (
    (Path(sandbox.__file__).parent / "forkserver.py").read_text()
    + """
import os, sys, time


def age():
    # seconds since this process was made (/proc/self/stat: start time in clock ticks since boot)
    ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
    return float(open("/proc/uptime").read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")


def warm():
    os.environ["WARMED"] = "yes"  # in the child forked ahead, before its call


def handler():
    data = sys.stdin.read()
    files = sorted(os.listdir("/tmp/work"))
    print(os.getpid(), os.getppid(), round(age(), 2), os.environ.get("WARMED"), files, data, flush=True)
    open("/tmp/work/left-by-" + data, "w").write("x")


serve(handler, warm=warm)
"""
)


def fork_call(pool, image, i: int):
    return pool.run(
        spec(image, ["python3", "-c", FORK_SERVER_PROGRAM], stdin=f"call{i}".encode(), fork_server=True)
    )


def test_the_fork_server_forks_the_next_call_ahead_once_the_container_is_clean(pool, runner_image):
    """After a call is answered and the container wiped, the fork server forks the next call's
    child, which runs the program's warm hook and waits: the next call is served by it (made
    seconds before its call, a child of the same fork server), sees only its own input and
    files, and is a new process every time."""
    results = []
    for i in range(3):
        results.append(fork_call(pool, runner_image, i))
        time.sleep(1.0)
    assert [r.exit_code for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert len({r.container_id for r in results}) == 1
    rows = [r.stdout.decode().split(" ", 4) for r in results]
    pids, parents, ages = [int(r[0]) for r in rows], {r[1] for r in rows}, [float(r[2]) for r in rows]
    assert len(set(pids)) == 3 and len(parents) == 1  # fresh processes, one fork server
    assert ages[0] < 0.5 and ages[1] > 0.5 and ages[2] > 0.5, ages  # the later two were forked ahead
    assert [r[3] for r in rows] == ["None", "yes", "yes"]  # the warm hook ran in those
    for i, row in enumerate(rows):
        assert row[4].strip() == f"['.keep'] call{i}", row  # no file of an earlier call


def test_a_child_forked_ahead_and_killed_while_idle_is_replaced(pool, runner_image, docker_client):
    first = fork_call(pool, runner_image, 0)
    time.sleep(0.5)
    top = docker_client.containers.get(first.container_id).top()
    pid, ppid = top["Titles"].index("PID"), top["Titles"].index("PPID")
    children = {}
    for row in top["Processes"]:
        children.setdefault(row[ppid], []).append(row[pid])
    supervisor = next(
        row[pid] for row in top["Processes"] if row[ppid] not in {r[pid] for r in top["Processes"]}
    )
    (server,) = children[supervisor]
    (waiting,) = children[server]  # the child forked ahead, waiting for its call
    os.kill(int(waiting), signal.SIGKILL)  # a host pid: top shows those
    time.sleep(0.2)
    second = fork_call(pool, runner_image, 1)
    assert second.exit_code == 0 and second.container_id == first.container_id, second.stderr
    fields = second.stdout.decode().split(" ", 4)
    assert fields[3] == "None" and fields[4].strip() == "['.keep'] call1"  # forked on the call's path


def test_a_known_program_is_asked_for_by_its_key(pool, runner_image, monkeypatch):
    """The first call to a container carries the program (argv, env, filter); later calls of
    the same program name it by key alone, and another program is sent in full again."""
    frames = []
    real = pool.backend.request_frame

    def recording(spec, nonce, **kw):
        frame = real(spec, nonce, **kw)
        frames.append((kw.get("program_known"), b'"argv"' in frame))
        return frame

    monkeypatch.setattr(pool.backend, "request_frame", recording)
    echo = spec(runner_image, ["sh", "-c", "echo $X", "x" * 20_000], env={"X": "one"})
    results = [pool.run(echo) for _ in range(3)]
    results.append(pool.run(spec(runner_image, ["sh", "-c", "echo $X"], env={"X": "two"})))
    results.append(pool.run(echo))
    assert [r.stdout for r in results] == [b"one\n"] * 3 + [b"two\n", b"one\n"]
    assert len({r.container_id for r in results}) == 1
    assert frames == [(False, True), (True, False), (True, False), (False, True), (False, True)]


def test_a_container_that_does_not_know_the_key_gets_the_program(pool, runner_image, monkeypatch):
    """Should the host believe a container knows a program it does not, the supervisor runs
    nothing and says so, and the host sends the program in full: the call is served."""
    echo = spec(runner_image, ["sh", "-c", "echo served"])
    pool.prewarm(echo, 1)
    (warm,) = [w for q in pool._idle.values() for w in q]
    warm.program = pool.backend.program_key(echo)  # a container that never saw it
    result = pool.run(echo)
    assert result.ok and result.stdout == b"served\n" and result.container_id == warm.cid


def test_a_call_after_a_recycle_waits_for_the_replacement_instead_of_starting_one(backend, runner_image):
    """At full use, a recycled container's replacement is being started in the background: the
    next call takes it (or any container that goes idle first) rather than starting another on
    its own path."""
    pool = WarmPool(backend, size=1, max_calls=2)
    starts = []
    real = pool._start

    def counting(spec_, key):
        starts.append(key)
        return real(spec_, key)

    pool._start = counting
    try:
        echo = spec(runner_image, ["sh", "-c", "echo ok"])
        first, second = pool.run(echo), pool.run(echo)  # the second call recycles the container
        third = pool.run(echo)  # right away: its replacement is still starting
        assert [r.stdout for r in (first, second, third)] == [b"ok\n"] * 3
        assert first.container_id == second.container_id != third.container_id
        assert len(starts) == 2  # the first container and its replacement, nothing on the third's path
    finally:
        pool.close()
