"""Routes that do work on a skill: run it, re-run its gate, fix it, create one. A run
answers at once (or as a job, with ``async``); the others are jobs.

The run's status rule: 200 (or the async job's success) means the skill ran -- its result,
`ok` true or false; every other status means it did not, and the body is the usual error
(runtime.serving.request_error names why)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ...audit import audited
from ...commands import CommandRequest, OnOutput
from ...errors import InvalidInput
from ...fixer import Fixer, creation_status
from ...serving import check_input, request_error
from ...views import Target, TenantView
from ...yard import Yard
from ..deps import Caller, ScopeQ, SkillName, State, View, caller, job_response
from ..errors import request_id
from ..jobs import Job
from ..schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    SKILL_ERRORS,
    CallResultOut,
    CommandResultOut,
    CreateRequest,
    FixRequest,
    GateRequest,
    JobOut,
    RunRequest,
    call_out,
    command_out,
    error_doc,
)
from ..streaming import live_response

router = APIRouter()


@router.post(
    "/skills/{name}/run",
    response_model=CallResultOut | CommandResultOut,
    tags=["calls"],
    responses={
        **SKILL_ERRORS,
        **BODY_ERRORS,
        202: {"model": JobOut, "description": "async=true: the run's job"},
        404: error_doc("No such skill or version (for this key)"),
        409: error_doc("The version may not run: it is blocked or retired (kind not_registered)"),
        422: error_doc("The input does not fit the skill's input_schema, or the request is invalid"),
        429: error_doc("Too many runs (or requests) of this key's tenant in progress"),
        503: error_doc("The container engine is unavailable"),
    },
)
async def run(
    request: Request, state: State, tenant: Caller, name: SkillName, body: RunRequest, scope: ScopeQ = "auto"
) -> Response:
    """Run the skill in a fresh sandbox: a function on `input`, or one of its commands (`argv`, with
    `files` in and `outputs` back, base64). **200 means the skill ran**: `ok` true with its output,
    or `ok` false with its failure (`error.kind`: exception, timeout, oom, bad_output, crashed, or a
    command's exit). Any other status means it did not run, with the usual error body: 422 input that
    does not fit the skill, 404 no such skill or version, 409 a version that may not run, 429 over
    the run limit, 503 the engine is down. `stream: true` answers with server-sent events: the output
    as it comes, then the result."""
    service, rid = state.service, request_id(request)
    # The run limit first, on the event loop: a refusal reads no store and writes nothing.
    service.acquire_run(tenant, name, request_id=rid)
    handed_over = False  # to an async job or a stream, which gives the slot back when it ends
    try:

        def resolve() -> tuple[TenantView, Target, CommandRequest | None]:
            command = command_request(body) if body.argv is not None else None
            if command is None:
                check_input(body.input)
            view = service.view(tenant)
            return view, view.resolve(name, scope, body.version, follow_merges=True), command

        view, target, command = await anyio.to_thread.run_sync(resolve)

        def once(on_output: OnOutput | None = None) -> tuple[dict[str, Any], Exception | None]:
            """(the answer, why the skill did not run or None)."""
            if command is not None:
                done = service.run_command(view, target, command, request_id=rid, on_output=on_output)
                return command_out(done, target.scope).model_dump(mode="json"), request_error(done)
            result = service.run(view, target, body.input, request_id=rid, on_output=on_output)
            return call_out(result, target.scope).model_dump(mode="json"), request_error(result)

        if body.stream:

            def live(on_output: OnOutput) -> dict[str, Any]:
                answer, failed = once(on_output)
                if failed is not None:
                    raise failed
                return answer

            response = live_response(live, lambda: service.release_run(tenant))
            handed_over = True
            return response
        if body.async_:

            def work(job: Job) -> dict[str, Any]:
                job.emit("progress", {"message": f"{name}: running"})
                answer, failed = once()
                if failed is not None:  # the job failed: the skill never ran
                    raise failed
                return answer

            job = state.jobs.submit(
                tenant.name,
                "run",
                name,
                target.scope,
                work,
                counted=False,
                on_done=lambda _: service.release_run(tenant),
            )
            handed_over = True
            return job_response(job)
        answer, failed = await anyio.to_thread.run_sync(once)
    finally:
        if not handed_over:
            service.release_run(tenant)
    if failed is not None:
        raise failed
    return JSONResponse(answer)


def command_request(body: RunRequest) -> CommandRequest:
    """The command part of a run request, its base64 fields decoded."""
    return CommandRequest(
        argv=list(body.argv or []),
        stdin=decode_b64(body.stdin_b64, "stdin_b64"),
        files={path: decode_b64(data, f"files[{path!r}]") for path, data in body.files.items()},
        outputs=list(body.outputs),
    )


def decode_b64(text: str, what: str) -> bytes:
    """Base64 from a request body, or InvalidInput saying which field is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64: {exc}") from exc


@router.post(
    "/skills/{name}/test",
    status_code=202,
    response_model=JobOut,
    tags=["jobs"],
    responses={**SKILL_ERRORS, **BODY_ERRORS, 429: error_doc("Too many jobs")},
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
    # Before the skill is looked up. The view's tenant, not the request's: the console runs this
    # route for a signed-in session, whose request carries no API key.
    state.check_room(request, view.tenant, "gate", name)
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
        **BODY_ERRORS,
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
    state.check_room(request, caller(request), "fix", name)  # before the skill is looked up
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
        **BODY_ERRORS,
        403: error_doc("shared=true without an admin key"),
        429: error_doc("Too many jobs"),
        503: error_doc("No LLM endpoint is configured"),
    },
)
def create(request: Request, state: State, view: View, body: CreateRequest) -> JSONResponse:
    """Have the LLM write a new skill for `task`, gate it, and fix it if it fails (a job)."""
    rid = request_id(request)
    state.check_room(request, caller(request), "create", body.name)
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
