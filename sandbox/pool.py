"""Warm pools: pre-started hardened containers per (image, limits, tenant), each with the
supervisor in serve mode, so a call costs one round trip instead of a container start.

Isolation between calls in one container: every call runs in a fresh process; afterwards
every process in the container is killed and the writable dirs are wiped. A container is
recycled after `max_calls` calls, on any limit breach (timeout, OOM, truncated output is
fine), on any error, and when idle longer than `idle_expiry`. A pooled container never
serves two tenants: the tenant is part of the pool key. The cold one-shot path
(DockerBackend.run) stays available for strict isolation.
"""

from __future__ import annotations

import atexit
import json
import secrets
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import requests
import structlog

from .backend import Backend, RunSpec
from .docker_backend import DockerBackend
from .protocol import (
    START_GRACE_S,
    frame_marker,
    is_gvisor,
    parse_response,
    read_attach_stream,
    response_budget,
    result_from_response,
)
from .result import RunResult

log = structlog.get_logger(__name__)


@dataclass
class _Warm:
    cid: str
    sock: Any
    raw: socket.socket
    key: str
    calls: int = 0
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)


def pool_key(spec: RunSpec) -> str:
    """Everything fixed at container creation, plus the tenant."""
    lim = spec.limits
    return json.dumps(
        [
            spec.image,
            lim.memory,
            lim.cpus,
            lim.pids,
            lim.max_file_size,
            lim.nofile,
            sorted(lim.tmpfs.items()),
            lim.network,
            lim.user,
            lim.runtime,
            spec.tenant,
            spec.owner,
        ]
    )


