"""The HTTP API's one mapping from errors to answers: every error body is
``{"error": "<what went wrong and what to do>", "request_id": "<id>"}`` (plus ``detail``,
per-field problems, for an invalid request) -- except on the proxy's OpenAI paths
(OPENAI_PATHS), whose clients are OpenAI SDKs: there it is OpenAI's own shape,
``{"error": {"message", "type", "param", "code"}}``, and an invalid request is a 400.
The request id is in the ``X-Request-ID`` header of every answer.

A SkillyardError becomes the status its ``kind`` maps to in STATUS; a kind not listed
there is a bug or an operator's problem, not the client's, and becomes a 500
``internal error`` whose details go to the server log only. Two kinds answer with a fixed
text rather than the message, which speaks to the operator (engine, store paths).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import SkillyardError, TooBusy, UnknownSkill, UpstreamError

log = structlog.get_logger(__name__)

STATUS: dict[str, int] = {
    "invalid_input": 422,
    "package": 422,
    "not_found": 404,
    "forbidden": 403,
    "unauthorized": 401,
    "too_busy": 429,
    "too_many_runs": 429,
    "too_many_jobs": 429,
    "registry": 409,
    "skill": 409,
    "sandbox": 503,
    "store": 503,
    "llm_unavailable": 503,
}
# A run that reached the skill answers with its call result; these call-error kinds say
# the request (bad input, no such version) or the service (the engine) failed, not the
# skill, and get an error status. Every other result -- the skill's own failure
# (exception, timeout, oom, bad_output, crashed) -- is a 200 with ok: false.
CALL_STATUS: dict[str, int] = {"invalid_input": 422, "not_found": 404, "not_registered": 409, "sandbox": 503}
# Kinds whose message is for the operator: the client gets this instead (the log, the message).
FIXED_TEXT = {
    "sandbox": "the container engine is unavailable; try again later",
    "store": "the skill store is busy or unavailable; try again later",
}


# The proxy's paths an OpenAI client calls (runtime/http/routers/proxy.py).
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
# OpenAI's error types by status.
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def is_openai_path(path: str) -> bool:
    """Whether `path` is one of the proxy's OpenAI paths (its errors take OpenAI's shape)."""
    return any(path == p or path.startswith(p + "/") for p in OPENAI_PATHS)


def error_body(
    path: str, status: int, message: str, rid: str | None, detail: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The body of an error answer on `path` (see the module docstring): the guard's too."""
    if is_openai_path(path):
        kind = OPENAI_TYPES.get(status, "upstream_error" if status in (502, 504) else "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    body: dict[str, Any] = {"error": message, "request_id": rid}
    if detail:
        body["detail"] = detail
    return body


def request_id(request: Request) -> str | None:
    """The id the guard gave this request (also in the X-Request-ID header)."""
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """The one shape of an error answer (OpenAI's on the proxy's paths)."""
    path = request.url.path
    if is_openai_path(path) and status == 422:
        status = 400  # what OpenAI answers an invalid request with (its SDKs raise BadRequestError)
    body = error_body(path, status, message, request_id(request), detail)
    return JSONResponse(body, status_code=status, headers=headers)


def answer(request: Request, exc: SkillyardError) -> JSONResponse:
    """The answer to a SkillyardError: status and message by its kind."""
    if isinstance(exc, UpstreamError):
        # The upstream's own words only where they are about the client's request (UpstreamError).
        log.warning(
            "upstream_error",
            status=exc.status,
            reason=exc.reason,
            error=str(exc)[:500],
            request_id=request_id(request),
        )
        status = exc.client_status()
        retry = {"Retry-After": "1"} if status == 429 else None
        return error_response(request, status, exc.client_message(), headers=retry)
    status = STATUS.get(exc.kind)
    if status is None:
        log.error("unmapped_error", kind=exc.kind, error=str(exc)[:500], request_id=request_id(request))
        return error_response(request, 500, "internal error")
    if exc.kind in FIXED_TEXT:
        log.error(f"{exc.kind}_error", error=str(exc)[:500], request_id=request_id(request))
        return error_response(request, status, FIXED_TEXT[exc.kind])
    message = str(exc)
    if isinstance(exc, UnknownSkill):
        message = f"{exc}: list skills with GET /v1/skills"
    elif exc.kind == "package":
        message = f"package rejected: {exc}"
    headers = None
    if isinstance(exc, TooBusy):
        headers = {"Retry-After": str(exc.retry_after)}
    elif exc.kind == "unauthorized":
        headers = {"WWW-Authenticate": 'Bearer realm="skillyard"'}
    return error_response(request, status, message, headers=headers)


async def _skillyard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SkillyardError)  # registered for SkillyardError only
    return answer(request, exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no route, wrong method, an unreadable body), in our shape."""
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    status = exc.status_code
    if status == 400 and message == "There was an error parsing the body":
        status, message = 422, "the request body could not be parsed as JSON (nested too deeply?)"
    elif status == 404 and message == "Not Found":
        message = "no such endpoint: see /openapi.json"
    elif status == 405:
        message = "method not allowed on this endpoint: see /openapi.json"
    return error_response(request, status, message, headers=getattr(exc, "headers", None))


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A request the models refuse: 422 with one line for people and `detail` for programs."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors()[:20]:
        loc = [str(p) for p in e.get("loc", ())]
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "invalid JSON")
            at = loc[-1] if loc else "?"
            return error_response(request, 422, f"malformed JSON in the request body: {why} (at byte {at})")
        problems.append({"loc": loc, "msg": str(e.get("msg", ""))[:300], "type": e.get("type")})
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.lower() and any(p["loc"] == ["body"] for p in problems):
        # FastAPI reads a body as JSON only when Content-Type says so; otherwise it is bytes, "not a dict".
        return error_response(
            request,
            422,
            f"the request body was not read as JSON because its Content-Type is {ctype[:100]!r}: "
            "send JSON with the header 'Content-Type: application/json'",
            detail=problems,
        )
    summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5])
    return error_response(request, 422, f"invalid request: {summary}", detail=problems)


def install(app: FastAPI) -> None:
    """Register the mapping on `app` (the guard middleware answers what escapes it: 500)."""
    app.add_exception_handler(SkillyardError, _skillyard_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
