"""The console's sign-ins: server-side sessions behind an opaque cookie, and CSRF tokens.

Invariants:

- The API key never reaches the browser again after the sign-in form posts it: the
  browser holds only a random session token (a cookie that is HttpOnly, SameSite=Strict,
  Path=/ui, and Secure when the console is served over TLS). Nothing is written to the
  browser's storage.
- The key is kept in this process's memory only, in the session, so that every request
  is authenticated again exactly like an API request: a removed tenant or key loses its
  console sessions at once. The table is keyed by a hash of the token, so the table alone
  does not give a usable cookie. Sessions end on sign-out, after IDLE_S without a request,
  after MAX_AGE_S in all, and when the process stops.
- Every request that changes state carries the session's CSRF token (a form field or the
  X-CSRF-Token header), compared in constant time. The sign-in form, which has no
  session yet, is bound to a short-lived pre-session cookie instead (double submit: the
  form holds an HMAC of the cookie's nonce under a per-process secret).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

SESSION_COOKIE = "sy_console"
LOGIN_COOKIE = "sy_console_login"
COOKIE_PATH = "/ui"
IDLE_S = 8 * 3600
MAX_AGE_S = 24 * 3600
LOGIN_MAX_AGE_S = 3600
MAX_SESSIONS = 10_000


@dataclass
class ConsoleSession:
    """One signed-in browser: the key it signed in with and its CSRF token."""

    key: str = field(repr=False)
    tenant: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)

    def expired(self, now: float) -> bool:
        """Whether the session has been idle too long or has lived too long."""
        return now - self.seen > IDLE_S or now - self.created > MAX_AGE_S

    def csrf_ok(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token."""
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessions:
    """The sessions of one server process (thread-safe), at most MAX_SESSIONS: the
    least recently used goes first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()
        self._secret = secrets.token_bytes(32)

    def open(self, key: str, tenant: str) -> str:
        """A new session for a key that has just been verified; the cookie's token."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[_digest(token)] = ConsoleSession(key=key, tenant=tenant)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return token

    def get(self, token: str | None) -> ConsoleSession | None:
        """The live session of a cookie's token, touched; None if there is none."""
        if not token or len(token) > 100:
            return None
        digest, now = _digest(token), time.monotonic()
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if session.expired(now):
                del self._sessions[digest]
                return None
            session.seen = now
            self._sessions.move_to_end(digest)
            return session

    def close(self, token: str | None) -> None:
        """End a session (sign-out, or a key that no longer authenticates)."""
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- the sign-in form's CSRF (no session yet) -------------------------------------------
    def login_nonce(self) -> tuple[str, str]:
        """(cookie nonce, form token) for one sign-in form."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login_token(nonce)

    def login_ok(self, nonce: str | None, token: str | None) -> bool:
        """Whether a sign-in form's token belongs to the nonce in its cookie."""
        if not nonce or not token or len(nonce) > 100:
            return False
        return hmac.compare_digest(self._login_token(nonce).encode(), str(token).encode())

    def _login_token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()
