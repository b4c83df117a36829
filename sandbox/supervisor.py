"""The in-container supervisor: PID 1 of every sandbox container.

Run as `python3 -I -S -c <this source>` so that only the standard library is used and
nothing from the image's site-packages runs before it. It:

1. makes itself non-dumpable, so the program it runs (same uid) cannot open its
   /proc/PID/fd or /proc/PID/mem: the response channel (our stdout) stays ours;
2. reads one framed request from stdin: `<length>\\n<json>` with the files to write,
   the argv, env, stdin bytes, output caps, deadline and files to collect;
3. runs the program on pipes, keeping at most the capped bytes of stdout/stderr (the
   rest is drained and counted, so nothing floods the engine's logs or the host);
4. when the program exits or the deadline passes, SIGKILLs every process left in the
   container (daemonized children included) and reaps them;
5. reads back the requested files (the program can no longer change them), and
6. writes one response frame `\\n@@SKILLYARD-RESULT <nonce> <length>\\n<json>` to stdout.

The nonce comes from the host and is never shown to the program, so the program cannot
forge a response. As PID 1 it also cannot be killed from inside the container.

With `"stream": true` the output the supervisor keeps (never more than the caps) is also
sent as it arrives, as `\n@@SKILLYARD-STDOUT <nonce> <length>\n<bytes>` (or STDERR)
frames before the response: live output for a long run, at the cost of one write per
chunk read. The response still carries the whole kept output.

With `"channel": true` (one-shot runs only) the program also gets a duplex byte stream to
the host while it runs: fd 3 (named in SANDBOX_CHANNEL_FD) is a socket whose bytes the
supervisor forwards to the host as `\n@@SKILLYARD-CHANNEL <nonce> <length>\n<bytes>`
frames, and whatever the host writes to our stdin after the request goes back to it
unchanged. The supervisor does not interpret these bytes; the host parses them as
untrusted input. The frames carry the nonce too, so the program can no more forge a
channel frame than a result frame.
This file must stay standard-library only and compatible with Python 3.8+.
"""

# The C module: signal.py would import enum, functools and collections (~3.5 ms of every
# container's start); _signal has every name used here.
import _signal as signal
import binascii
import ctypes
import errno
import os
import select
import sys
import time


def _codec():
    """(loads, dumps) for our frames without importing json and base64 at start-up: they pull
    in re, enum and functools (~5-8 ms of every container's start, on a cold call's path).
    CPython's _json does the work json would; anything unexpected -> the json module."""
    try:
        import _json

        class Context:  # what _json.make_scanner reads off a json.JSONDecoder
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = float
            memo = {}

        def default(o):
            raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

        scan = _json.make_scanner(Context)
        encode = _json.make_encoder(
            {}, default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
        )

        def loads(text):
            if isinstance(text, (bytes, bytearray)):
                text = text.decode("utf-8")
            start = len(text) - len(text.lstrip(" \t\n\r"))
            value, end = scan(text, start)
            if text[end:].strip(" \t\n\r"):
                raise ValueError("extra data after the JSON value")
            return value

        def dumps(value):
            return "".join(encode(value, 0))

        if loads(b' {"a": [1, 2.5, "\\u00e9", null, true]} ') != {"a": [1, 2.5, "\u00e9", None, True]}:
            raise ValueError("_json behaves unlike json")
        if dumps({"k": [1.5, "\u00e9"]}) != '{"k": [1.5, "\\u00e9"]}':
            raise ValueError("_json behaves unlike json")
        return loads, dumps
    except Exception:  # noqa: BLE001 - any doubt: the real thing
        import json

        return json.loads, json.dumps


_loads, _dumps = _codec()


def _b64decode(text):
    return binascii.a2b_base64(text)


def _b64encode(data):
    return binascii.b2a_base64(data, newline=False)


