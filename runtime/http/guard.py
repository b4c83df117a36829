"""The guard in front of the HTTP API: an ASGI middleware that runs before any route.

For every request it stamps an ``X-Request-ID``; for ``/v1`` it checks the API key
before anything else happens (before the body is read, before a name is looked at) and
answers 401 without one; it enforces the body limits, on ``Content-Length`` and again
while a chunked body streams (413); and it turns any exception no handler took into
``500 {"error": "internal error", "request_id": ...}`` with the traceback in the server
log only.
"""

from __future__ import annotations

import json
import secrets
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import structlog
from starlette.requests import ClientDisconnect

from ..tenants import Tenant
from .errors import error_body

log = structlog.get_logger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request header's value from the ASGI scope (`name` in lower case), or None."""
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


class Guard:
    """Request id, authentication of /v1, body limits and the last-resort error handler."""

    def __init__(
        self,
        app: Any,
        *,
        authenticate: Callable[[str | None], Tenant | None],
        json_limit: int,
        upload_limit: int,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(8)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        started = hijacked = False

        async def send_(message: dict[str, Any]) -> None:
            nonlocal started
            if hijacked:
                return
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        async def reply(status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            nonlocal hijacked
            body = json.dumps(error_body(path, status, error, rid)).encode()
            await send_(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *(headers or []),
                    ],
                }
            )
            await send_({"type": "http.response.body", "body": body})
            hijacked = True

        path = scope.get("path", "")
        try:
            if path == "/v1" or path.startswith("/v1/"):
                authorization = _header(scope, b"authorization")
                # Off the event loop: a key's first check costs a scrypt hash (~50-120 ms).
                tenant = (
                    await anyio.to_thread.run_sync(self.authenticate, authorization)
                    if authorization
                    else None
                )
                if tenant is None:
                    await reply(
                        401,
                        "missing or invalid API key: send 'Authorization: Bearer <key>' "
                        "(keys come from `skillyard tenant add NAME`)",
                        [(b"www-authenticate", b'Bearer realm="skillyard"')],
                    )
                    return
                state["tenant"] = tenant
            upload = scope.get("method") == "POST" and path.rstrip("/") == "/v1/skills"
            limit = self.upload_limit if upload else self.json_limit
            length = _header(scope, b"content-length")
            if length is not None:
                if not length.strip().isdigit():
                    await reply(400, "bad Content-Length header")
                    return
                if int(length) > limit:
                    await reply(
                        413, f"the request body is {int(length)} bytes; the limit here is {limit} bytes"
                    )
                    return
            received = 0

            async def receive_() -> dict[str, Any]:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        if not started:
                            await reply(413, f"the request body is over the {limit}-byte limit here")
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, receive_, send_)
        except ClientDisconnect:
            # The client went away, or we cut its body off with a 413: nothing to answer, nothing broken.
            log.debug("client_disconnected", request_id=rid, path=path[:200])
        except Exception:  # noqa: BLE001 - the last resort: log it all, tell the client nothing
            if hijacked:  # we already answered (413) and stopped the body; what the app made of that is moot
                log.debug(
                    "error_after_reply", request_id=rid, path=path[:200], error=traceback.format_exc(limit=1)
                )
                return
            log.error(
                "unhandled_error",
                request_id=rid,
                path=path[:200],
                method=scope.get("method"),
                traceback=traceback.format_exc(),
            )
            if not started:
                await reply(500, "internal error")
