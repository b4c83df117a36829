"""Resource and isolation limits for one sandboxed run.

Defaults are strict: callers change them explicitly (`Limits.replace`). Sizes accept ints (bytes) or
strings such as "64m", "1g", "512k".
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: int | str) -> int:
    """Parse "64m"-style sizes to bytes; ints pass through."""
    if isinstance(value, bool):
        raise ValueError("size must be a number of bytes or a string like '64m'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must be >= 0")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"cannot parse size {value!r}; use bytes or a suffix k, m, g (e.g. '64m')")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n: int) -> str:
    """Bytes as the largest exact unit: 67108864 -> "64m", 1000 -> "1000"."""
    for unit, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _round_up_m(n: int) -> str:
    return f"{-(-n // 1024**2)}m"


class Limits(BaseModel):
    """What one run may use. Every field has a strict default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The kernel's CFS quota floor is 1 ms per 100 ms period: below 0.01 the engine refuses the run.
    cpus: float = Field(default=1.0, ge=0.01, le=64, description="CPU quota in cores (cgroup CFS).")
    memory: int = Field(
        default=256 * 1024**2, description="Memory limit in bytes; swap is off (memswap = memory)."
    )
    pids: int = Field(default=64, ge=4, le=32768, description="Maximum tasks (processes + threads).")
    timeout: float = Field(
        default=10.0, gt=0, le=86400, description="Wall-clock seconds before the run is killed."
    )
    max_stdout: int = Field(
        default=1024**2, ge=0, description="Bytes of stdout kept; the rest is counted and dropped."
    )
    max_stderr: int = Field(default=1024**2, ge=0, description="Bytes of stderr kept.")
    max_file_size: int = Field(
        default=16 * 1024**2, ge=1024, description="RLIMIT_FSIZE: largest file a process may write."
    )
    nofile: int = Field(default=256, ge=16, le=65536, description="RLIMIT_NOFILE: open file descriptors.")
    tmpfs: dict[str, int] = Field(
        default_factory=lambda: {"/tmp": 64 * 1024**2},
        description="Writable directories (tmpfs) and their sizes; everything else is read-only.",
    )
    max_collect: int = Field(default=8 * 1024**2, ge=0, description="Bytes read back per collected file.")
    shm_size: int = Field(
        default=8 * 1024**2,
        ge=1024**2,
        description="Size of /dev/shm (POSIX shared memory, "
        "needed by multiprocessing); writable like the tmpfs dirs and counted against memory.",
    )
    network: Literal["none", "bridge"] = Field(
        default="none", description="'none' = no interface but loopback."
    )
    user: str = Field(default="65534:65534", description="uid:gid inside the container; never root.")
    runtime: str | None = Field(
        default=None, description="OCI runtime (e.g. 'runsc' for gVisor); None = engine default."
    )
    seccomp: Literal["strict", "engine-default"] = Field(
        default="strict",
        description="'strict' stacks skillyard's denylist (sandbox/seccomp.py) on the engine's profile.",
    )

    @field_validator(
        "memory", "max_stdout", "max_stderr", "max_file_size", "max_collect", "shm_size", mode="before"
    )
    @classmethod
    def _size(cls, v: int | str) -> int:
        return parse_size(v)

    @field_validator("memory")
    @classmethod
    def _memory_floor(cls, v: int) -> int:
        # The engine refuses under 6m; the supervisor (PID 1, Python) is OOM-killed under 8m.
        if v < 8 * 1024**2:
            raise ValueError(
                "memory must be at least 8m (the sandbox's supervisor needs that; Python programs 10m)"
            )
        return v

    @field_validator("tmpfs", mode="before")
    @classmethod
    def _tmpfs(cls, v: dict[str, int | str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for path, size in dict(v).items():
            if not path.startswith("/") or ".." in path.split("/") or path == "/":
                raise ValueError(f"tmpfs path {path!r} must be an absolute path below /")
            out[path] = parse_size(size)
        if not out:
            raise ValueError("at least one writable tmpfs directory is needed (e.g. /tmp)")
        return out

    @field_validator("user")
    @classmethod
    def _non_root(cls, v: str) -> str:
        uid, sep, gid = v.partition(":")
        if not uid.isdigit() or not sep or not gid.isdigit():
            raise ValueError("user must be numeric 'uid:gid'")
        if int(uid) == 0 or (gid and int(gid) == 0):
            raise ValueError("containers never run as root (uid or gid 0)")
        return v

    @model_validator(mode="after")
    def _output_fits_in_memory(self) -> Limits:
        # The kept output waits in the container's own memory until the run ends: the supervisor
        # holds it raw and then as base64 (~2.3x at the peak). Caps it cannot hold would end in an
        # OOM kill that looks like the program's fault, so they are refused here.
        need = (self.max_stdout + self.max_stderr) * 5 // 2
        if need > self.memory:
            raise ValueError(
                f"output caps {format_size(self.max_stdout)} + {format_size(self.max_stderr)} need "
                f"about {_round_up_m(need)} of the run's memory to come back, and memory is "
                f"{format_size(self.memory)}: raise memory or lower the output caps"
            )
        return self

    def replace(self, **changes: object) -> Limits:
        """A copy with the given fields changed (None leaves a field as it is), validated
        like the original. It may loosen or tighten: a skill's own limits do either."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return Limits.model_validate(data)

    def describe(self) -> dict[str, object]:
        """The limits as people read them (sizes as "64m"): for results, reports and logs."""
        return {
            "cpus": self.cpus,
            "memory": format_size(self.memory),
            "pids": self.pids,
            "timeout_s": self.timeout,
            "max_stdout": format_size(self.max_stdout),
            "max_stderr": format_size(self.max_stderr),
            "max_file_size": format_size(self.max_file_size),
            "nofile": self.nofile,
            "tmpfs": {k: format_size(v) for k, v in self.tmpfs.items()},
            "network": self.network,
            "user": self.user,
            "runtime": self.runtime or "default",
            "seccomp": self.seccomp,
        }