MAGIC = b"@@SKILLYARD-RESULT"
CHANNEL_MAGIC = b"@@SKILLYARD-CHANNEL"
OUTPUT_MAGIC = {1: b"@@SKILLYARD-STDOUT", 2: b"@@SKILLYARD-STDERR"}
CHANNEL_FD = 3
PR_SET_DUMPABLE = 4


_LIBC = []


def _libc():
    """libc through ctypes, loaded once: prctl (here and in each program's child, for seccomp)
    and the syscalls Python has no wrapper for (ioprio_get)."""
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _set_nondumpable():
    try:
        _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except Exception:  # noqa: BLE001 - no libc (static image): best effort
        pass


def _read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("request truncated")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_request():
    header = b""
    while not header.endswith(b"\n"):
        c = os.read(0, 1)
        if not c:
            raise EOFError("no request on stdin")
        header += c
        if len(header) > 20:
            raise ValueError("bad request header")
    return _loads(_read_exact(0, int(header)))


def _cgroup_read(*candidates):
    for path in candidates:
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            continue
    return None


def _peak_memory():
    text = _cgroup_read("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak")
    if text and text.strip().isdigit():
        return int(text.strip())
    return None


def _oom_kills():
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        text = _cgroup_read(path)
        if text:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "oom_kill":
                    return int(parts[1])
    return 0


def _write_files(files):
    for item in files:
        path = item["path"]
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, item.get("mode", 0o644))
        try:
            data = _b64decode(item["data"])
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def _install_seccomp(filter_b64):
    """Stack the host-built seccomp filter on this process (fail closed: no filter, no exec)."""
    import struct

    prog = _b64decode(filter_b64)
    libc = _libc()
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS (already set by the engine; harmless)
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // struct.calcsize("=HBBI"), ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")


def _child_setup(limits, seccomp=None):
    import resource

    def setup():
        os.setsid()
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")  # if the cgroup runs out of memory, the program dies, not the supervisor
        except OSError:
            pass
        for name, value in limits.items():
            res = getattr(resource, name, None)
            if res is not None:
                try:
                    resource.setrlimit(res, (value, value))
                except (ValueError, OSError):
                    pass
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if seccomp:
            _install_seccomp(seccomp)  # last: after this, setup calls could be denied

    return setup


