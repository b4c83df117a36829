"""The program's half of a warm container's fork server (standard library only).

A program run with `RunSpec.fork_server` in a warm container is started once, with
SANDBOX_FORK_SERVER_FD naming a socket to the supervisor, and calls `serve(handler)`
after it has imported what every call needs. For each call the supervisor sends the call's
stdin, stdout and stderr pipes; `serve` forks, and the child (a fresh process: a copy of
this clean parent, sharing nothing with earlier calls) runs `handler()` on them and
exits. The parent never runs the call's code and holds no secret: it only forks, waits
and reports the exit status.

Invariants the supervisor relies on:
- the child closes the fork server's socket before `handler` runs, so a call cannot
  speak for the fork server;
- the fork server is non-dumpable: a call (same uid) cannot read or write its memory;
- the child gets a new session, the fork server's limits and seccomp filter (inherited),
  and the working directory the supervisor names;
- every message is one JSON line; the parent reports `{"pid"}` at once and
  `{"pid", "status", "maxrss"}` when the child has exited.

Embed this file's text in the program (it is passed with `python3 -c`, not installed).
"""

import json as _fs_json
import os as _fs_os
import socket as _fs_socket


def fork_server_fd():
    """The supervisor's socket when this process runs as a fork server, else None."""
    value = _fs_os.environ.get("SANDBOX_FORK_SERVER_FD")
    return int(value) if value and value.isdigit() else None


def _set_dumpable(flag):
    """PR_SET_DUMPABLE: whether processes of the same uid may open our /proc/PID/mem or ptrace us."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, flag, 0, 0, 0)
    except Exception:  # noqa: BLE001 - no libc: nothing to set
        pass


def serve(handler):
    """Answer the supervisor's call requests until it closes the socket. Never returns."""
    fd = fork_server_fd()
    del _fs_os.environ["SANDBOX_FORK_SERVER_FD"]  # the calls must not see it
    # A call runs as our uid: dumpable, we would let it open /proc/<us>/mem and write into the
    # parent of every later call. Each child makes itself dumpable again (as an exec'd program is).
    _set_dumpable(0)
    sock = _fs_socket.socket(fileno=fd)
    sock.sendall(b'{"ready": true}\n')
    while True:
        try:
            message, fds, _, _ = _fs_socket.recv_fds(sock, 65536, 3)
        except OSError:
            _fs_os._exit(0)
        if not message or len(fds) != 3:
            _fs_os._exit(0)
        command = _fs_json.loads(message.decode())
        pid = _fs_os.fork()
        if pid == 0:
            code = 70
            try:
                sock.close()
                _set_dumpable(1)
                _fs_os.setsid()
                for target, fd_ in enumerate(fds):
                    _fs_os.dup2(fd_, target)
                for fd_ in fds:
                    if fd_ > 2:
                        _fs_os.close(fd_)
                _fs_os.chdir(command.get("cwd") or "/")
                code = handler() or 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - the call's failure is the call's own
                code = 70
            finally:
                _fs_os._exit(code)
        for fd_ in fds:
            _fs_os.close(fd_)
        sock.sendall(_fs_json.dumps({"pid": pid}).encode() + b"\n")
        while True:
            try:
                _, status, usage = _fs_os.wait4(pid, 0)
                break
            except ChildProcessError:
                status, usage = 9, None
                break
            except InterruptedError:
                continue
        sock.sendall(
            _fs_json.dumps(
                {"pid": pid, "status": status, "maxrss": usage.ru_maxrss if usage is not None else None}
            ).encode()
            + b"\n"
        )
