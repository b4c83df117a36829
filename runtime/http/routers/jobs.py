"""Routes over jobs: yours, one, and its events as a server-sent stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import NotFound
from ..deps import JobId, State, View
from ..jobs import Job
from ..schemas import COMMON_ERRORS, JobOut, error_doc

router = APIRouter(tags=["jobs"])
KEEPALIVE_S = 15.0
POLL_S = 0.2


def _job(state: State, view: View, job_id: str) -> Job:
    job = state.jobs.get(view.name, job_id)
    if job is None:
        raise NotFound("no such job")
    return job


@router.get("/jobs", response_model=list[JobOut], responses=COMMON_ERRORS)
def list_jobs(state: State, view: View) -> list[JobOut]:
    """Your jobs of the last hour, oldest first."""
    return [j.out() for j in state.jobs.list(view.name)]


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={**COMMON_ERRORS, 404: error_doc("No such job (for this key)")},
)
def get_job(state: State, view: View, job_id: JobId) -> JobOut:
    """A job's state, and its result once it has finished."""
    return _job(state, view, job_id).out()


def _event(ev: dict) -> str:
    return f"id: {ev['seq']}\nevent: {ev['type']}\ndata: {json.dumps(ev, default=str)}\n\n"


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        **COMMON_ERRORS,
        404: error_doc("No such job (for this key)"),
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events: status and progress, then one `result` event",
        },
    },
)
async def job_events(request: Request, state: State, view: View, job_id: JobId) -> StreamingResponse:
    """Server-sent events: `status` and `progress` as they happen (earlier ones replayed), then a
    final `result` event carrying the job; the stream then ends. Honors Last-Event-ID."""
    job = _job(state, view, job_id)
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 0

    async def stream() -> AsyncIterator[str]:
        index, beat = start, time.monotonic()
        while True:
            events, done = job.events_since(index)
            for ev in events:
                yield _event(ev)
                index = ev["seq"] + 1
            if done:
                events, _ = job.events_since(index)  # anything emitted while finishing
                for ev in events:
                    yield _event(ev)
                yield f"event: result\ndata: {job.out().model_dump_json()}\n\n"
                return
            if await request.is_disconnected():
                return
            if time.monotonic() - beat > KEEPALIVE_S:
                beat = time.monotonic()
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
