"""Live output as server-sent events: a run in a worker thread, its output as it comes.

    event: stdout            data: {"stream": "stdout", "text": "..."}
    event: stderr            data: {"stream": "stderr", "text": "..."}
    event: result            data: <what the endpoint answers without `stream`>
    event: error             data: {"error": "...", "status": 503}   (the run could not be made)

Text is decoded incrementally (a UTF-8 character split across two chunks arrives whole;
bytes that are not UTF-8 are replaced). A `: keepalive` comment goes out every 15 s of
silence. If the client goes away the run still finishes (a sandboxed run is killed only
by its own limits), and its slot is given back then.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from fastapi.responses import StreamingResponse

from ..commands import OnOutput
from ..errors import SkillyardError
from .errors import FIXED_TEXT, STATUS

log = structlog.get_logger(__name__)
KEEPALIVE_S = 15.0


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def live_response(work: Callable[[OnOutput], dict[str, Any]], done: Callable[[], None]) -> StreamingResponse:
    """A streaming answer running `work(on_output)` in a thread once the answer starts; `done()`
    runs once it ends, however it ends (the caller's slot goes back there). May be called from
    a sync route (no event loop yet): everything async happens in the body's generator."""
    decoders = {
        name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in ("stdout", "stderr")
    }

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(item: tuple[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def on_output(stream: str, data: bytes) -> None:
            text = decoders[stream].decode(data)
            if text:
                put((stream, {"stream": stream, "text": text}))

        def run() -> None:
            try:
                put(("result", work(on_output)))
            except SkillyardError as exc:
                status = STATUS.get(exc.kind, 500)
                message = FIXED_TEXT.get(exc.kind, str(exc)) if status != 500 else "internal error"
                put(("error", {"error": message, "kind": exc.kind, "status": status}))
            except Exception:  # the stream says "internal error", the log has the traceback
                log.exception("live_run_crashed")
                put(("error", {"error": "internal error", "status": 500}))
            finally:
                done()

        started = False
        try:
            loop.run_in_executor(None, run)
            started = True
            while True:
                try:
                    event, data = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield sse(event, data)
                if event in ("result", "error"):
                    return
        finally:
            if not started:
                done()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
