"""The HTTP API: a FastAPI app over the same Yards the CLI uses. See docs/API.md.

Every /v1 request needs ``Authorization: Bearer KEY``: the guard middleware (guard.py)
checks it before anything else happens. Errors take one shape and are mapped in one
place (errors.py). Long work runs as jobs (jobs.py). The routes live in routers/.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPBearer

from ..config import Settings, get_settings
from ..config import version as distribution_version
from ..experience import Experience
from ..llm import LLM
from ..proxy import Proxy
from ..retrieval import Retriever
from ..serving import Service
from ..views import TenantView
from ..yard import Yard
from . import errors
from .deps import ServerState
from .guard import Guard
from .jobs import JobStore, progress
from .media import DeclaredBodies
from .routers import accounts, jobs, learn, proxy, sessions, skills, tenants, work
from .routers.learn import submit_learning
from .schemas import HealthOut, error_doc
from .ui import install_console
from .uploads import JSON_LIMIT, UPLOAD_LIMIT

# Requests one tenant may have in progress at once. The server runs blocking work on a pool
# of 40 worker threads (anyio's default): no tenant may hold them all.
MAX_INFLIGHT = 24
# A tenant's refusals (429) answered at once per second, in bursts of twice that; more wait.
REFUSAL_RATE = 20.0


def create_app(
    settings: Settings | None = None,
    *,
    yard_factory: Callable[[Settings], Yard] | None = None,
    max_concurrent_runs: int | None = None,
    job_workers: int | None = None,
    max_jobs_per_tenant: int = 8,
    json_limit: int = JSON_LIMIT,
    upload_limit: int | None = None,
    max_inflight_per_tenant: int = MAX_INFLIGHT,
    refusal_rate: float = REFUSAL_RATE,
    upstream: LLM | None = None,
) -> FastAPI:
    """The API app. `yard_factory(settings) -> Yard` makes every yard the app uses (default: a
    Yard sharing one Docker sandbox). `max_concurrent_runs` is the per-tenant default (a tenant's
    own max_concurrent_runs wins); env SKILLYARD_MAX_CONCURRENT_RUNS sets it too.
    `max_inflight_per_tenant`: requests one tenant may have in progress at once (the guard's 429);
    `refusal_rate`: a tenant's 429s answered at once per second (the rest wait: guard.RefusalPacer).
    With an `upstream` model the app is also the OpenAI-compatible proxy (runtime/proxy.py):
    /v1/chat/completions, /v1/models and /v1/retrieval/preview."""
    settings = settings or get_settings()
    if job_workers is None:
        job_workers = int(os.environ.get("SKILLYARD_JOB_WORKERS", max(1, min(4, os.cpu_count() or 1))))
    service = Service(
        settings, yard_factory=yard_factory, max_concurrent_runs=max_concurrent_runs, progress=progress
    )
    version = distribution_version()
    state = ServerState(
        settings,
        service,
        JobStore(workers=job_workers, max_per_tenant=max_jobs_per_tenant),
        upload_limit=upload_limit or max(UPLOAD_LIMIT, settings.max_package_bytes),
        version=version,
    )
    if upstream is not None:
        state.proxy = _proxy(state, upstream)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.jobs.shutdown()
        if state.proxy is not None:
            await anyio.to_thread.run_sync(state.proxy.close)
        await anyio.to_thread.run_sync(service.close)

    app = FastAPI(
        title="skillyard",
        version=version,
        lifespan=lifespan,
        description="Run, test, version and fix sandboxed AI-agent skills. Every /v1 endpoint needs "
        "`Authorization: Bearer <key>`. See docs/API.md.",
    )
    app.state.skillyard = state
    app.add_middleware(
        Guard,
        service=service,
        declared=DeclaredBodies(app),
        json_limit=json_limit,
        upload_limit=state.upload_limit,
        max_inflight=max_inflight_per_tenant,
        refusal_rate=refusal_rate,
    )
    errors.install(app, pages=install_console(app, state))  # the operators' console at /ui

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
        prefix="/v1", dependencies=[Depends(bearer)], responses={401: error_doc("No or a bad API key")}
    )
    routers = (skills, work, jobs, accounts, tenants, sessions, learn)
    for router in (r.router for r in routers):
        v1.include_router(router)
    if state.proxy is not None:
        v1.include_router(proxy.router)
    app.include_router(v1)
    return app


def _proxy(state: ServerState, upstream: LLM) -> Proxy:
    """The proxy over `upstream`, with the settings' retrieval and learning (conversations
    worth learning from become learning jobs of the tenant's: runtime/http/routers/learn.py)."""
    settings = state.settings

    def learn_later(view: TenantView, messages: list[dict[str, Any]], rid: str) -> None:
        submit_learning(state, view, Experience.of_messages(messages), now=True, rid=rid, via="proxy")

    retriever = Retriever(
        top_k=settings.proxy_top_k, threshold=settings.proxy_threshold, budget=settings.proxy_budget_tokens
    )
    return Proxy(
        state.service,
        upstream,
        retriever,
        max_rounds=settings.proxy_max_rounds,
        learn=learn_later if settings.proxy_learn else None,
    )
