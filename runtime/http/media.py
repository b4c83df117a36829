"""The media types each operation of the HTTP API takes, as its OpenAPI document declares
them, for the guard to enforce: a request body of any other type is a 415 before a route
sees it (a valid .tar.gz sent as ``application/json`` or ``text/html`` is not an upload).

The table is read from the app's own OpenAPI document, once, on first use, so the rule
and the document cannot drift apart: declaring a type is what makes it accepted.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from starlette.routing import compile_path


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header value ("" if none): no parameters, lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


class DeclaredBodies:
    """`types(method, path)`: the media types the operation at `path` declares for its
    request body, or None for an operation that takes none (or no operation at all: the
    router answers that). Read from the app's OpenAPI document: its path templates are the
    routes' (``/v1/skills/{name}/run``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._table: list[tuple[re.Pattern[str], dict[str, frozenset[str]]]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], dict[str, frozenset[str]]]]:
        table = []
        for template, ops in self.app.openapi().get("paths", {}).items():
            regex, _, _ = compile_path(template)
            declared = {
                method.upper(): frozenset(t.lower() for t in (op.get("requestBody") or {}).get("content", {}))
                for method, op in ops.items()
                if isinstance(op, dict)
            }
            table.append((regex, declared))
        return table

    def types(self, method: str, path: str) -> frozenset[str] | None:
        """The declared media types of the operation, or None (see the class docstring)."""
        with self._lock:
            if self._table is None:
                self._table = self._build()
            table = self._table
        for regex, declared in table:
            if method in declared and regex.match(path):
                return declared[method] or None
        return None
