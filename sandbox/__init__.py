"""Isolation only: limits, backends, results. Knows nothing about skills."""

from .backend import WORKDIR, Backend, ImageMissing, RunSpec, SandboxError
from .limits import Limits, format_size, parse_size
from .result import RunResult
from .sandbox import Sandbox

__all__ = [
    "WORKDIR",
    "Backend",
    "ImageMissing",
    "Limits",
    "RunResult",
    "RunSpec",
    "Sandbox",
    "SandboxError",
    "format_size",
    "parse_size",
]
