"""The host side of the wire protocol to the in-container supervisor (sandbox/supervisor.py).

One run is one exchange over the container's attach stream: the host writes a request
frame (``<length>\n<json>``: argv, files, limits, the nonce) to the supervisor's stdin;
the supervisor answers, last of all, with a response frame on stdout,
``\n@@SKILLYARD-RESULT <nonce> <length>\n<json>``. Only the host and the supervisor know
the nonce, so a program that prints something frame-like cannot forge the answer. Docker
multiplexes stdout and stderr on the attach stream (8-byte headers); the reader here
demultiplexes it, bounds what it keeps, and stops as soon as the response frame is whole.

Both the one-shot Docker backend and the warm pool speak it; nothing here talks to the
engine itself.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from . import seccomp
from .backend import CHANNEL_MAX_MESSAGE, RunSpec
from .result import RunResult

MAGIC = b"@@SKILLYARD-RESULT"
CHANNEL_MAGIC = b"@@SKILLYARD-CHANNEL"  # a chunk of the program's channel bytes (RunSpec.channel)
# Live output (RunSpec.on_output): chunks of what the supervisor keeps of stdout and stderr.
OUTPUT_MAGIC = {b"@@SKILLYARD-STDOUT": "stdout", b"@@SKILLYARD-STDERR": "stderr"}
# Extra seconds the host waits past the program's own timeout for the container to start,
# the supervisor to collect files and the response to arrive, before it kills the container.
START_GRACE_S = 20.0
DEFAULT_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SECCOMP_B64 = base64.b64encode(seccomp.filter_bytes()).decode()


def is_gvisor(runtime: str | None) -> bool:
    """Whether an OCI runtime name is gVisor's (runsc), which needs a few workarounds."""
    return bool(runtime) and "runsc" in str(runtime)


@functools.lru_cache(maxsize=64)
def _program(
    argv: tuple[str, ...],
    cwd: str,
    env: tuple[tuple[str, str], ...],
    rlimits: tuple[tuple[str, int], ...],
    strict: bool,
) -> tuple[str, str]:
    """(key, JSON object text) of what a request asks the supervisor to run. Cached: the call
    runner's argv alone is ~25 KB, and its JSON and hash are the same on every call."""
    program = {
        "argv": list(argv),
        "cwd": cwd,
        "env": dict(env),
        "rlimits": dict(rlimits),
        "seccomp": _SECCOMP_B64 if strict else None,
    }
    text = json.dumps(program, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], text


def _program_of(spec: RunSpec, runtime: str | None) -> tuple[str, str]:
    lim = spec.limits
    env = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(spec.env)
    return _program(
        tuple(spec.argv),
        spec.cwd,
        tuple(sorted(env.items())),
        (("RLIMIT_NPROC", lim.pids),) if is_gvisor(runtime) else (),
        lim.seccomp == "strict" and seccomp.supported(),
    )


def program_key(spec: RunSpec, *, runtime: str | None) -> str:
    """What identifies the program a request of `spec` runs (argv, cwd, env, rlimits,
    seccomp filter): a warm container told it once is asked for it by this key after."""
    return _program_of(spec, runtime)[0]


def request_frame(
    spec: RunSpec,
    nonce: str,
    *,
    runtime: str | None,
    wipe: list[str] | None = None,
    program_known: bool = False,
) -> bytes:
    """The request frame for one run of `spec` under the OCI `runtime`; `wipe` lists the
    directories a warm container empties before the program starts. `program_known`: the
    (warm) supervisor already ran this program, so the frame names it by its key alone
    instead of carrying argv, env and the seccomp filter again (~27 KB for a skill call,
    through the engine and parsed by the supervisor, on every call)."""
    lim = spec.limits
    key, program = _program_of(spec, runtime)
    body = json.dumps(
        {
            "nonce": nonce,
            "program": key,
            "stdin": base64.b64encode(spec.stdin).decode(),
            "files": [
                {"path": p, "data": base64.b64encode(d).decode(), "mode": 0o644}
                for p, d in spec.files.items()
            ]
            # The working dir must exist: a file in it makes the supervisor create it (a tmpfs
            # mount point exists already, and a file there would show in the program's listing).
            + (
                []
                if spec.cwd.rstrip("/") in lim.tmpfs
                else [{"path": spec.cwd.rstrip("/") + "/.keep", "data": "", "mode": 0o644}]
            ),
            "collect": spec.collect,
            "collect_root": spec.collect_root,
            "max_collect": lim.max_collect,
            "max_stdout": lim.max_stdout,
            "max_stderr": lim.max_stderr,
            "timeout": lim.timeout,
            "wipe": wipe or [],
            "prestart": spec.prestart,
            "fork_server": spec.fork_server,
            "channel": spec.channel is not None,
            "stream": spec.on_output is not None,
        }
    )
    if not program_known:
        body = body[:-1] + ", " + program[1:]  # the program's fields spliced in, not dumped again
    data = body.encode()
    return str(len(data)).encode() + b"\n" + data


