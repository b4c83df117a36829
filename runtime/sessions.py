"""Sessions: a workspace container for an agent, with chosen skills inside.

A session is one sandbox session (sandbox/session.py: a hardened container running
programs one after another) on an image made for it: the skills' image family, every
skill's requirements, and each skill under /skills/NAME, read-only and without its
tests (runtime/build.py, cached by content hash). /work is the writable working dir
(a tmpfs) that lasts as long as the session; /tmp is emptied and every process killed
between commands. Commands are any argv in that image: the session is the tenant's own
workspace, hardened like every call (docs/SECURITY.md, "Sessions").

Invariants: a session belongs to one tenant, and another tenant's session is exactly as
absent as one that never existed; only registered skill versions are put in a session;
a session ends when it is closed, when it has been idle for `idle_timeout` (the manager's
reaper, and the container's own supervisor a minute later, whoever is first), when the
process serving it shuts down, or by `skillyard gc` once its process is gone.

`SessionManager` keeps the sessions of one process (a yard's, a server's). The CLI's
sessions are *detached*: the container outlives the command that started it and later
commands find it by id through its labels (`attach_cli_session`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from sandbox import Limits, RunResult
from sandbox.docker_backend import DockerBackend
from sandbox.session import SESSION_WORKDIR, SandboxSession, SessionEnded, session_containers

from .calls import call_limits
from .errors import InvalidInput, NotFound, SkillError, TooBusy
from .names import validate_name

if TYPE_CHECKING:
    from .records import SkillRecord
    from .yard import Yard

log = structlog.get_logger(__name__)

SKILLS_ROOT = "/skills"
DEFAULT_IDLE_S = 600.0
MAX_IDLE_S = 24 * 3600.0
DEFAULT_COMMAND_TIMEOUT_S = 60.0
MAX_COMMAND_TIMEOUT_S = 3600.0
MAX_SKILLS = 16
MAX_FILE_BYTES = 12 * 1024 * 1024  # one upload or download
SUPERVISOR_GRACE_S = 60.0  # the container's own idle exit comes this long after the manager's reaper
OnOutput = Callable[[str, bytes], None]


class SessionLimit(TooBusy):
    """A tenant already has as many sessions as it may (per process)."""

    kind = "too_many_sessions"
    retry_after = 15


def session_limits(records_limits: list[Limits] | None = None) -> Limits:
    """A session container's limits: a workspace needs more than one call (1 GB, 256
    processes, 512 MB of /work, 256 MB of /tmp), and no less than any of its skills asks."""
    memory = max([1024**3, *(lim.memory for lim in records_limits or [])])
    pids = max([256, *(lim.pids for lim in records_limits or [])])
    return Limits(
        memory=memory,
        pids=pids,
        timeout=DEFAULT_COMMAND_TIMEOUT_S,
        tmpfs={"/tmp": "256m", SESSION_WORKDIR: "512m"},
        max_collect=MAX_FILE_BYTES,
        runtime=(records_limits or [Limits()])[0].runtime if records_limits else None,
    )


def work_path(path: str) -> str:
    """A session file path as given by a caller (relative to /work, or absolute under it) as
    the absolute path; InvalidInput for anything else."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise InvalidInput("a session path must be a non-empty string")
    full = path if path.startswith(SESSION_WORKDIR + "/") else f"{SESSION_WORKDIR}/{path}"
    parts = full[len(SESSION_WORKDIR) + 1 :].split("/")
    if (
        path.startswith("/")
        and not path.startswith(SESSION_WORKDIR + "/")
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise InvalidInput(f"{path[:200]!r}: a session file is a plain path inside {SESSION_WORKDIR}/")
    if len(full.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidInput("a session path is at most 1024 bytes")
    return full


@dataclass
class SessionResult:
    """What one command in a session did."""

    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0

    @classmethod
    def of(cls, run: RunResult) -> SessionResult:
        return cls(
            exit_code=run.exit_code,
            stdout=run.stdout,
            stderr=run.stderr,
            stdout_truncated=run.stdout_truncated,
            stderr_truncated=run.stderr_truncated,
            timed_out=run.timed_out,
            oom_killed=run.oom_killed,
            duration_s=run.duration_s,
        )

    @property
    def ok(self) -> bool:
        """The command ran within its limits and exited 0."""
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: output as UTF-8 text (what is not UTF-8 replaced)."""
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "duration_ms": round(self.duration_s * 1000, 1),
        }


@dataclass
class Session:
    """One tenant's workspace: its container, the skills in it, and when it was last used."""

    id: str
    tenant: str
    skills: list[dict[str, Any]]  # [{"name", "version", "path"}]
    sandbox: SandboxSession
    idle_timeout: float
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    commands: int = 0

    @property
    def expires_in(self) -> float:
        """Seconds until the idle timeout ends the session (if nothing else happens)."""
        return max(0.0, self.idle_timeout - (time.monotonic() - self.last_used))

    def to_dict(self) -> dict[str, Any]:
        """The session as the surfaces show it."""
        return {
            "id": self.id,
            "skills": self.skills,
            "workdir": SESSION_WORKDIR,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created_at)),
            "idle_timeout_s": self.idle_timeout,
            "expires_in_s": round(self.expires_in, 1),
            "commands": self.commands,
            "alive": not self.sandbox.closed,
        }

    def _touch(self) -> None:
        self.last_used = time.monotonic()

    def exec(
        self,
        argv: list[str],
        *,
        stdin: bytes = b"",
        timeout: float | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        on_output: OnOutput | None = None,
    ) -> SessionResult:
        """Run one command (any argv in the session's image) in /work (or `cwd` under it)."""
        check_argv(argv)
        if timeout is not None and not 0 < timeout <= MAX_COMMAND_TIMEOUT_S:
            raise InvalidInput(f"timeout must be between 0 and {MAX_COMMAND_TIMEOUT_S:g} seconds")
        workdir = work_path(cwd) if cwd not in (None, "", SESSION_WORKDIR) else SESSION_WORKDIR
        self._touch()
        try:
            run = self.sandbox.run(
                argv, stdin=stdin, timeout=timeout, cwd=workdir, env=env or {}, on_output=on_output
            )
        finally:
            self._touch()
        self.commands += 1
        return SessionResult.of(run)

    def write_file(self, path: str, data: bytes) -> str:
        """Write a file into /work (parents made as needed); its absolute path."""
        if len(data) > MAX_FILE_BYTES:
            raise InvalidInput(f"a session file is at most {MAX_FILE_BYTES} bytes")
        full = work_path(path)
        self._touch()
        self.sandbox.write_files({full: data})
        return full

    def read_file(self, path: str) -> bytes:
        """A file's bytes from /work; NotFound if it is not a regular file there, InvalidInput
        if it is larger than a download may be."""
        full = work_path(path)
        self._touch()
        result = self.sandbox.read_files([full])
        if full in result.truncated_files:
            raise InvalidInput(f"{path} is larger than {MAX_FILE_BYTES} bytes: split it inside the session")
        if full not in result.files:
            raise NotFound(f"no file {path} in the session (paths are relative to {SESSION_WORKDIR})")
        return result.files[full]

    def close(self) -> None:
        """Remove the session's container."""
        self.sandbox.close()

    def __enter__(self) -> Session:
        """The session itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the session."""
        self.close()


