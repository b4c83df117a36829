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
  `{"pid", "status", "maxrss"}` when the child has exited;
- a `{"prefork": true}` message (sent by the supervisor once a call is over and the
  container is clean, never answered) forks the next call's child ahead of time: it runs
  the program's `warm` hook (nothing of the call's), then waits, blocked on a socket of its
  own, for its call's pipes. The fork and the child's first page faults (copy-on-write,
  ~3 us each here) leave the next call's path; the child is still a copy of the clean
  parent, made after every process of the previous call was killed. The socket to the
  supervisor is SOCK_SEQPACKET: a prefork and the call after it are two messages even when
  they arrive together.

Embed this file's text in the program (it is passed with `python3 -c`, not installed).
"""

import os as _fs_os

# json and socket are imported by the fork server when it starts serving (its children inherit
# them), not here: a one-shot run of the same program never serves, and they cost it ~3 ms.
_fs_json = _fs_socket = None


def fork_server_fd():
    """The supervisor's socket when this process runs as a fork server, else None."""
    value = _fs_os.environ.get("SANDBOX_FORK_SERVER_FD")
    return int(value) if value and value.isdigit() else None


_prctl = []  # libc's prctl, looked up once in the fork server (every child inherits it)


def _set_dumpable(flag):
    """PR_SET_DUMPABLE: whether processes of the same uid may open our /proc/PID/mem or ptrace us."""
    try:
        if not _prctl:
            import ctypes

            _prctl.append(ctypes.CDLL(None).prctl)
        _prctl[0](4, flag, 0, 0, 0)
    except Exception:  # noqa: BLE001 - no libc: nothing to set
        pass


def _run_child(fds, command, handler):
    """In a call's child: take the call's pipes as stdin/stdout/stderr, run `handler`, exit."""
    code = 70
    try:
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


def _fork_ahead(sock, handler, warm):
    """Fork the next call's child now; it runs `warm` (if any), then waits for its call on a
    socket of its own. Returns (pid, our end of that socket)."""
    ours, theirs = _fs_socket.socketpair(_fs_socket.AF_UNIX, _fs_socket.SOCK_SEQPACKET)
    pid = _fs_os.fork()
    if pid == 0:
        try:
            sock.close()  # as every call's child: it cannot speak for the fork server
            ours.close()
            if warm is not None:
                try:
                    warm()
                except Exception:  # noqa: BLE001 - warming up is best effort
                    pass
            message, fds, _, _ = _fs_socket.recv_fds(theirs, 65536, 3)
            theirs.close()
        except BaseException:  # noqa: BLE001 - the fork server went away: there is no call
            _fs_os._exit(0)
        if not message or len(fds) != 3:
            _fs_os._exit(0)
        _run_child(fds, _fs_json.loads(message.decode()), handler)
    theirs.close()
    return pid, ours


def _hand_over(ahead, message, fds):
    """Give the call to the child forked ahead; its pid, or None if it cannot take it."""
    pid, link = ahead
    try:
        if _fs_os.waitpid(pid, _fs_os.WNOHANG)[0] == 0:
            _fs_socket.send_fds(link, [message], fds)
            return pid
    except OSError:
        pass
    finally:
        link.close()
    try:  # gone or unreachable: make sure it is gone, and reaped
        _fs_os.kill(pid, 9)  # SIGKILL (the signal module would import enum)
        _fs_os.waitpid(pid, 0)
    except OSError:
        pass
    return None


def serve(handler, warm=None):
    """Answer the supervisor's call requests until it closes the socket. Never returns.
    `warm`: run in a child forked ahead, before its call comes: what the call will touch
    first (the import system, a codec) touched then, so that the pages it shares with this
    parent are copied off the call's path. It must run nothing of the call's."""
    global _fs_json, _fs_socket
    import json as _fs_json
    import socket as _fs_socket

    fd = fork_server_fd()
    del _fs_os.environ["SANDBOX_FORK_SERVER_FD"]  # the calls must not see it
    # A call runs as our uid: dumpable, we would let it open /proc/<us>/mem and write into the
    # parent of every later call. Each child makes itself dumpable again (as an exec'd program is).
    _set_dumpable(0)
    sock = _fs_socket.socket(fileno=fd)
    sock.sendall(b'{"ready": true}\n')
    ahead = None  # (pid, socket) of the child forked for the next call
    while True:
        try:
            message, fds, _, _ = _fs_socket.recv_fds(sock, 65536, 3)
        except OSError:
            _fs_os._exit(0)
        if not message:
            _fs_os._exit(0)
        command = _fs_json.loads(message.decode())
        if command.get("prefork"):
            for fd_ in fds:
                _fs_os.close(fd_)
            if ahead is None:
                ahead = _fork_ahead(sock, handler, warm)
            continue
        if len(fds) != 3:
            _fs_os._exit(0)
        pid = None
        if ahead is not None:
            pid = _hand_over(ahead, message, fds)
            ahead = None
        if pid is None:
            pid = _fs_os.fork()
            if pid == 0:
                sock.close()
                _run_child(fds, command, handler)
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