def response_budget(spec: RunSpec) -> int:
    """Bytes of stdout the host accepts from one run: the response holds base64 of the
    capped outputs and collected files, so anything past this is a flood, not a frame."""
    lim = spec.limits
    return 2 * (lim.max_stdout + lim.max_stderr + lim.max_collect * max(1, len(spec.collect))) + (1 << 20)


def read_attach_stream(
    raw: socket.socket, deadline: float, budget: int, *, until: bytes
) -> tuple[bytes, bytes, bool, bool]:
    """Read docker's multiplexed attach stream until a complete response frame carrying
    the marker `until` has arrived, EOF (the container died without one) or the deadline.

    Returns (stdout, stderr tail, timed_out, flooded). stdout beyond `budget` is dropped
    and flagged: the supervisor never writes that much, so only a hostile program could.
    """
    buf = bytearray()
    out = bytearray()
    err = bytearray()
    flooded = False
    frame = _FrameWatch(until)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(out), bytes(err), True, flooded
        raw.settimeout(remaining)
        try:
            chunk = raw.recv(1 << 16)
        except TimeoutError:
            return bytes(out), bytes(err), True, flooded
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 8:
            stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            payload = bytes(buf[8 : 8 + size])
            del buf[: 8 + size]
            if stream == 1:
                if len(out) + len(payload) > budget:
                    flooded = True
                    # Keep the tail: the response frame is the last thing the supervisor writes.
                    out = out[-budget // 2 :]
                    frame = _FrameWatch(until)  # offsets moved
                out += payload
            elif stream == 2:
                err = (err + payload)[-65536:]
        if frame.complete(out):
            break
    return bytes(out), bytes(err), False, flooded


def converse(
    raw: socket.socket,
    deadline: float,
    budget: int,
    nonce: str,
    handler: Callable[[bytes], bytes] | None,
    on_output: Callable[[str, bytes], None] | None = None,
) -> tuple[bytes, bytes, bool, bool]:
    """Like read_attach_stream, for a run that talks while it runs: answer each message the
    program sends (through the supervisor's CHANNEL frames) with `handler`, and pass each
    chunk of live output (STDOUT/STDERR frames) to `on_output`, until the result frame.

    The program's messages are `<length>\n<bytes>`; a malformed header, a message over
    CHANNEL_MAX_MESSAGE, or a channel frame with no handler ends the conversation (returned
    as flooded: the caller kills the run). Both callbacks run on this thread."""
    demux = bytearray()  # docker's multiplexed frames
    stdout = bytearray()  # the supervisor's byte stream
    err = bytearray()
    pos = 0  # where the next supervisor frame starts in `stdout`
    program = bytearray()  # the program's channel bytes, not yet a whole message
    head = b"\n@@SKILLYARD-"
    chan_marker, result_marker = frame_marker(nonce, CHANNEL_MAGIC), frame_marker(nonce)
    output_markers = {frame_marker(nonce, magic): name for magic, name in OUTPUT_MAGIC.items()}
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return bytes(stdout[pos:]), bytes(err), True, False
        raw.settimeout(remaining)
        try:
            chunk = raw.recv(1 << 16)
        except TimeoutError:
            return bytes(stdout[pos:]), bytes(err), True, False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return bytes(stdout[pos:]), bytes(err), False, False
        demux += chunk
        while len(demux) >= 8:
            stream, size = demux[0], struct.unpack(">I", demux[4:8])[0]
            if len(demux) < 8 + size:
                break
            if stream == 1:
                stdout += demux[8 : 8 + size]
            elif stream == 2:
                err = (err + demux[8 : 8 + size])[-65536:]
            del demux[: 8 + size]
        while True:
            start = stdout.find(head, pos)
            if start < 0:
                break
            if stdout.startswith(result_marker, start):
                if parse_response(bytes(stdout[start:]), nonce) is not None:
                    return bytes(stdout[start:]), bytes(err), False, False
                break  # the result frame has not fully arrived
            marker = chan_marker if stdout.startswith(chan_marker, start) else None
            output = None
            if marker is None:
                for candidate, name in output_markers.items():
                    if stdout.startswith(candidate, start):
                        marker, output = candidate, name
                        break
            if marker is None:
                if len(stdout) - start < len(chan_marker):
                    break
                pos = start + 1  # not ours (cannot happen: only the supervisor writes here)
                continue
            newline = stdout.find(b"\n", start + len(marker))
            if newline < 0:
                break
            header = bytes(stdout[start + len(marker) : newline])
            if not header.isdigit() or len(stdout) < newline + 1 + int(header):
                if not header.isdigit():
                    return b"", bytes(err), False, True
                break
            body = bytes(stdout[newline + 1 : newline + 1 + int(header)])
            pos = newline + 1 + int(header)
            if output is not None:
                if on_output is not None:
                    on_output(output, body)
                continue
            if handler is None:
                return b"", bytes(err), False, True  # a channel nobody asked for
            program += body
            if len(program) > CHANNEL_MAX_MESSAGE + 32:
                return b"", bytes(err), False, True
            while True:
                newline = program.find(b"\n", 0, 21)
                if newline < 0:
                    if len(program) >= 21:
                        return b"", bytes(err), False, True
                    break
                length = bytes(program[:newline])
                if not length.isdigit() or int(length) > CHANNEL_MAX_MESSAGE:
                    return b"", bytes(err), False, True
                if len(program) < newline + 1 + int(length):
                    break
                message = bytes(program[newline + 1 : newline + 1 + int(length)])
                del program[: newline + 1 + int(length)]
                answer = handler(message)
                raw.sendall(str(len(answer)).encode() + b"\n" + answer)
        if pos > (1 << 20):  # keep the buffer small on long conversations
            del stdout[:pos]
            pos = 0
        if len(stdout) - pos > budget:
            return b"", bytes(err), False, True


class _FrameWatch:
    """Tells when a response frame with `marker` has fully arrived in a growing buffer.

    Incremental: each check looks only at bytes it has not seen, and once the header is
    read only compares lengths. (Searching and copying the whole buffer per 64 KB chunk
    made a 40 MB response quadratic: 30 MB of output ran past its timeout.) Only the
    supervisor knows the nonce in the marker, so its first occurrence is the frame."""

    _HEADER_MAX = 21  # digits of the length, then the newline

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.scanned = 0  # bytes of `out` searched for the marker
        self.body_at: int | None = None  # where the length header starts
        self.end: int | None = None  # where the frame ends

    def complete(self, out: bytearray) -> bool:
        if self.end is None:
            if self.body_at is None:
                idx = out.find(self.marker, max(0, self.scanned - len(self.marker) + 1))
                self.scanned = len(out)
                if idx < 0:
                    return False
                self.body_at = idx + len(self.marker)
            newline = out.find(b"\n", self.body_at, self.body_at + self._HEADER_MAX)
            if newline < 0:
                if len(out) - self.body_at >= self._HEADER_MAX:  # not a frame header after all
                    self.scanned, self.body_at = self.body_at, None
                return False
            header = bytes(out[self.body_at : newline])
            if not header.isdigit():
                self.scanned, self.body_at = self.body_at, None
                return False
            self.end = newline + 1 + int(header)
        return len(out) >= self.end


def frame_marker(nonce: str, magic: bytes = MAGIC) -> bytes:
    """What precedes the response frame (or, with CHANNEL_MAGIC, a channel frame) of the run
    with `nonce` on the supervisor's stdout."""
    return b"\n" + magic + b" " + nonce.encode() + b" "


def parse_response(out: bytes, nonce: str) -> dict[str, Any] | None:
    """The supervisor's response in `out` (its stdout), or None if no whole frame is there."""
    marker = frame_marker(nonce)
    idx = out.rfind(marker)
    if idx < 0:
        return None
    rest = out[idx + len(marker) :]
    header, _, body = rest.partition(b"\n")
    if not header.isdigit() or len(body) < int(header):
        return None
    try:
        return json.loads(body[: int(header)])
    except ValueError:
        return None


def result_from_response(
    resp: dict[str, Any], spec: RunSpec, duration: float, cid: str, state: dict[str, Any]
) -> RunResult:
    """The RunResult a response describes (`state`: the container's final state, if read)."""
    lim = spec.limits
    stdout = base64.b64decode(resp["stdout"])
    stderr = base64.b64decode(resp["stderr"])
    sig = resp.get("signal")
    oom = bool(resp.get("oom_kills")) or (
        sig == 9 and not resp.get("timed_out") and bool(state.get("OOMKilled"))
    )
    collected = resp.get("files") or {}
    files = {p: base64.b64decode(f["data"]) for p, f in collected.items()}
    return RunResult(
        exit_code=resp.get("exit_code"),
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=resp.get("stdout_bytes", 0) > lim.max_stdout,
        stderr_truncated=resp.get("stderr_bytes", 0) > lim.max_stderr,
        stdout_bytes=int(resp.get("stdout_bytes", len(stdout))),
        stderr_bytes=int(resp.get("stderr_bytes", len(stderr))),
        timed_out=bool(resp.get("timed_out")),
        oom_killed=oom,
        signal=sig,
        duration_s=duration,
        peak_memory_bytes=resp.get("peak_memory_bytes"),
        files=files,
        missing_files=list(resp.get("missing") or []),
        truncated_files=sorted(p for p, f in collected.items() if f.get("truncated")),
        container_id=cid,
        prestarted=bool(resp.get("prestarted")),
    )
