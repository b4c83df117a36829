"""The judge: runs a skill's tests in passes, each against a callee the host chose (stdlib only).

usage: python3 -I /tmp/sy/judge_runner.py /tmp/sy/manifest.json   (SANDBOX_CHANNEL_FD set)

Process tree in the judge container:

    supervisor (PID 1) -> this runner -> zygote -> one pass child at a time

- The runner never runs test code. It is non-dumpable (the tests, same uid, cannot read
  or write its memory), holds the only copy of the host channel, and keeps every pass's
  outcomes in its own memory. It tags every call a pass makes with that pass's id; which
  code answers a pass (the skill, or one of its mutants) only the host knows.
- The zygote imports pytest and the judge plugin and nothing else, then forks one child
  per pass. No test code ever runs in it, so every pass starts from the same clean state.
- A pass child runs pytest over the tests. The skill's modules are proxies there: every
  call crosses to the callee through the runner and the host, carrying plain data.
- Between passes the runner kills every other process, empties /tmp, /dev/shm and the
  POSIX message queues and restores the delivered files from memory: no pass can leave
  anything for the next one
  (a test that remembered the first pass's answers could otherwise "kill" every mutant).

Messages on every link are `<length>\\n<json>`. The verdict of a pass is computed here,
from pytest's per-test reports, and sent to the host over the channel, which no process
of the tests holds.
"""

