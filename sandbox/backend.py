"""The one small interface every sandbox backend implements (think httpx transports).

A backend takes a `RunSpec` and returns a `RunResult`. The Docker backend is the real
one; others (gVisor through Docker's runtime option, a distributed engine) plug in here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from .limits import Limits
from .result import RunResult

WORKDIR = "/tmp/work"
CHANNEL_MAX_MESSAGE = 32 * 1024 * 1024


@dataclass
class RunSpec:
    """One program to run in a fresh, isolated container."""

    image: str
    argv: list[str]
    limits: Limits = field(default_factory=Limits)
    files: dict[str, bytes] = field(default_factory=dict)  # absolute path (inside a tmpfs dir) -> content
    stdin: bytes = b""
    env: dict[str, str] = field(
        default_factory=dict
    )  # exactly what the program sees; the host's env never leaks
    cwd: str = WORKDIR
    collect: list[str] = field(default_factory=list)  # files to read back after the program ends
    owner: str = "sandbox"  # label naming who made the container (gc uses it)
    tenant: str = ""  # warm pools never let one container serve two tenants
    labels: dict[str, str] = field(default_factory=dict)
    # The program reads all of its stdin before it does anything that belongs to the call (it
    # opens none of `files` first, prints nothing the caller relies on). Then a warm container
    # may start the next call's process early, after the previous call was answered and the
    # writable dirs wiped, and leave it blocked on stdin: start-up cost leaves the call's path.
    # Each call still runs in its own, fresh process.
    prestart: bool = False
    # The program is a fork server (sandbox/forkserver.py): a warm container starts it once and
    # it forks a fresh child per call; every call still runs in its own new process, a copy of
    # a parent that never ran a call. Implies what `prestart` promises. Ignored by one-shot runs.
    fork_server: bool = False
    # A live duplex channel while the program runs (one-shot runs only): the program gets a
    # socket (fd 3, SANDBOX_CHANNEL_FD) and writes messages framed as b"<length>\n<bytes>";
    # each one is passed to this handler on the host, whose answer goes back framed the same
    # way. Messages come from untrusted code: the handler must validate them. The host
    # refuses messages over CHANNEL_MAX_MESSAGE bytes by ending the run.
    channel: Callable[[bytes], bytes] | None = None
    # Live output: the supervisor also sends the output it keeps (within the caps) as it
    # arrives, and each chunk is passed to this handler on the host as ("stdout"|"stderr",
    # bytes), in order, before the run's result. The result still holds the whole kept output.
    on_output: Callable[[str, bytes], None] | None = None
    # Collected files must really lie inside this directory: a path that reaches outside it
    # through a symlinked folder counts as missing (None: any path, final symlinks refused).
    collect_root: str | None = None

    def validate(self) -> None:
        """ValueError unless the spec is runnable as asked: absolute paths, files and cwd
        inside a writable tmpfs dir, argv not empty, sane environment names."""
        if not self.argv:
            raise ValueError("argv must not be empty")
        writable = tuple(p.rstrip("/") + "/" for p in self.limits.tmpfs)
        for path in [*self.files, *self.collect, self.cwd + "/"]:
            if not path.startswith("/") or ".." in path.split("/"):
                raise ValueError(f"{path!r}: paths must be absolute with no '..'")
        if not (self.cwd.rstrip("/") + "/").startswith(writable):
            raise ValueError(
                f"cwd {self.cwd!r} must be inside a writable tmpfs dir {sorted(self.limits.tmpfs)}"
            )
        for path in self.files:
            if not path.startswith(writable):
                raise ValueError(
                    f"{path!r}: files can only be placed in a writable tmpfs dir {sorted(self.limits.tmpfs)}"
                )
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"bad environment variable name {key!r}")


class Backend(abc.ABC):
    """Runs programs in isolation. Implementations must never leave a container behind."""

    name: str = "abstract"

    @abc.abstractmethod
    def run(self, spec: RunSpec) -> RunResult:
        """Run `spec` in isolation and return what it did (a sandbox failure is in
        `RunResult.error`, or a SandboxError when the engine cannot be reached)."""

    @abc.abstractmethod
    def gc(self, *, everything: bool = False) -> list[str]:
        """Remove what crashed runs left behind; return the ids removed."""

    @abc.abstractmethod
    def info(self) -> dict[str, object]:
        """Facts for `skillyard doctor`: engine version, runtimes, and so on."""

    @abc.abstractmethod
    def managed_containers(self) -> list[dict[str, object]]:
        """Every container this backend's kind made that still exists, of any process
        (`skillyard doctor` counts them; `gc(everything=True)` removes them)."""

    @abc.abstractmethod
    def orphans(self) -> list[dict[str, object]]:
        """The managed containers whose process is gone: what `gc()` removes."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most backends hold nothing
        """Release what the backend holds (background removals, warm containers)."""
