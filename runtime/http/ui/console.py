"""The console's frame: its state on the app, sign-in checks, CSRF checks, rendering, the
error pages, and the security headers of everything under /ui.

Invariants (docs/SECURITY.md, "The console"):

- A page is served only to a signed-in browser, and shows only what the key it signed in
  with may see: every request resolves the session's key to a tenant again and reads
  through that tenant's view (runtime/views.py), exactly as an API request would.
- Every request that changes state passes `csrf_checked` (the session's token, and an
  Origin header, when sent, that is this console's own).
- Templates autoescape everything; no template marks text safe. Scripts come only from
  /ui/static (Content-Security-Policy ``script-src 'self'``, no inline script, no eval).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import jinja2
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from ...errors import Forbidden, Unauthorized
from ...views import TenantView
from ..deps import ServerState
from ..errors import PageRenderer, request_id
from .charts import tokens_text
from .present import size_text, when_text
from .sessions import COOKIE_PATH, SESSION_COOKIE, ConsoleSession, ConsoleSessions

log = structlog.get_logger(__name__)

PREFIX = "/ui"
HERE = Path(__file__).resolve().parent
WHERE_TO_LOOK = "see the skills page, /ui/skills"
CSRF_FIELD, CSRF_HEADER = "csrf", "x-csrf-token"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # "no-referrer" makes a browser send "Origin: null"
    "cross-origin-opener-policy": "same-origin",
}
CSRF_REFUSED = (
    "this form did not come from this console, or its page is too old: reload the page and submit it again"
)


@dataclass
class SignedIn:
    """The browser behind a request: its session and what its key may see."""

    token: str
    session: ConsoleSession
    view: TenantView

    @property
    def csrf(self) -> str:
        return self.session.csrf


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class Console:
    """The console of one app: its sessions and templates, over the app's ServerState."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.sessions = ConsoleSessions()
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template, whatever its name: skills write what we show
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters.update(
            tokens=tokens_text, size=size_text, when=when_text, pretty=_json_text, json=_json_line
        )
        self.templates = Jinja2Templates(env=env)

    # -- rendering -----------------------------------------------------------------------------
    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        signed: SignedIn | None = None,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A page (or an htmx fragment) rendered from `template`."""
        base = {
            "version": self.state.version,
            "tenant": signed.view.name if signed else None,
            "admin": bool(signed and signed.view.admin),
            "csrf": signed.csrf if signed else "",
            "csrf_headers": json.dumps({"X-CSRF-Token": signed.csrf}) if signed else "",
            "request_id": request_id(request),
            "nav": "",
        }
        return self.templates.TemplateResponse(
            request,
            template,
            {**base, **context},
            status_code=status,
            headers={"Cache-Control": "no-store", **(headers or {})},
        )

    def error_page(
        self, request: Request, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """An error answer under /ui (errors.py maps the error; this dresses it). No session
        (401): to the sign-in page. From htmx: a fragment for the element that asked."""
        htmx = request.headers.get("hx-request") == "true"
        if status == 401:
            login = f"{PREFIX}/login"
            if request.method == "GET" and not htmx:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                login += f"?next={quote(target, safe='')}"
            if htmx:
                return Response(status_code=401, headers={"HX-Redirect": login, "Cache-Control": "no-store"})
            return RedirectResponse(login, status_code=303, headers={"Cache-Control": "no-store"})
        kept = {k: v for k, v in (headers or {}).items() if k.lower() == "retry-after"}
        template = "_error.html" if htmx else "error.html"
        return self.page(
            request, template, {"status": status, "message": message}, status=status, headers=kept
        )

    # -- who is asking ---------------------------------------------------------------------------
    async def signed_in(self, request: Request) -> SignedIn:
        """The signed-in browser behind `request`; Unauthorized (to the sign-in page) if none.
        The key is checked again on every request: a removed key ends its sessions."""
        token = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(token)
        if session is None or token is None:
            raise Unauthorized("sign in to use the console")
        service = self.state.service
        # Off the event loop: the first check of a key in this process costs a scrypt hash.
        tenant = await anyio.to_thread.run_sync(service.authenticate, f"Bearer {session.key}")
        if tenant is None:
            self.sessions.close(token)
            raise Unauthorized("the key this session signed in with no longer works: sign in again")
        return SignedIn(token, session, service.view(tenant))

    async def csrf_checked(self, request: Request) -> SignedIn:
        """`signed_in`, for a request that changes state: it must carry the session's CSRF
        token (form field or header) and, if it says where it came from, come from here."""
        signed = await self.signed_in(request)
        check_origin(request)
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            token = value if isinstance(value, str) else None
        if not signed.session.csrf_ok(token):
            log.warning("console_csrf_refused", tenant=signed.view.name, path=request.url.path[:200])
            raise Forbidden(CSRF_REFUSED)
        return signed


def check_origin(request: Request) -> None:
    """Forbidden when the request's Origin header names another origin than this console's."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not every client sends it; the CSRF token still decides
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        log.warning("console_cross_origin_refused", origin=origin[:200], path=request.url.path[:200])
        raise Forbidden(CSRF_REFUSED)


def is_tls(request: Request) -> bool:
    """Whether the browser reached this console over TLS (the cookie is then Secure)."""
    return request.url.scheme == "https"


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer under /ui (pages, fragments,
    static files, errors). Pure ASGI, so streamed answers (SSE) pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_)


def install(app: FastAPI, state: ServerState) -> tuple[str, PageRenderer, str]:
    """Serve the console at /ui on `app`. Returns what errors.install needs to answer the
    console's errors as pages: (prefix, renderer, where to look for skills)."""
    from . import routes

    console = Console(state)
    app.state.console = console
    app.include_router(routes.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_middleware(SecurityHeaders)
    return f"{PREFIX}/", console.error_page, WHERE_TO_LOOK


def console_of(request: Request) -> Console:
    """The console of the app serving `request`."""
    return request.app.state.console


__all__ = ["COOKIE_PATH", "PREFIX", "Console", "SignedIn", "console_of", "install", "is_tls"]