import ctypes
import json
import os
import select
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Every place a pass can leave something in: the tmpfs dirs, and POSIX message queues (a queue's name
# alone carried a pass's answers to the next one). Unlinking a queue needs no privilege.
WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")
MAX_MESSAGE = 32 << 20
MAX_REPORTS = 20000  # per pass: a flood of reports cannot grow the runner past this


def nondumpable():
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except Exception:  # noqa: BLE001 - no libc: best effort
        pass


class Link:
    """One framed, blocking message stream over a file descriptor."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def send(self, obj):
        data = json.dumps(obj).encode()
        view = memoryview(str(len(data)).encode() + b"\n" + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def send_raw(self, data):
        view = memoryview(str(len(data)).encode() + b"\n" + data)
        while view:
            view = view[os.write(self.fd, view) :]

    def fill(self):
        """Read what is there; False at EOF."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def message(self):
        """One whole message (bytes) if buffered, else None. Raises ValueError on a bad frame."""
        newline = self.buf.find(b"\n", 0, 21)
        if newline < 0:
            if len(self.buf) >= 21:
                raise ValueError("bad frame header")
            return None
        header = bytes(self.buf[:newline])
        if not header.isdigit() or int(header) > MAX_MESSAGE:
            raise ValueError("bad frame header")
        end = newline + 1 + int(header)
        if len(self.buf) < end:
            return None
        data = bytes(self.buf[newline + 1 : end])
        del self.buf[:end]
        return data

    def receive(self):
        while True:
            data = self.message()
            if data is not None:
                return data
            if not self.fill():
                raise EOFError("link closed")

    def request(self, obj):
        self.send(obj)
        return json.loads(self.receive())


# -- the world between passes ----------------------------------------------------------------
def snapshot(roots):
    files = {}
    for root in roots:
        for base, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(base, name)
                with open(path, "rb") as f:
                    files[path] = f.read()
    return files


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True  # gone


def kill_others(keep):
    """SIGKILL every process we can see except `keep` and PID 1, until none is left alive.
    Our own children are reaped here; orphans are reaped by PID 1 (dead already)."""
    for _ in range(200):
        found = False
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == 1 or pid in keep or _zombie(pid):
                continue
            found = True
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not found:
            return True
        time.sleep(0.005)
    return False


def wipe(root):
    for base, dirs, names in os.walk(root, topdown=False):
        for name in names:
            try:
                os.unlink(os.path.join(base, name))
            except OSError:
                pass
        for name in dirs:
            path = os.path.join(base, name)
            try:
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.chmod(path, 0o700)
                    os.rmdir(path)
            except OSError:
                pass


def restore(files):
    for path, data in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def ipc_left():
    for kind in ("shm", "msg", "sem"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                if len(f.read().strip().splitlines()) > 1:
                    return True
        except OSError:
            continue
    return False


def reset_world(files, keep):
    """Nothing of the last pass survives: processes, files, shared memory."""
    problems = []
    if not kill_others(keep):
        problems.append("processes of the tests could not all be killed")
    for root in WRITABLE:
        wipe(root)
        if os.path.isdir(root) and os.listdir(root):
            problems.append(f"{root} could not be emptied")
    if ipc_left():
        problems.append("the tests left System V IPC objects behind")
    restore(files)
    return problems


# -- the zygote ------------------------------------------------------------------------------
def zygote(control, manifest):
    """Import pytest and the plugin, then fork a pass child per command. Never runs test code."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no plugin of an installed package runs uninvited
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    # The runner starts without the site module (-S: no .pth file of a requirement runs before the
    # runner is non-dumpable). The zygote needs pytest: site-packages, appended, no .pth processed.
    # Without site, a venv is not detected either (site.venv sets sys.prefix): find its
    # site-packages from pyvenv.cfg beside the interpreter, as site would.
    import sysconfig

    venv = os.path.dirname(os.path.dirname(sys.executable))
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    paths = [sysconfig.get_paths()[key] for key in ("purelib", "platlib")]
    if os.path.exists(os.path.join(venv, "pyvenv.cfg")):
        paths.insert(0, os.path.join(venv, "lib", version, "site-packages"))
    for path in paths:
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    sys.path.insert(0, HERE)
    import importlib

    import pytest  # noqa: F401 - imported here so no pass pays for it
    import skillyard_judge
    from _pytest import config as _config

    plugins = [
        "_pytest." + name for name in _config.default_plugins if name not in skillyard_judge.DISABLED_PLUGINS
    ]
    for name in plugins + list(manifest.get("preimport", [])):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a pass imports it itself
            pass
    sys.path.remove(HERE)  # the files there are restored between passes, but nothing more is read from them
    import gc

    # What is imported now is never collected: the passes' collections skip it, and pages stay shared.
    gc.freeze()
    link = Link(control.fileno())
    link.send({"ready": True})  # the runner empties /tmp only after this: our imports read files there
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            os._exit(0)
        if not msg or len(fds) != 1:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            control.close()
            code = skillyard_judge.run_pass(fds[0], manifest)
            os._exit(code)
        for fd in fds:
            os.close(fd)
        link.send({"pid": pid})
        _, status = os.waitpid(pid, 0)
        link.send({"exited": status})


# -- one pass ----------------------------------------------------------------------------------
class Pass:
    """What one pass child reported, merged per test."""

    def __init__(self, pass_id):
        self.id = pass_id
        self.tests = {}  # nodeid -> {"outcome", "message", "detail", "callee"}
        self.order = []
        self.collected = None
        self.collect_errors = []
        self.finished = False
        self.exitstatus = None
        self.reports = 0
        self.calls = 0
        self.timing = {}

    def report(self, msg):
        self.reports += 1
        if self.reports > MAX_REPORTS:
            return
        op = msg.get("op")
        if op == "collected":
            self.collected = int(msg.get("count", 0))
        elif op == "collect_error":
            self.collect_errors.append(
                {"nodeid": str(msg.get("nodeid", ""))[:300], "detail": str(msg.get("detail", ""))[-2500:]}
            )
        elif op == "report":
            node = str(msg.get("nodeid", ""))[:500]
            if node not in self.tests:
                self.tests[node] = {"outcome": "passed", "message": "", "detail": "", "callee": False}
                self.order.append(node)
            test = self.tests[node]
            outcome = msg.get("outcome")
            when = msg.get("when")
            if outcome == "failed":
                if test["outcome"] != "failed":
                    test["outcome"] = "failed" if when == "call" else "error"
                    test["message"] = str(msg.get("message", ""))[:500]
                    test["detail"] = str(msg.get("detail", ""))[-2500:]
                    test["callee"] = bool(msg.get("callee"))
            elif outcome == "skipped" and test["outcome"] == "passed":
                test["outcome"] = "skipped"
                test["message"] = str(msg.get("message", ""))[:500]
        elif op == "finish":
            self.finished = True
            self.exitstatus = msg.get("exitstatus")
            self.timing = msg.get("timing") if isinstance(msg.get("timing"), dict) else {}

    def summary(self, how):
        outcomes = [self.tests[n]["outcome"] for n in self.order]
        return {
            "pass": self.id,
            "how": how,
            "finished": self.finished,
            "exitstatus": self.exitstatus,
            "collected": self.collected,
            "collect_errors": self.collect_errors[:20],
            "calls": self.calls,
            "timing": self.timing,
            "tests": len(outcomes),
            "passed": outcomes.count("passed"),
            "failed": outcomes.count("failed"),
            "errors": outcomes.count("error"),
            "skipped": outcomes.count("skipped"),
            "cases": [dict(self.tests[n], name=n) for n in self.order[:2000]],
        }


def run_pass(host, zygote_control, zygote_link, command):
    """Fork a pass child, relay its calls to the host tagged with the pass id, collect its reports."""
    state = Pass(command["pass"])
    started = time.monotonic()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # The pass child learns only what it needs to run: not its id, not its time limit (the host's
    # limits differ between the control and the mutants, and the child runs test code).
    needs = {k: command.get(k) for k in ("maxfail", "select", "quiet")}
    child = Link(ours.fileno())
    child.send(needs)  # the child's first message: sent down its own socket (any size), before it starts
    socket.send_fds(zygote_control, [b"pass"], [theirs.fileno()])
    theirs.close()
    pid = json.loads(zygote_link.receive())["pid"]
    deadline = time.monotonic() + float(command.get("timeout", 60))
    how = "ended"
    exited = None
    child_open = True
    while exited is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            how = "timeout"
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            exited = json.loads(zygote_link.receive()).get("exited")
            break
        watch = [zygote_link.fd] + ([child.fd] if child_open else [])
        ready, _, _ = select.select(watch, [], [], min(remaining, 1.0))
        if zygote_link.fd in ready and not zygote_link.fill():
            how = "zygote died"
            break
        data = zygote_link.message()
        if data is not None:
            exited = json.loads(data).get("exited")
        if child.fd in ready:
            try:
                if not child.fill():
                    child_open = False
            except OSError:
                child_open = False
        try:
            while True:
                data = child.message()
                if data is None:
                    break
                msg = json.loads(data)
                if not isinstance(msg, dict):
                    raise ValueError("not an object")
                if msg.get("op") in ("call", "describe"):
                    state.calls += 1
                    msg["pass"] = state.id
                    host.send(msg)
                    child.send_raw(host.receive())
                else:
                    state.report(msg)
        except (ValueError, OSError) as exc:  # a broken link: the pass has not finished cleanly
            how = f"broken link: {str(exc)[:200]}"
            child_open = False
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    # The child has exited: what it sent before that is still in the socket. Read it to EOF.
    while child_open:
        ready, _, _ = select.select([child.fd], [], [], 1.0)
        try:
            if not ready or not child.fill():
                break
        except OSError:
            break
    try:
        while True:
            data = child.message()
            if data is None:
                break
            msg = json.loads(data)
            if isinstance(msg, dict) and msg.get("op") not in ("call", "describe"):
                state.report(msg)
    except ValueError:
        pass
    ours.close()
    result = state.summary(how)
    result["exit_status"] = exited
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def main():
    nondumpable()
    os.chdir("/")
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    host = Link(int(os.environ["SANDBOX_CHANNEL_FD"]))
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    files = snapshot(["/tmp/skill", HERE])
    parent_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    zpid = os.fork()
    if zpid == 0:
        os.close(host.fd)  # the zygote, and every pass child, never holds the host channel
        parent_end.close()
        zygote(zygote_end, manifest)
        os._exit(0)
    zygote_end.close()
    zygote_link = Link(parent_end.fileno())
    keep = {os.getpid(), zpid}
    try:
        ready = json.loads(zygote_link.receive()).get("ready")
    except (EOFError, OSError, ValueError):
        ready = False
    if not ready:
        sys.stderr.write(
            "the judge's zygote did not start (it could not import pytest or the judge plugin)\n"
        )
        sys.exit(1)
    while True:
        command = host.request({"op": "next"})
        if command.get("op") != "pass":
            break
        problems = reset_world(files, keep)
        if problems:
            host.request(
                {"op": "pass_done", "pass": command["pass"], "how": "unclean: " + "; ".join(problems)}
            )
            break
        result = run_pass(host, parent_end, zygote_link, command)
        host.request(dict(result, op="pass_done"))
    kill_others({os.getpid()})
    sys.exit(0)


if __name__ == "__main__":
    main()