def check_argv(argv: Any) -> None:
    """InvalidInput unless `argv` is a short non-empty list of strings without NUL."""
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidInput("argv must be a non-empty list of strings")
    if len(argv) > 1024 or sum(len(a) for a in argv) > 256 * 1024 or any("\0" in a for a in argv):
        raise InvalidInput("argv is too long or holds a NUL character")


def resolve_skills(yard: Yard, names: list[str]) -> list[SkillRecord]:
    """The registered current versions of `names` in `yard` (NotFound, SkillError otherwise)."""
    if not names or len(names) > MAX_SKILLS or len(set(names)) != len(names):
        raise InvalidInput(f"name 1 to {MAX_SKILLS} different skills")
    records = []
    for name in names:
        validate_name(name)
        rec = yard.record(name)
        if rec.status != "registered":
            raise SkillError(
                f"{name} v{rec.version} is {rec.status}: only registered skills go into a session"
            )
        records.append(rec)
    return records


class SessionManager:
    """The sessions one process serves, per tenant (see the module docstring)."""

    def __init__(
        self,
        backend_for: Callable[[], DockerBackend],
        *,
        max_per_tenant: int = 4,
        reap_every: float = 15.0,
    ) -> None:
        self._backend_for = backend_for
        self.max_per_tenant = max_per_tenant
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._reap_every = reap_every
        self._reaper: threading.Thread | None = None

    def start(
        self,
        targets: list[tuple[Yard, SkillRecord]],
        *,
        tenant: str = "local",
        idle_timeout: float = DEFAULT_IDLE_S,
        detached: bool = False,
        labels: dict[str, str] | None = None,
    ) -> Session:
        """Build (or reuse) the session image for these skill versions and start a session."""
        if not 0 < idle_timeout <= MAX_IDLE_S:
            raise InvalidInput(f"idle_timeout must be between 0 and {MAX_IDLE_S:g} seconds")
        with self._lock:
            if sum(s.tenant == tenant for s in self._sessions.values()) >= self.max_per_tenant:
                raise SessionLimit(
                    f"you have {self.max_per_tenant} sessions open (the limit): close one first "
                    "(they also close themselves when idle)"
                )
        pkgs = [yard.package(rec.name, rec.version) for yard, rec in targets]
        image = targets[0][0].images.session_image(pkgs)
        limits = session_limits(
            [call_limits(pkg.config, yard.base_limits) for (yard, _), pkg in zip(targets, pkgs, strict=True)]
        )
        session_id = secrets.token_hex(12)
        skills = [
            {"name": rec.name, "version": rec.version, "path": f"{SKILLS_ROOT}/{rec.name}"}
            for _, rec in targets
        ]
        sandbox = SandboxSession.start(
            self._backend_for(),
            image=image,
            limits=limits,
            idle_exit=idle_timeout if detached else idle_timeout + SUPERVISOR_GRACE_S,
            detached=detached,
            owner="session",
            tenant=tenant,
            labels={
                "session": session_id,
                "session.tenant": tenant,
                "session.skills": ",".join(f"{s['name']}:{s['version']}" for s in skills),
                "session.idle": str(idle_timeout),
                **(labels or {}),
            },
        )
        session = Session(session_id, tenant, skills, sandbox, idle_timeout)
        if not detached:
            with self._lock:
                self._sessions[session_id] = session
            self._ensure_reaper()
        log.info("session_open", session=session_id, tenant=tenant, skills=[s["name"] for s in skills])
        return session

    def get(self, tenant: str, session_id: str) -> Session:
        """The tenant's session `session_id`; NotFound for an unknown id, another tenant's,
        or one that has ended."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.tenant != tenant:
            raise NotFound(f"no session {session_id[:40]}: list yours with GET /v1/sessions")
        if session.sandbox.closed:
            self._forget(session_id)
            raise NotFound(f"session {session_id} has ended (closed, or idle too long)")
        return session

    def list(self, tenant: str) -> list[Session]:
        """The tenant's open sessions, oldest first."""
        with self._lock:
            return sorted(
                (s for s in self._sessions.values() if s.tenant == tenant and not s.sandbox.closed),
                key=lambda s: s.created_at,
            )

    def close(self, tenant: str, session_id: str) -> None:
        """Close the tenant's session (NotFound as `get`)."""
        session = self.get(tenant, session_id)
        self._forget(session_id)
        session.close()

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def run(self, session: Session, fn: Callable[[], Any]) -> Any:
        """Run `fn` (an operation on `session`); a session whose container ended is forgotten
        and reported as NotFound."""
        try:
            return fn()
        except SessionEnded as exc:
            self._forget(session.id)
            session.sandbox.close()
            raise NotFound(f"session {session.id} has ended: {exc}") from exc

    def _ensure_reaper(self) -> None:
        with self._lock:
            if self._reaper is not None or self._closed:
                return
            self._reaper = threading.Thread(target=self._reap, daemon=True, name="skillyard-session-reaper")
            self._reaper.start()

    def _reap(self) -> None:
        while not self._closed:
            time.sleep(self._reap_every)
            self.reap()

    def reap(self) -> list[str]:
        """Close the sessions idle longer than their timeout; their ids."""
        now = time.monotonic()
        with self._lock:
            idle = [s for s in self._sessions.values() if now - s.last_used >= s.idle_timeout]
            for session in idle:
                self._sessions.pop(session.id, None)
        for session in idle:
            log.info("session_idle_closed", session=session.id, tenant=session.tenant)
            session.close()
        return [s.id for s in idle]

    def close_all(self) -> None:
        """Close every session (at shutdown)."""
        self._closed = True
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()


