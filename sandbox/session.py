"""Sessions: one long-lived hardened container that runs programs one after another, with
a writable working directory that lasts as long as the container (a workspace).

The container is made exactly like every other run's (read-only root, no network,
non-root, no capabilities, no-new-privileges, limits on memory, CPU and processes, the
stacked seccomp filter) with the supervisor in serve mode as PID 1. Each program is one
request to it, as in a warm pool; the differences are what a workspace needs:

- the working directory (a tmpfs, e.g. /work) is never wiped; the other writable dirs
  (/tmp, /dev/shm) are emptied after every program, and every process the program left
  is killed before the next one starts (the supervisor does that for every request);
- files go in and come out through the supervisor (a request that runs `true`), never
  through `docker cp`, and collected files must really lie inside the working directory;
- the supervisor exits by itself when no request came for `idle_exit` seconds, so a
  session ends even if every process that knew it died; a *detached* session outlives the
  process that started it and other processes attach to it by container id (the CLI).

Knows nothing of skills: the image is the caller's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import docker.errors
import requests
import structlog

from .backend import RunSpec
from .docker_backend import DockerBackend
from .errors import SandboxError
from .limits import Limits
from .protocol import START_GRACE_S, converse, parse_response, response_budget, result_from_response
from .result import RunResult

log = structlog.get_logger(__name__)

LABEL_SESSION = "skillyard.session"
SESSION_WORKDIR = "/work"


class SessionEnded(SandboxError):
    """The session's container is gone (idle timeout, closed, killed): start a new session."""


