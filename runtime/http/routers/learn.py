"""Learning from experience over HTTP: POST /v1/experiences starts a learning job (its
events stream at /v1/jobs/{id}/events), and the proxy hands conversations worth learning
from to the same job (runtime/learning.py does the work)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...errors import TooManyJobs
from ...experience import Experience
from ...learning import Learner
from ...llm import LLM
from ...views import TenantView
from ..deps import ServerState, State, View, job_response
from ..errors import request_id
from ..jobs import Job
from ..schemas import COMMON_ERRORS, ExperienceRequest, JobOut, error_doc

router = APIRouter(tags=["learning"])


def submit_learning(
    state: ServerState,
    view: TenantView,
    experience: Experience,
    *,
    dry_run: bool = False,
    now: bool = False,
    shared: bool = False,
    rid: str | None = None,
    via: str | None = None,
) -> Job:
    """Queue a learning job of the caller's (one of its counted jobs: TooManyJobs over the
    limit). The model's endpoint is checked first when the experience needs it
    (LLMUnavailable, a 503, before any job starts); a one-off request needs none."""
    with state.service.refusals_audited("learn", view, request_id=rid):
        yard = view.yard_for_new(shared)
    scope: Literal["private", "shared"] = "shared" if yard is view.shared else "private"
    llm = LLM(yard.settings) if (now or experience.signals()) else None
    context = {k: v for k, v in {"request_id": rid, "via": via}.items() if v}

    def work(job: Job) -> dict[str, Any]:
        learner = Learner(yard, llm, audit=state.service.audit, tenant=view.name)
        outcome = learner.learn(experience, dry_run=dry_run, now=now, job_id=job.id, scope=scope, **context)
        job.skill = outcome.skill
        return {**outcome.to_dict(), "scope": scope}

    try:
        return state.jobs.submit(view.name, "learn", None, scope, work)
    except TooManyJobs:
        state.service.refuse(view.tenant, "learn", error="too_many_jobs", scope=scope, **context)
        raise


@router.post(
    "/experiences",
    status_code=202,
    response_model=JobOut,
    tags=["jobs"],
    responses={
        **COMMON_ERRORS,
        403: error_doc("shared=true without an admin key"),
        429: error_doc("Too many jobs"),
        503: error_doc("No LLM endpoint is configured (and the experience needs the model)"),
    },
)
def learn(request: Request, state: State, view: View, body: ExperienceRequest) -> JSONResponse:
    """Learn from a conversation or event records (a job): at most one skill is proposed,
    then added, merged into a similar skill as a new version, or discarded; the decision
    and its reason are the job's result (and an audit entry). `dry_run` writes nothing."""
    job = submit_learning(
        state,
        view,
        body.experience(),
        dry_run=body.dry_run,
        now=body.now,
        shared=body.shared,
        rid=request_id(request),
    )
    return job_response(job)
