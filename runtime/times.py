"""Points in time as skillyard stores and shows them: always timezone-aware UTC.

A naive datetime is taken to be UTC (that is what every writer here means by one). The
CLI and the audit API also take relative times, ``30m``, ``2h``, ``7d``: that long ago;
the same forms are lengths of time (a key's expiry, a rotation's overlap).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def as_utc(ts: datetime) -> datetime:
    """`ts` in UTC (a naive one is UTC already). Arrow hands out zoneinfo('UTC'); this gives
    every reader the same tzinfo, so records compare equal however they were read."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    """A length of time in the relative forms: ``90s``, ``30m``, ``2h``, ``7d``, ``1w``."""
    m = _RELATIVE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a length of time: use 90s, 30m, 2h, 7d or 1w")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (naive = UTC) or a relative one such as ``30m``, ``2h``, ``7d`` (that long ago)."""
    text = text.strip()
    m = _RELATIVE.fullmatch(text)
    if m:
        return (now or utc_now()) - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2025-01-31T12:00:00Z) or 30m, 2h, 7d"
        ) from exc
    return as_utc(dt)
