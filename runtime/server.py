"""The HTTP API: a FastAPI app over the same Yard the CLI uses. See docs/API.md.

Every /v1 request needs ``Authorization: Bearer KEY`` (runtime.tenants); the guard
middleware checks it before anything else happens -- before the body is read, before a
name is looked at -- and also enforces body size limits, stamps an X-Request-ID on every
response, and turns any unexpected exception into ``500 {"error": "internal error",
"request_id": ...}`` with the traceback in the server log only.

Long work (gates, imports, fixes, creates, async runs) runs as a job in a thread pool;
a job belongs to the tenant that started it (anyone else gets 404). Progress and the
result stream as server-sent events from /v1/jobs/{id}/events.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import os
import re
import secrets
import threading
import time
import traceback
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
import click
import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .audit import AuditLog, audited, parse_when
from .calls import CallResult, encode_input
from .config import Settings, get_settings
from .errors import (
    Forbidden,
    NotFound,
    PackageError,
    RegistryError,
    SandboxError,
    SkillError,
    SkillyardError,
    TooManyJobs,
    UnknownSkill,
)
from .package import SkillPackage, pack_files, package_from_files, parse_skill_md, unpack_files
from .tenants import (
    DEFAULT_MAX_RUNS,
    TENANT_PATTERN,
    RunLimiter,
    Tenant,
    Tenants,
    TenantView,
    Yards,
    configured_max_runs,
)

log = structlog.get_logger(__name__)

JSON_LIMIT = 4 * 1024 * 1024
UPLOAD_LIMIT = 20 * 1024 * 1024
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")
# The skill-name rule as a JSON-Schema/OpenAPI pattern (ECMA-style, where "$" is the end of the text);
# validate_name (Python) checks every name again before any lookup.
NAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
RUN_STATUS = {"invalid_input": 422, "not_found": 404, "not_registered": 409, "sandbox": 503}
_current_job: contextvars.ContextVar[Job | None] = contextvars.ContextVar("skillyard_job", default=None)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def non_finite_path(value: Any) -> str | None:
    """Where in a JSON value a NaN or an infinity sits ('input.a[2]'), or None. Python's JSON reader
    accepts NaN, Infinity and 1e999, but they are not JSON: nothing strict could read them back."""
    stack: list[tuple[str, Any]] = [("input", value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return where
        if isinstance(v, dict):
            stack.extend((f"{where}.{k}", x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", x) for i, x in enumerate(v))
    return None


# -- models ------------------------------------------------------------------------------------------
class ErrorOut(BaseModel):
    error: str = Field(description="What went wrong and, where it helps, what to do.")
    request_id: str | None = Field(default=None, description="Quote it when reporting a problem.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of a rejected request."
    )


class GateSummaryOut(BaseModel):
    passed: bool
    tests: int
    failures: int
    errors: int
    skipped: int
    coverage: float | None
    duration_s: float
    reasons: list[str]


class SkillOut(BaseModel):
    name: str
    version: int
    scope: Literal["private", "shared"] = Field(description="private: this tenant's own; shared: everyone's.")
    status: str = Field(description="registered, blocked or retired")
    current: bool
    description: str
    tags: list[str]
    content_hash: str
    gate: GateSummaryOut
    calls: int
    failures: int
    last_used: datetime | None
    created_at: datetime
    updated_at: datetime


class SkillDetailOut(SkillOut):
    config: dict[str, Any] = Field(
        description="skillyard.yaml: entrypoint, input_schema, output_schema, limits ..."
    )
    files: list[str]
    gate_report: dict[str, Any] | None
    memory: str | None = Field(description="The skill's .memory.md (own skills, and shared ones for admins).")


class SearchHitOut(SkillOut):
    score: float = Field(description="Relevance; comparable within one list only.")


class CallErrorOut(BaseModel):
    kind: str = Field(
        description="invalid_input, exception, timeout, oom, bad_output, crashed, sandbox, "
        "not_found, not_registered"
    )
    message: str
    type: str | None = Field(default=None, description="The exception type, for kind=exception.")
    location: str | None = Field(default=None, description="Where in the skill's scripts it was raised.")


class CallResultOut(BaseModel):
    skill: str
    version: int | None
    scope: Literal["private", "shared"] | None = None
    ok: bool
    output: Any = None
    error: CallErrorOut | None = None
    duration_ms: float
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    peak_memory_bytes: int | None = None
    limits: dict[str, Any] = Field(default_factory=dict)


class JobOut(BaseModel):
    id: str
    kind: Literal["import", "gate", "fix", "create", "run"]
    state: Literal["queued", "running", "succeeded", "failed"]
    skill: str | None
    scope: Literal["private", "shared"] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(description="The job's outcome once it succeeded (shape by kind).")
    error: str | None = Field(description="Why the job could not complete.")
    events: int = Field(description="Progress events so far.")
    links: dict[str, str]


class RunRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    input: Any = Field(
        default_factory=dict, description="The call's input, checked against the skill's input_schema."
    )
    version: int | None = Field(default=None, ge=1, le=2**31, description="Default: the current version.")
    async_: bool = Field(
        default=False, alias="async", description="true: return 202 and a job instead of waiting."
    )


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31)


class GateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1, le=2**31)


class FixRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=5)
    allow_test_edits: bool = False


class CreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=8000, description="What the new skill should do.")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    shared: bool = Field(default=False, description="Add it to the shared skills (admin keys only).")
    max_attempts: int = Field(default=3, ge=1, le=5)
    allow_test_edits: bool = False


class HealthOut(BaseModel):
    ok: bool
    version: str


# -- jobs ------------------------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    tenant: str
    kind: str
    skill: str | None
    scope: str | None
    state: str = "queued"
    created_at: datetime = field(default_factory=_utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def emit(self, type_: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events.append({"seq": len(self.events), "type": type_, "ts": _utcnow().isoformat(), **data})

    def events_since(self, index: int) -> tuple[list[dict[str, Any]], bool]:
        with self._lock:
            return list(self.events[index:]), self.state in ("succeeded", "failed")

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")

    def out(self) -> JobOut:
        with self._lock:
            return JobOut(
                id=self.id,
                kind=self.kind,
                state=self.state,
                skill=self.skill,
                scope=self.scope,  # type: ignore[arg-type]
                created_at=self.created_at,
                started_at=self.started_at,
                finished_at=self.finished_at,
                result=self.result,
                error=self.error,
                events=len(self.events),
                links={"self": f"/v1/jobs/{self.id}", "events": f"/v1/jobs/{self.id}/events"},
            )


def _crash_message(job: Job, exc: BaseException) -> str:
    """What a client is told about an unexpected failure: what broke and what to do, never a traceback."""
    where = f"{job.kind} of {job.skill}" if job.skill else job.kind
    import docker.errors

    tail = f"quote job {job.id} when reporting it; the server log has the details"
    if isinstance(exc, docker.errors.APIError):
        why = str(getattr(exc, "explanation", None) or "").splitlines()[0:1]
        status = getattr(exc, "status_code", None)
        detail = f" ({status}: {why[0][:200]})" if why else (f" ({status})" if status else "")
        return (
            f"the container engine refused an operation during the {where}{detail}. If it names a file, "
            f"the package has a path the engine cannot write; otherwise retry later. {tail}"
        )
    if isinstance(exc, MemoryError):
        return (
            f"the server ran out of memory during the {where}; retry later or send a smaller package. {tail}"
        )
    if isinstance(exc, (OSError, TimeoutError)):
        return f"a system error ({type(exc).__name__}) stopped the {where}; retry later. {tail}"
    return f"internal error ({type(exc).__name__}) during the {where}; this is a bug in skillyard: {tail}"


class JobStore:
    """Jobs run on `workers` threads. Waiting jobs are kept in one queue per tenant, and a free worker
    takes the next job of the tenant with the fewest jobs running (ties: the one served longest ago),
    so one tenant's backlog never holds another tenant's job behind it. Async runs have a pool of
    their own."""

    def __init__(
        self, *, workers: int, max_per_tenant: int, keep_s: float = 3600.0, max_kept: int = 2000
    ) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="sy-job")
        self.run_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sy-run")
        self.max_per_tenant = max_per_tenant
        self.keep_s = keep_s
        self.max_kept = max_kept
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queues: dict[
            str, deque[tuple[Job, Callable[[Job], dict[str, Any]], Callable[[Job], None] | None]]
        ] = {}
        self._running: dict[str, int] = {}
        self._served: dict[str, int] = {}  # tenant -> dispatch tick of its last started job
        self._tick = 0

    def _prune(self) -> None:
        now = _utcnow()
        done = [j for j in self._jobs.values() if j.done and j.finished_at is not None]
        for j in done:
            if (now - j.finished_at).total_seconds() > self.keep_s:  # type: ignore[operator]
                self._jobs.pop(j.id, None)
        if len(self._jobs) > self.max_kept:
            for j in sorted((j for j in self._jobs.values() if j.done), key=lambda j: j.created_at):
                if len(self._jobs) <= self.max_kept:
                    break
                self._jobs.pop(j.id, None)

    def submit(
        self,
        tenant: str,
        kind: str,
        skill: str | None,
        scope: str | None,
        fn: Callable[[Job], dict[str, Any]],
        *,
        on_done: Callable[[Job], None] | None = None,
        counted: bool = True,
    ) -> Job:
        with self._lock:
            self._prune()
            if counted:
                active = sum(
                    1 for j in self._jobs.values() if j.tenant == tenant and not j.done and j.kind != "run"
                )
                if active >= self.max_per_tenant:
                    raise TooManyJobs(
                        f"{active} jobs of yours are queued or running (the limit is {self.max_per_tenant}); "
                        "wait for one to finish (GET /v1/jobs/{id})"
                    )
            job = Job(id=secrets.token_hex(16), tenant=tenant, kind=kind, skill=skill, scope=scope)
            self._jobs[job.id] = job
            job.emit("status", {"state": "queued"})
            if kind != "run":
                self._queues.setdefault(tenant, deque()).append((job, fn, on_done))
        if kind == "run":
            self.run_pool.submit(self._execute, job, fn, on_done)
        else:
            # One ticket per job: whichever worker takes it runs the fairest waiting job at that moment.
            self.pool.submit(self._next)
        return job

    def _pick(self) -> tuple[Job, Callable[[Job], dict[str, Any]], Callable[[Job], None] | None] | None:
        with self._lock:
            waiting = [t for t, q in self._queues.items() if q]
            if not waiting:
                return None
            tenant = min(
                waiting,
                key=lambda t: (
                    self._running.get(t, 0),
                    self._served.get(t, -1),
                    self._queues[t][0][0].created_at,
                ),
            )
            item = self._queues[tenant].popleft()
            if not self._queues[tenant]:
                del self._queues[tenant]
            self._tick += 1
            self._served[tenant] = self._tick
            self._running[tenant] = self._running.get(tenant, 0) + 1
            return item

    def _next(self) -> None:
        item = self._pick()
        if item is None:
            return
        job = item[0]
        try:
            self._execute(*item)
        finally:
            with self._lock:
                n = self._running.get(job.tenant, 0) - 1
                if n <= 0:
                    self._running.pop(job.tenant, None)
                else:
                    self._running[job.tenant] = n

    def _execute(
        self, job: Job, fn: Callable[[Job], dict[str, Any]], on_done: Callable[[Job], None] | None
    ) -> None:
        token = _current_job.set(job)
        with job._lock:
            job.state, job.started_at = "running", _utcnow()
        job.emit("status", {"state": "running"})
        try:
            result = fn(job)
            with job._lock:
                job.result, job.state = result, "succeeded"
        except SkillyardError as exc:
            with job._lock:
                job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the client gets a job id to quote, the log gets the traceback
            log.error(
                "job_crashed",
                job=job.id,
                kind=job.kind,
                skill=job.skill,
                tenant=job.tenant,
                traceback=traceback.format_exc(),
            )
            with job._lock:
                job.error, job.state = _crash_message(job, exc), "failed"
        finally:
            with job._lock:
                job.finished_at = _utcnow()
            _current_job.reset(token)
            job.emit("status", {"state": job.state})
            if on_done is not None:
                try:
                    on_done(job)
                except Exception:  # noqa: BLE001
                    log.error("job_on_done_failed", job=job.id, traceback=traceback.format_exc())

    def get(self, tenant: str, job_id: str) -> Job | None:
        if not JOB_ID_RE.fullmatch(job_id):
            return None
        with self._lock:
            job = self._jobs.get(job_id)
        # Another tenant's job is exactly as absent as a job that never existed.
        return job if job is not None and job.tenant == tenant else None

    def list(self, tenant: str) -> list[Job]:
        with self._lock:
            return sorted((j for j in self._jobs.values() if j.tenant == tenant), key=lambda j: j.created_at)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.run_pool.shutdown(wait=False, cancel_futures=True)


def _progress(message: str) -> None:
    job = _current_job.get()
    if job is not None:
        job.emit("progress", {"message": message})
    else:
        log.info("progress", msg=message)


# -- conversions -------------------------------------------------------------------------------------------
def skill_out(rec: Any, scope: str, cls: type[SkillOut] = SkillOut, **extra: Any) -> Any:
    g = rec.gate
    return cls(
        name=rec.name,
        version=rec.version,
        scope=scope,
        status=rec.status,
        current=rec.current,
        description=rec.description,
        tags=list(rec.tags or []),
        content_hash=rec.content_hash,
        gate=GateSummaryOut(
            passed=g.passed,
            tests=g.tests,
            failures=g.failures,
            errors=g.errors,
            skipped=g.skipped,
            coverage=g.coverage,
            duration_s=g.duration_s,
            reasons=list(g.reasons or []),
        ),
        calls=rec.calls,
        failures=rec.failures,
        last_used=rec.last_used,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        **extra,
    )


_FRAME_RE = re.compile(r'File "/skill/([^"]+)", line (\d+), in (\S+)')


def call_out(result: CallResult, scope: str | None) -> CallResultOut:
    """The API's view of a call: everything but the raw traceback text (its last frame in the
    skill's own files is given as `location`)."""
    err = None
    if result.error is not None:
        frames = _FRAME_RE.findall(result.error.traceback or "")
        where = f"{frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]}" if frames else None
        err = CallErrorOut(
            kind=result.error.kind, message=result.error.message, type=result.error.type, location=where
        )
    return CallResultOut(
        skill=result.skill,
        version=result.version,
        scope=scope,
        ok=result.ok,
        output=result.output,  # type: ignore[arg-type]
        error=err,
        duration_ms=round(result.duration_s * 1000, 1),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        peak_memory_bytes=result.peak_memory_bytes,
        limits=result.limits,
    )


