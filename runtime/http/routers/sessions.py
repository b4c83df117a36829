"""Routes over sessions: workspace containers with skills inside (runtime/sessions.py).

A session belongs to the key's tenant: another tenant's session is a 404, exactly like
one that never existed. Commands answer at once, or (`stream: true`) as server-sent
events while they run. Files go in and out as raw bytes (PUT and GET on a path under
/work): a file is one request, so its body needs no envelope.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from ...commands import OnOutput
from ...errors import InvalidInput
from ...sessions import MAX_FILE_BYTES, Session
from ..deps import State, View
from ..errors import request_id
from ..schemas import (
    COMMON_ERRORS,
    SessionCreateRequest,
    SessionExecRequest,
    SessionOut,
    SessionResultOut,
    error_doc,
)
from ..streaming import live_response
from .work import decode_b64

router = APIRouter(tags=["sessions"])
SessionId = Annotated[str, Path(min_length=24, max_length=24, pattern=r"^[0-9a-f]{24}$")]
NOT_FOUND = {404: error_doc("No such session (for this key), or it has ended")}


def session_out(session: Session) -> SessionOut:
    base = f"/v1/sessions/{session.id}"
    return SessionOut(
        **session.to_dict(), links={"self": base, "exec": f"{base}/exec", "files": f"{base}/files/"}
    )


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    responses={**COMMON_ERRORS, 404: error_doc("No such skill"), 429: error_doc("Too many sessions")},
)
def create_session(request: Request, state: State, view: View, body: SessionCreateRequest) -> JSONResponse:
    """Start a session: the skills (registered ones) read-only under /skills/NAME, a writable /work
    that lasts, commands one after another under the sandbox's limits. It ends after
    `idle_timeout` seconds without a request, or with DELETE."""
    session = state.service.open_session(
        view, body.skills, idle_timeout=body.idle_timeout, request_id=request_id(request)
    )
    out = session_out(session)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Location": out.links["self"]})


@router.get("/sessions", response_model=list[SessionOut], responses=COMMON_ERRORS)
def list_sessions(state: State, view: View) -> list[SessionOut]:
    """Your open sessions, oldest first."""
    return [session_out(s) for s in state.service.sessions.list(view.name)]


@router.get("/sessions/{session_id}", response_model=SessionOut, responses={**COMMON_ERRORS, **NOT_FOUND})
def get_session(state: State, view: View, session_id: SessionId) -> SessionOut:
    """One of your sessions."""
    return session_out(state.service.sessions.get(view.name, session_id))


@router.delete("/sessions/{session_id}", status_code=204, responses={**COMMON_ERRORS, **NOT_FOUND})
def delete_session(request: Request, state: State, view: View, session_id: SessionId) -> Response:
    """End the session: its container and everything in /work are removed."""
    state.service.sessions.close(view.name, session_id)
    state.service.audit.record(
        "session_close", tenant=view.name, session=session_id, outcome="ok", request_id=request_id(request)
    )
    return Response(status_code=204)


@router.post(
    "/sessions/{session_id}/exec",
    response_model=SessionResultOut,
    responses={
        **COMMON_ERRORS,
        **NOT_FOUND,
        429: error_doc("Too many concurrent runs for this key"),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "The result; with stream: true, server-sent events (stdout, stderr, result)",
        },
    },
)
def exec_in_session(
    request: Request, state: State, view: View, session_id: SessionId, body: SessionExecRequest
) -> Response:
    """Run a command (any argv in the session's image) in /work. 200 with exit code and output
    whatever the command did; `stream: true`: its output as server-sent events, then the result."""
    service = state.service
    session = service.sessions.get(view.name, session_id)
    stdin = decode_b64(body.stdin_b64, "stdin_b64")

    def run(on_output: OnOutput | None) -> dict[str, Any]:
        result = service.session_exec(
            view,
            session,
            body.argv,
            stdin=stdin,
            timeout=body.timeout,
            cwd=body.cwd,
            on_output=on_output,
            request_id=request_id(request),
        )
        return SessionResultOut(**result.to_dict()).model_dump(mode="json")

    if body.stream:
        return live_response(run, lambda: None)
    return JSONResponse(run(None))


FILE_RESPONSES = {
    **COMMON_ERRORS,
    **NOT_FOUND,
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The file's bytes",
    },
}


@router.get("/sessions/{session_id}/files/{path:path}", response_class=Response, responses=FILE_RESPONSES)
def download(state: State, view: View, session_id: SessionId, path: str) -> Response:
    """A file from the session's /work (a path relative to it)."""
    service = state.service
    session = service.sessions.get(view.name, session_id)
    data = service.sessions.run(session, lambda: session.read_file(path))
    return Response(data, media_type="application/octet-stream")


@router.put(
    "/sessions/{session_id}/files/{path:path}",
    status_code=201,
    responses={**COMMON_ERRORS, **NOT_FOUND, 201: {"description": "Written"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload(
    request: Request, state: State, view: View, session_id: SessionId, path: str
) -> JSONResponse:
    """Write the request body as a file in the session's /work (folders are made as needed)."""
    service = state.service
    session = service.sessions.get(view.name, session_id)
    body = await request.body()
    if len(body) > MAX_FILE_BYTES:
        raise InvalidInput(f"a session file is at most {MAX_FILE_BYTES} bytes")
    where = await anyio.to_thread.run_sync(
        lambda: service.sessions.run(session, lambda: session.write_file(path, body))
    )
    return JSONResponse({"path": where, "bytes": len(body)}, status_code=201)
