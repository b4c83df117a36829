"""Runs a skill's tests inside its container; the test gate's program (stdlib only).

Process tree: supervisor (PID 1) -> this runner -> coverage+pytest (the tests).
The runner is non-dumpable, so the tests cannot read or write its memory or fds.
The gate plugin's per-test records come to it down a pipe and stay in its memory.
After pytest exits it SIGKILLs every other process (so nothing the tests started can
touch the reports afterwards), then writes those records out, has coverage write its
JSON report, and records pytest's exit status as observed by waitpid in runner.json.
The host reads all of it back and decides; it never looks at what the tests printed.

usage: gate_runner.py OUT_DIR SOURCE_DIR TESTS_DIR
"""
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS_CAP = 16 << 20  # a flood of forged lines cannot grow the runner's memory past this


def nondumpable():
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except Exception:
        pass


def kill_others():
    try:
        os.kill(-1, signal.SIGKILL)  # everything we may signal except ourselves and PID 1
    except OSError:
        pass
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.01)


def main():
    out, source, tests = sys.argv[1], sys.argv[2], sys.argv[3]
    nondumpable()
    os.makedirs(out, mode=0o700, exist_ok=True)
    for name in ("junit.xml", "records.jsonl", "coverage.json", ".coverage", "runner.json"):
        try:
            os.unlink(os.path.join(out, name))
        except FileNotFoundError:
            pass
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": "/skill" + os.pathsep + HERE,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",  # no plugin from an installed requirement runs uninvited
        "COVERAGE_FILE": os.path.join(out, ".coverage"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    # Coverage reads .coveragerc/setup.cfg/tox.ini/pyproject.toml from its working directory, and a
    # config can load plugins (code) or exclude every line: always use our own, from our own dir.
    rcfile = os.path.join(HERE, "coveragerc")
    cmd = [
        sys.executable, "-m", "coverage", "run", "--rcfile", rcfile, "--source", source, "-m", "pytest",
        "-c", os.path.join(HERE, "pytest.ini"), "--rootdir", "/skill",
        "-p", "skillyard_gate_plugin", "-p", "no:cacheprovider", "-p", "no:pastebin",
        "--junitxml", os.path.join(out, "junit.xml"), "-o", "junit_family=xunit2",
        "-q", "--tb=short", "--color=no", tests,
    ]
    read_end, write_end = os.pipe()
    env["SKILLYARD_GATE_RECORDS_FD"] = str(write_end)
    records = bytearray()
    channel = {"closed_at": None}

    def drain():
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                channel["closed_at"] = time.monotonic()  # every write end is closed
                return
            if len(records) + len(chunk) > RECORDS_CAP:
                channel["overflow"] = True  # keep draining (the writer must not block), keep nothing more
            elif not channel.get("overflow"):
                records.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env, start_new_session=True, pass_fds=(write_end,))
    os.close(write_end)
    rc = proc.wait()
    exited_at = time.monotonic()
    duration = exited_at - started
    kill_others()  # also closes any copy of the write end a process of the tests kept
    reader.join(timeout=5)
    # The channel closing well before pytest ended means the tests closed or replaced the
    # plugin's fd, so records after that point were never sent: the host refuses the run.
    closed_early = channel["closed_at"] is not None and channel["closed_at"] < exited_at - 0.5
    write_new(os.path.join(out, "records.jsonl"), bytes(records))
    cov_dir = tempfile.mkdtemp(prefix="sy-cov-")  # empty: nothing the tests wrote is read as config
    cov = subprocess.run(
        [sys.executable, "-I", "-m", "coverage", "json", "-q", "--rcfile", rcfile,
         "--data-file", os.path.join(out, ".coverage"), "-o", os.path.join(out, "coverage.json")],
        env={"PATH": env.get("PATH", ""), "HOME": cov_dir, "PYTHONDONTWRITEBYTECODE": "1"}, cwd=cov_dir,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
    )
    write_new(os.path.join(out, "runner.json"), json.dumps({
        "pytest_exit": rc,
        "pytest_duration_s": duration,
        "coverage_exit": cov.returncode,
        "coverage_output": cov.stdout.decode("utf-8", "replace")[-2000:],
        "records_channel": "closed early" if closed_early else "overflow" if channel.get("overflow") else "ok",
        "records_bytes": len(records),
    }).encode())
    sys.exit(0)


def write_new(path, data):
    """Replace whatever the tests left at `path` (a file, a symlink, a FIFO) with `data`.
    A directory there cannot be removed by us either: the runner then fails, and a runner
    that does not exit 0 blocks the skill."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
