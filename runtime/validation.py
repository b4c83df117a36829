"""Validation before any build: the checks that cost no image, no container and no store.

For each skill folder (runtime/discovery.py finds them) it gives two verdicts and a plan:

- **spec**: the Agent Skills specification, as its reference validator (skills-ref)
  judges SKILL.md and its frontmatter (runtime/package.py `spec_problems`);
- **skillyard**: whether skillyard can take the package at all (the spec, plus the
  package limits, skillyard.yaml, requirements.txt and the ASCII name rule), the same
  load every add does;
- **plan**: what adding it would do: register it as ``instructions`` (no code: no build,
  no gate), gate it (code with tests: the gate decides ``verified`` or ``blocked``), or
  block it now (code without tests, or test code the policy refuses), with the next step.

`Yard.add_package` runs `cheap_block_reasons` before it builds anything, so a package the
cheap checks block never costs an image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings, get_settings
from .discovery import Skipped, find_skills
from .errors import PackageError
from .package import (
    REQUIREMENTS_FILES,
    SKILL_MD,
    SKILL_MD_ALIASES,
    SkillPackage,
    package_from_files,
    read_tree,
    spec_problems,
)
from .policy import check_package

INSTRUCTIONS_NOTE = "instructions only: no executable code, so nothing is built, gated or run"


def no_tests_reason(name: str) -> str:
    """Why code without tests is blocked, and the next step (the gate's own words)."""
    return (
        f"no test files: add tests/test_*.py (`skillyard create --tests-for {name}` has the model "
        "write them; the gate and its mutation check then decide)"
    )


def cheap_block_reasons(pkg: SkillPackage) -> list[str]:
    """Why a package with code would be blocked before any build (no tests; test code or
    file names the policy refuses), or [] if the gate has to decide. [] for instructions."""
    if not pkg.has_code:
        return []
    violations = [f"test policy: {v}" for v in check_package(pkg.files)]
    if violations:
        return violations
    if not pkg.test_files:
        return [no_tests_reason(pkg.name)]
    return []


@dataclass
class Validation:
    """One folder's verdicts (see the module docstring)."""

    path: Path
    name: str
    spec_valid: bool
    spec_problems: list[str] = field(default_factory=list)
    loadable: bool = False
    problems: list[str] = field(default_factory=list)  # why skillyard cannot take it
    plan: str = "rejected"  # instructions, gate, blocked or rejected
    tier: str | None = None  # what adding it gives: instructions, blocked; None: the gate decides
    reasons: list[str] = field(default_factory=list)  # why it would be blocked
    notes: list[str] = field(default_factory=list)  # what was read differently, what was merged
    code_files: list[str] = field(default_factory=list)
    test_files: list[str] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether adding it would not be refused now (rejected or blocked by cheap checks)."""
        return self.plan in ("instructions", "gate")

    @property
    def next_step(self) -> str:
        """What to do next, in one line."""
        if self.plan == "instructions":
            return f"skillyard add {self.path}: registers it as instructions (searchable, never run)"
        if self.plan == "gate":
            return f"skillyard add {self.path}: builds its image and runs its tests; the gate decides"
        if self.plan == "blocked":
            if any(r.startswith("no test files") for r in self.reasons):
                return (
                    f"add tests/test_*.py, or after `skillyard add {self.path}` run "
                    f"`skillyard create --tests-for {self.name}`"
                )
            return "change the files the test policy names, then validate again"
        return "fix the problems listed, then validate again"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "ok": self.ok,
            "spec_valid": self.spec_valid,
            "spec_problems": self.spec_problems,
            "loadable": self.loadable,
            "problems": self.problems,
            "plan": self.plan,
            "tier": self.tier,
            "reasons": self.reasons,
            "notes": self.notes,
            "code_files": self.code_files,
            "test_files": self.test_files,
            "requirements": self.requirements,
            "next_step": self.next_step,
        }


@dataclass
class ValidationReport:
    """Every skill found under a path, validated, and the folders passed over."""

    root: Path
    results: list[Validation] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether at least one skill was found and none would be rejected or blocked now."""
        return bool(self.results) and all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "ok": self.ok,
            "skills": [r.to_dict() for r in self.results],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def validate_folder(path: Path, settings: Settings | None = None) -> Validation:
    """Validate one skill folder: reads its files (within the package limits), builds nothing."""
    settings = settings or get_settings()
    result = Validation(path=path, name=path.name, spec_valid=False)
    try:
        files, executable, memory = read_tree(path, settings)
    except PackageError as exc:
        result.problems = [str(exc)]
        result.spec_problems = spec_problems(path.name, {})
        return result
    result.spec_problems = spec_problems(path.name, files)
    result.spec_valid = not result.spec_problems
    if SKILL_MD not in files and any(alias in files for alias in SKILL_MD_ALIASES):
        result.notes.append("the lower-case skill.md is read as SKILL.md (the one spelling a package keeps)")
    try:
        pkg = package_from_files(path.name, files, executable, memory=memory, source=path)
    except PackageError as exc:
        result.problems = [str(exc)]
        return result
    result.loadable = True
    result.code_files = pkg.executable_code
    result.test_files = pkg.test_files
    result.requirements = list(pkg.config.requirements)
    listed = [rel for rel in REQUIREMENTS_FILES if rel in files]
    if listed:
        reqs = ", ".join(pkg.config.requirements)
        result.notes.append(f"requirements (with {', '.join(listed)}): {reqs}")
    if not pkg.has_code:
        result.plan, result.tier = "instructions", "instructions"
        result.notes.append(INSTRUCTIONS_NOTE)
        return result
    result.reasons = cheap_block_reasons(pkg)
    if result.reasons:
        result.plan, result.tier = "blocked", "blocked"
    else:
        result.plan = "gate"
    return result


def validate_path(path: str | Path, settings: Settings | None = None) -> ValidationReport:
    """Validate the skill at `path`, or every skill under it (runtime/discovery.py). Builds
    nothing, writes nothing. SkillError if `path` is not a folder."""
    found = find_skills(path)
    report = ValidationReport(root=Path(path), skipped=list(found.skipped))
    report.results = [validate_folder(folder, settings) for folder in found.skills]
    return report