# -- the guard middleware ------------------------------------------------------------------------------------
def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def bearer_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    parts = authorization.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip()


class Guard:
    """Request id, authentication of /v1, body limits and the last-resort error handler."""

    def __init__(self, app: Any, *, tenants: Tenants, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.tenants = tenants
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        started = hijacked = False

        async def send_(message: dict[str, Any]) -> None:
            nonlocal started
            if hijacked:
                return
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        async def reply(status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            nonlocal hijacked
            body = json.dumps({"error": error, "request_id": rid}).encode()
            await send_(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *(headers or []),
                    ],
                }
            )
            await send_({"type": "http.response.body", "body": body})
            hijacked = True

        path = scope.get("path", "")
        try:
            if path == "/v1" or path.startswith("/v1/"):
                key = bearer_key(_header(scope, b"authorization"))
                tenant = await anyio.to_thread.run_sync(self.tenants.authenticate, key) if key else None
                if tenant is None:
                    await reply(
                        401,
                        "missing or invalid API key: send 'Authorization: Bearer <key>' "
                        "(keys come from `skillyard tenant add NAME`)",
                        [(b"www-authenticate", b'Bearer realm="skillyard"')],
                    )
                    return
                state["tenant"] = tenant
            upload = scope.get("method") == "POST" and path.rstrip("/") == "/v1/skills"
            limit = self.upload_limit if upload else self.json_limit
            length = _header(scope, b"content-length")
            if length is not None:
                if not length.strip().isdigit():
                    await reply(400, "bad Content-Length header")
                    return
                if int(length) > limit:
                    await reply(
                        413, f"the request body is {int(length)} bytes; the limit here is {limit} bytes"
                    )
                    return
            received = 0

            async def receive_() -> dict[str, Any]:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        if not started:
                            await reply(413, f"the request body is over the {limit}-byte limit here")
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, receive_, send_)
        except ClientDisconnect:
            # The client went away, or we cut its body off with a 413: nothing to answer, nothing broken.
            log.debug("client_disconnected", request_id=rid, path=path[:200])
        except Exception:  # noqa: BLE001 - the last resort: log it all, tell the client nothing
            if hijacked:  # we already answered (413) and stopped the body; what the app made of that is moot
                log.debug(
                    "error_after_reply", request_id=rid, path=path[:200], error=traceback.format_exc(limit=1)
                )
                return
            log.error(
                "unhandled_error",
                request_id=rid,
                path=path[:200],
                method=scope.get("method"),
                traceback=traceback.format_exc(),
            )
            if not started:
                await reply(500, "internal error")


