"""The notes in a skill's `.memory.md`: concise, dated, deduplicated notes about its
failures and fixes (the file's name is the Agent Skills convention; "memory" elsewhere
in skillyard means RAM).

The file is read by the fixer (so it learns what broke before) and shown by `show`.
Entries with the same gist (digits ignored) are merged: the newest text and date are kept,
with the count of merged entries. The file is capped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_ENTRIES = 40
MAX_BYTES = 8 * 1024
HEADER = "# Memory\n\nDated notes skillyard keeps about this skill's failures and fixes.\n\n"
ENTRY_RE = re.compile(r"^- (\d{4}-\d{2}-\d{2}) \[(\w+)\](?: \(x(\d+)\))? (.*)$")


def describe_value(value: Any, depth: int = 0) -> str:
    """A short description of an input's shape: what kind of input failed, without its data."""
    if depth > 2:
        return "..."
    if isinstance(value, dict):
        keys = list(value)[:6]
        inner = ", ".join(f"{k}: {describe_value(value[k], depth + 1)}" for k in keys)
        more = ", ..." if len(value) > 6 else ""
        return "{" + inner + more + "}"
    if isinstance(value, list):
        return f"list[{len(value)}]" + (f" of {describe_value(value[0], depth + 1)}" if value else "")
    if isinstance(value, str):
        n = len(value)
        return "str(empty)" if n == 0 else f"str({n} chars)"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return type(value).__name__


RUNTIME_KINDS = ("exception", "timeout", "oom", "bad_output", "crashed")  # runtime failures of a call


@dataclass
class Entry:
    """One note: its day (YYYY-MM-DD), kind (gate, fix, create, or a call's error kind),
    how many merged notes it stands for, and its text."""

    day: str
    kind: str
    count: int
    text: str


def entries(content: str) -> list[Entry]:
    """The parsed entries of a memory file's content, oldest first."""
    out = []
    for line in content.splitlines():
        m = ENTRY_RE.match(line)
        if m:
            out.append(Entry(m.group(1), m.group(2), int(m.group(3) or 1), m.group(4)))
    return out


def _gist(text: str) -> str:
    text = re.sub(r"\d+", "N", text.lower())
    return re.sub(r"\s+", " ", text).strip()[:160]


def shorten(text: str, limit: int) -> str:
    """`text` on one line, at most about `limit` characters, cut only between words: an
    identifier (a test id, a path, a skill name) is kept whole or left out, never cut."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    if cut <= 0:  # one word longer than the limit: keep it whole
        cut = text.find(" ", limit)
        return text if cut < 0 else text[:cut] + " …"
    return text[:cut].rstrip(" ;,") + " …"


def _one_line(text: str, limit: int = 400) -> str:
    return shorten(text, limit)


def add_entry(path: Path, kind: str, text: str, *, now: datetime | None = None) -> str:
    """Append (or merge) an entry; returns the file's new content."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    text = _one_line(text)
    kept = entries(path.read_text(encoding="utf-8", errors="replace")) if path.exists() else []
    key = (kind, _gist(text))
    same = next((i for i, e in enumerate(kept) if (e.kind, _gist(e.text)) == key), None)
    # Merged: the newest text and date, with the count ("v2 blocked" must not read as "v0 blocked").
    count = 1 if same is None else kept.pop(same).count + 1
    kept = [*kept, Entry(day, kind, count, text)][-MAX_ENTRIES:]
    while True:
        lines = [f"- {e.day} [{e.kind}]{f' (x{e.count})' if e.count > 1 else ''} {e.text}" for e in kept]
        content = HEADER + "\n".join(lines) + "\n"
        if len(content.encode()) <= MAX_BYTES or len(kept) <= 1:
            break
        kept.pop(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content, encoding="utf-8")
    tmp.replace(path)
    return content
