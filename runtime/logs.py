"""structlog set-up: human-readable to stderr for the CLI, JSON lines when asked; credentials
redacted (runtime.redact)."""

from __future__ import annotations

import logging
import sys

import structlog

from .redact import redact_event


def configure(level: str = "WARNING", json_logs: bool = False) -> None:
    """Log at `level` to stderr: readable lines, or JSON lines with `json_logs`."""
    lvl = getattr(logging, level.upper(), logging.WARNING)
    processors: list = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_event,  # a key-shaped string never reaches a log line
    ]
    renderer = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
