"""A skill's files beside the store, in ``<home>/skills/<name>/``: its ``.memory.md``
notes (runtime.notes) and the last failing inputs of its calls, which the fixer replays
to check a fix. Per yard: a tenant's calls of a shared skill write to its own view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import notes
from .calls import CallError
from .package import MEMORY_FILE

FAILURES_FILE = "failures.jsonl"
ATTEMPTS_FILE = "fix-attempts"
MAX_FAILED_INPUTS = 20
MAX_FAILED_INPUT_CHARS = 16_384  # bigger inputs are not kept: replaying them is not worth the disk


class Workspace:
    """The workspace folder `path` of one skill."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def notes_path(self) -> Path:
        """The skill's .memory.md."""
        return self.path / MEMORY_FILE

    def notes(self) -> str:
        """The .memory.md text ("" if there is none)."""
        path = self.notes_path
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def add_note(self, kind: str, text: str) -> None:
        """Add (or merge) a dated note."""
        notes.add_entry(self.notes_path, kind, text)

    def seed_notes(self, text: str | None) -> None:
        """Start the notes with a package's own .memory.md, unless there are notes already."""
        if text and not self.notes_path.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self.notes_path.write_text(text)

    def remember_failed_input(self, params: Any, error: CallError) -> None:
        """Keep the last few failing inputs (small ones) so a fix can be checked against them."""
        text = json.dumps(params, ensure_ascii=False)
        if len(text) > MAX_FAILED_INPUT_CHARS:
            return
        path = self.path / FAILURES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines() if path.exists() else []
        lines.append(json.dumps({"input": params, "kind": error.kind, "message": error.message[:300]}))
        path.write_text("\n".join(lines[-MAX_FAILED_INPUTS:]) + "\n")

    def failed_inputs(self) -> list[Any]:
        """The failing inputs kept, oldest first."""
        path = self.path / FAILURES_FILE
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line)["input"])
            except (ValueError, KeyError):
                continue
        return out

    def next_attempts(self, count: int) -> int:
        """Reserve `count` fix attempt numbers; returns the first. Numbers continue across fix
        runs, so "attempt 4" in the notes and the ledger is never a second attempt 1."""
        path = self.path / ATTEMPTS_FILE
        try:
            done = int(path.read_text().strip() or 0)
        except (OSError, ValueError):
            done = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{done + count}\n")
        tmp.replace(path)
        return done + 1

    def attempts_used(self, used: int, reserved: int, first: int) -> None:
        """Give back numbers reserved but not used (a run that stopped early)."""
        path = self.path / ATTEMPTS_FILE
        try:
            if int(path.read_text().strip() or 0) == first + reserved - 1:
                path.write_text(f"{first + used - 1}\n")
        except (OSError, ValueError):
            pass