# -- the app ----------------------------------------------------------------------------------------------------
class ServerState:
    def __init__(
        self,
        settings: Settings,
        yard_factory: Callable[[Settings], Any] | None,
        *,
        max_concurrent_runs: int,
        job_workers: int,
        max_jobs_per_tenant: int,
    ) -> None:
        self.settings = settings
        self.tenants = Tenants(settings.home)
        self.yards = Yards(settings, yard_factory, progress=_progress)
        self.runs = RunLimiter(max_concurrent_runs)
        self.jobs = JobStore(workers=job_workers, max_per_tenant=max_jobs_per_tenant)
        self.audit = AuditLog(settings.home)

    def view(self, request: Request) -> TenantView:
        tenant = getattr(request.state, "tenant", None)
        if not isinstance(tenant, Tenant):  # the guard always sets it for /v1; belt and braces
            raise HTTPException(
                401, "missing or invalid API key", headers={"WWW-Authenticate": 'Bearer realm="skillyard"'}
            )
        return self.yards.view(tenant)


def _state(request: Request) -> ServerState:
    return request.app.state.skillyard


def _view(request: Request) -> TenantView:
    return _state(request).view(request)


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


SkillName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="A skill name: a-z, 0-9 and single hyphens.",
    ),
]
ScopeQ = Annotated[
    Literal["auto", "private", "shared"],
    Query(description="auto: your private skill of that name if any, else the shared one."),
]
VersionQ = Annotated[int | None, Query(ge=1, le=2**31, description="Default: the current version.")]
WhenQ = Annotated[
    str | None, Query(max_length=64, description="ISO 8601 (naive = UTC) or relative: 30m, 2h, 7d, 1w.")
]
JobId = Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]
View = Annotated[TenantView, Depends(_view)]

