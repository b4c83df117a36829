"""The HTTP API's one mapping from errors to answers: every error body is
``{"error": "<what went wrong and what to do>", "request_id": "<id>"}`` (plus ``detail``,
per-field problems, for an invalid request).

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

from ..errors import SkillyardError, TooBusy, UnknownSkill

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
    "too_many_sessions": 429,
    "dependency": 422,
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
    """The one shape of an error answer."""
    body: dict[str, Any] = {"error": message, "request_id": request_id(request)}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


# An HTML surface's rendering of an error answer: (request, status, message, headers) -> page.
PageRenderer = Callable[[Request, int, str, "dict[str, str] | None"], Response]


def mapped(
    request: Request, exc: SkillyardError, where_to_look: str = "list skills with GET /v1/skills"
) -> tuple[int, str, dict[str, str] | None]:
    """(status, message, headers) for a SkillyardError, by its kind; `where_to_look` is
    added to an unknown skill's message."""
    status = STATUS.get(exc.kind)
    if status is None:
        log.error("unmapped_error", kind=exc.kind, error=str(exc)[:500], request_id=request_id(request))
        return 500, "internal error", None
    if exc.kind in FIXED_TEXT:
        log.error(f"{exc.kind}_error", error=str(exc)[:500], request_id=request_id(request))
        return status, FIXED_TEXT[exc.kind], None
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
    return status, message, headers


def answer(request: Request, exc: SkillyardError) -> JSONResponse:
    """The answer to a SkillyardError: status and message by its kind."""
    status, message, headers = mapped(request, exc)
    return error_response(request, status, message, headers=headers)


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
    headers: dict[str, str] | None = None,
    detail: list[dict[str, Any]] | None = None,
) -> Response:
    pages = _pages(request)
    if pages is not None:
        return pages[0](request, status, message, headers)
    return error_response(request, status, message, headers=headers, detail=detail)


async def _skillyard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SkillyardError)  # registered for SkillyardError only
    pages = _pages(request)
    if pages is not None:
        return pages[0](request, *mapped(request, exc, pages[1]))
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
    return _respond(request, status, message, headers=getattr(exc, "headers", None))


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A request the models refuse: 422 with one line for people and `detail` for programs."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for e in exc.errors()[:20]:
        loc = [str(p) for p in e.get("loc", ())]
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "invalid JSON")
            at = loc[-1] if loc else "?"
            return _respond(request, 422, f"malformed JSON in the request body: {why} (at byte {at})")
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
    return _respond(request, 422, f"invalid request: {summary}", detail=problems)


def install(app: FastAPI, pages: tuple[str, PageRenderer, str] | None = None) -> None:
    """Register the mapping on `app` (the guard middleware answers what escapes it: 500).
    `pages` = (path prefix, renderer, where to look for skills): requests under the prefix
    get their error answers as pages."""
    app.state.error_pages = pages
    app.add_exception_handler(SkillyardError, _skillyard_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
