"""Routes that do work on a skill: run it, re-run its gate, fix it, create one. A run
answers at once (or as a job, with ``async``); the others are jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...audit import audited
from ...fixer import Fixer, creation_status
from ...serving import check_input
from ...views import Target, TenantView
from ...yard import Yard
from ..deps import ScopeQ, SkillName, State, View, job_response
from ..errors import CALL_STATUS, request_id
from ..jobs import Job
from ..schemas import (
    COMMON_ERRORS,
    RESULT_OR_ERROR,
    SKILL_ERRORS,
    CallResultOut,
    CreateRequest,
    FixRequest,
    GateRequest,
    JobOut,
    RunRequest,
    call_out,
    error_doc,
)

router = APIRouter()


@router.post(
    "/skills/{name}/run",
    response_model=CallResultOut,
    tags=["calls"],
    responses={
        **SKILL_ERRORS,
        202: {"model": JobOut, "description": "async=true: the run's job"},
        404: {**RESULT_OR_ERROR, "description": "No such skill or version (for this key)"},
        409: {**RESULT_OR_ERROR, "description": "The version is not registered"},
        422: {
            **RESULT_OR_ERROR,
            "description": "The input does not fit the skill, or the request is invalid",
        },
        429: error_doc("Too many concurrent runs for this key"),
        503: {**RESULT_OR_ERROR, "description": "The container engine is unavailable"},
    },
)
def run(
    request: Request, state: State, view: View, name: SkillName, body: RunRequest, scope: ScopeQ = "auto"
) -> JSONResponse:
    """Run the skill on `input` in a fresh sandbox. 200 with the result when the call ran (ok true, or ok
    false with the skill's error: exception, timeout, oom, bad_output, crashed); 422 for input that does
    not fit the skill's schema; 409 for a version that is not registered; 503 if the engine is down."""
    service, rid = state.service, request_id(request)
    check_input(body.input)
    target = view.resolve(name, scope, body.version, follow_merges=True)
    service.acquire_run(view, target, request_id=rid)
    if body.async_:

        def work(job: Job) -> dict[str, Any]:
            job.emit("progress", {"message": f"{name}: running"})
            result = service.run(view, target, body.input, request_id=rid)
            return call_out(result, target.scope).model_dump(mode="json")

        try:
            job = state.jobs.submit(
                view.name,
                "run",
                name,
                target.scope,
                work,
                counted=False,
                on_done=lambda _: service.release_run(view),
            )
        except BaseException:
            service.release_run(view)
            raise
        return job_response(job)
    try:
        out = call_out(service.run(view, target, body.input, request_id=rid), target.scope)
    finally:
        service.release_run(view)
    status = 200 if out.ok or out.error is None else CALL_STATUS.get(out.error.kind, 200)
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


@router.post(
    "/skills/{name}/test",
    status_code=202,
    response_model=JobOut,
    tags=["jobs"],
    responses={**SKILL_ERRORS, 429: error_doc("Too many jobs")},
)
def test_skill(
    request: Request,
    state: State,
    view: View,
    name: SkillName,
    body: GateRequest | None = None,
    scope: ScopeQ = "auto",
) -> JSONResponse:
    """Re-run the test gate on a stored version (nothing is recorded). The job's result is the gate report."""
    target = view.resolve(name, scope, body.version if body else None)
    version, rid = target.record.version, request_id(request)

    def work(job: Job) -> dict[str, Any]:
        with audited(
            state.service.audit,
            "gate",
            tenant=view.name,
            skill=name,
            version=version,
            scope=target.scope,
            job_id=job.id,
            request_id=rid,
        ) as entry:
            job.emit("progress", {"message": f"{name} v{version}: building image and running the gate"})
            report = target.yard.test(name, version)
            verdict = "passed" if report.passed else "blocked"
            job.emit(
                "progress",
                {"message": f"{name}: {verdict}, {report.tests} tests, coverage {report.coverage}"},
            )
            entry.update(outcome=verdict, tests=report.tests, coverage=report.coverage, limits=report.limits)
            return report.to_dict()

    return job_response(state.submit(request, view, "gate", name, target.scope, work))


def _changeable(state: State, request: Request, view: TenantView, target: Target, event: str) -> None:
    with state.service.refusals_audited(event, view, target.name, request_id=request_id(request)):
        view.check_change(target)


@router.post(
    "/skills/{name}/fix",
    status_code=202,
    response_model=JobOut,
    tags=["jobs"],
    responses={
        **SKILL_ERRORS,
        403: error_doc("A shared skill and no admin key"),
        429: error_doc("Too many jobs"),
        503: error_doc("No LLM endpoint is configured"),
    },
)
def fix(
    request: Request,
    state: State,
    view: View,
    name: SkillName,
    body: FixRequest | None = None,
    scope: ScopeQ = "auto",
) -> JSONResponse:
    """Ask the LLM to repair the skill; each attempt is regated as a new version (a job)."""
    body = body or FixRequest()
    target = view.resolve(name, scope)
    _changeable(state, request, view, target, "fix")
    fixer = Fixer(target.yard)  # LLMUnavailable: 503, before any job starts
    rid = request_id(request)

    def work(job: Job) -> dict[str, Any]:
        with audited(
            state.service.audit,
            "fix",
            tenant=view.name,
            skill=name,
            version=target.record.version,
            scope=target.scope,
            job_id=job.id,
            request_id=rid,
        ) as entry:
            outcome = fixer.fix(name, max_attempts=body.max_attempts, allow_test_edits=body.allow_test_edits)
            entry.update(
                version=outcome.version,
                outcome=outcome.status,
                tokens=outcome.tokens,
                attempts=len(outcome.attempts),
            )
            return {**outcome.to_dict(), "scope": target.scope}

    return job_response(state.submit(request, view, "fix", name, target.scope, work))


@router.post(
    "/create",
    status_code=202,
    response_model=JobOut,
    tags=["jobs"],
    responses={
        **COMMON_ERRORS,
        403: error_doc("shared=true without an admin key"),
        429: error_doc("Too many jobs"),
        503: error_doc("No LLM endpoint is configured"),
    },
)
def create(request: Request, state: State, view: View, body: CreateRequest) -> JSONResponse:
    """Have the LLM write a new skill for `task`, gate it, and fix it if it fails (a job)."""
    rid = request_id(request)
    with state.service.refusals_audited("create", view, request_id=rid):
        yard: Yard = view.yard_for_new(body.shared)
    scope = "shared" if yard is view.shared else "private"
    fixer = Fixer(yard)  # LLMUnavailable: 503, before any job starts

    def work(job: Job) -> dict[str, Any]:
        with audited(
            state.service.audit,
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
                replace=body.replace,
            )
            final = creation_status(added, fixed)
            entry.update(
                skill=added.name, version=added.version, outcome=final, tokens=fixed.tokens if fixed else None
            )
            return {
                "name": added.name,
                "status": final,
                "scope": scope,
                "created": added.to_dict(),
                "fix": fixed.to_dict() if fixed else None,
            }

    return job_response(state.submit(request, view, "create", body.name, scope, work))
