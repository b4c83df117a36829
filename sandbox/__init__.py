"""Isolation only: limits, backends, results. Knows nothing about skills.

The high-level entry point is :class:`Sandbox`; a :class:`Backend` does the work (Docker
in production, :class:`sandbox.testing.ScriptedBackend` in tests that need no engine).
"""

from .backend import WORKDIR, Backend, RunSpec
from .errors import ClusterUnavailable, ImageMissing, SandboxError, SkillyardError, WheelMissing
from .limits import Limits, format_size, parse_size
from .result import RunResult
from .sandbox import Sandbox

__all__ = [
    "WORKDIR",
    "Backend",
    "ClusterUnavailable",
    "ImageMissing",
    "Limits",
    "RunResult",
    "RunSpec",
    "Sandbox",
    "SandboxError",
    "SkillyardError",
    "WheelMissing",
    "format_size",
    "parse_size",
]
