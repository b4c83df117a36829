"""The guard in front of the HTTP API: an ASGI middleware that runs before any route.

For every request it stamps an ``X-Request-ID``. For ``/v1``, in this order, each step
cheaper than the next and each refusal costing only the steps before it:

1. the API key (before the body is read, before a name is looked at): a key this process
   verified before is checked on the event loop, a new one hashed on a worker thread; no
   valid key is a 401 (and a key only in the URL is never accepted: see runtime.redact);
2. the tenant's in-flight requests: at most ``max_inflight`` at once per tenant (429), so
   one tenant's flood holds no more than its share of the server's worker threads;
3. the request body's media type against what the operation declares in the OpenAPI
   document (415, see media.py), and the body limits, on ``Content-Length`` and again
   while a chunked body streams (413).

Every 429 a tenant gets -- over its runs, its jobs or its requests in flight -- is paced
(RefusalPacer): at most ``refusal_rate`` a second are answered at once, the others wait
on the event loop, costing no CPU, until their turn. A tenant that floods refused requests
slows only itself; the work its refusals cost stays within its own budget.

It also turns any exception no handler took into ``500 {"error": "internal error", ...}``
with the traceback in the server log only.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import traceback
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from starlette.requests import ClientDisconnect

from ..redact import has_credential_params
from .errors import error_body
from .media import DeclaredBodies, media_type

if TYPE_CHECKING:
    from ..serving import Service

log = structlog.get_logger(__name__)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    """A request header's value from the ASGI scope (`name` in lower case), or None."""
    for k, v in scope.get("headers") or []:
        if k.lower() == name:
            return v.decode("latin-1")
    return None


def carries_files(method: str, path: str) -> bool:
    """Requests whose body may hold files, and gets the upload limit instead of the JSON one:
    a package import, a run (a command's input files, base64) and a session file upload."""
    parts = path.rstrip("/").split("/")
    if method == "POST" and path.rstrip("/") == "/v1/skills":
        return True
    if method == "POST" and len(parts) == 5 and parts[:3] == ["", "v1", "skills"] and parts[4] == "run":
        return True
    return method == "PUT" and len(parts) > 5 and parts[:3] == ["", "v1", "sessions"] and parts[4] == "files"


class RefusalPacer:
    """Per tenant, a token bucket for refusals: `rate` a second, bursts of `burst`. `delay`
    reserves the next token and says how long to wait for it (0: answer now). Event loop
    only: no lock."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, when counted)

    def delay(self, tenant: str) -> float:
        """Seconds this refusal of `tenant`'s waits before it is answered."""
        now = time.monotonic()
        tokens, then = self._buckets.get(tenant, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate) - 1.0
        self._buckets[tenant] = (tokens, now)
        if len(self._buckets) > 10_000:  # forget tenants whose buckets are full again
            self._buckets = {t: b for t, b in self._buckets.items() if b[0] < self.burst - 1}
        return 0.0 if tokens >= 0 else -tokens / self.rate


class Guard:
    """Request id, authentication of /v1, the per-tenant in-flight cap, media types, body
    limits and the last-resort error handler (see the module docstring)."""

    def __init__(
        self,
        app: Any,
        *,
        service: Service,
        declared: DeclaredBodies,
        json_limit: int,
        upload_limit: int,
        max_inflight: int,
        refusal_rate: float,
    ) -> None:
        self.app = app
        self.service = service
        self.declared = declared
        self.json_limit = json_limit
        self.upload_limit = upload_limit
        self.max_inflight = max_inflight
        self._inflight: dict[str, int] = {}  # tenant -> requests in progress (event loop only: no lock)
        self.pacer = RefusalPacer(refusal_rate, burst=max(1, int(refusal_rate * 2)))

    async def _tenant(self, scope: dict[str, Any]) -> Any:
        """The tenant the request's key opens, or None."""
        authorization = _header(scope, b"authorization")
        if not authorization:
            return None
        tenant = self.service.authenticate_cached(authorization)
        if tenant is None:  # a key this process has not verified yet: scrypt, off the event loop
            tenant = await anyio.to_thread.run_sync(self.service.authenticate, authorization)
        elif self.service.key_uses_due:
            await anyio.to_thread.run_sync(self.service.save_key_uses)
        return tenant

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
                tenant = state.get("tenant")
                if message.get("status") == 429 and tenant is not None:
                    await asyncio.sleep(self.pacer.delay(tenant.name))
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        async def reply(
            status: int, kind: str, error: str, headers: list[tuple[bytes, bytes]] | None = None
        ) -> None:
            nonlocal hijacked
            body = json.dumps(error_body(path, status, error, kind, rid)).encode()
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
        tenant_name: str | None = None
        try:
            if path == "/v1" or path.startswith("/v1/"):
                tenant = await self._tenant(scope)
                if tenant is None:
                    in_url = has_credential_params(scope.get("query_string", b"").decode("latin-1"))
                    await reply(
                        401,
                        "unauthorized",
                        "missing or invalid API key: send 'Authorization: Bearer <key>' "
                        + (
                            "(a key in the URL is never accepted: URLs end up in logs)"
                            if in_url
                            else "(keys come from `skillyard tenant add NAME`)"
                        ),
                        [(b"www-authenticate", b'Bearer realm="skillyard"')],
                    )
                    return
                state["tenant"] = tenant
                if self._inflight.get(tenant.name, 0) >= self.max_inflight:
                    self.service.refuse(tenant, "request", error="too_many_requests", request_id=rid)
                    await reply(
                        429,
                        "too_many_requests",
                        f"{self.max_inflight} requests of yours are in progress here, the most at once; "
                        "retry when one has finished",
                        [(b"retry-after", b"1")],
                    )
                    return
                tenant_name = tenant.name
                self._inflight[tenant_name] = self._inflight.get(tenant_name, 0) + 1
            method = scope.get("method", "")
            length = _header(scope, b"content-length")
            ctype = _header(scope, b"content-type")
            has_body = ctype is not None or (length is not None and length.strip() not in ("", "0"))
            has_body = has_body or _header(scope, b"transfer-encoding") is not None
            declared = self.declared.types(method, path) if has_body else None
            if declared and media_type(ctype) not in declared:
                wanted = sorted(declared, key=lambda t: (t != "application/json", t != "application/gzip", t))
                got = media_type(ctype)
                what = f"a body of type {got!r}" if got else "a body without a Content-Type"
                await reply(
                    415,
                    "unsupported_media_type",
                    f"this endpoint takes {', '.join(wanted)}, not {what}: "
                    f"set the header 'Content-Type: {wanted[0]}'",
                )
                return
            limit = self.upload_limit if carries_files(method, path) else self.json_limit
            if length is not None:
                if not length.strip().isdigit():
                    await reply(400, "invalid_input", "bad Content-Length header")
                    return
                if int(length) > limit:
                    await reply(
                        413,
                        "too_large",
                        f"the request body is {int(length)} bytes; the limit here is {limit} bytes",
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
                            await reply(
                                413, "too_large", f"the request body is over the {limit}-byte limit here"
                            )
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
                await reply(500, "internal", "internal error")
        finally:
            if tenant_name is not None:
                left = self._inflight.get(tenant_name, 1) - 1
                if left > 0:
                    self._inflight[tenant_name] = left
                else:
                    self._inflight.pop(tenant_name, None)
