"""Test doubles for code above the sandbox, as sandbox.testing.ScriptedBackend is for code
above a backend: a yard whose skills are host Python functions, with no engine.

    backend = ScriptedBackend(skill_calls({"echo": lambda params: {"echo": params["text"]}}))
    yard = Yard(settings, sandbox=Sandbox(backend), images=PrebuiltImages(), pool=False)
    register(yard, {"SKILL.md": ..., "skillyard.yaml": ...})
    yard.run("echo", {"text": "hi"}).output  # {"echo": "hi"}

What these do not do is the point of the real ones: build images, isolate, run a gate.
Use them where a test is about what happens around a run, never about the run itself.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from sandbox import RunResult, RunSpec
from sandbox.images import ImageSet
from sandbox.testing import Handler

from .calls import OUT_FILE
from .harness import datacodec
from .package import SkillPackage, pack_files, package_from_files, parse_skill_md
from .records import GateSummary, SkillRecord
from .yard import Yard

PASSED = GateSummary(passed=True, tests=1, failures=0, errors=0, skipped=0, coverage=100.0, duration_s=0.0)


class PrebuiltImages:
    """SkillImages with nothing to build: every image "exists" under a tag derived from
    the package's content hash."""

    runner = "skillyard/runner:prebuilt"

    def ensure(self) -> ImageSet:
        return ImageSet(base="skillyard/base:prebuilt", runner=self.runner)

    def find_base(self) -> str | None:
        return "skillyard/base:prebuilt"

    def current_runner(self) -> str | None:
        return self.runner

    def build(self, pkg: SkillPackage) -> tuple[str, bool]:
        return f"skillyard/skill:{pkg.content_hash[:12]}", False

    def image_for(self, pkg: SkillPackage, *, fresh: bool = False) -> str:
        return self.build(pkg)[0]

    def judge_image(self, pkg: SkillPackage) -> str:
        return self.runner

    def check_family(self, family: str) -> None:
        return None

    def has_family(self, family: str) -> bool:
        return True

    def families(self) -> list[str]:
        return ["python"]

    def family_image(self, family: str) -> str:
        return self.runner

    def session_image(self, pkgs: list[SkillPackage]) -> str:
        return f"skillyard/session:{'-'.join(pkg.content_hash[:6] for pkg in pkgs)}"


def skill_calls(functions: Mapping[str, Callable[[Any], Any]]) -> Handler:
    """A ScriptedBackend handler that answers skill calls as the in-container call runner
    does: `functions[skill](params)`'s return value is the output; an exception it raises
    is the call's error (its type and message, as a skill's exception would be)."""

    def handler(spec: RunSpec) -> RunResult:
        function = functions[spec.labels["skill"]]
        request = json.loads(spec.stdin)  # the runner's envelope: {"module", "function", "args", "kwargs"}
        try:
            params = datacodec.decode(request["args"])[0]
            envelope: dict[str, Any] = {"ok": True, "value": datacodec.encode(function(params))}
        except Exception as exc:  # noqa: BLE001 - a skill's failure, carried out as the runner does
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
                "bases": [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"],
            }
            envelope = {"ok": False, "error": error}
        return RunResult(exit_code=0, files={OUT_FILE: json.dumps(envelope).encode()}, duration_s=0.001)

    return handler


def register(yard: Yard, files: Mapping[str, bytes], *, gate: GateSummary = PASSED) -> SkillRecord:
    """Store the package `files` as a new version of its skill, as if its gate had ended
    with `gate` (registered when it passed, blocked when not). No gate runs."""
    front, _ = parse_skill_md(files["SKILL.md"].decode())
    pkg = package_from_files(str(front.get("name", "")), dict(files))
    return yard.registry.add_version(
        name=pkg.name,
        content_hash=pkg.content_hash,
        status="registered" if gate.passed else "blocked",
        description=pkg.description,
        tags=pkg.config.tags,
        instructions=pkg.instructions,
        gate=gate,
        gate_report={"passed": gate.passed, "reasons": gate.reasons},
        package=pack_files(dict(files)),
    )