class SandboxSession:
    """A workspace container (see the module docstring). One program runs at a time; the
    methods are thread-safe. Use `start` to make one, `attach` to use one another process
    started (a detached session), `close` to remove it."""

    def __init__(
        self,
        backend: DockerBackend,
        container_id: str,
        *,
        image: str,
        limits: Limits,
        workdir: str = SESSION_WORKDIR,
        keep_attached: bool = True,
    ) -> None:
        self.backend = backend
        self.container_id = container_id
        self.image = image
        self.limits = limits
        self.workdir = workdir.rstrip("/")
        self.keep_attached = keep_attached  # hold one attach socket (in-process) or attach per run
        self._sock: Any = None
        self._lock = threading.Lock()
        self.closed = False

    # -- life ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        backend: DockerBackend,
        *,
        image: str,
        limits: Limits,
        workdir: str = SESSION_WORKDIR,
        idle_exit: float = 600.0,
        detached: bool = False,
        owner: str = "session",
        tenant: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> SandboxSession:
        """Create and start the container. `limits.tmpfs` must include `workdir`."""
        if workdir.rstrip("/") not in limits.tmpfs:
            raise ValueError(
                f"the working dir {workdir} must be one of the tmpfs dirs {sorted(limits.tmpfs)}"
            )
        spec = RunSpec(
            image=image,
            argv=["true"],
            limits=limits,
            owner=owner,
            tenant=tenant,
            labels=dict(labels or {}),
        )
        cid = backend.create(spec, serve=True, idle_exit=idle_exit, detached=detached)
        session = cls(backend, cid, image=image, limits=limits, workdir=workdir, keep_attached=not detached)
        try:
            session._socket()  # attach before start: nothing the supervisor writes is missed
            backend.client.api.start(cid)
            if detached:
                session._release_socket()
        except (docker.errors.APIError, requests.RequestException, OSError) as exc:
            backend.remove_quietly(cid)
            raise SandboxError(f"could not start the session's container: {exc}") from exc
        log.info("session_started", container=cid[:12], image=image, detached=detached)
        return session

    @classmethod
    def attach(
        cls, backend: DockerBackend, container_id: str, *, limits: Limits, workdir: str = SESSION_WORKDIR
    ) -> SandboxSession:
        """A handle on a running session another process started (detached)."""
        try:
            info = backend.client.api.inspect_container(container_id)
        except docker.errors.NotFound as exc:
            raise SessionEnded("the session has ended (its container is gone)") from exc
        except (docker.errors.APIError, requests.RequestException) as exc:
            raise SandboxError(f"could not look up the session's container: {exc}") from exc
        if not info.get("State", {}).get("Running"):
            raise SessionEnded("the session has ended (it was idle too long, or it was stopped)")
        return cls(
            backend,
            info["Id"],
            image=info.get("Config", {}).get("Image", ""),
            limits=limits,
            workdir=workdir,
            keep_attached=False,
        )

    def _socket(self) -> Any:
        if self._sock is None:
            api = self.backend.client.api
            self._sock = api.attach_socket(
                self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
        return self._sock

    def _release_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    @property
    def alive(self) -> bool:
        """Whether the container still runs (asks the engine)."""
        if self.closed:
            return False
        try:
            state = self.backend.client.api.inspect_container(self.container_id).get("State", {})
        except (docker.errors.APIError, requests.RequestException):
            return False
        return bool(state.get("Running"))

    def close(self) -> None:
        """Remove the container (whatever runs in it is killed). Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._release_socket()
        self.backend.remove_quietly(self.container_id)
        log.info("session_closed", container=self.container_id[:12])

    def __enter__(self) -> SandboxSession:
        """The session itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the session."""
        self.close()

    # -- programs ----------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        files: Mapping[str, bytes] | None = None,
        collect: Sequence[str] = (),
        on_output: Callable[[str, bytes], None] | None = None,
        max_output: int | None = None,
    ) -> RunResult:
        """Run one program in the session and return what it did (as a one-shot run would).
        `files` are written (absolute paths) before it starts; `collect` is read back after.
        A program that runs past `timeout` is killed; the session goes on."""
        limits = self.limits.replace(timeout=timeout, max_stdout=max_output, max_stderr=max_output)
        spec = RunSpec(
            image=self.image,
            argv=list(argv),
            limits=limits,
            files=dict(files or {}),
            stdin=stdin,
            env=dict(env or {}),
            cwd=cwd or self.workdir,
            collect=list(collect),
            on_output=on_output,
            collect_root=self.workdir,
        )
        spec.validate()
        with self._lock:
            if self.closed:
                raise SessionEnded("the session was closed")
            return self._exchange(spec)

    def write_files(self, files: Mapping[str, bytes]) -> None:
        """Write files (absolute paths inside the working dir) into the session."""
        for path in files:
            self.check_path(path)
        result = self.run(["true"], files=files, timeout=30)
        if result.error or result.exit_code != 0:
            raise SandboxError(f"could not write the files: {result.error or result.stderr[-300:]!r}")

    def read_files(self, paths: Sequence[str]) -> RunResult:
        """Read files (absolute paths inside the working dir) out of the session: the result's
        `files`, `missing_files` and `truncated_files` (over the limits' max_collect)."""
        for path in paths:
            self.check_path(path)
        return self.run(["true"], collect=paths, timeout=30)

    def check_path(self, path: str) -> None:
        """ValueError unless `path` is an absolute path inside the working dir."""
        parts = path.split("/")
        if not path.startswith(self.workdir + "/") or ".." in parts or "" in parts[1:] or "\0" in path:
            raise ValueError(f"{path!r}: a session file must be a plain path inside {self.workdir}/")

    def _exchange(self, spec: RunSpec) -> RunResult:
        nonce = secrets.token_hex(16)
        started = time.monotonic()
        wipe = sorted(p for p in spec.limits.tmpfs if p != self.workdir) + ["/dev/shm"]
        frame = self.backend.request_frame(spec, nonce, wipe=wipe)
        if self._sock is None and not self.alive:
            # Attaching to a stopped container would wait for it to start again: ask first.
            raise SessionEnded("the session has ended (it was idle too long, or it was stopped)")
        try:
            sock = self._socket()
            raw = getattr(sock, "_sock", sock)
            raw.sendall(frame)
            deadline = time.monotonic() + spec.limits.timeout + START_GRACE_S
            out, diag, host_timeout, flooded = converse(
                raw, deadline, response_budget(spec), nonce, None, spec.on_output
            )
        except (docker.errors.APIError, requests.RequestException, OSError) as exc:
            self._release_socket()
            if not self.alive:
                raise SessionEnded("the session has ended (its container is gone)") from exc
            raise SandboxError(f"the session's container failed ({type(exc).__name__}: {exc})") from exc
        finally:
            if not self.keep_attached:
                self._release_socket()
        duration = time.monotonic() - started
        if host_timeout or flooded:
            # The supervisor did not answer in time, or its stream broke: the session cannot be trusted.
            self.backend.kill_quietly(self.container_id)
            self.close()
            raise SessionEnded("the session's container stopped answering and was removed")
        response = parse_response(out, nonce)
        if response is None:
            self._release_socket()
            raise SessionEnded(
                "the session has ended (it was idle too long, or its container stopped): "
                f"{diag[-300:].decode('utf-8', 'replace').strip()}"
            )
        if "supervisor_error" in response:
            raise SandboxError(f"the session's supervisor failed: {response['supervisor_error']}")
        return result_from_response(response, spec, duration, self.container_id, {})


def session_containers(backend: DockerBackend, **labels: str) -> list[dict[str, Any]]:
    """Every session container (running or not) carrying these labels (`skillyard.` is added)."""
    filters = [f"{LABEL_SESSION}"] + [f"skillyard.{k}={v}" for k, v in labels.items()]
    return backend.client.api.containers(all=True, filters={"label": filters})
