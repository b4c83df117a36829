"""The high-level entry point: `Sandbox(backend).run(argv, image=..., limits=...)`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .backend import WORKDIR, Backend, RunSpec
from .limits import Limits
from .result import RunResult


class Sandbox:
    """Runs programs in isolation through one backend (Docker unless told otherwise).

    `image` and `limits` are defaults for every run; each run may override them. A
    Sandbox holds no containers itself: the backend makes one per run (or lends a warm
    one) and never leaves it behind. Use it as a context manager, or call `close()`,
    to wait for the backend's background clean-up.
    """

    def __init__(
        self, backend: Backend | None = None, *, image: str | None = None, limits: Limits | None = None
    ) -> None:
        if backend is None:
            from .docker_backend import DockerBackend

            backend = DockerBackend()
        self.backend = backend
        self.image = image
        self.limits = limits or Limits()

    def run(
        self,
        argv: Sequence[str],
        *,
        image: str | None = None,
        limits: Limits | None = None,
        files: Mapping[str, bytes] | None = None,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
        cwd: str = WORKDIR,
        collect: Sequence[str] = (),
        owner: str = "sandbox",
        labels: Mapping[str, str] | None = None,
        tenant: str = "",
        prestart: bool = False,
        fork_server: bool = False,
        channel: Callable[[bytes], bytes] | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
        collect_root: str | None = None,
    ) -> RunResult:
        """Run `argv` in a fresh isolated container and return what it did.

        `files` are written (absolute paths inside a writable tmpfs dir) before the program
        starts; `collect` names files read back after it ends; `env` is all the program
        sees of an environment (nothing of the host's). A failure of the program (exit
        code, timeout, OOM kill) is in the result; a failure of the sandbox itself is
        `RunResult.error`, or a SandboxError when the engine cannot be reached at all.
        `tenant` keeps warm containers apart per tenant; `prestart` (see RunSpec) lets a
        warm container start the next call's process early; `on_output` receives live
        output as it arrives; `collect_root` keeps collected files inside one directory (see
        RunSpec).
        """
        image = image or self.image
        if not image:
            raise ValueError("no image given: pass image= or set Sandbox(image=...)")
        spec = RunSpec(
            image=image,
            argv=list(argv),
            limits=limits or self.limits,
            files=dict(files or {}),
            stdin=stdin,
            env=dict(env or {}),
            cwd=cwd,
            collect=list(collect),
            owner=owner,
            labels=dict(labels or {}),
            tenant=tenant,
            prestart=prestart,
            fork_server=fork_server,
            channel=channel,
            on_output=on_output,
            collect_root=collect_root,
        )
        return self.backend.run(spec)

    def gc(self, *, everything: bool = False) -> list[str]:
        """Remove containers that dead processes left behind (all of ours with
        `everything`); returns the ids removed."""
        return self.backend.gc(everything=everything)

    def close(self) -> None:
        """Release the backend (wait for background removals); the Sandbox stays usable."""
        self.backend.close()

    def __enter__(self) -> Sandbox:
        """The Sandbox itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the sandbox (see `close`)."""
        self.close()
