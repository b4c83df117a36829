"""Extract regex matches and groups from text, with guards against pathological inputs."""
from __future__ import annotations

import re
import signal
import threading
import time
from contextlib import contextmanager

MAX_PATTERN_LENGTH = 500
MAX_TEXT_LENGTH = 1_000_000
MAX_MATCHES = 10_000
TIME_BUDGET_SECONDS = 2.0
FLAGS = {
    "IGNORECASE": re.IGNORECASE, "I": re.IGNORECASE,
    "MULTILINE": re.MULTILINE, "M": re.MULTILINE,
    "DOTALL": re.DOTALL, "S": re.DOTALL,
    "VERBOSE": re.VERBOSE, "X": re.VERBOSE,
    "ASCII": re.ASCII, "A": re.ASCII,
}


class RegexTimeout(Exception):
    pass


@contextmanager
def time_budget(seconds: float):
    """Interrupt a runaway regex with SIGALRM (the re engine checks for signals while it works).

    Only possible in the main thread of a Unix process; elsewhere the size caps are the only guard.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:  # pragma: no cover - depends on the calling thread/platform
        yield
        return

    def on_alarm(signum, frame):
        raise RegexTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    pending, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pending > 0:  # somebody else's timer was running (e.g. a test timeout): re-arm what is left
            signal.setitimer(signal.ITIMER_REAL, max(pending - (time.monotonic() - started), 0.001), interval)


def _flags(names) -> int:
    if names is None:
        return 0
    if not isinstance(names, list):
        raise ValueError("'flags' must be a list of flag names")
    value = 0
    for name in names:
        key = str(name).upper()
        if key not in FLAGS:
            raise ValueError(f"unknown flag {name!r}; use IGNORECASE, MULTILINE, DOTALL, VERBOSE or ASCII")
        value |= FLAGS[key]
    return value


def run(params: dict) -> dict:
    pattern = params.get("pattern")
    text = params.get("text")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("'pattern' must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"'pattern' is too long ({len(pattern)} chars; at most {MAX_PATTERN_LENGTH})")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"'text' is too long ({len(text)} chars; at most {MAX_TEXT_LENGTH})")
    limit = params.get("max_matches", 100)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_MATCHES:
        raise ValueError(f"'max_matches' must be an integer from 1 to {MAX_MATCHES}")

    try:
        compiled = re.compile(pattern, _flags(params.get("flags")))
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc

    group = params.get("group")
    if group is not None:
        if isinstance(group, bool) or not isinstance(group, (int, str)):
            raise ValueError("'group' must be a group number or name")
        if isinstance(group, int) and not 0 <= group <= compiled.groups:
            raise ValueError(f"group {group} does not exist; the pattern has {compiled.groups} group(s)")
        if isinstance(group, str) and group not in compiled.groupindex:
            raise ValueError(f"no group named {group!r}; named groups: {sorted(compiled.groupindex)}")
    unique = bool(params.get("unique", False))

    matches, values, seen = [], [], set()
    truncated = False
    try:
        with time_budget(TIME_BUDGET_SECONDS):
            for match in compiled.finditer(text):
                value = match.group(group if group is not None else 0)
                if unique:
                    if value in seen:
                        continue
                    seen.add(value)
                if len(matches) == limit:
                    truncated = True
                    break
                matches.append({
                    "match": match.group(0),
                    "start": match.start(),
                    "end": match.end(),
                    "groups": list(match.groups()),
                    "named": match.groupdict(),
                })
                values.append(value)
    except RegexTimeout:
        raise ValueError(
            f"the pattern took longer than {TIME_BUDGET_SECONDS:g} s on this text (catastrophic backtracking?); "
            "simplify it, e.g. avoid nested quantifiers like (a+)+"
        ) from None

    return {
        "match_count": len(matches),
        "truncated": truncated,
        "group_count": compiled.groups,
        "group_names": sorted(compiled.groupindex, key=compiled.groupindex.get),
        "matches": matches,
        "values": values,
    }