def _kill_everything():
    """SIGKILL every process we can signal in this PID namespace, except ourselves (PID 1)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass


class _Alarm(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Alarm()


def _wait_any(until):
    """os.wait4(-1, 0), given up at the monotonic time `until`: (pid, status, usage), or
    (0, 0, None) when it is up. A blocking wait, not a poll: a child that exits is reaped at
    once (a 5 ms poll cost a one-shot run ~2.5 ms on average). SIGALRM is ours: the program
    cannot signal PID 1, and nothing else here uses it."""
    remaining = until - time.monotonic()
    if remaining <= 0:
        return 0, 0, None
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, remaining)
    try:
        return os.wait4(-1, 0)
    except _Alarm:
        return 0, 0, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _reap(block_until=None):
    """Reap zombies; with `block_until`, wait (blocking) for every child to end until then.
    Returns {pid: (status, rusage)} of what was reaped."""
    reaped = {}
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0 and block_until is not None:
                pid, status, usage = _wait_any(block_until)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            reaped[pid] = (status, usage)
        else:  # stopped under ptrace: it will never exit on its own
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return reaped


def _collect(paths, cap, root=None):
    """Read back the requested files: regular files only, never through a final symlink, at most
    `cap` bytes each. With `root`, a path whose real location is outside it (a symlinked
    folder on the way) counts as missing. A file that cannot be read counts as missing."""
    import stat as _stat

    files, missing = {}, []
    base = root.rstrip("/") + "/" if root else None
    for path in paths:
        if base is not None and not (os.path.realpath(path) + "/").startswith(base):
            missing.append(path)
            continue
        try:
            # O_NONBLOCK: opening a FIFO the program left there must not hang us.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            missing.append(path)
            continue
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                missing.append(path)
                continue
            data = b""
            while len(data) <= cap:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
            files[path] = {"data": _b64encode(data[:cap]).decode(), "truncated": len(data) > cap}
        except OSError:
            missing.append(path)
        finally:
            os.close(fd)
    return files, missing


def _pidfd(pid):
    """A descriptor that turns readable when `pid` exits (Linux 5.3+, Python 3.9+), or None:
    then the run loop polls, as it did before pidfds (gVisor's older builds lack them)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _spawn(req, channel=None):
    """Fork and exec the program on fresh pipes. Returns (pid, stdin_w, stdout_r, stderr_r).
    `channel`: the program's end of the host channel, given to it as fd CHANNEL_FD."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    r_in, w_in = os.pipe()
    pid = os.fork()
    if pid == 0:  # the program
        try:
            os.dup2(r_in, 0)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            for fd in (r_in, w_in, r_out, w_out, r_err, w_err):
                os.close(fd)
            if channel is not None:
                os.dup2(channel, CHANNEL_FD)  # dup2 leaves the copy inheritable across exec
                if channel != CHANNEL_FD:
                    os.close(channel)
            _child_setup(req.get("rlimits", {}), req.get("seccomp"))()
            os.chdir(req.get("cwd") or "/")
            env = dict(os.environ)  # only the image's ENV: the host passes nothing else
            env.update(req.get("env") or {})
            if channel is not None:
                env["SANDBOX_CHANNEL_FD"] = str(CHANNEL_FD)
            os.execvpe(req["argv"][0], req["argv"], env)
        except BaseException as exc:  # noqa: BLE001 - exec failed: report like a shell would
            try:
                os.write(2, ("skillyard: cannot run {!r}: {}\n".format(req["argv"][0], exc)).encode())
            finally:
                os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    os.close(r_in)
    os.close(w_out)
    os.close(w_err)
    return pid, w_in, r_out, r_err


def _run(req, proc=None, nonce="", fs=None):
    """Run the request's program (or `proc`, the same program started ahead of time, or a child
    of the fork server `fs`) to its end."""
    started = time.monotonic()
    deadline = started + float(req["timeout"])
    caps = {1: int(req["max_stdout"]), 2: int(req["max_stderr"])}
    kept = {1: bytearray(), 2: bytearray()}
    total = {1: 0, 2: 0}
    stdin_data = _b64decode(req.get("stdin", ""))
    streaming = bool(req.get("stream"))

    channel = _Channel(nonce) if req.get("channel") and proc is None and fs is None else None
    sent = 0  # bytes of stdin in the pipe before the program got it
    if fs is not None:
        pid, w_in, r_out, r_err, sent = fs.spawn(req, stdin_data)
        kill = fs.kill_others
    else:
        pid, w_in, r_out, r_err = proc or _spawn(req, channel.program_end if channel else None)
        kill = _kill_everything
    exit_fd = _pidfd(pid) if fs is None else None  # readable once the program has exited
    if channel is not None:
        channel.started()
    readers = {r_out: 1, r_err: 2}
    stdin_view = memoryview(stdin_data)[sent:]
    writer = w_in if w_in is not None and stdin_view else None
    if writer is not None:
        os.set_blocking(writer, False)
    elif w_in is not None:
        os.close(w_in)
    timed_out = False
    status = None
    reaped = {}  # statuses the zombie reaper collected; the program's may be among them
    usage = None
    oom_before = _oom_kills()

    while readers or status is None:
        if status is None:
            if fs is not None:
                status, usage = fs.exit_of(pid)
            else:
                try:
                    wpid, wstatus, wusage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:  # already reaped below; its status was kept there
                    wpid, wstatus, wusage = 0, 0, None
                if wpid == pid:
                    status, usage = wstatus, wusage
                elif pid in reaped:
                    status, usage = reaped.pop(pid)
                if status is not None and not (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
                    # A stop (the program made us its tracer with PTRACE_TRACEME): not an end. Kill it.
                    os.kill(pid, signal.SIGKILL)
                    status, usage = None, None
            if status is not None:
                # The program is done: nothing it left behind may keep running or keep the pipes open.
                kill()
        now = time.monotonic()
        if now >= deadline and status is None:
            timed_out = True
            kill()
            while fs is not None:
                status, usage = fs.exit_of(pid, wait=5.0)
                if status is None:
                    status = signal.SIGKILL  # the fork server did not answer: it is unfit for reuse
                    fs.stop()
                break
            while fs is None:
                try:
                    _, status, usage = os.wait4(pid, 0)
                except ChildProcessError:
                    status, usage = reaped.get(pid, (signal.SIGKILL, None))
                    break
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    break
                os.kill(pid, signal.SIGKILL)
        if not readers and (channel is None or status is not None):
            reaped.update(_reap())
            if status is None:
                # Block until it exits (or the deadline), no polling: on its pidfd, or on the fork
                # server's socket, where its exit is reported (a 2 ms sleep here cost a warm call ~2 ms).
                wake = exit_fd
                if wake is None and fs is not None and fs.sock is not None:
                    wake = fs.sock.fileno()
                if wake is not None:
                    select.select([wake], [], [], max(0.0, min(deadline - time.monotonic(), 0.05)))
                else:
                    time.sleep(0.002)
            continue
        wlist = [writer] if writer is not None else []
        rlist = list(readers)
        if fs is not None and status is None and fs.sock is not None:
            rlist.append(fs.sock.fileno())  # wake up when the fork server reports the exit
        if exit_fd is not None and status is None:
            rlist.append(exit_fd)  # wake up when the program exits, its pipes still held open
        if channel is not None and status is None:
            rlist += channel.readable()
            wlist += channel.writable()
        timeout = max(0.0, min(deadline - now, 0.05))
        try:
            rready, wready, _ = select.select(rlist, wlist, [], timeout)
        except InterruptedError:
            continue
        if channel is not None:
            channel.pump(rready, wready)
        rready = [fd for fd in rready if fd in readers]
        wready = [fd for fd in wready if fd == writer]
        for fd in wready:
            try:
                n = os.write(fd, stdin_view[:65536])
                stdin_view = stdin_view[n:]
            except BlockingIOError:
                n = 0
            except OSError:  # the program closed its stdin
                stdin_view = stdin_view[:0]
            if not stdin_view:
                os.close(writer)
                writer = None
        for fd in rready:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                os.close(fd)
                del readers[fd]
                continue
            stream = readers[fd]
            total[stream] += len(chunk)
            room = caps[stream] - len(kept[stream])
            if room > 0:
                kept[stream] += chunk[:room]
                if streaming:
                    _frame(OUTPUT_MAGIC[stream], nonce, chunk[:room])
        reaped.update(_reap())
    if writer is not None:
        os.close(writer)
    if exit_fd is not None:
        os.close(exit_fd)
    if channel is not None:
        channel.close()
    duration = time.monotonic() - started
    kill()
    # With a fork server alive there is always a child left: reap what is there, never wait for it.
    _reap(block_until=None if fs is not None else time.monotonic() + 0.2)

    exit_code, sig = None, None
    if os.WIFEXITED(status):
        exit_code = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        exit_code = 128 + sig
    files, missing = _collect(
        req.get("collect", []), int(req.get("max_collect", 8 << 20)), req.get("collect_root")
    )
    return {
        "exit_code": exit_code,
        "signal": sig,
        "timed_out": timed_out,
        # Kept as base64 bytes (no str copy) and spliced into the frame by _respond: the output
        # is held in this container's memory, so every copy counts against the program's limit.
        "stdout": _b64_and_free(kept, 1),
        "stderr": _b64_and_free(kept, 2),
        "stdout_bytes": total[1],
        "stderr_bytes": total[2],
        "duration_s": duration,
        # One-shot: the cgroup's high-water mark covers every process. Served (warm) containers
        # outlive calls, so there only the program's own peak RSS (from wait4) is per-call.
        "peak_memory_bytes": (usage.ru_maxrss * 1024 if usage is not None else None)
        if req.get("serve")
        else (_peak_memory() or (usage.ru_maxrss * 1024 if usage is not None else None)),
        "oom_kills": max(0, _oom_kills() - oom_before),
        "files": files,
        "missing": missing,
    }


class _Channel:
    """Two byte pumps between the program's channel socket and the host (our stdin/stdout).

    Program -> host: every chunk read from the socket becomes one CHANNEL frame on stdout.
    Host -> program: bytes read from stdin (after the request) are written to the socket.
    Neither direction is parsed here; the host treats the stream as untrusted input."""

    def __init__(self, nonce):
        import socket

        self.nonce = nonce.encode()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sockets = (ours, theirs)
        self.fd = ours.fileno()
        self.program_end = theirs.fileno()
        self.to_program = bytearray()
        self.host_open = True
        self.program_open = True

    def started(self):
        """The program holds its end now: close ours of it, and stop blocking on our own."""
        self._sockets[1].close()
        self._sockets[0].setblocking(False)
        os.set_blocking(0, False)

    def readable(self):
        fds = []
        if self.program_open:
            fds.append(self.fd)
        if self.host_open and len(self.to_program) < (1 << 22):
            fds.append(0)
        return fds

    def writable(self):
        return [self.fd] if self.to_program and self.program_open else []

    def pump(self, rready, wready):
        if self.fd in rready:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk:
                _frame(CHANNEL_MAGIC, self.nonce, chunk)
            elif chunk is not None:
                self.program_open = False
        if 0 in rready:
            try:
                chunk = os.read(0, 1 << 16)
            except (BlockingIOError, InterruptedError):
                chunk = None
            except OSError:
                chunk = b""
            if chunk:
                self.to_program += chunk
            elif chunk is not None:
                self.host_open = False
        if self.fd in wready and self.to_program:
            try:
                sent = os.write(self.fd, self.to_program[: 1 << 16])
                del self.to_program[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.program_open = False
                self.to_program.clear()

    def close(self):
        try:
            self._sockets[0].close()
        except OSError:
            pass


def _kill_all_but(keep):
    """SIGKILL every process in the namespace except PID 1 and `keep`, until none is left.
    False if some were still there after 100 rounds (say, a fork storm outrunning us)."""
    for _ in range(100):
        found = False
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                if pid != 1 and pid not in keep:
                    found = True
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if not found:
            return True
        _reap()
        time.sleep(0.001)
    return False


class _Usage:
    def __init__(self, maxrss):
        self.ru_maxrss = maxrss or 0


class _ForkServer:
    """A long-lived copy of the program that forks one child per call (RunSpec.fork_server).

    Started with the request's argv, env, limits and seccomp filter, which its children
    inherit; it never runs a call's code itself (see sandbox/forkserver.py). If it dies or
    stops answering, the container is reported unfit for reuse."""

    def __init__(self):
        self.pid = None
        self.attributes = None
        self.all_killed = True
        self.sock = None
        self.key = None
        self.buf = b""
        self.exits = {}

    def alive(self):
        if self.pid is None:
            return False
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def ensure(self, req):
        key = _prestart_key(req)
        if self.key == key and self.alive():
            return
        self.stop()
        import socket

        # SEQPACKET: each message arrives alone (a prefork and the call after it never merge).
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open("/dev/null", os.O_RDWR)
        pid = os.fork()
        if pid == 0:
            try:
                for target in (0, 1, 2):
                    os.dup2(null, target)
                os.dup2(theirs.fileno(), 3)
                os.closerange(4, 1024)
                _child_setup(req.get("rlimits", {}), req.get("seccomp"))()
                os.makedirs(req.get("cwd") or "/", exist_ok=True)
                os.chdir(req.get("cwd") or "/")
                env = dict(os.environ)
                env.update(req.get("env") or {})
                env["SANDBOX_FORK_SERVER_FD"] = "3"
                os.execvpe(req["argv"][0], req["argv"], env)
            finally:
                os._exit(127)
        os.close(null)
        theirs.close()
        self.pid, self.sock, self.key, self.buf, self.exits = pid, ours, key, b"", {}
        ready = self._line(time.monotonic() + 30)
        if not ready or not ready.get("ready"):
            self.stop()
            raise RuntimeError("the fork server did not start (it exited or did not say it was ready)")
        self.attributes = _attributes(pid)  # before any call: see `untouched`

    def untouched(self):
        """Alive, alone with us (the last call's processes all killed), and with the limits,
        priorities and affinity it had before any call."""
        return (
            self.all_killed
            and self.alive()
            and self.attributes is not None
            and _attributes(self.pid) == self.attributes
        )

    def _line(self, deadline):
        """The next JSON line from the fork server, or None at EOF or the deadline."""
        while b"\n" not in self.buf:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return _loads(line)

    def spawn(self, req, stdin=b""):
        """Start a call's child on fresh pipes: (pid, stdin's write end or None, stdout's and
        stderr's read ends, bytes of `stdin` already in its pipe). As much of `stdin` as the
        pipe holds is written before the child gets the pipe, and the pipe closed if that was
        all: the child reads its request at once instead of waiting for our loop to write it."""
        import socket

        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        r_in, w_in = os.pipe()
        sent = 0
        try:
            if stdin:
                os.set_blocking(w_in, False)
                try:
                    sent = os.write(w_in, stdin)
                except BlockingIOError:
                    sent = 0
                if sent == len(stdin):
                    os.close(w_in)
                    w_in = None
            socket.send_fds(
                self.sock, [_dumps({"cwd": req.get("cwd") or "/"}).encode()], [r_in, w_out, w_err]
            )
            answer = self._line(time.monotonic() + 10)
        finally:
            for fd in (r_in, w_out, w_err):
                os.close(fd)
        if not answer or "pid" not in answer:
            for fd in (w_in, r_out, r_err):
                if fd is not None:
                    os.close(fd)
            self.stop()
            raise RuntimeError("the fork server did not start the call")
        return int(answer["pid"]), w_in, r_out, r_err, sent

    def prefork(self):
        """Have the fork server fork the next call's child now (sandbox/forkserver.py): only once
        the container is clean, as every process of the last call is gone. Not answered."""
        try:
            self.sock.sendall(b'{"prefork": true}')
        except OSError:
            self.stop()  # it is gone: the next call starts a new one

    def exit_of(self, pid, wait=0.0):
        """(status, usage) once the call's child has exited, else (None, None)."""
        deadline = time.monotonic() + wait
        while pid not in self.exits:
            try:
                line = self._line(deadline)
            except (OSError, ValueError):
                line = None
            if line is None:
                if not self.alive():
                    return signal.SIGKILL, None  # the fork server is gone; so is its child
                return None, None
            if "status" in line:
                self.exits[int(line["pid"])] = (int(line["status"]), _Usage(line.get("maxrss")))
        return self.exits.pop(pid)

    def kill_others(self):
        # The last kill of a call decides: a process that outlived it must not meet the next call.
        self.all_killed = _kill_all_but({self.pid} if self.pid else set())

    def stop(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (OSError, ChildProcessError):
                pass
        if self.sock is not None:
            self.sock.close()
        self.pid = self.sock = self.key = None


def _wipe(paths):
    """Empty the writable dirs between served calls (the program's files must not reach the next call)."""
    import shutil

    def onerror(func, path, exc_info):
        try:
            os.chmod(os.path.dirname(path) or "/", 0o700)
            os.chmod(path, 0o700)
        except OSError:
            pass
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass

    for root in paths:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for name in entries:
            full = os.path.join(root, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, onerror=onerror)
            else:
                try:
                    os.unlink(full)
                except OSError:
                    onerror(os.unlink, full, None)
        if os.listdir(root):
            return False
    return True


_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}  # ioprio_get's syscall number (no wrapper in Python)
_RLIMITS = []  # every RLIMIT_* number, read once (`resource` is imported only by serving supervisors)


def _attributes(pid):
    """What a process of our uid may change on another process whose memory it cannot touch
    (non-dumpable): its resource limits (prlimit), nice value, CPU affinity, scheduling policy
    and I/O priority. A call that changed them on the fork server or on us would leave a value,
    or a handicap, to every later call; the container is not reused then. None if unreadable."""
    import resource

    if not _RLIMITS:
        _RLIMITS.extend(getattr(resource, n) for n in sorted(dir(resource)) if n.startswith("RLIMIT_"))
    try:
        limits = tuple(resource.prlimit(pid, n) for n in _RLIMITS)
        sched = (
            os.getpriority(os.PRIO_PROCESS, pid),
            tuple(sorted(os.sched_getaffinity(pid))),
            os.sched_getscheduler(pid),
        )
    except (OSError, ValueError, AttributeError):
        return None
    ioprio_get = _IOPRIO_GET.get(os.uname().machine)
    io = _libc().syscall(ioprio_get, 1, pid) if ioprio_get else None  # IOPRIO_WHO_PROCESS
    return limits, sched, io


def _ipc_dirty():
    """True if the program left System V IPC objects (shared memory, queues, semaphores) behind:
    the tmpfs wipe cannot remove them, so the host must not reuse this container."""
    for kind in ("shm", "msg", "sem"):
        text = _cgroup_read("/proc/sysvipc/" + kind)
        if text and len(text.strip().splitlines()) > 1:
            return True
    return False


def _b64_and_free(kept, fd):
    """Base64 of the kept bytes of `fd`, the buffer released first: peak ~2.3x the output, not ~5x."""
    encoded = _b64encode(kept[fd])  # the bytearray as it is: a copy would double the peak
    kept[fd] = bytearray()
    return encoded


def _respond(nonce, resp):
    """Write one response frame. Big base64 fields (bytes) are written as they are, beside the
    JSON of the rest, rather than copied into one JSON document and again into one frame."""
    small = {k: v for k, v in resp.items() if not isinstance(v, bytes)}
    pieces = [_dumps(small)[:-1].encode()]  # without its closing brace
    for key, value in resp.items():
        if isinstance(value, bytes):
            pieces += [b", " + _dumps(key).encode() + b': "', value, b'"']
    pieces.append(b"}")
    length = sum(len(piece) for piece in pieces)
    _write_all(b"\n" + MAGIC + b" " + nonce.encode() + b" " + str(length).encode() + b"\n")
    for piece in pieces:
        _write_all(piece)


def _frame(magic, nonce, data):
    """One frame of bytes for the host (a channel chunk, live output), tagged with the nonce."""
    if isinstance(nonce, str):
        nonce = nonce.encode()
    _write_all(b"\n" + magic + b" " + nonce + b" " + str(len(data)).encode() + b"\n" + data)


def _write_all(data):
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(1, view) :]
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                time.sleep(0.001)
                continue
            raise


