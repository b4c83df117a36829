"""The logging set-up of the HTTP servers (uvicorn's): its own, plus a filter on every
handler that keeps credentials out of the log (runtime.redact)."""

from __future__ import annotations

import copy
from typing import Any


def log_config() -> dict[str, Any]:
    """uvicorn's default logging config with RedactCredentials on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "runtime.redact.RedactCredentials"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    return config
