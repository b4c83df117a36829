"""The sandbox on a real Docker engine: exact results, isolation, limits, lifecycle, CLI.

Every test runs real containers from the runner image and asserts what the program inside
actually saw or did. No mocks: a regression in the backend, the supervisor or the host
config makes one of these fail.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import textwrap
import time
import uuid

import docker
import docker.errors
import pytest
from pydantic import ValidationError

from sandbox import Limits, RunSpec, SandboxError, parse_size
from sandbox.docker_backend import LABEL_MANAGED, LABEL_OWNER
from tests.conftest import ROOT

MB = 1024 * 1024
NOBODY = 65534
# `make test-gvisor` runs this file under gVisor, whose user-space kernel answers some probes differently.
GVISOR = os.environ.get("SKILLYARD_RUNTIME") == "runsc"
UNREACHABLE = (errno.ENETUNREACH, errno.EHOSTUNREACH) if GVISOR else (errno.ENETUNREACH,)
GATEWAY = "172.17.0.1"  # docker0 on the engine host (the default bridge's gateway)


def py(code: str) -> list[str]:
    """argv running a Python snippet inside the container."""
    return ["python3", "-c", textwrap.dedent(code)]


def managed_ids(docker_client) -> set[str]:
    # One list call: containers.list() then inspects each container, and one removed in between
    # (a background removal finishing) raised NotFound out of the listing itself.
    return {c["Id"] for c in docker_client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})}


def assert_container_gone(docker_client, cid: str | None) -> None:
    """Removed at once for timeouts and failures; normal runs are removed in the background
    (off the caller's path), so allow a few seconds for those."""
    assert cid, "the result should name the container it ran in"
    deadline = time.monotonic() + 10
    while cid in managed_ids(docker_client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cid not in managed_ids(docker_client)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(cid)


# -- exact results ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_codes_exact(sandbox, code):
    r = sandbox.run(["sh", "-c", f"exit {code}"])
    assert r.error is None
    assert r.exit_code == code
    assert r.signal is None and not r.timed_out and not r.oom_killed
    assert r.ok is (code == 0)


def test_binary_stdout_round_trips_exactly(sandbox):
    r = sandbox.run(py("import sys; sys.stdout.buffer.write(bytes(range(256)) * 3)"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout == bytes(range(256)) * 3
    assert r.stdout_bytes == 768 and not r.stdout_truncated
    assert r.stderr == b""


def test_invalid_utf8_comes_back_unchanged(sandbox):
    junk = b"\xff\xfe\x80ok\xc3(\xed\xa0\x80\x00end"
    r = sandbox.run(
        py(f"import sys; sys.stdout.buffer.write({junk!r}); sys.stderr.buffer.write({junk[::-1]!r})")
    )
    assert r.exit_code == 0
    assert r.stdout == junk
    assert r.stderr == junk[::-1]


def test_stderr_is_separate(sandbox):
    r = sandbox.run(
        py("""
        import sys
        print("to-out"); sys.stdout.flush()
        print("to-err", file=sys.stderr); sys.stderr.flush()
        print("more-out")
    """)
    )
    assert r.exit_code == 0
    assert r.stdout == b"to-out\nmore-out\n"
    assert r.stderr == b"to-err\n"
    assert (r.stdout_bytes, r.stderr_bytes) == (16, 7)


def test_stdin_delivered(sandbox):
    data = os.urandom(300 * 1024)  # larger than a pipe buffer: the supervisor must interleave
    r = sandbox.run(
        py("import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d[::-1])"), stdin=data
    )
    assert r.exit_code == 0, r.stderr
    assert r.stdout == data[::-1]
    # No stdin: the program sees EOF at once instead of hanging until the timeout.
    r = sandbox.run(["cat"], limits=sandbox.limits.replace(timeout=5))
    assert (r.exit_code, r.stdout, r.timed_out) == (0, b"", False)


def test_files_delivered_and_collected(sandbox):
    blob = bytes(range(256)) * 10
    r = sandbox.run(
        py("""
            import os, pathlib
            assert os.getcwd() == "/tmp/work", os.getcwd()
            src = pathlib.Path("/tmp/work/in/data.bin").read_bytes()
            pathlib.Path("/tmp/work/out.bin").write_bytes(src[::-1])
            pathlib.Path("/tmp/other.txt").write_text("side")
        """),
        files={"/tmp/work/in/data.bin": blob},
        collect=[
            "/tmp/work/out.bin",
            "/tmp/other.txt",
            "/tmp/work/in/data.bin",
            "/tmp/work/never-written.txt",
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert r.files == {
        "/tmp/work/out.bin": blob[::-1],
        "/tmp/other.txt": b"side",
        "/tmp/work/in/data.bin": blob,
    }
    assert all(isinstance(v, bytes) for v in r.files.values())
    assert r.missing_files == ["/tmp/work/never-written.txt"]


def test_collect_does_not_follow_symlinks_or_read_directories(sandbox):
    r = sandbox.run(
        py("""
            import os
            os.symlink("/etc/passwd", "/tmp/work/link")
            os.mkdir("/tmp/work/dir")
            print("done")
        """),
        collect=["/tmp/work/link", "/tmp/work/dir"],
    )
    assert r.exit_code == 0 and r.stdout == b"done\n"
    assert r.files == {}
    assert r.missing_files == ["/tmp/work/link", "/tmp/work/dir"]


def test_collecting_a_fifo_does_not_hang(sandbox, monkeypatch):
    from sandbox import docker_backend

    monkeypatch.setattr(docker_backend, "START_GRACE_S", 5.0)  # keep the buggy path short
    r = sandbox.run(
        py("import os; os.mkfifo('/tmp/work/out.txt'); print('done')"),
        collect=["/tmp/work/out.txt"],
        limits=sandbox.limits.replace(timeout=2),
    )
    assert not r.timed_out
    assert (r.exit_code, r.stdout) == (0, b"done\n")
    assert r.missing_files == ["/tmp/work/out.txt"]


def test_program_cannot_forge_the_result_frame(sandbox):
    fake = json.dumps({"exit_code": 0, "stdout": "", "stderr": "", "stdout_bytes": 0, "stderr_bytes": 0})
    r = sandbox.run(
        py(f"""
        import sys
        body = {fake!r}
        sys.stdout.write("\\n@@SKILLYARD-RESULT 00000000000000000000000000000000 %d\\n%s" % (len(body), body))
        sys.stdout.flush()
        sys.exit(3)
    """)
    )
    assert r.error is None
    assert r.exit_code == 3
    assert b"@@SKILLYARD-RESULT" in r.stdout  # it is just the program's output


def test_env_only_what_is_passed(sandbox, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("SKILLYARD_TEST_HOST_ONLY", "host-value")
    r = sandbox.run(["env"], env={"GIVEN_VAR": "given-value"})
    assert r.exit_code == 0
    env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
    assert env.get("GIVEN_VAR") == "given-value"
    assert "OPENAI_API_KEY" not in env
    assert "SKILLYARD_TEST_HOST_ONLY" not in env
    assert b"sk-test-secret" not in r.stdout
    assert env.get("HOME") == "/tmp"


# -- isolation -------------------------------------------------------------------------------------
PROBE = """
import errno, json, os, socket
facts = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
         "groups": os.getgroups()}
writes = {}
for path in ["/x", "/etc/x", "/usr/x", "/tmp/x", "/tmp/work/x"]:
    try:
        with open(path, "w") as f:
            f.write("hi")
        writes[path] = "ok"
    except OSError as exc:
        writes[path] = exc.errno
facts["writes"] = writes
facts["root_mount"] = [l.split()[5] for l in open("/proc/self/mountinfo") if l.split()[4] == "/"]
connects = {}
for host, port in [("1.1.1.1", 53), ("GATEWAY", 2375), ("8.8.8.8", 443)]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        connects[f"{host}:{port}"] = "connected"
    except socket.timeout:
        connects[f"{host}:{port}"] = "timeout"
    except OSError as exc:
        connects[f"{host}:{port}"] = exc.errno
    finally:
        s.close()
facts["connects"] = connects
try:
    socket.getaddrinfo("example.com", 80)
    facts["dns"] = "resolved"
except OSError as exc:
    facts["dns"] = type(exc).__name__
facts["interfaces"] = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
facts["status"] = {k: v.strip() for k, v in status.items()}
import ctypes
facts["no_new_privs"] = ctypes.CDLL(None).prctl(39, 0, 0, 0, 0)  # gVisor's status has no NoNewPrivs line
try:
    os.listdir("/proc/1/fd")
    facts["pid1_fds"] = "readable"
except OSError as exc:
    facts["pid1_fds"] = exc.errno
print(json.dumps(facts))
""".replace("GATEWAY", GATEWAY)


@pytest.fixture(scope="module")
def probe(sandbox) -> dict:
    """One container run that records what the program can see and do."""
    r = sandbox.run(["python3", "-c", PROBE])
    assert r.exit_code == 0, r.stderr.decode()
    return json.loads(r.stdout)


def test_runs_as_nobody_not_root(probe):
    assert (probe["uid"], probe["euid"], probe["gid"], probe["egid"]) == (NOBODY,) * 4
    assert 0 not in probe["groups"]


def test_root_filesystem_is_read_only_but_tmp_writable(probe):
    assert probe["root_mount"] and probe["root_mount"][0].split(",")[0] == "ro"
    for path in ["/x", "/etc/x", "/usr/x"]:
        assert probe["writes"][path] in (errno.EROFS, errno.EACCES), (path, probe["writes"][path])
    assert probe["writes"]["/tmp/x"] == "ok"
    assert probe["writes"]["/tmp/work/x"] == "ok"


def test_no_network(probe):
    assert os.path.exists("/sys/class/net/docker0"), "the gateway under test should exist on the host"
    assert probe["interfaces"] == ["lo"]
    for target in ["1.1.1.1:53", f"{GATEWAY}:2375", "8.8.8.8:443"]:
        # No route at all: not refused (that would mean packets reach the host), not a timeout.
        assert probe["connects"][target] in UNREACHABLE, (target, probe["connects"][target])
    assert probe["dns"] == "gaierror"


def test_no_capabilities_and_no_new_privileges(probe):
    status = probe["status"]
    for cap in ("CapEff", "CapPrm", "CapInh", "CapBnd") + (() if GVISOR else ("CapAmb",)):
        assert status[cap] == "0000000000000000", (cap, status[cap])
    assert probe["no_new_privs"] == 1


def test_supervisor_is_not_inspectable_by_the_program(probe):
    # PID 1 (the supervisor, same uid) is non-dumpable: the program cannot reach its pipes. gVisor does not
    # honour that for /proc/1/fd (docs/SECURITY.md): there the nonce keeps forged frames out (attack suite).
    assert probe["pid1_fds"] == ("readable" if GVISOR else errno.EACCES)


def test_network_probe_can_fail_on_bridge(sandbox, runner_image):
    """Guard for test_no_network: the same probe does see an interface on the bridge network."""
    r = sandbox.run(
        py("print(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]))"),
        limits=sandbox.limits.replace(network="bridge"),
    )
    assert r.exit_code == 0, r.stderr
    # Under gVisor the engine registers runsc with --network=none (scripts/ensure-gvisor.sh): lo only, always.
    assert ("eth0" in r.stdout.decode()) != GVISOR, r.stdout


# -- limits ----------------------------------------------------------------------------------------
def test_memory_bomb_is_oom_killed(sandbox):
    r = sandbox.run(
        py("""
            blocks = []
            while True:
                blocks.append(b"x" * (1024 * 1024))  # touched pages, not lazily zeroed
        """),
        limits=sandbox.limits.replace(memory="64m", timeout=20),
    )
    assert r.error is None
    assert r.oom_killed is True
    if (
        GVISOR
    ):  # the sandbox's kernel shares the memory cgroup with the program: the whole container is killed
        assert r.exit_code in (None, 137)
    else:
        assert r.exit_code == 137 and r.signal == 9
    assert not r.timed_out


def test_pids_limit_stops_forks(sandbox):
    r = sandbox.run(
        py("""
            import os, sys, time
            n = 0
            try:
                while n < 200:
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                    n += 1
            except OSError as exc:
                print(n, exc.errno)
                sys.exit(0)
            print(n, 0)
        """),
        limits=sandbox.limits.replace(pids=32, timeout=20),
    )
    assert r.exit_code == 0, r.stderr
    forked, err = map(int, r.stdout.split())
    assert err == errno.EAGAIN
    assert 10 <= forked < 32
    assert r.duration_s < 15  # the sleeping children were killed when the parent exited


def test_fork_bomb_is_contained(sandbox, docker_client):
    started = time.monotonic()
    r = sandbox.run(
        py("""
            import os
            while True:
                os.fork()
        """),
        limits=sandbox.limits.replace(pids=32, timeout=15),
    )
    assert time.monotonic() - started < 40
    assert r.error is None
    assert b"Resource temporarily unavailable" in r.stderr or r.exit_code != 0
    assert_container_gone(docker_client, r.container_id)
    # The host is fine: it can still fork, and the next sandboxed run works.
    assert subprocess.run(["true"]).returncode == 0
    after = sandbox.run(["echo", "alive"])
    assert (after.exit_code, after.stdout) == (0, b"alive\n")


def test_cpu_spin_times_out_and_container_is_gone(sandbox, docker_client):
    started = time.monotonic()
    r = sandbox.run(py("while True: pass"), limits=sandbox.limits.replace(timeout=2))
    wall = time.monotonic() - started
    assert r.timed_out is True
    assert not r.ok and not r.oom_killed
    assert 2 <= r.duration_s < 8 and wall < 8
    assert_container_gone(docker_client, r.container_id)


def test_sigterm_ignoring_program_killed_at_timeout(sandbox):
    started = time.monotonic()
    r = sandbox.run(
        py("""
            import signal, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print("ready", flush=True)
            time.sleep(60)
            print("survived")
        """),
        limits=sandbox.limits.replace(timeout=1.5),
    )
    wall = time.monotonic() - started
    assert r.timed_out is True
    assert r.stdout == b"ready\n"  # output before the kill is kept
    assert r.signal == 9 and r.exit_code == 137
    assert not r.oom_killed
    assert wall < 8


def test_large_stdout_is_capped_and_counted(sandbox):
    r = sandbox.run(
        py("""
        import sys
        chunk = b"y" * (1024 * 1024)
        for _ in range(50):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        sys.stderr.write("done")
    """),
        limits=sandbox.limits.replace(timeout=30),
    )
    assert r.error is None and r.exit_code == 0
    assert r.stdout_truncated is True and r.truncated
    assert len(r.stdout) == sandbox.limits.max_stdout
    assert r.stdout == b"y" * sandbox.limits.max_stdout
    assert r.stdout_bytes == 50 * MB
    assert r.stderr == b"done" and not r.stderr_truncated


def test_file_size_limit_gives_efbig(sandbox):
    r = sandbox.run(
        py("""
            import os
            try:
                with open("/tmp/work/big", "wb") as f:
                    for _ in range(4):
                        f.write(b"z" * (1024 * 1024))
                print("wrote", 0)
            except OSError as exc:
                print("error", exc.errno)
            print("size", os.path.getsize("/tmp/work/big"))
        """),
        limits=sandbox.limits.replace(max_file_size="1m"),
    )
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.decode().split()
    assert lines[:2] == ["error", str(errno.EFBIG)]
    assert lines[2:] == ["size", str(MB)]


def test_tmpfs_size_limit_gives_enospc(sandbox):
    r = sandbox.run(
        py("""
            written = 0
            try:
                for i in range(20):
                    with open("/tmp/fill%d" % i, "wb") as f:  # each file under the 16m file-size limit
                        f.write(b"q" * (1024 * 1024))
                    written += 1
                print("no-error", written)
            except OSError as exc:
                print(exc.errno, written)
        """),
        limits=sandbox.limits.replace(tmpfs={"/tmp": "8m"}),
    )
    assert r.exit_code == 0, r.stderr
    outcome, written = r.stdout.decode().split()
    assert outcome == str(errno.ENOSPC), r.stdout
    assert 4 <= int(written) <= 8


def test_daemonized_child_does_not_outlive_the_call(sandbox, docker_client):
    token = f"skillyard-daemon-{uuid.uuid4().hex}"
    code = textwrap.dedent("""
        import os, sys, time
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:          # the daemon: new session, keeps our stdout open
                time.sleep(4)
                with open("/tmp/work/marker", "w") as f:
                    f.write("daemon outlived its parent")
                time.sleep(60)
                os._exit(0)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent done", flush=True)
    """)
    started = time.monotonic()
    r = sandbox.run(
        ["python3", "-c", code, token],
        collect=["/tmp/work/marker"],
        limits=sandbox.limits.replace(timeout=10),
    )
    wall = time.monotonic() - started
    assert r.exit_code == 0 and not r.timed_out, (r.stdout, r.stderr)
    assert r.stdout == b"parent done\n"
    assert wall < 4, "the call waited for the daemon instead of ending with its parent"
    assert r.files == {} and r.missing_files == ["/tmp/work/marker"]
    assert_container_gone(docker_client, r.container_id)
    # Container processes are visible in the host's /proc: none carries the token now.
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    leftovers.append(pid)
        except OSError:
            pass
    assert not leftovers


def test_cpus_quota_is_given_to_the_engine(backend, runner_image, docker_client):
    cid = backend.create(
        RunSpec(image=runner_image, argv=["true"], limits=Limits(cpus=0.25), owner="cpustest")
    )
    try:
        host = docker_client.api.inspect_container(cid)["HostConfig"]
        assert host["NanoCpus"] == 250_000_000, host["NanoCpus"]
    finally:
        docker_client.api.remove_container(cid, force=True)


def test_cpus_quota_slows_a_cpu_loop(sandbox):
    if GVISOR:
        # runsc --platform=ptrace: docker stats shows the sandbox held to ~25% for cpus=0.25, yet a
        # loop inside counts 0.75-1.0x as fast as at cpus=1 from run to run (its clock is the
        # Sentry's): a loop count is no measure there. test_cpus_quota_is_given_to_the_engine
        # checks the limit reaches the engine.
        pytest.skip("a loop count inside gVisor does not reflect the engine's CPU quota (docs/SECURITY.md)")
    # CPU seconds the loop got per wall second. Other work on this 2-core host can only lower it,
    # never lift it over the quota, so a ceiling holds under any load (a floor for an unthrottled
    # run does not: with the suite's neighbours busy a 1-CPU loop got 0.10-0.34 s/s). Without the
    # quota the loop gets ~1.0 s/s on a quiet host.
    loop = py("""
        import time
        wall0, cpu0 = time.monotonic(), time.process_time()
        while time.monotonic() < wall0 + 1.0:
            pass
        print((time.process_time() - cpu0) / (time.monotonic() - wall0))
    """)

    def share(cpus: float) -> float:
        r = sandbox.run(loop, limits=sandbox.limits.replace(cpus=cpus))
        assert r.exit_code == 0, r.stderr
        return float(r.stdout)

    quarters = [share(0.25) for _ in range(2)]
    assert max(quarters) < 0.35, quarters
    halves = [share(0.5) for _ in range(2)]
    assert max(halves) < 0.6, halves


def test_peak_memory_is_reported(sandbox):
    r = sandbox.run(
        py("""
        block = b"m" * (30 * 1024 * 1024)
        print(len(block))
    """)
    )
    assert r.exit_code == 0
    assert r.peak_memory_bytes is not None
    assert r.peak_memory_bytes > 30 * MB  # the 30 MB block plus the interpreters
    assert r.peak_memory_bytes <= sandbox.limits.memory


# -- lifecycle -------------------------------------------------------------------------------------
def test_gc_removes_a_leftover_container(sandbox, docker_client, runner_image):
    leftover = docker_client.containers.create(
        runner_image,
        "true",
        labels={LABEL_MANAGED: "1", "skillyard.pid": "999999", "skillyard.host": socket.gethostname()},
    )
    try:
        removed = sandbox.gc()
        assert leftover.id in removed
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(leftover.id)
    finally:
        try:
            leftover.remove(force=True)
        except docker.errors.NotFound:
            pass


def test_gc_keeps_containers_of_this_live_process(sandbox, docker_client, runner_image):
    mine = docker_client.containers.create(
        runner_image,
        "true",
        labels={
            LABEL_MANAGED: "1",
            "skillyard.pid": str(os.getpid()),
            "skillyard.host": socket.gethostname(),
        },
    )
    try:
        assert mine.id not in sandbox.gc()
        docker_client.containers.get(mine.id)  # still there
    finally:
        mine.remove(force=True)


def test_missing_image_raises_and_leaves_nothing(sandbox, docker_client):
    owner = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(SandboxError, match="skillyard images build"):
        sandbox.run(["true"], image=f"skillyard/no-such-image:{uuid.uuid4().hex[:8]}", owner=owner)
    assert docker_client.api.containers(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}) == []


@pytest.mark.parametrize(
    "files,collect,problem",
    [
        ({"/etc/passwd": b"x"}, [], "writable tmpfs"),
        ({"/opt/venv/x.py": b"x"}, [], "writable tmpfs"),
        ({"/tmpfoo/x": b"x"}, [], "writable tmpfs"),  # a prefix of /tmp is not /tmp
        ({"/tmp/../etc/passwd": b"x"}, [], "'..'"),
        ({"tmp/relative": b"x"}, [], "absolute"),
        ({}, ["/tmp/../etc/shadow"], "'..'"),
    ],
)
def test_runspec_validate_refuses_bad_paths(runner_image, files, collect, problem):
    spec = RunSpec(image=runner_image, argv=["true"], files=files, collect=collect)
    with pytest.raises(ValueError, match=problem):
        spec.validate()


def test_runspec_validate_accepts_tmpfs_files_and_refuses_empty_argv(runner_image):
    RunSpec(
        image=runner_image, argv=["true"], files={"/tmp/work/a/b.txt": b""}, collect=["/tmp/x"]
    ).validate()
    limits = Limits(tmpfs={"/tmp": "8m", "/scratch": "8m"})
    RunSpec(image=runner_image, argv=["true"], limits=limits, files={"/scratch/x": b""}).validate()
    with pytest.raises(ValueError, match="argv"):
        RunSpec(image=runner_image, argv=[]).validate()
    with pytest.raises(ValueError, match="environment"):
        RunSpec(image=runner_image, argv=["true"], env={"A=B": "x"}).validate()


def test_runspec_validate_refuses_cwd_outside_tmpfs(runner_image):
    with pytest.raises(ValueError):
        RunSpec(image=runner_image, argv=["pwd"], cwd="/usr").validate()


def test_run_refuses_bad_paths_before_creating_a_container(sandbox, docker_client):
    owner = f"badpath-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ValueError):
        sandbox.run(["true"], files={"/etc/evil": b"x"}, owner=owner)
    assert docker_client.api.containers(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}) == []


# -- the Limits model ------------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["0:0", "0", "65534:0", "0:65534", "00:1", "root", "nobody:nogroup", "-1:5"])
def test_limits_refuse_root_and_non_numeric_users(user):
    with pytest.raises(ValidationError):
        Limits(user=user)


def test_limits_defaults_are_strict():
    lim = Limits()
    assert lim.user == "65534:65534" and lim.network == "none"
    assert lim.memory == 256 * MB and lim.pids == 64 and lim.timeout == 10
    assert lim.tmpfs == {"/tmp": 64 * MB}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("64m", 64 * MB),
        ("64M", 64 * MB),
        ("64mb", 64 * MB),
        ("64MiB", 64 * MB),
        ("1g", 1024**3),
        ("512k", 512 * 1024),
        ("1.5m", int(1.5 * MB)),
        ("100", 100),
        (" 2 m ", 2 * MB),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "m", "64x", "64 mega", "-1m", "1e6", "0x10", "64m64", "1..5m", -1, True, None]
)
def test_parse_size_refuses_garbage(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize(
    "field,value",
    [
        ("memory", "lots"),
        ("memory", "1m"),
        ("max_stdout", "-5"),
        ("tmpfs", {"tmp": "1m"}),
        ("tmpfs", {"/": "1m"}),
        ("tmpfs", {"/tmp/../etc": "1m"}),
        ("tmpfs", {}),
        ("tmpfs", {"/tmp": "big"}),
        ("cpus", 0),
        ("pids", 2),
        ("timeout", 0),
        ("network", "host"),
        ("max_file_size", "1k0"),
        ("nofile", 3),
        ("cpus", 0.001),  # under the CFS floor: the engine would refuse the run later, as if it were down
        ("memory", "7m"),  # the supervisor is OOM-killed below 8m
    ],
)
def test_limits_refuse_bad_values(field, value):
    with pytest.raises(ValidationError):
        Limits(**{field: value})


def test_limits_are_frozen_and_reject_unknown_fields():
    with pytest.raises(ValidationError):
        Limits(swap="1g")
    lim = Limits()
    with pytest.raises(ValidationError):
        lim.memory = 1  # type: ignore[misc]


def test_replace_validates_and_copies():
    base = Limits()
    looser = base.replace(memory="1g", timeout=30, tmpfs={"/tmp": "128m"}, pids=None)
    assert looser.memory == 1024**3 and looser.timeout == 30 and looser.tmpfs == {"/tmp": 128 * MB}
    assert looser.pids == base.pids  # None keeps the value
    assert base.memory == 256 * MB  # the original is unchanged
    for bad in (
        {"user": "0:0"},
        {"memory": "1m"},
        {"pids": 1},
        {"network": "host"},
        {"cpus": -1},
        {"tmpfs": {"relative": "1m"}},
        {"bogus": 1},
    ):
        with pytest.raises(ValidationError):
            base.replace(**bad)


# -- the CLI ---------------------------------------------------------------------------------------
def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `skillyard exec ...` from the repo root; `.pid` is the CLI's pid (its containers carry it)."""
    with subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "skillyard"), "exec", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        out, err = proc.communicate(timeout=timeout)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    done.pid = proc.pid
    return done


def test_cli_exec_json(docker_client):
    p = cli("--json", "--memory", "64m", "--", "python3", "-c", "print(1)")
    assert p.returncode == 0, p.stderr.decode()
    data = json.loads(p.stdout)  # the whole of stdout is one JSON object
    assert isinstance(data, dict)
    assert data["exit_code"] == 0 and data["stdout"] == "1\n" and data["stderr"] == ""
    assert data["timed_out"] is False and data["error"] is None
    # The CLI's container (labelled with its pid) is gone.
    assert docker_client.api.containers(all=True, filters={"label": f"skillyard.pid={p.pid}"}) == []


def test_cli_exit_code_mirrors_program():
    p = cli("--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert p.returncode == 7, p.stderr.decode()
    assert p.stdout == b"out\n"
    assert b"err\n" in p.stderr


def test_cli_timeout_exits_124():
    started = time.monotonic()
    p = cli("--json", "--timeout", "1", "--", "python3", "-c", "while True: pass")
    assert p.returncode == 124, p.stderr.decode()
    data = json.loads(p.stdout)
    assert data["timed_out"] is True
    assert time.monotonic() - started < 30


def test_limits_refuse_output_caps_memory_cannot_hold():
    # Kept output waits in the container's memory: 40m + 40m could never come back from 64m.
    with pytest.raises(ValidationError, match="raise memory or lower the output caps"):
        Limits(memory="64m", max_stdout="40m", max_stderr="40m")
    Limits(memory="256m", max_stdout="40m", max_stderr="40m")  # 200m needed: fits


def test_large_output_comes_back_within_the_memory_limit(sandbox):
    # 30 MB kept in a 96m container: the supervisor used to hold it ~5x over (OOM-killed, no
    # output, blamed on the program); raw + base64 at ~2.3x leaves room.
    r = sandbox.run(
        ["head", "-c", str(30 * MB), "/dev/zero"],
        limits=sandbox.limits.replace(memory="96m", max_stdout="30m", timeout=30),
    )
    assert r.error is None and not r.oom_killed, (r.exit_code, r.stderr[-300:])
    assert r.exit_code == 0 and r.stdout == bytes(30 * MB) and not r.stdout_truncated


def test_cli_refuses_unknown_options_and_keeps_the_commands_own():
    p = cli("--bogus", "1", "--", "true")
    assert p.returncode == 2 and b"No such option" in p.stderr
    p = cli(
        "python3", "-c", "import sys; print(sys.argv[1:])", "--x"
    )  # no `--`: the command's options stay its own
    assert p.returncode == 0 and p.stdout == b"['--x']\n", p.stderr.decode()


def test_cli_validation_errors_name_the_flag():
    p = cli("--cpus", "0.001", "--", "true")
    err = p.stderr.decode()
    assert p.returncode == 1 and "--cpus" in err and "errors.pydantic.dev" not in err, err
    assert len(err.strip().splitlines()) == 1


def _wait_for_container(docker_client, pid: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = docker_client.api.containers(filters={"label": f"skillyard.pid={pid}", "status": "running"})
        if found:
            return found[0]["Id"]
        time.sleep(0.2)
    raise AssertionError(f"no running container of pid {pid}")


def test_cli_sigterm_removes_its_container(docker_client):
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "skillyard"),
            "exec",
            "--timeout",
            "60",
            "--",
            "python3",
            "-c",
            "while True: pass",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        cid = _wait_for_container(docker_client, proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    # Removed by the dying CLI itself, not left spinning until its 60 s deadline.
    assert_container_gone(docker_client, cid)


def test_cli_gc_reports_the_orphans_it_removes(docker_client):
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "skillyard"), "exec", "--timeout", "60", "--", "sleep", "60"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cid = _wait_for_container(docker_client, proc.pid)
    finally:
        proc.kill()  # SIGKILL: nothing of the CLI runs, its container is an orphan
        proc.wait()
    doctor = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "skillyard"), "doctor", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    leftover = next(c for c in json.loads(doctor.stdout) if c["check"] == "leftover containers")
    assert not leftover["ok"] and "orphaned" in leftover["detail"], leftover
    docker_client.api.inspect_container(cid)  # reported, not removed: doctor changes nothing
    gc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "skillyard"), "gc", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gc.returncode == 0, gc.stderr
    assert cid in json.loads(gc.stdout)["removed"]
    assert_container_gone(docker_client, cid)


def test_frame_watch_sees_a_frame_complete_exactly_when_it_is():
    from sandbox.protocol import _FrameWatch, frame_marker

    marker = frame_marker("ab" * 16)
    body = b'{"exit_code": 0}'
    stream = b"noise " + marker + b"x\n" + b"more" + marker + str(len(body)).encode() + b"\n" + body + b"tail"
    end = stream.index(body) + len(body)
    for step in (1, 3, 7, 64):
        watch, out = _FrameWatch(marker), bytearray()
        for i in range(0, len(stream), step):
            out += stream[i : i + step]
            assert watch.complete(out) == (len(out) >= end), (step, len(out))


def test_spares_are_fresh_containers_created_ahead(backend, runner_image, docker_client):
    """With spares, a kind of run made twice gets a container created ahead for its next run:
    never started before (each run has a container of its own), removed on close."""
    spared = backend.with_spares()
    spec = RunSpec(image=runner_image, argv=["sh", "-c", "echo $$; ls /tmp/work"], owner="sparetest")
    try:
        first, second = spared.run(spec), spared.run(spec)
        spare = wait_for_spare(spared)
        third = spared.run(spec)
        # The program's pid in its namespace is small in each: no run came before it there (a reused
        # container's next program is numbered after the previous run's processes). Not one exact
        # value: the supervisor's start-up may take one pid more or less (6 or 7 seen here).
        pids = [int(r.stdout.split()[0]) for r in (first, second, third)]
        assert max(pids) <= 10 and max(pids) - min(pids) <= 1, pids
        assert third.container_id == spare  # the one created ahead
        assert len({first.container_id, second.container_id, third.container_id}) == 3
        gone = wait_for_spare(spared)
        docker_client.api.remove_container(gone, force=True)  # removed from outside (gc --everything)
        fourth = spared.run(spec)
        assert fourth.ok and fourth.container_id != gone
    finally:
        left = wait_for_spare(spared)
        spared.close()
    assert docker_client.api.containers(all=True, filters={"id": left}) == []
    assert spared.spare_containers == set()


def wait_for_spare(backend, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spares = backend.spare_containers
        if spares:
            return next(iter(spares))
        time.sleep(0.05)
    raise AssertionError("no spare was created")