class WarmPool(Backend):
    """A Backend serving runs from pre-started containers (see the module docstring)."""

    name = "docker-pool"

    def __init__(
        self,
        backend: DockerBackend,
        *,
        size: int = 2,
        max_calls: int = 100,
        idle_expiry: float = 300.0,
        max_containers: int = 32,
    ) -> None:
        self.backend = backend
        self.size = size
        self.max_calls = max_calls
        self.idle_expiry = idle_expiry
        self.max_containers = max_containers
        self._idle: dict[str, deque[_Warm]] = defaultdict(deque)
        self._templates: dict[str, RunSpec] = {}
        self._live = 0
        self._lock = threading.Lock()
        self._closed = False
        self._refill = threading.Semaphore(2)  # background starts at once
        self._fillers: list[threading.Thread] = []
        self._reaper = threading.Thread(target=self._reap_idle, daemon=True, name="skillyard-pool-reaper")
        self._reaper.start()
        atexit.register(self.close)

    # -- containers ----------------------------------------------------------------------------
    def _start(self, spec: RunSpec, key: str) -> _Warm:
        cid = self.backend.create(spec, serve=True)
        try:
            api = self.backend.client.api
            sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            api.start(cid)
        except Exception:
            self.backend.remove_quietly(cid)
            raise
        with self._lock:
            self._live += 1
        return _Warm(cid=cid, sock=sock, raw=getattr(sock, "_sock", sock), key=key)

    def _discard(self, warm: _Warm, why: str) -> None:
        log.debug("pool_discard", container=warm.cid[:12], why=why, calls=warm.calls)
        try:
            warm.sock.close()
        except OSError:
            pass
        self.backend.remove_quietly(warm.cid)
        with self._lock:
            self._live -= 1

    def _discard_async(self, warm: _Warm, why: str) -> None:
        """Remove off the caller's path (removal costs ~50 ms), but tracked so close() waits for it."""
        thread = threading.Thread(
            target=self._discard, args=(warm, why), daemon=True, name="skillyard-pool-discard"
        )
        with self._lock:
            self._fillers = [t for t in self._fillers if t.is_alive()] + [thread]
        thread.start()

    def _acquire(self, spec: RunSpec, key: str) -> _Warm:
        with self._lock:
            self._templates.setdefault(key, spec)
            queue = self._idle[key]
            while queue:
                warm = queue.popleft()
                if time.monotonic() - warm.last_used < self.idle_expiry:
                    return warm
                self._discard_async(warm, "idle")
        return self._start(spec, key)

    def _release(self, warm: _Warm, healthy: bool, why: str = "") -> None:
        warm.last_used = time.monotonic()
        if healthy and warm.calls < self.max_calls and not self._closed:
            with self._lock:
                if len(self._idle[warm.key]) < self.size:
                    self._idle[warm.key].append(warm)
                    return
            why = "pool full"
        self._discard_async(warm, why or "recycled")
        self._top_up(warm.key)

    def _top_up(self, key: str) -> None:
        """Start containers in the background until the pool for `key` holds `size` idle ones."""

        def fill() -> None:
            if not self._refill.acquire(blocking=False):
                return
            try:
                while not self._closed:
                    with self._lock:
                        spec = self._templates.get(key)
                        if (
                            spec is None
                            or len(self._idle[key]) >= self.size
                            or self._live >= self.max_containers
                        ):
                            return
                    try:
                        warm = self._start(spec, key)
                    except Exception as exc:  # noqa: BLE001 - pre-warming is best effort
                        log.warning("pool_prewarm_failed", error=str(exc))
                        return
                    with self._lock:
                        if not self._closed:
                            self._idle[key].append(warm)
                            continue
                    self._discard(warm, "closed while starting")
                    return
            finally:
                self._refill.release()

        thread = threading.Thread(target=fill, daemon=True, name="skillyard-pool-fill")
        with self._lock:
            self._fillers = [t for t in self._fillers if t.is_alive()] + [thread]
        thread.start()

    def prewarm(self, spec: RunSpec, count: int | None = None) -> None:
        """Start containers for this kind of run now, so the first call is warm too."""
        key = pool_key(spec)
        with self._lock:
            self._templates.setdefault(key, spec)
        for _ in range(count if count is not None else self.size):
            warm = self._start(spec, key)
            with self._lock:
                self._idle[key].append(warm)

    # -- a call --------------------------------------------------------------------------------
    def run(self, spec: RunSpec) -> RunResult:
        if spec.channel is not None:  # a conversation needs its own container from start to end
            return self.backend.run(spec)
        spec.validate()
        if self.backend.pending_removals:  # rare (engine was away): retry off the call's path
            threading.Thread(target=self.backend.retry_pending_removals, daemon=True).start()
        result, stale = self._run_once(spec)
        if stale:
            # A reused container died before it could take the request (engine restarted, killed
            # from outside): the program never ran, so running it on a fresh container is safe.
            result, _ = self._run_once(spec, fresh=True)
        return result

    def _run_once(self, spec: RunSpec, *, fresh: bool = False) -> tuple[RunResult, bool]:
        """One attempt. The flag says the container was stale: it failed before the program started."""
        key = pool_key(spec)
        started = time.monotonic()
        warm = self._start(spec, key) if fresh else self._acquire(spec, key)
        reused = warm.calls > 0
        nonce = secrets.token_hex(16)
        try:
            # /dev/shm and /dev/mqueue too: POSIX shared memory and message queues must not reach
            # the next call either (a queue's name alone can carry data).
            wipe = [*sorted(spec.limits.tmpfs), "/dev/shm", "/dev/mqueue"]
            warm.raw.sendall(self.backend.request_frame(spec, nonce, wipe=wipe))
            deadline = time.monotonic() + spec.limits.timeout + START_GRACE_S
            sent = time.monotonic()
            out, diag, host_timeout, flooded = read_attach_stream(
                warm.raw, deadline, response_budget(spec), until=frame_marker(nonce)
            )
            silent_eof = not out and not diag and time.monotonic() - sent < 0.1
        except (OSError, docker.errors.APIError, requests.RequestException) as exc:
            self._release(warm, healthy=False, why=f"error {exc}")
            return RunResult(
                exit_code=None,
                duration_s=time.monotonic() - started,
                container_id=warm.cid,
                error=f"the warm container failed ({type(exc).__name__}: {exc}); retry",
            ), reused
        warm.calls += 1
        duration = time.monotonic() - started
        if host_timeout:
            self.backend.kill_quietly(warm.cid)
            self._release(warm, healthy=False, why="host timeout")
            return RunResult(
                exit_code=None, timed_out=True, duration_s=duration, container_id=warm.cid
            ), False
        response = parse_response(out, nonce)
        if response is None and reused and silent_eof:
            # Not a byte back from a container that served before: it was gone before our request.
            self._release(warm, healthy=False, why="stale")
            return RunResult(
                exit_code=None,
                duration_s=duration,
                container_id=warm.cid,
                error="the warm container was gone before the call started; retry",
            ), True
        if response is None or "supervisor_error" in response:
            state = self.backend.final_state(warm.cid) if response is None else {}
            self._release(warm, healthy=False, why="no response")
            if state.get("OOMKilled"):
                return RunResult(
                    exit_code=None, oom_killed=True, duration_s=duration, container_id=warm.cid
                ), False
            detail = (response or {}).get("supervisor_error") or diag[-300:].decode("utf-8", "replace")
            return RunResult(
                exit_code=None,
                duration_s=duration,
                container_id=warm.cid,
                error=f"the warm container's supervisor failed: {detail}",
            ), False
        result = result_from_response(response, spec, duration, warm.cid, {})
        breach = result.timed_out or result.oom_killed or not response.get("wiped", False) or flooded
        if is_gvisor(self.backend.runtime_for(spec)):
            # gVisor has no /proc/sysvipc (leftover IPC objects cannot be seen) and does not honour
            # PR_SET_DUMPABLE for /proc: never reuse a container there (pre-warming still saves the start).
            breach = True
        self._release(warm, healthy=not breach, why="limit breach" if breach else "")
        return result, False

    # -- housekeeping ----------------------------------------------------------------------------
    def _reap_idle(self) -> None:
        while not self._closed:
            time.sleep(min(30.0, max(1.0, self.idle_expiry / 4)))
            self.backend.retry_pending_removals()  # removals that failed while the engine was away
            expired: list[_Warm] = []
            now = time.monotonic()
            with self._lock:
                for queue in self._idle.values():
                    keep = deque(w for w in queue if now - w.last_used < self.idle_expiry)
                    expired += [w for w in queue if now - w.last_used >= self.idle_expiry]
                    queue.clear()
                    queue.extend(keep)
            for warm in expired:
                self._discard(warm, "idle expiry")

    def idle_containers(self) -> set[str]:
        """Ids of the warm containers waiting for a call."""
        with self._lock:
            return {w.cid for q in self._idle.values() for w in q}

    @property
    def busy(self) -> bool:
        """Whether containers are being started or removed in the background right now."""
        with self._lock:
            return any(t.is_alive() for t in self._fillers)

    def stats(self) -> dict[str, Any]:
        """How many containers live, and how many wait idle per kind of run."""
        with self._lock:
            return {"live": self._live, "idle": {k: len(v) for k, v in self._idle.items()}}

    def gc(self, *, everything: bool = False) -> list[str]:
        return self.backend.gc(everything=everything)

    def info(self) -> dict[str, object]:
        return {**self.backend.info(), "pool": self.stats()}

    def managed_containers(self) -> list[dict[str, object]]:
        return self.backend.managed_containers()

    def orphans(self) -> list[dict[str, object]]:
        return self.backend.orphans()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            fillers = list(self._fillers)
        for thread in fillers:  # a container being started now must not outlive us
            thread.join(timeout=30)
        with self._lock:
            idle = [w for q in self._idle.values() for w in q]
            self._idle.clear()
        for warm in idle:
            self._discard(warm, "close")
