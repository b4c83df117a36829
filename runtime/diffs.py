"""The difference between two versions of a skill, file by file (unified diffs).

Invariants: every path of either version appears once, in path order, with what happened
to it (added, removed, changed, same); a file that is not UTF-8 text is compared by its
bytes and never shown; a diff is cut at MAX_DIFF_LINES lines and says so.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

MAX_DIFF_LINES = 2000

Change = Literal["added", "removed", "changed", "same"]


@dataclass
class FileDiff:
    """One path's change between two versions; `lines` is its unified diff (text files)."""

    path: str
    change: Change
    binary: bool = False
    lines: list[str] = field(default_factory=list)
    truncated: bool = False


def _text(data: bytes | None) -> list[str] | None:
    """The file's lines, or None when it is not UTF-8 text."""
    if data is None:
        return []
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None


def file_diffs(
    old: dict[str, bytes], new: dict[str, bytes], old_label: str, new_label: str
) -> list[FileDiff]:
    """Every path of `old` and `new` (path -> bytes) with its change and unified diff."""
    out: list[FileDiff] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        change: Change = "added" if a is None else "removed" if b is None else "changed" if a != b else "same"
        diff = FileDiff(path, change)
        if change != "same":
            before, after = _text(a), _text(b)
            if before is None or after is None:
                diff.binary = True
            else:
                lines = list(
                    difflib.unified_diff(
                        before, after, f"{old_label}/{path}", f"{new_label}/{path}", lineterm=""
                    )
                )
                diff.truncated = len(lines) > MAX_DIFF_LINES
                diff.lines = lines[:MAX_DIFF_LINES]
        out.append(diff)
    return out
