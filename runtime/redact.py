"""Credentials never reach a log: API keys and credential-like query parameters are
redacted from request targets and log lines before anything writes them.

A client that puts its key in the URL (``?api_key=...``) has already leaked it to every
proxy and log on the way; skillyard never accepts it there and never writes it down.
What is redacted: every string shaped like a skillyard key (``sy_<keyid>_<secret>``: the
key id, which is not secret, is kept, so an operator can still tell keys apart), and the
value of every query parameter whose name says it is a credential (SENSITIVE_PARAMS).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
KEY_IN_TEXT = re.compile(r"(sy_[a-z0-9]{12}_)[A-Za-z0-9_-]{43}")
SENSITIVE_PARAMS = frozenset(
    {
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "client_secret",
        "id_token",
        "key",
        "passwd",
        "password",
        "refresh_token",
        "secret",
        "session",
        "sig",
        "signature",
        "token",
        "x-api-key",
    }
)


def redact_text(text: str) -> str:
    """`text` with every key-shaped string's secret part replaced."""
    return KEY_IN_TEXT.sub(rf"\g<1>{REDACTED}", text) if "sy_" in text else text


def has_credential_params(query: str) -> bool:
    """Whether a query string carries a parameter named like a credential."""
    return any(
        unquote_plus(pair.split("=", 1)[0]).strip().lower() in SENSITIVE_PARAMS
        for pair in query.split("&")
        if pair
    )


def redact_target(target: str) -> str:
    """A request target (path and query) fit for a log: credential parameters' values and
    key-shaped strings replaced, everything else as it was sent."""
    path, sep, query = target.partition("?")
    if not sep:
        return redact_text(path)
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        if eq and unquote_plus(name).strip().lower() in SENSITIVE_PARAMS:
            pairs.append(f"{name}={REDACTED}")
        else:
            pairs.append(pair)
    return redact_text(f"{path}?{'&'.join(pairs)}")


class RedactCredentials(logging.Filter):
    """A logging filter that redacts what it would write: uvicorn's access lines (their
    request target) and any key-shaped string in any record. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3:
            args = (*args[:2], redact_target(str(args[2])), *args[3:])
        if isinstance(args, tuple):
            args = tuple(redact_text(a) if isinstance(a, str) else a for a in args)
        record.args = args
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        return True


def redact_event(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: key-shaped strings in an event's values are redacted."""
    for k, v in event.items():
        if isinstance(v, str) and "sy_" in v:
            event[k] = redact_text(v)
    return event