PROGRAM_FIELDS = ("argv", "cwd", "env", "rlimits", "seccomp")


def _prestart_key(req):
    """What must match for a process started ahead of time to serve a request: the host's
    key for the program (a hash of PROGRAM_FIELDS), or those fields themselves."""
    return req.get("program") or _dumps([req.get(k) for k in PROGRAM_FIELDS])


def _discard(proc):
    pid, w_in, r_out, r_err = proc
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    for fd in (w_in, r_out, r_err):
        os.close(fd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _still_waiting(proc):
    """True if the started-ahead process is alive and has not been signalled or stopped."""
    try:
        pid, _ = os.waitpid(proc[0], os.WNOHANG | os.WUNTRACED)
    except ChildProcessError:
        return False
    return pid == 0


def serve(idle=None):
    """Warm mode: answer requests one after another until stdin closes (or, with `idle`, until
    no request came for that many seconds). Each call gets a fresh process; afterwards every
    process is killed and the writable dirs named in the request are wiped.
    A request may name its program by the key of an earlier request's program instead of
    carrying argv, env and the seccomp filter again (answered `unknown_program` otherwise).

    With "prestart" in a request, once the answer is sent the next call's process is started
    (same argv, cwd, env and limits) and left blocked on its stdin: interpreter start-up leaves
    the call's path. The caller promises the program reads its stdin before it does anything
    that belongs to the call. The next request uses it only if it asks for the same program."""
    pending = None
    fork_server = _ForkServer()
    ours = _attributes(1)  # ours before any call: a call that changes them ends this container's reuse
    program = None  # (key, PROGRAM_FIELDS) of the last request that carried its program in full
    while True:
        if idle is not None and not select.select([0], [], [], idle)[0]:
            os._exit(0)  # idle: nobody will ask again (a session's own end, whoever forgot it)
        try:
            req = _read_request()
        except EOFError:
            os._exit(0)
        except Exception as exc:  # noqa: BLE001 - an unreadable request ends the container, said so
            _respond("", {"supervisor_error": f"bad request: {exc}"})
            os._exit(1)
        nonce = str(req.get("nonce", ""))
        # A request for a program this container already ran names it by the host's key alone.
        if "argv" not in req:
            if program is None or program[0] != req.get("program"):
                _respond(nonce, {"unknown_program": True})  # nothing ran: the host sends it in full
                continue
            req.update(program[1])
        elif req.get("program"):
            program = (req["program"], {k: req.get(k) for k in PROGRAM_FIELDS})
        proc = None
        if pending is not None:
            if pending[0] == _prestart_key(req) and _still_waiting(pending[1]):
                proc = pending[1]
            else:
                _discard(pending[1])
            pending = None
        try:
            req["serve"] = True
            _write_files(req.get("files", []))
            if req.get("fork_server"):
                fresh = (
                    fork_server.pid is None
                    or fork_server.key != _prestart_key(req)
                    or not fork_server.alive()
                )
                fork_server.ensure(req)
                resp = _run(req, nonce=nonce, fs=fork_server)
                resp["prestarted"] = not fresh
                healthy = fork_server.untouched()
            else:
                resp = _run(req, proc, nonce=nonce)
                resp["prestarted"] = proc is not None
                healthy = True
            healthy = healthy and ours is not None and _attributes(1) == ours
            resp["wiped"] = _wipe(req.get("wipe", [])) and not _ipc_dirty() and healthy
        except Exception as exc:  # noqa: BLE001 - supervisor trouble is reported as such, not as a result
            resp = {"supervisor_error": f"{type(exc).__name__}: {exc}"}
        _respond(nonce, resp)
        if req.get("fork_server") and resp.get("wiped") and fork_server.sock is not None:
            fork_server.prefork()  # after the wipe and the kill of every process the call left
        if req.get("prestart") and not req.get("fork_server") and resp.get("wiped"):
            try:
                os.makedirs(req.get("cwd") or "/", exist_ok=True)
                pending = (_prestart_key(req), _spawn(req))
            except Exception:  # noqa: BLE001 - the next call starts its process itself
                pending = None


def main():
    _set_nondumpable()
    # No handlers for SIGTERM/SIGINT on purpose: a namespace's init without a handler receives no
    # signal from inside the container (the program cannot kill us), and from the host only
    # SIGKILL, which is how the host ends a run. Python installs a SIGINT handler of its own
    # (KeyboardInterrupt): reset it, or the program could interrupt us with kill(1, SIGINT).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    args = sys.argv[1:]
    if "--serve" in args:
        idle = float(args[args.index("--idle") + 1]) if "--idle" in args else None
        serve(idle)
    nonce = ""
    try:
        req = _read_request()
        nonce = str(req["nonce"])
        _write_files(req.get("files", []))
        resp = _run(req, nonce=nonce)
    except Exception as exc:  # noqa: BLE001 - supervisor trouble is reported as such, never as a program result
        resp = {"supervisor_error": f"{type(exc).__name__}: {exc}"}
    _respond(nonce, resp)
    os._exit(0)


if __name__ == "__main__":
    main()
