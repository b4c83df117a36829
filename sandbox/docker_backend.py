"""The Docker backend: one fresh, hardened container per run, on the docker SDK.

Flow for one run: create (hardened host config) -> attach stdin/stdout -> start ->
send the request frame to the supervisor (PID 1) -> read its response frame -> remove
(in the background, forced: the supervisor may not have exited yet).
The host keeps its own deadline: if no response arrives in time the container is
killed and removed, so nothing keeps running after a timeout.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass
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
from .protocol import program_key as _program_key
from .protocol import request_frame as _request_frame
from .pyboot import python_argv
from .result import RunResult

log = structlog.get_logger(__name__)

LABEL_MANAGED = "skillyard.managed"
LABEL_OWNER = "skillyard.owner"
LABEL_PID = "skillyard.pid"
LABEL_HOST = "skillyard.host"
LABEL_CREATED = "skillyard.created"
LABEL_DETACHED = "skillyard.detached"  # a session container that outlives its maker (see create)


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


ATTACH_PARAMS = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
SPARE_TTL_S = 60.0  # a spare not used within this long is removed (its kind of run stopped coming)
SPARE_KINDS = 4  # spares kept at most, one per kind of run (the most recent kinds)


@dataclass
class _Spare:
    """A container created ahead for one kind of run, and its attached (not started) stream."""

    cid: str
    created: float
    sock: Any


def _close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass


def creation_key(spec: RunSpec) -> str:
    """Everything a container's creation depends on (not the program: the supervisor is the
    command, and the program arrives in the request once it runs)."""
    return json.dumps([spec.image, spec.owner, sorted(spec.labels.items()), spec.limits.model_dump_json()])


class DockerBackend(Backend):
    """One fresh, hardened container per run (see the module docstring).

    With `spares`, the backend keeps one container *created* ahead (never started: it has run
    nothing) for each of the last SPARE_KINDS kinds of run it made twice, so the next run of
    that kind skips the create (~40-60 ms) on its path: a one-shot run still gets a container
    no program has ever run in. A spare unused for SPARE_TTL_S is removed; close() removes them
    all, and gc collects those of a process that died (they carry its pid label)."""

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        runtime: str | None = None,
        labels: dict[str, str] | None = None,
        spares: bool = False,
    ) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.runtime = runtime
        # Put on every container this backend makes, after the spec's own (a cluster node agent
        # names its node here: on one machine several nodes share one engine, and the label,
        # never the engine, says whose a container is).
        self.labels = dict(labels or {})
        self.spares = spares
        # Containers whose removal failed (engine restarting): retried before the next run and by gc.
        self._pending_removal: set[str] = set()
        self._remover = None  # a small thread pool for background removals
        self._close_at_exit = False
        self._spare: dict[str, _Spare] = {}  # creation key -> the container created ahead
        self._seen: dict[str, float] = {}  # creation keys run before -> when last
        self._spare_maker = None  # one thread creating spares in the background

    def with_spares(self) -> DockerBackend:
        """A backend on the same engine and runtime that keeps spares (see the class docstring)."""
        return DockerBackend(self._client, runtime=self.runtime, labels=self.labels, spares=True)

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
            **self.labels,
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

    def request_frame(
        self, spec: RunSpec, nonce: str, *, wipe: list[str] | None = None, program_known: bool = False
    ) -> bytes:
        return _request_frame(
            spec, nonce, runtime=self.runtime_for(spec), wipe=wipe, program_known=program_known
        )

    def program_key(self, spec: RunSpec) -> str:
        """The key a warm supervisor knows `spec`'s program by (protocol.program_key)."""
        return _program_key(spec, runtime=self.runtime_for(spec))

    def create(
        self, spec: RunSpec, *, serve: bool = False, idle_exit: float | None = None, detached: bool = False
    ) -> str:
        """Create (not start) a hardened container running the supervisor. Returns its id.

        `serve`: the supervisor answers requests one after another (warm pools, sessions);
        `idle_exit`: it then exits when no request came for that many seconds, so the
        container ends even if every host process that knew it is gone; `detached`: the
        container outlives the process that made it (a session other processes attach to):
        its stdin stays open between attachments, and `gc` leaves it alone while it runs."""
        api = self.client.api
        name = f"skillyard-{_safe_label(spec.owner)}-{secrets.token_hex(6)}"
        # Its bytecode compiled here, not at every container start (sandbox/pyboot.py).
        command = python_argv(_SUPERVISOR, "<supervisor>", flags=("-I", "-S"), line_numbers=False) + (
            ["--serve"] if serve else []
        )
        if serve and idle_exit is not None:
            command += ["--idle", str(float(idle_exit))]
        labels = self._labels(spec)
        if serve:
            labels["skillyard.pool"] = "1"
        if detached:
            labels[LABEL_DETACHED] = "1"
            # Its maker's pid says nothing about it (the maker is gone at once): pid 1 is alive
            # for as long as the host is, so a `gc` that knows no detached containers leaves it too.
            labels[LABEL_PID] = "1"
        try:
            config = api.create_container_config(
                spec.image,
                command=command,
                user=spec.limits.user,
                working_dir="/",
                environment=[],
                labels=labels,
                stdin_open=True,
                tty=False,
                hostname="sandbox",
                network_disabled=spec.limits.network == "none",
                host_config=self._host_config(spec),
            )
            # Never the host's proxy settings: the config is built here, not by create_container
            # (which would inject them unless told not to).
            if detached:
                config["StdinOnce"] = False  # another process attaches next: stdin must stay open
            container = api.create_container_from_config(config, name=name)
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
        cid, sock, spare_key = self._spare_for(spec) if self.spares else (None, None, None)
        if cid is None:
            cid = self.create(spec)
        result: RunResult | None = None
        try:
            try:
                result = self._attach_and_run(cid, spec, nonce, started, sock=sock)
            except docker.errors.NotFound:
                if sock is None:
                    raise
                # A spare removed from outside (gc --everything) since it was made: nothing ran in
                # it, so the run is made in a container of its own.
                cid, sock = self.create(spec), None
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
            if spare_key is not None:
                # The next spare is made once this run is done with the engine: made during the
                # run, its create competed with this run's start for the engine and the CPUs.
                self._make_spare_later(spec, spare_key)

    # -- spares ---------------------------------------------------------------------------------
    def _spare_for(self, spec: RunSpec) -> tuple[str | None, Any, str | None]:
        """A spare for this kind of run and its attached stream (None if there is none: then the
        run creates its own), and the creation key if a new spare should be made after the run
        (once the kind came twice)."""
        key = creation_key(spec)
        now = time.monotonic()
        with self._lock:
            spare = self._spare.pop(key, None)
            again = key in self._seen
            self._seen[key] = now
            if len(self._seen) > 64:  # remember recent kinds only
                self._seen = dict(sorted(self._seen.items(), key=lambda kv: kv[1])[-32:])
        wanted = key if again else None
        if spare is None:
            return None, None, wanted
        if now - spare.created > SPARE_TTL_S:
            self._drop_spare(spare)
            return None, None, wanted
        return spare.cid, spare.sock, wanted

    def _drop_spare(self, spare: _Spare, *, later: bool = True) -> None:
        """Let go of a spare's stream and remove it (in the background, or now)."""
        _close_quietly(spare.sock)
        if later:
            self._remove_later(spare.cid)
        else:
            self.remove_quietly(spare.cid)

    def _make_spare_later(self, spec: RunSpec, key: str) -> None:
        def make() -> None:
            with self._lock:
                if key in self._spare or self._spare_maker is None:
                    return
            cid = None
            try:
                cid = self.create(spec)
                # Attached now, before start (as a container created on the path would be): the
                # attach (~2.5 ms) leaves the run's path too.
                sock = self.client.api.attach_socket(cid, params=ATTACH_PARAMS)
            except Exception as exc:  # noqa: BLE001 - a spare is an optimisation: the run creates its own
                log.debug("spare_create_failed", error=str(exc)[:200])
                if cid is not None:
                    self.remove_quietly(cid)
                return
            made = _Spare(cid, time.monotonic(), sock)
            with self._lock:
                closed = self._spare_maker is None
                old = self._spare.get(key)
                if not closed:
                    self._spare[key] = made
                    evicted = sorted(self._spare, key=lambda k: self._spare[k].created)[:-SPARE_KINDS]
                    stale = [self._spare.pop(k) for k in evicted]
            for doomed in [made] if closed else [*stale, *([old] if old else [])]:
                self._drop_spare(doomed, later=False)

        with self._lock:
            if self._spare_maker is None:
                from concurrent.futures import ThreadPoolExecutor

                self._spare_maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skillyard-spare")
                if not self._close_at_exit:
                    import atexit

                    atexit.register(self.close)
                    self._close_at_exit = True
            maker = self._spare_maker
        maker.submit(make)

    @property
    def spare_containers(self) -> set[str]:
        """Ids of the containers created ahead and not used yet."""
        with self._lock:
            return {spare.cid for spare in self._spare.values()}

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
        """Remove the spares, wait for background removals. The backend stays usable: the next
        run starts a new remover (and spares again)."""
        with self._lock:
            maker, self._spare_maker = self._spare_maker, None
        if maker is not None:
            maker.shutdown(wait=True)
        with self._lock:
            spares = list(self._spare.values())
            self._spare.clear()
        for spare in spares:
            self._drop_spare(spare, later=False)
        with self._lock:
            remover, self._remover = self._remover, None
        if remover is not None:
            remover.shutdown(wait=True)

    def _attach_and_run(
        self, cid: str, spec: RunSpec, nonce: str, started: float, *, sock: Any = None
    ) -> RunResult:
        api = self.client.api
        if sock is None:
            sock = api.attach_socket(cid, params=ATTACH_PARAMS)
        raw: socket.socket = getattr(sock, "_sock", sock)
        try:
            api.start(cid)
            raw.sendall(self.request_frame(spec, nonce))
            deadline = started + spec.limits.timeout + START_GRACE_S
            budget = response_budget(spec)  # base64 of capped outputs and files: bound what we accept
            # Read up to the response frame, not to EOF: the supervisor writes the frame
            # last (after killing every process it ran), and the container's exit reaches
            # this stream ~40 ms later; removal (forced) runs in the background.
            if spec.channel is not None or spec.on_output is not None:
                out, diag, host_timeout, flooded = converse(
                    raw, deadline, budget, nonce, spec.channel, spec.on_output
                )
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
        if flooded and (spec.channel is not None or spec.on_output is not None):
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
            if labels.get(LABEL_DETACHED) == "1":
                if c.get("State") != "running":  # a detached session ends itself when idle
                    out.append(c)
                continue
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

    def labelled(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The managed containers carrying every one of `labels` (name -> value), of any process."""
        wanted = [f"{LABEL_MANAGED}=1", *(f"{k}={v}" for k, v in labels.items())]
        return self.client.api.containers(all=True, filters={"label": wanted})
