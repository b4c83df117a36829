"""What every route of the HTTP API depends on: the server's state, the caller's view,
the typed path and query parameters, and submitting a job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from ..config import Settings
from ..errors import TooManyJobs, Unauthorized
from ..names import NAME_PATTERN
from ..proxy import Proxy
from ..serving import Service
from ..tenants import Tenant
from ..views import TenantView
from .errors import request_id
from .jobs import Job, JobKind, JobStore


class ServerState:
    """One app's state: the serving side (keys, yards, limits, audit), the jobs, the proxy
    (if the server has an upstream model), and the settings and limits it was made with."""

    def __init__(
        self,
        settings: Settings,
        service: Service,
        jobs: JobStore,
        *,
        upload_limit: int,
        version: str,
        proxy: Proxy | None = None,
    ):
        self.settings = settings
        self.service = service
        self.jobs = jobs
        self.upload_limit = upload_limit
        self.version = version
        self.proxy = proxy  # the OpenAI-compatible proxy, on a server started with an upstream

    def check_room(
        self, request: Request, tenant: Tenant | None, kind: JobKind, skill: str | None = None
    ) -> None:
        """Refuse now (a counted refusal, TooManyJobs: 429) if a job of the caller's would be,
        before the route reads an upload or looks a skill up."""
        try:
            self.jobs.check_room(tenant.name if tenant else "local")
        except TooManyJobs:
            self.service.refuse(
                tenant, kind, error="too_many_jobs", skill=skill, request_id=request_id(request)
            )
            raise

    def submit(
        self,
        request: Request,
        view: TenantView,
        kind: JobKind,
        skill: str | None,
        scope: Literal["private", "shared"] | None,
        work: Callable[[Job], dict[str, Any]],
        **options: Any,
    ) -> Job:
        """Queue `work` as a job of the caller's; over the tenant's job limit the refusal
        is counted in its audit trail and TooManyJobs raised (429)."""
        try:
            return self.jobs.submit(view.name, kind, skill, scope, work, **options)
        except TooManyJobs:
            self.service.refuse(
                view.tenant,
                kind,
                error="too_many_jobs",
                skill=skill,
                scope=scope,
                request_id=request_id(request),
            )
            raise


async def server_state(request: Request) -> ServerState:
    """The state of the app serving `request`."""
    return request.app.state.skillyard


def caller(request: Request) -> Tenant:
    """The tenant of the caller's key. The guard has checked the key for every /v1 path."""
    tenant = getattr(request.state, "tenant", None)
    if not isinstance(tenant, Tenant):  # the guard always sets it for /v1; belt and braces
        raise Unauthorized("missing or invalid API key")
    return tenant


async def caller_tenant(request: Request) -> Tenant:
    """`caller`, as a dependency resolved on the event loop (no worker thread)."""
    return caller(request)


def caller_view(request: Request) -> TenantView:
    """What the caller's key may see (its yards are made on first use: a worker thread's job)."""
    state: ServerState = request.app.state.skillyard
    return state.service.view(caller(request))


def job_response(job: Job) -> JSONResponse:
    """202 with the job and its Location."""
    return JSONResponse(
        job.out().model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


State = Annotated[ServerState, Depends(server_state)]
View = Annotated[TenantView, Depends(caller_view)]
Caller = Annotated[Tenant, Depends(caller_tenant)]
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