ERR = {"model": ErrorOut}
COMMON = {
    401: {**ERR, "description": "No or a bad API key"},
    422: {**ERR, "description": "Invalid request"},
    413: {**ERR, "description": "Request body too large"},
}
SKILL_ERRS = {**COMMON, 404: {**ERR, "description": "No such skill (for this key)"}}
EITHER = {
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/CallResultOut"},
                    {"$ref": "#/components/schemas/ErrorOut"},
                ]
            }
        }
    }
}


def _job_response(job: Job) -> JSONResponse:
    return JSONResponse(
        job.out().model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


def _submit(
    request: Request,
    view: TenantView,
    kind: str,
    skill: str | None,
    scope: str | None,
    fn: Callable[[Job], dict[str, Any]],
    **kw: Any,
) -> Job:
    try:
        return _state(request).jobs.submit(view.name, kind, skill, scope, fn, **kw)
    except TooManyJobs as exc:
        _state(request).audit.record(
            kind,
            tenant=view.name,
            skill=skill,
            scope=scope,
            outcome="refused",
            error="too_many_jobs",
            request_id=_rid(request),
        )
        raise HTTPException(429, str(exc), headers={"Retry-After": "5"}) from exc


# Which audited action a refused (403) request was: method and path -> event.
_REFUSED_EVENTS = (
    (re.compile(r"/v1/skills/?"), "import"),
    (re.compile(r"/v1/skills/[^/]+/rollback/?"), "rollback"),
    (re.compile(r"/v1/skills/[^/]+/fix/?"), "fix"),
    (re.compile(r"/v1/create/?"), "create"),
)


def _llm_fixer(yard: Any) -> Any:
    from .fixer import Fixer
    from .llm import LLMUnavailable

    try:
        return Fixer(yard)
    except LLMUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc


def _cost_rows(yard: Any, scope: str, name: str | None = None) -> list[dict[str, Any]]:
    from . import accounting

    return [{**c.to_dict(), "scope": scope} for c in accounting.report(yard, name)]


def _check_archive(blob: bytes, settings: Settings) -> None:
    """Refuse compression bombs before tarfile sees the bytes: only gzip or plain tar, and a
    gzip stream may expand only to what a package within the limits can need."""
    if blob[:2] == b"\x1f\x8b":
        cap = settings.max_package_bytes + settings.max_files * 3 * 1024 + 1024 * 1024
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        total, view = 0, memoryview(blob)
        try:
            for i in range(0, len(blob), 256 * 1024):
                chunk = view[i : i + 256 * 1024]
                while chunk:
                    out = d.decompress(chunk, 1024 * 1024)
                    total += len(out)
                    if total > cap:
                        raise HTTPException(
                            413,
                            f"the archive expands to more than {cap} bytes; "
                            f"a package may hold at most {settings.max_package_bytes}",
                        )
                    chunk = d.unconsumed_tail
            while not d.eof:
                out = d.decompress(b"", 1024 * 1024)
                if not out:
                    break
                total += len(out)
                if total > cap:
                    raise HTTPException(413, f"the archive expands to more than {cap} bytes")
        except zlib.error as exc:
            raise HTTPException(422, f"package rejected: not a valid gzip stream ({exc})") from exc
        return
    if len(blob) > 262 and blob[257:262] == b"ustar":
        return
    raise HTTPException(422, "package rejected: send the skill folder as a .tar.gz (or .tar) archive")


def parse_upload(blob: bytes, settings: Settings) -> SkillPackage:
    """An uploaded archive -> a validated package. Accepts files at the archive's root or
    inside one top folder named like the skill."""
    if not blob:
        raise HTTPException(422, "empty upload: send the skill folder as a .tar.gz archive")
    _check_archive(blob, settings)
    files, executable = unpack_files(blob, settings)
    folder = None
    if "SKILL.md" not in files and files:
        tops = {p.split("/", 1)[0] for p in files}
        if len(tops) == 1 and all("/" in p for p in files):
            folder = tops.pop()
            files = {p[len(folder) + 1 :]: data for p, data in files.items()}
            executable = {p[len(folder) + 1 :] for p in executable}
    if "SKILL.md" not in files:
        raise PackageError("SKILL.md", "missing: the archive needs SKILL.md at its root or in one top folder")
    if folder is None:
        try:
            front, _ = parse_skill_md(files["SKILL.md"].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PackageError("SKILL.md", "is not valid UTF-8") from exc
        folder = front.get("name") if isinstance(front.get("name"), str) else ""
    return package_from_files(folder, files, executable)


async def _read_upload(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "a multipart upload needs the archive in a file field named 'file'")
            data = await upload.read(limit + 1)
        finally:
            await form.close()
    else:
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HTTPException(413, f"the upload is over the {limit}-byte limit")
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) > limit:
        raise HTTPException(413, f"the upload is over the {limit}-byte limit")
    return data


def create_app(
    settings: Settings | None = None,
    *,
    yard_factory: Callable[[Settings], Any] | None = None,
    max_concurrent_runs: int | None = None,
    job_workers: int | None = None,
    max_jobs_per_tenant: int = 8,
    json_limit: int = JSON_LIMIT,
    upload_limit: int | None = None,
) -> FastAPI:
    """The API app. `yard_factory(settings) -> Yard` makes every yard the app uses (default: a
    Yard sharing one Docker sandbox). `max_concurrent_runs` is the per-tenant default (a tenant's
    own max_concurrent_runs wins); env SKILLYARD_MAX_CONCURRENT_RUNS sets it too."""
    settings = settings or get_settings()
    if max_concurrent_runs is None:
        max_concurrent_runs = configured_max_runs(settings)
    if job_workers is None:
        job_workers = int(os.environ.get("SKILLYARD_JOB_WORKERS", max(1, min(4, os.cpu_count() or 1))))
    upload_limit = upload_limit or max(UPLOAD_LIMIT, settings.max_package_bytes)
    state = ServerState(
        settings,
        yard_factory,
        max_concurrent_runs=max_concurrent_runs,
        job_workers=job_workers,
        max_jobs_per_tenant=max_jobs_per_tenant,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.shutdown()
        await anyio.to_thread.run_sync(state.yards.close)

    try:
        from importlib.metadata import version as _pkg_version

        version = _pkg_version("skillyard")
    except Exception:  # noqa: BLE001
        version = "0"
    app = FastAPI(
        title="skillyard",
        version=version,
        lifespan=lifespan,
        description="Run, test, version and fix sandboxed AI-agent skills. Every /v1 endpoint needs "
        "`Authorization: Bearer <key>`. See docs/API.md.",
    )
    app.state.skillyard = state
    app.add_middleware(Guard, tenants=state.tenants, json_limit=json_limit, upload_limit=upload_limit)

    # -- error shapes ------------------------------------------------------------------------------
    def err(
        request: Request,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        detail: list[dict[str, Any]] | None = None,
    ) -> JSONResponse:
        body: dict[str, Any] = {"error": message, "request_id": _rid(request)}
        if detail:
            body["detail"] = detail
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        status = exc.status_code
        if status == 400 and message == "There was an error parsing the body":
            status, message = 422, "the request body could not be parsed as JSON (nested too deeply?)"
        elif status == 404 and message == "Not Found":
            message = "no such endpoint: see /openapi.json"
        elif status == 405:
            message = "method not allowed on this endpoint: see /openapi.json"
        return err(request, status, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:20]:
            loc = [str(p) for p in e.get("loc", ())]
            if e.get("type") == "json_invalid":
                why = (e.get("ctx") or {}).get("error", "invalid JSON")
                return err(
                    request,
                    422,
                    f"malformed JSON in the request body: {why} (at byte {loc[-1] if loc else '?'})",
                )
            problems.append({"loc": loc, "msg": str(e.get("msg", ""))[:300], "type": e.get("type")})
        ctype = request.headers.get("content-type", "")
        if ctype and "json" not in ctype.lower() and any(p["loc"] == ["body"] for p in problems):
            # FastAPI reads a body as JSON only when Content-Type says so; otherwise it is bytes, "not a dict".
            return err(
                request,
                422,
                f"the request body was not read as JSON because its Content-Type is "
                f"{ctype[:100]!r}: send JSON with the "
                "header 'Content-Type: application/json'",
                detail=problems,
            )
        summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5])
        return err(request, 422, f"invalid request: {summary}", detail=problems)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        if isinstance(exc, UnknownSkill):
            return err(request, 404, f"{exc}: list skills with GET /v1/skills")
        return err(request, 404, str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        tenant = getattr(request.state, "tenant", None)
        if request.method == "POST" and isinstance(tenant, Tenant):
            event = next((ev for rx, ev in _REFUSED_EVENTS if rx.fullmatch(request.url.path)), None)
            if event is not None:
                name = request.path_params.get("name")
                await anyio.to_thread.run_sync(
                    lambda: state.audit.record(
                        event,
                        tenant=tenant.name,
                        skill=name if isinstance(name, str) else None,
                        outcome="refused",
                        error="forbidden",
                        request_id=_rid(request),
                    )
                )
        return err(request, 403, str(exc))

    @app.exception_handler(PackageError)
    async def _bad_package(request: Request, exc: PackageError) -> JSONResponse:
        return err(request, 422, f"package rejected: {exc}")

    @app.exception_handler(SkillError)
    async def _skill_error(request: Request, exc: SkillError) -> JSONResponse:
        return err(request, 409, str(exc))

    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        return err(request, 409, str(exc))

    @app.exception_handler(SandboxError)
    async def _sandbox_error(request: Request, exc: SandboxError) -> JSONResponse:
        log.error("sandbox_error", error=str(exc), request_id=_rid(request))
        return err(request, 503, "the container engine is unavailable; try again later")

    # -- unauthenticated ------------------------------------------------------------------------------
    @app.get("/healthz", response_model=HealthOut, tags=["meta"])
    def healthz() -> HealthOut:
        """Liveness: no key needed, touches nothing."""
        return HealthOut(ok=True, version=version)

    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="apiKey",
        description="A tenant API key, `sy_<keyid>_<secret>`, from `skillyard tenant add`.",
    )
    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Depends(bearer)],
        responses={401: {**ERR, "description": "No or a bad API key"}},
    )

    # -- skills ---------------------------------------------------------------------------------------------
    @v1.get("/skills", response_model=list[SkillOut], tags=["skills"], responses=COMMON)
    def list_skills(
        view: View,
        scope: Literal["private", "shared", "all"] = "all",
        status: Literal["registered", "blocked", "retired"] | None = None,
    ) -> list[SkillOut]:
        """Skills you can see: your private ones and the shared ones (a private skill hides the shared one of its name)."""
        return [skill_out(rec, sc) for rec, sc in view.records(scope, status)]

    @v1.get("/skills/{name}", response_model=SkillDetailOut, tags=["skills"], responses=SKILL_ERRS)
    def get_skill(
        view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None
    ) -> SkillDetailOut:
        """A skill's record, its skillyard.yaml config, file list, gate report and memory."""
        t = view.resolve(name, scope, version)
        data = t.yard.show(name, t.record.version)
        pkg = data["package"]
        memory = t.run_yard.memory_text(name) if (t.scope == "private" or view.admin) else None
        return skill_out(
            data["record"],
            t.scope,
            SkillDetailOut,
            config=pkg.config.model_dump(mode="json"),
            files=sorted(pkg.files),
            gate_report=data["report"] or None,
            memory=memory,
        )

    @v1.get(
        "/skills/{name}/skill.md",
        tags=["skills"],
        response_class=Response,
        responses={
            **SKILL_ERRS,
            200: {
                "content": {"text/markdown": {"schema": {"type": "string"}}},
                "description": "The SKILL.md, as an agent loads it",
            },
        },
    )
    def get_skill_md(
        view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None
    ) -> Response:
        """The skill's SKILL.md (Agent Skills frontmatter + instructions)."""
        t = view.resolve(name, scope, version)
        pkg = t.yard.package(name, t.record.version)
        return Response(pkg.skill_md, media_type="text/markdown; charset=utf-8")

    @v1.get("/search", response_model=list[SearchHitOut], tags=["skills"], responses=COMMON)
    def search(
        view: View,
        q: Annotated[str, Query(min_length=1, max_length=500)],
        limit: Annotated[int, Query(ge=1, le=50)] = 5,
    ) -> list[SearchHitOut]:
        """Hybrid (words + meaning) search over the registered skills you can see."""
        return [
            skill_out(r, sc, SearchHitOut, score=round(float(s), 6)) for r, s, sc in view.search(q, limit)
        ]

    @v1.post(
        "/skills",
        status_code=202,
        response_model=JobOut,
        tags=["skills"],
        responses={
            **COMMON,
            403: {**ERR, "description": "shared=true without an admin key"},
            429: {**ERR, "description": "Too many jobs"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The skill folder as a .tar.gz "
                "(files at the root or in one folder named like the skill), "
                "as the body or as the multipart field 'file'.",
                "content": {
                    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            }
        },
    )
    async def import_skill(
        request: Request, view: View, shared: bool = False, force: bool = False
    ) -> JSONResponse:
        """Import a skill package: validated now (422 if invalid), gated as a job (202). The job's result
        says registered, blocked or unchanged."""
        yard = view.yard_for_new(shared)
        blob = await _read_upload(request, upload_limit)
        pkg = await anyio.to_thread.run_sync(parse_upload, blob, settings)
        scope = "shared" if yard is view.shared else "private"
        rid = _rid(request)

        def work(job: Job) -> dict[str, Any]:
            with audited(
                state.audit,
                "import",
                tenant=view.name,
                skill=pkg.name,
                scope=scope,
                job_id=job.id,
                request_id=rid,
            ) as entry:
                outcome = yard.add_package(pkg, force=force)
                entry.update(version=outcome.version, outcome=outcome.status)
                return {**outcome.to_dict(), "scope": scope}

        return _job_response(_submit(request, view, "import", pkg.name, scope, work))

    @v1.get("/skills/{name}/versions", response_model=list[SkillOut], tags=["skills"], responses=SKILL_ERRS)
    def versions(view: View, name: SkillName, scope: ScopeQ = "auto") -> list[SkillOut]:
        """Every version of the skill, oldest first, with its gate verdict."""
        t = view.resolve(name, scope)
        return [skill_out(r, t.scope) for r in t.yard.versions(name)]

    @v1.post(
        "/skills/{name}/rollback",
        response_model=SkillOut,
        tags=["skills"],
        responses={
            **SKILL_ERRS,
            403: {**ERR, "description": "A shared skill and no admin key"},
            409: {**ERR, "description": "That version cannot be made current"},
        },
    )
    def rollback(
        request: Request, view: View, name: SkillName, body: RollbackRequest, scope: ScopeQ = "auto"
    ) -> SkillOut:
        """Make an earlier registered version current again."""
        t = view.resolve(name, scope)
        view.check_change(t)
        rec = t.yard.rollback(name, body.version)
        state.audit.record(
            "rollback",
            tenant=view.name,
            skill=name,
            version=rec.version,
            scope=t.scope,
            outcome="ok",
            request_id=_rid(request),
        )
        return skill_out(rec, t.scope)

    @v1.get(
        "/skills/{name}/export",
        tags=["skills"],
        response_class=Response,
        responses={
            **SKILL_ERRS,
            200: {
                "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
                "description": "NAME/... as a .tar.gz: a valid Agent Skills folder",
            },
        },
    )
    def export(view: View, name: SkillName, scope: ScopeQ = "auto", version: VersionQ = None) -> Response:
        """The skill's package as a .tar.gz holding one folder NAME/ (re-importable as is)."""
        t = view.resolve(name, scope, version)
        pkg = t.yard.package(name, t.record.version)
        blob = pack_files(
            {f"{name}/{p}": d for p, d in pkg.files.items()}, {f"{name}/{p}" for p in pkg.executable}
        )
        return Response(
            blob,
            media_type="application/gzip",
            headers={"Content-Disposition": f'attachment; filename="{name}-v{t.record.version}.tar.gz"'},
        )

    @v1.post(
        "/skills/{name}/run",
        response_model=CallResultOut,
        tags=["calls"],
        responses={
            **SKILL_ERRS,
            202: {"model": JobOut, "description": "async=true: the run's job"},
            404: {**EITHER, "description": "No such skill or version (for this key)"},
            409: {**EITHER, "description": "The version is not registered"},
            422: {**EITHER, "description": "The input does not fit the skill, or the request is invalid"},
            429: {**ERR, "description": "Too many concurrent runs for this key"},
            503: {**EITHER, "description": "The container engine is unavailable"},
        },
    )
    def run(
        request: Request, view: View, name: SkillName, body: RunRequest, scope: ScopeQ = "auto"
    ) -> JSONResponse:
        """Run the skill on `input` in a fresh sandbox. 200 with the result when the call ran (ok true, or ok
        false with the skill's error: exception, timeout, oom, bad_output, crashed); 422 for input that does
        not fit the skill's schema; 409 for a version that is not registered; 503 if the engine is down."""
        try:
            encode_input(body.input)
        except ValueError as exc:
            raise HTTPException(422, f"input: {exc}") from exc
        bad = non_finite_path(body.input)
        if bad is not None:
            raise HTTPException(
                422, f"{bad} is not a finite number: JSON has no NaN or Infinity (1e999 is one)"
            )
        t = view.resolve(name, scope, body.version)
        limiter = state.runs
        if not limiter.try_acquire(view.tenant):
            state.audit.record(
                "call",
                tenant=view.name,
                skill=name,
                version=t.record.version,
                scope=t.scope,
                outcome="refused",
                error="too_many_runs",
                request_id=_rid(request),
            )
            raise HTTPException(
                429,
                f"{limiter.active(view.tenant)} runs of yours are in progress (the limit is "
                f"{limiter.limit_for(view.tenant)}); retry when one finishes",
                headers={"Retry-After": "1"},
            )
        rid = _rid(request)

        def do_run() -> CallResultOut:
            with audited(
                state.audit,
                "call",
                tenant=view.name,
                skill=name,
                version=t.record.version,
                scope=t.scope,
                request_id=rid,
            ) as entry:
                result = view.run(t, body.input, body.version)
                out = call_out(result, t.scope)
                entry.update(
                    version=result.version,
                    limits=result.limits,
                    peak_memory_bytes=result.peak_memory_bytes,
                    outcome="ok" if result.ok else result.error.kind if result.error else "error",
                    duration_ms=out.duration_ms,
                )
                return out

        if body.async_:

            def work(job: Job) -> dict[str, Any]:
                job.emit("progress", {"message": f"{name}: running"})
                return do_run().model_dump(mode="json")

            try:
                job = state.jobs.submit(
                    view.name,
                    "run",
                    name,
                    t.scope,
                    work,
                    counted=False,
                    on_done=lambda _job: limiter.release(view.tenant),
                )
            except BaseException:
                limiter.release(view.tenant)
                raise
            return _job_response(job)
        try:
            out = do_run()
        finally:
            limiter.release(view.tenant)
        status = 200 if out.ok or out.error is None else RUN_STATUS.get(out.error.kind, 200)
        return JSONResponse(out.model_dump(mode="json"), status_code=status)

    @v1.post(
        "/skills/{name}/test",
        status_code=202,
        response_model=JobOut,
        tags=["jobs"],
        responses={**SKILL_ERRS, 429: {**ERR, "description": "Too many jobs"}},
    )
    def test_skill(
        request: Request, view: View, name: SkillName, body: GateRequest | None = None, scope: ScopeQ = "auto"
    ) -> JSONResponse:
        """Re-run the test gate on a stored version (nothing is recorded). The job's result is the gate report."""
        version = body.version if body else None
        t = view.resolve(name, scope, version)
        rid = _rid(request)

        def work(job: Job) -> dict[str, Any]:
            with audited(
                state.audit,
                "gate",
                tenant=view.name,
                skill=name,
                version=t.record.version,
                scope=t.scope,
                job_id=job.id,
                request_id=rid,
            ) as entry:
                job.emit(
                    "progress",
                    {"message": f"{name} v{t.record.version}: building image and running the gate"},
                )
                report = t.yard.test(name, t.record.version)
                job.emit(
                    "progress",
                    {
                        "message": f"{name}: {'passed' if report.passed else 'blocked'}, "
                        f"{report.tests} tests, coverage {report.coverage}"
                    },
                )
                entry.update(
                    outcome="passed" if report.passed else "blocked",
                    tests=report.tests,
                    coverage=report.coverage,
                    limits=report.limits,
                )
                return report.to_dict()

        return _job_response(_submit(request, view, "gate", name, t.scope, work))

    @v1.post(
        "/skills/{name}/fix",
        status_code=202,
        response_model=JobOut,
        tags=["jobs"],
        responses={
            **SKILL_ERRS,
            403: {**ERR, "description": "A shared skill and no admin key"},
            429: {**ERR, "description": "Too many jobs"},
            503: {**ERR, "description": "No LLM endpoint is configured"},
        },
    )
    def fix(
        request: Request, view: View, name: SkillName, body: FixRequest | None = None, scope: ScopeQ = "auto"
    ) -> JSONResponse:
        """Ask the LLM to repair the skill; each attempt is regated as a new version (a job)."""
        body = body or FixRequest()
        t = view.resolve(name, scope)
        view.check_change(t)
        fixer = _llm_fixer(t.yard)
        rid = _rid(request)

        def work(job: Job) -> dict[str, Any]:
            with audited(
                state.audit,
                "fix",
                tenant=view.name,
                skill=name,
                version=t.record.version,
                scope=t.scope,
                job_id=job.id,
                request_id=rid,
            ) as entry:
                outcome = fixer.fix(
                    name, max_attempts=body.max_attempts, allow_test_edits=body.allow_test_edits
                )
                entry.update(
                    version=outcome.version,
                    outcome=outcome.status,
                    tokens=outcome.tokens,
                    attempts=len(outcome.attempts),
                )
                return {**outcome.to_dict(), "scope": t.scope}

        return _job_response(_submit(request, view, "fix", name, t.scope, work))

    @v1.post(
        "/create",
        status_code=202,
        response_model=JobOut,
        tags=["jobs"],
        responses={
            **COMMON,
            403: {**ERR, "description": "shared=true without an admin key"},
            429: {**ERR, "description": "Too many jobs"},
            503: {**ERR, "description": "No LLM endpoint is configured"},
        },
    )
    def create(request: Request, view: View, body: CreateRequest) -> JSONResponse:
        """Have the LLM write a new skill for `task`, gate it, and fix it if it fails (a job)."""
        yard = view.yard_for_new(body.shared)
        scope = "shared" if yard is view.shared else "private"
        fixer = _llm_fixer(yard)
        rid = _rid(request)

        def work(job: Job) -> dict[str, Any]:
            with audited(
                state.audit,
                "create",
                tenant=view.name,
                skill=body.name,
                scope=scope,
                job_id=job.id,
                request_id=rid,
            ) as entry:
                added, fixed = fixer.create(
                    body.task,
                    name=body.name,
                    max_attempts=body.max_attempts,
                    allow_test_edits=body.allow_test_edits,
                )
                final = (
                    "registered"
                    if added.status == "registered" or (fixed and fixed.status == "fixed")
                    else "blocked"
                )
                entry.update(
                    skill=added.name,
                    version=added.version,
                    outcome=final,
                    tokens=fixed.tokens if fixed else None,
                )
                return {
                    "name": added.name,
                    "status": final,
                    "scope": scope,
                    "created": added.to_dict(),
                    "fix": fixed.to_dict() if fixed else None,
                }

        return _job_response(_submit(request, view, "create", body.name, scope, work))

    # -- jobs ------------------------------------------------------------------------------------------------
    def _job(view: TenantView, job_id: str) -> Job:
        job = state.jobs.get(view.name, job_id)
        if job is None:
            raise HTTPException(404, "no such job")
        return job

    @v1.get("/jobs", response_model=list[JobOut], tags=["jobs"], responses=COMMON)
    def list_jobs(view: View) -> list[JobOut]:
        """Your jobs of the last hour, oldest first."""
        return [j.out() for j in state.jobs.list(view.name)]

    @v1.get(
        "/jobs/{job_id}",
        response_model=JobOut,
        tags=["jobs"],
        responses={**COMMON, 404: {**ERR, "description": "No such job (for this key)"}},
    )
    def get_job(view: View, job_id: JobId) -> JobOut:
        """A job's state, and its result once it has finished."""
        return _job(view, job_id).out()

    @v1.get(
        "/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        responses={
            **COMMON,
            404: {**ERR, "description": "No such job (for this key)"},
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "Server-sent events: status and progress, then one `result` event",
            },
        },
    )
    async def job_events(request: Request, view: View, job_id: JobId) -> StreamingResponse:
        """Server-sent events: `status` and `progress` as they happen (earlier ones replayed), then a
        final `result` event carrying the job; the stream then ends. Honors Last-Event-ID."""
        job = _job(view, job_id)
        last = request.headers.get("last-event-id", "")
        start = int(last) + 1 if last.isdigit() else 0

        async def stream():
            index, beat = start, time.monotonic()
            while True:
                events, done = job.events_since(index)
                for ev in events:
                    yield f"id: {ev['seq']}\nevent: {ev['type']}\ndata: {json.dumps(ev, default=str)}\n\n"
                    index = ev["seq"] + 1
                if done:
                    events, _ = job.events_since(index)  # anything emitted while finishing
                    for ev in events:
                        yield f"id: {ev['seq']}\nevent: {ev['type']}\ndata: {json.dumps(ev, default=str)}\n\n"
                    yield f"event: result\ndata: {job.out().model_dump_json()}\n\n"
                    return
                if await request.is_disconnected():
                    return
                if time.monotonic() - beat > 15:
                    beat = time.monotonic()
                    yield ": keepalive\n\n"
                await asyncio.sleep(0.2)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- cost and audit ---------------------------------------------------------------------------------------------
    @v1.get(
        "/cost",
        response_model=list[dict[str, Any]],
        tags=["cost"],
        responses={
            **COMMON,
            403: {**ERR, "description": "Shared skills' cost needs an admin key"},
            501: {**ERR, "description": "Cost accounting is not installed"},
        },
    )
    def cost(view: View, scope: Literal["private", "shared", "all"] = "all") -> list[dict[str, Any]]:
        """Tokens invested in each skill, what a use saves and the break-even point (runtime.ledger).
        Your private skills; with an admin key, the shared ones too."""
        if scope == "shared" and not view.admin:
            raise HTTPException(
                403, "the cost of shared skills (all tenants' use) is visible to admin keys only"
            )
        rows: list[dict[str, Any]] = []
        if scope in ("private", "all") and view.private is not None:
            rows += _cost_rows(view.private, "private")
        if scope in ("shared", "all") and view.admin:
            rows += _cost_rows(view.shared, "shared")
        return rows

    @v1.get(
        "/cost/{name}",
        response_model=dict[str, Any],
        tags=["cost"],
        responses={
            **SKILL_ERRS,
            403: {**ERR, "description": "A shared skill and no admin key"},
            501: {**ERR, "description": "Cost accounting is not installed"},
        },
    )
    def cost_one(view: View, name: SkillName, scope: ScopeQ = "auto") -> dict[str, Any]:
        """One skill's token account."""
        t = view.resolve(name, scope)
        if t.scope == "shared" and not view.admin:
            raise HTTPException(
                403, "the cost of shared skills (all tenants' use) is visible to admin keys only"
            )
        return _cost_rows(t.yard, t.scope, name)[0]

    @v1.get(
        "/audit",
        response_model=list[dict[str, Any]],
        tags=["audit"],
        responses={**COMMON, 403: {**ERR, "description": "Another tenant's entries without an admin key"}},
    )
    def audit(
        view: View,
        tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
        skill: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=64)] = None,
        since: WhenQ = None,
        until: WhenQ = None,
        event: Literal["call", "gate", "import", "rollback", "fix", "create"] | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 200,
    ) -> list[dict[str, Any]]:
        """The audit trail, oldest first (the newest `limit` entries). Admin keys see every tenant's;
        other keys see their own. `since`/`until`: ISO 8601 or relative (30m, 2h, 7d), as in the CLI."""
        try:
            lo = parse_when(since) if since else None
            hi = parse_when(until) if until else None
        except ValueError as exc:
            raise HTTPException(422, f"invalid request: {exc}") from exc
        since, until = lo, hi  # type: ignore[assignment]
        if not view.admin:
            if tenant is not None and tenant != view.name:
                raise HTTPException(403, "a tenant key sees only its own audit entries")
            tenant = view.name
        return state.audit.query(tenant, skill, since, until, event=event, limit=limit)

    app.include_router(v1)
    return app


# -- CLI ------------------------------------------------------------------------------------------------------------
@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
@click.option(
    "--max-runs", type=int, default=None, help=f"Concurrent runs per tenant (default {DEFAULT_MAX_RUNS})."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def serve_command(host: str, port: int, max_runs: int | None, log_level: str) -> None:
    """Serve the HTTP API (see docs/API.md). Requests need a tenant key: `skillyard tenant add NAME`."""
    import uvicorn

    from . import logs

    logs.configure(log_level.upper(), json_logs=True)
    settings = get_settings()
    if not Tenants(settings.home):
        click.echo(
            "skillyard: no tenants yet, so every /v1 request will get 401; add one with "
            "`skillyard tenant add NAME --admin`",
            err=True,
        )
    app = create_app(settings, max_concurrent_runs=max_runs)
    from .embeddings import warm_up_in_background

    warm_up_in_background()  # search's query embedding: the model and its fast encoder, off the request path
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, proxy_headers=False)


if __name__ == "__main__":  # pragma: no cover
    serve_command()
