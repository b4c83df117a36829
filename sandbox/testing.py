"""A backend that runs nothing: each run is answered by a script, as httpx's MockTransport
answers requests. For tests of the code above the sandbox (the lifecycle, the surfaces)
that need a run's *result*, not its isolation: they run without a container engine.

    backend = ScriptedBackend(lambda spec: RunResult(exit_code=0, stdout=b"hi\\n"))
    Sandbox(backend, image="any").run(["echo", "hi"]).stdout  # b"hi\\n"
    backend.specs[0].argv  # ["echo", "hi"]

Invariant: a spec is validated exactly as the real backends validate it before it is
answered, so code that builds an invalid spec fails here too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from .backend import Backend, RunSpec
from .errors import SandboxError
from .result import RunResult

Handler = Callable[[RunSpec], RunResult]


class ScriptedBackend(Backend):
    """Answers each run with `handler(spec)`, or else with the next of `results`.

    Every spec it was given is kept, in order, in `specs`. With neither a handler nor a
    result left, a run fails as an engine failure would (SandboxError), naming the argv.
    """

    name = "scripted"

    def __init__(self, handler: Handler | None = None, results: Iterable[RunResult] = ()) -> None:
        self.handler = handler
        self.results: deque[RunResult] = deque(results)
        self.specs: list[RunSpec] = []
        self.closed = False

    def run(self, spec: RunSpec) -> RunResult:
        spec.validate()
        self.specs.append(spec)
        if self.handler is not None:
            return self.handler(spec)
        if not self.results:
            raise SandboxError(f"the scripted backend has no result left for {spec.argv[:3]!r}")
        return self.results.popleft()

    def gc(self, *, everything: bool = False) -> list[str]:
        return []

    def info(self) -> dict[str, object]:
        return {"engine": "scripted", "api": "-", "storage": "-", "cgroup": "-", "runtimes": []}

    def managed_containers(self) -> list[dict[str, object]]:
        return []

    def orphans(self) -> list[dict[str, object]]:
        return []

    def close(self) -> None:
        self.closed = True
