"""What a sandboxed run produced. Plain dataclasses: these live inside the program."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


@dataclass
class RunResult:
    """What one sandboxed run produced: the program's outcome, or `error` when the
    sandbox itself failed (then the program's fields say nothing)."""

    exit_code: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_bytes: int = 0  # total produced, including what was dropped
    stderr_bytes: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    signal: int | None = None  # the signal that ended the program, if any
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # collected files that existed
    missing_files: list[str] = field(default_factory=list)
    truncated_files: list[str] = field(default_factory=list)  # collected, but longer than max_collect
    error: str | None = (
        None  # a sandbox-level failure (engine gone, supervisor died): not the program's fault
    )
    container_id: str | None = None
    prestarted: bool = (
        False  # served by a process a warm container started before the call (RunSpec.prestart)
    )

    @property
    def truncated(self) -> bool:
        """Whether any output was dropped at the source (stdout or stderr over its cap)."""
        return self.stdout_truncated or self.stderr_truncated

    @property
    def ok(self) -> bool:
        """The program ran and exited 0, within its limits."""
        return self.error is None and not self.timed_out and not self.oom_killed and self.exit_code == 0

    def to_json(self, *, binary: bool = False) -> dict[str, object]:
        """A JSON-safe dict. Text is decoded with replacement; `binary=True` adds base64 copies."""
        out: dict[str, object] = {
            "exit_code": self.exit_code,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "truncated": self.truncated,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "signal": self.signal,
            "duration_ms": round(self.duration_s * 1000, 1),
            "peak_memory_bytes": self.peak_memory_bytes,
            "error": self.error,
        }
        if binary:
            out["stdout_b64"] = base64.b64encode(self.stdout).decode()
            out["stderr_b64"] = base64.b64encode(self.stderr).decode()
        return out
