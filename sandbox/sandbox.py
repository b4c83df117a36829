"""The high-level entry point: `Sandbox(backend).run(argv, image=..., limits=...)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .backend import WORKDIR, Backend, RunSpec
from .limits import Limits
from .result import RunResult


class Sandbox:
    """Runs programs in isolation through one backend (Docker unless told otherwise)."""

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
    ) -> RunResult:
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
        )
        return self.backend.run(spec)

    def gc(self, *, everything: bool = False) -> list[str]:
        return self.backend.gc(everything=everything)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