# -- the CLI's detached sessions -------------------------------------------------------------------
def cli_sessions(backend: DockerBackend, home_label: str) -> list[dict[str, Any]]:
    """The detached sessions started from this state dir, running or ended (not removed)."""
    return session_containers(backend, home=home_label)


def attach_cli_session(backend: DockerBackend, session_id: str, home_label: str) -> Session:
    """A handle on the detached session `session_id` of this state dir (NotFound if none)."""
    found = session_containers(backend, session=session_id, home=home_label)
    if not found:
        raise NotFound(f"no session {session_id}: `skillyard session list` shows yours")
    info = found[0]
    labels = info.get("Labels") or {}
    if info.get("State") != "running":
        backend.remove_quietly(info["Id"])
        raise NotFound(f"session {session_id} has ended (idle longer than its timeout, or stopped)")
    limits = session_limits()
    sandbox = SandboxSession.attach(backend, info["Id"], limits=limits)
    skills = []
    for part in (labels.get("skillyard.session.skills") or "").split(","):
        name, _, version = part.partition(":")
        if version.isdigit():
            skills.append({"name": name, "version": int(version), "path": f"{SKILLS_ROOT}/{name}"})
    idle = float(labels.get("skillyard.session.idle") or DEFAULT_IDLE_S)
    created = float(info.get("Created") or time.time())
    return Session(
        session_id, labels.get("skillyard.session.tenant", "local"), skills, sandbox, idle, created
    )
