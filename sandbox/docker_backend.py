"""The Docker backend: one fresh, hardened container per run, on the docker SDK.

Flow for one run: create (hardened host config) -> attach stdin/stdout -> start ->
send the request frame to the supervisor (PID 1) -> read its response frame -> remove
(in the background, forced: the supervisor may not have exited yet).
The host keeps its own deadline: if no response arrives in time the container is
killed and removed, so nothing keeps running after a timeout.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import docker
import docker.errors
import requests
import structlog
from docker.types import LogConfig, Ulimit

from .backend import Backend, RunSpec
from .errors import ImageMissing, SandboxError

# The frame protocol lives in protocol.py; its names stay importable from here.
from .protocol import (
    START_GRACE_S,
    converse,
    frame_marker,
    parse_response,
    read_attach_stream,
    response_budget,
    result_from_response,
)
from .protocol import is_gvisor as _is_gvisor
from .protocol import request_frame as _request_frame
from .result import RunResult

log = structlog.get_logger(__name__)

LABEL_MANAGED = "skillyard.managed"
LABEL_OWNER = "skillyard.owner"
LABEL_PID = "skillyard.pid"
LABEL_HOST = "skillyard.host"
LABEL_CREATED = "skillyard.created"


def _supervisor_source() -> str:
    return resources.files("sandbox").joinpath("supervisor.py").read_text()


_SUPERVISOR = _supervisor_source()


def _safe_label(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)[:40] or "x"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None, *, runtime: str | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.runtime = runtime
        # Containers whose removal failed (engine restarting): retried before the next run and by gc.
        self._pending_removal: set[str] = set()
        self._remover = None  # a small thread pool for background removals
        self._close_at_exit = False

    # -- engine -----------------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                try:
                    client = docker.from_env(timeout=120)
                    client.ping()
                except (docker.errors.DockerException, requests.RequestException) as exc:
                    raise SandboxError(
                        f"cannot reach the Docker engine ({exc}). Start it with `make engine` "
                        "(installs and starts dockerd on Debian as root) or point DOCKER_HOST at a running "
                        "engine."
                    ) from exc
                self._client = client
            return self._client

    def info(self) -> dict[str, object]:
        version = self.client.version()
        info = self.client.info()
        return {
            "engine": version.get("Version"),
            "api": version.get("ApiVersion"),
            "os": info.get("OperatingSystem"),
            "cgroup": info.get("CgroupVersion"),
            "storage": info.get("Driver"),
            "runtimes": sorted((info.get("Runtimes") or {}).keys()),
            "default_runtime": info.get("DefaultRuntime"),
            "cpus": info.get("NCPU"),
            "memory": info.get("MemTotal"),
        }

    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False

    # -- one run ----------------------------------------------------------------------
    def _labels(self, spec: RunSpec) -> dict[str, str]:
        return {
            LABEL_MANAGED: "1",
            LABEL_OWNER: _safe_label(spec.owner),
            LABEL_PID: str(os.getpid()),
            LABEL_HOST: socket.gethostname(),
            LABEL_CREATED: datetime.now(UTC).isoformat(),
            **{f"skillyard.{_safe_label(k)}": str(v)[:200] for k, v in spec.labels.items()},
        }

    def _host_config(self, spec: RunSpec) -> dict[str, Any]:
        lim = spec.limits
        tmpfs = {path: f"rw,nosuid,nodev,noexec,size={size},mode=1777" for path, size in lim.tmpfs.items()}
        runtime = self.runtime_for(spec)
        return self.client.api.create_host_config(
            mem_limit=lim.memory,
            memswap_limit=lim.memory,  # swap off: the limit is the limit
            nano_cpus=int(lim.cpus * 1e9),
            # runsc (2022 build) fails to start with any pids limit; the supervisor sets RLIMIT_NPROC instead.
            pids_limit=None if _is_gvisor(runtime) else lim.pids,
            read_only=True,
            tmpfs=tmpfs,
            network_mode=lim.network,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=[
                Ulimit(name="fsize", soft=lim.max_file_size, hard=lim.max_file_size),
                Ulimit(name="nofile", soft=lim.nofile, hard=lim.nofile),
                Ulimit(name="core", soft=0, hard=0),
            ],
            ipc_mode="private",
            shm_size=lim.shm_size,
            log_config=LogConfig(
                type="none"
            ),  # output reaches us through attach, capped; never the host's disk
            init=False,  # the supervisor is PID 1 (see supervisor.py for why)
            auto_remove=False,
            runtime=runtime,
        )

    def runtime_for(self, spec: RunSpec) -> str | None:
        return spec.limits.runtime or self.runtime

    def request_frame(self, spec: RunSpec, nonce: str, *, wipe: list[str] | None = None) -> bytes:
        return _request_frame(spec, nonce, runtime=self.runtime_for(spec), wipe=wipe)

    def create(self, spec: RunSpec, *, serve: bool = False) -> str:
        """Create (not start) a hardened container running the supervisor. Returns its id."""
        api = self.client.api
        name = f"skillyard-{_safe_label(spec.owner)}-{secrets.token_hex(6)}"
        command = ["python3", "-I", "-S", "-c", _SUPERVISOR] + (["--serve"] if serve else [])
        labels = self._labels(spec)
        if serve:
            labels["skillyard.pool"] = "1"
        try:
            container = api.create_container(
                spec.image,
                command=command,
                name=name,
                user=spec.limits.user,
                working_dir="/",
                environment={},
                labels=labels,
                stdin_open=True,
                use_config_proxy=False,  # never copy the host's proxy settings into a container
                tty=False,
                hostname="sandbox",
                network_disabled=spec.limits.network == "none",
                host_config=self._host_config(spec),
            )
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(
                f"image {spec.image!r} is not on the engine: build it with `skillyard images build`"
            ) from exc
        except (docker.errors.APIError, requests.RequestException) as exc:
            self.remove_quietly(name)  # a create that failed half-way may still have left a container
            raise SandboxError(f"could not create a container: {exc}") from exc
        return container["Id"]

    @property
    def pending_removals(self) -> int:
        """Containers whose removal failed and waits to be retried (normally none)."""
        with self._lock:
            return len(self._pending_removal)

    def retry_pending_removals(self) -> None:
        """Remove containers whose removal failed earlier (engine away). Cheap when there are none."""
        with self._lock:
            pending = list(self._pending_removal)
        for cid in pending:
            self.remove_quietly(cid)

    def run(self, spec: RunSpec) -> RunResult:
        spec.validate()
        self.retry_pending_removals()
        nonce = secrets.token_hex(16)
        started = time.monotonic()
        cid = self.create(spec)
        result: RunResult | None = None
        try:
            result = self._attach_and_run(cid, spec, nonce, started)
            return result
        except (docker.errors.APIError, requests.RequestException, OSError) as exc:
            return RunResult(
                exit_code=None,
                error=(
                    f"the Docker engine failed during the run ({type(exc).__name__}: {exc}); "
                    "retry once it is back"
                ),
                duration_s=time.monotonic() - started,
                container_id=cid,
            )
        finally:
            if result is not None and result.error is None and not result.timed_out:
                self._remove_later(cid)  # the normal path: the program has ended, removal is bookkeeping
            else:
                self.remove_quietly(cid)  # timeouts and failures: gone before we return

    def _remove_later(self, cid: str) -> None:
        """Remove off the caller's path (~45 ms); close() and interpreter exit wait for it,
        and `gc` collects it should the process die first."""
        with self._lock:
            if self._remover is None:
                from concurrent.futures import ThreadPoolExecutor

                self._remover = ThreadPoolExecutor(max_workers=2, thread_name_prefix="skillyard-remove")
                if not self._close_at_exit:
                    import atexit

                    atexit.register(self.close)
                    self._close_at_exit = True
            remover = self._remover
        remover.submit(self.remove_quietly, cid)

    def close(self) -> None:
        """Wait for background removals. The backend stays usable: the next run starts a new remover."""
        with self._lock:
            remover, self._remover = self._remover, None
        if remover is not None:
            remover.shutdown(wait=True)

    def _attach_and_run(self, cid: str, spec: RunSpec, nonce: str, started: float) -> RunResult:
        api = self.client.api
        sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw: socket.socket = getattr(sock, "_sock", sock)
        try:
            api.start(cid)
            raw.sendall(self.request_frame(spec, nonce))
            deadline = started + spec.limits.timeout + START_GRACE_S
            budget = response_budget(spec)  # base64 of capped outputs and files: bound what we accept
            # Read up to the response frame, not to EOF: the supervisor writes the frame
            # last (after killing every process it ran), and the container's exit reaches
            # this stream ~40 ms later; removal (forced) runs in the background.
            if spec.channel is not None:
                out, diag, host_timeout, flooded = converse(raw, deadline, budget, nonce, spec.channel)
            else:
                out, diag, host_timeout, flooded = read_attach_stream(
                    raw, deadline, budget, until=frame_marker(nonce)
                )
        finally:
            try:
                sock.close()
            except OSError:
                pass
        duration = time.monotonic() - started
        if host_timeout:
            # The supervisor did not answer in time: kill now rather than abandon a running program.
            self.kill_quietly(cid)
            return RunResult(
                exit_code=None,
                timed_out=True,
                duration_s=duration,
                container_id=cid,
                error=None if not flooded else "response channel flooded",
            )
        response = parse_response(out, nonce)
        if flooded and spec.channel is not None:
            self.kill_quietly(cid)  # a channel broken by the program: it is still running
        # The container's final state (wait + inspect, ~35 ms) only matters when the supervisor
        # could not say what happened: no response, or a SIGKILL it cannot attribute to OOM.
        needs_state = response is None or (
            response.get("signal") == 9 and not response.get("oom_kills") and not response.get("timed_out")
        )
        state = self.final_state(cid) if needs_state else {}
        if response is None:
            oom = bool(state.get("OOMKilled"))
            return RunResult(
                exit_code=None,
                oom_killed=oom,
                duration_s=duration,
                container_id=cid,
                error=None
                if oom
                else (
                    "the sandbox supervisor ended without a result "
                    f"(container exit {state.get('ExitCode')}; {'channel flooded; ' if flooded else ''}"
                    f"stderr: {diag[-500:].decode('utf-8', 'replace').strip()!r})"
                ),
            )
        if "supervisor_error" in response:
            return RunResult(
                exit_code=None,
                duration_s=duration,
                container_id=cid,
                error=f"sandbox supervisor failed: {response['supervisor_error']}",
            )
        return result_from_response(response, spec, duration, cid, state)

    def final_state(self, cid: str) -> dict[str, Any]:
        try:
            self.client.api.wait(cid, timeout=10)
            return self.client.api.inspect_container(cid).get("State", {})
        except (docker.errors.APIError, requests.RequestException):
            return {}

    def kill_quietly(self, cid: str) -> None:
        try:
            self.client.api.kill(cid)
        except (docker.errors.APIError, requests.RequestException):
            pass

    def remove_quietly(self, ref: str) -> None:
        for attempt in range(3):
            try:
                self.client.api.remove_container(ref, force=True, v=True)
                with self._lock:
                    self._pending_removal.discard(ref)
                return
            except docker.errors.NotFound:
                with self._lock:
                    self._pending_removal.discard(ref)
                return
            except (docker.errors.APIError, requests.RequestException) as exc:
                if attempt == 2:
                    log.warning(
                        "container_remove_failed",
                        container=ref,
                        error=str(exc),
                        hint="retried before the next run; `skillyard gc` also removes it",
                    )
                    with self._lock:
                        self._pending_removal.add(ref)
                time.sleep(0.2 * (attempt + 1))

    # -- garbage collection -----------------------------------------------------------
    def orphans(self) -> list[dict[str, Any]]:
        """Managed containers made on this host by a process that no longer runs."""
        host = socket.gethostname()
        out = []
        for c in self.managed_containers():
            labels = c.get("Labels") or {}
            if labels.get(LABEL_HOST) != host:
                continue  # another machine sharing this engine: we cannot tell whether its process lives
            pid = int(labels.get(LABEL_PID, "0") or 0)
            if pid != os.getpid() and not (pid and pid_alive(pid)):
                out.append(c)
        return out

    def gc(self, *, everything: bool = False) -> list[str]:
        """Remove containers left by runs whose process is gone (or all of ours with everything=True)."""
        self.retry_pending_removals()
        doomed = self.managed_containers() if everything else self.orphans()
        removed: list[str] = []
        for c in doomed:
            self.remove_quietly(c["Id"])
            removed.append(c["Id"])
        if removed:
            log.info("gc_removed_containers", count=len(removed))
        return removed

    def managed_containers(self) -> list[dict[str, Any]]:
        return self.client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
