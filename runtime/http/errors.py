"""The HTTP API's one mapping from errors to answers: every error body is
``{"error": "<what went wrong and what to do>", "kind": "<the error's kind>",
"request_id": "<id>"}`` (plus ``detail``, per-field problems, for an invalid request) --
except on the proxy's OpenAI paths (OPENAI_PATHS), whose clients are OpenAI SDKs: there it
is OpenAI's own shape, ``{"error": {"message", "type", "param", "code"}}``, and an invalid
request is a 400. The request id is in the ``X-Request-ID`` header of every answer.

A SkillyardError becomes the status its ``kind`` maps to in STATUS; a kind not listed
there is a bug or an operator's problem, not the client's, and becomes a 500
``internal error`` whose details go to the server log only. Two kinds answer with a fixed
text rather than the message, which speaks to the operator (engine, store paths).

The console (runtime/http/ui) is the same mapping in another dress: requests under its
prefix get the same status and message as an HTML page (see `install`'s `pages`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..errors import SkillyardError, TooBusy, UnknownSkill, UpstreamError

log = structlog.get_logger(__name__)

STATUS: dict[str, int] = {
    "invalid_input": 422,
    "package": 422,
    "too_large": 413,
    "not_found": 404,
    "forbidden": 403,
    "unauthorized": 401,
    "too_busy": 429,
    "too_many_runs": 429,
    "too_many_jobs": 429,
    "too_many_sessions": 429,
    "dependency": 422,
    "registry": 409,
    "not_registered": 409,
    "not_runnable": 409,
    "skill": 409,
    "sandbox": 503,
    "store": 503,
    "llm_unavailable": 503,
    "conflict": 409,
}
# Starlette's own errors (no route, wrong method, ...) by status: the kind their body names.
HTTP_KINDS: dict[int, str] = {
    400: "invalid_input",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}
# A run that reached the skill answers with its call result; these call-error kinds say
# the request (bad input, no such version) or the service (the engine) failed, not the
# skill, and get an error status. Every other result -- the skill's own failure
# (exception, timeout, oom, bad_output, crashed) -- is a 200 with ok: false.
CALL_STATUS: dict[str, int] = {
    "invalid_input": 422,
    "not_found": 404,
    "not_registered": 409,
    "not_runnable": 409,
    "sandbox": 503,
}
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
    path: str,
    status: int,
    message: str,
    kind: str,
    rid: str | None,
    detail: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The body of an error answer on `path` (see the module docstring): the guard's too."""
    if is_openai_path(path):
        kind = OPENAI_TYPES.get(status, "upstream_error" if status in (502, 504) else "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    body: dict[str, Any] = {"error": message, "kind": kind, "request_id": rid}
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
    kind: str,
    headers: dict[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """The one shape of an error answer (OpenAI's on the proxy's paths)."""
    path = request.url.path
    if is_openai_path(path) and status == 422:
        status = 400  # what OpenAI answers an invalid request with (its SDKs raise BadRequestError)
    body = error_body(path, status, message, kind, request_id(request), detail)
    return JSONResponse(body, status_code=status, headers=headers)


# An HTML surface's rendering of an error answer: (request, status, message, headers) -> page.
# (The page shows the message; the kind is for programs, which read the JSON API.)
PageRenderer = Callable[[Request, int, str, "dict[str, str] | None"], Response]


def mapped(
    request: Request, exc: SkillyardError, where_to_look: str = "list skills with GET /v1/skills"
) -> tuple[int, str, dict[str, str] | None, str]:
    """(status, message, headers, kind) for a SkillyardError, by its kind; `where_to_look` is
    added to an unknown skill's message."""
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
        return status, exc.client_message(), retry, exc.kind
    status = STATUS.get(exc.kind)
    if status is None:
        log.error("unmapped_error", kind=exc.kind, error=str(exc)[:500], request_id=request_id(request))
        return 500, "internal error", None, "internal"
    if exc.kind in FIXED_TEXT:
        log.error(f"{exc.kind}_error", error=str(exc)[:500], request_id=request_id(request))
        return status, FIXED_TEXT[exc.kind], None, exc.kind
    message = str(exc)
    if isinstance(exc, UnknownSkill):
        message = f"{exc}: {where_to_look}"
    elif exc.kind == "package":
        message = f"package rejected: {exc}"
    headers = None
    if isinstance(exc, TooBusy):
        headers = {"Retry-After": str(exc.retry_after)}
    elif exc.kind == "unauthorized":
        headers = {"WWW-Authenticate": 'Bearer realm="skillyard"'}
    return status, message, headers, exc.kind


def answer(request: Request, exc: SkillyardError) -> JSONResponse:
    """The answer to a SkillyardError: status and message by its kind."""
    status, message, headers, kind = mapped(request, exc)
    return error_response(request, status, message, kind, headers=headers)


def _pages(request: Request) -> tuple[PageRenderer, str] | None:
    """The page renderer and where to look for skills, when `request` is the console's."""
    pages = getattr(request.app.state, "error_pages", None)
    if pages is not None and request.url.path.startswith(pages[0]):
        return pages[1], pages[2]
    return None


def _respond(
    request: Request,
    status: int,
    message: str,
    kind: str,
    headers: dict[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> Response:
    pages = _pages(request)
    if pages is not None:
        return pages[0](request, status, message, headers)
    return error_response(request, status, message, kind, headers=headers, detail=detail)


async def _skillyard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SkillyardError)  # registered for SkillyardError only
    pages = _pages(request)
    if pages is not None:
        return pages[0](request, *mapped(request, exc, pages[1])[:3])
    return answer(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method, an unreadable body), in our shape."""
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    status = exc.status_code
    if status == 400 and message == "There was an error parsing the body":
        status, message = 422, "the request body could not be parsed as JSON (nested too deeply?)"
    elif status == 404 and message == "Not Found":
        message = "no such page" if _pages(request) else "no such endpoint: see /openapi.json"
    elif status == 405:
        message = "method not allowed on this endpoint: see /openapi.json"
    kind = HTTP_KINDS.get(status, "internal" if status >= 500 else "invalid_input")
    return _respond(request, status, message, kind, headers=getattr(exc, "headers", None))


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request the models refuse: 422 with one line for people and `detail` for programs."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors()[:20]:
        loc = [str(p) for p in e.get("loc", ())]
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "invalid JSON")
            at = loc[-1] if loc else "?"
            return _respond(
                request, 422, f"malformed JSON in the request body: {why} (at byte {at})", "invalid_input"
            )
        problems.append({"loc": loc, "msg": str(e.get("msg", ""))[:300], "type": e.get("type")})
    # (A body of another media type than the operation declares never gets here: the guard's 415.)
    summary = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems[:5])
    return _respond(request, 422, f"invalid request: {summary}", "invalid_input", detail=problems)


def install(app: FastAPI, pages: tuple[str, PageRenderer, str] | None = None) -> None:
    """Register the mapping on `app` (the guard middleware answers what escapes it: 500).
    `pages` = (path prefix, renderer, where to look for skills): requests under the prefix
    get their error answers as pages."""
    app.state.error_pages = pages
    app.add_exception_handler(SkillyardError, _skillyard_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
