"""Which tier a skill is in, said in one place until the registry records it.

A skill with no code is *instructions only*: an agent reads its SKILL.md; nothing of it
runs, so there is nothing to gate or build. A skill with code is *verified* once its gate
passed: only then does it run, and only then does the proxy offer it as a tool.

Until the registry's own ``tier`` field lands, "no code" is ``not pkg.code_files``
(runtime/package.py) and an instructions-only package is registered here without a gate,
its gate summary saying so (``INSTRUCTIONS_ONLY``). Everything that learns, merges or
serves skills asks this module, so switching to the recorded tier changes this file only.

Invariant: a package with code is registered only through ``Yard.add_package`` (its gate);
this module never registers code without one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from .records import GateSummary

if TYPE_CHECKING:
    from .package import SkillPackage
    from .records import SkillRecord
    from .yard import AddOutcome, Yard

log = structlog.get_logger(__name__)

INSTRUCTIONS_ONLY = "instructions only: no code to gate or run"


def instructions_only(pkg: SkillPackage) -> bool:
    """Whether the package holds no code (an agent only reads it)."""
    return not pkg.code_files


def tier(pkg: SkillPackage) -> str:
    """ "instructions" or "code"."""
    return "instructions" if instructions_only(pkg) else "code"


def verified(record: SkillRecord, pkg: SkillPackage) -> bool:
    """Whether the version runs: registered, with code and an entrypoint, and a gate that ran
    its tests and passed."""
    return (
        record.status == "registered"
        and not instructions_only(pkg)
        and bool(pkg.config.entrypoint)
        and record.gate.passed
        and record.gate.tests > 0
    )


def register(yard: Yard, pkg: SkillPackage, *, frozen_tests: frozenset[str] | None = None) -> AddOutcome:
    """Record `pkg` as a new version of its skill: code through the gate (Yard.add_package,
    `frozen_tests` deciding), instructions with none. Content recorded before is
    "unchanged"."""
    if not instructions_only(pkg):
        return yard.add_package(pkg, frozen_tests=frozen_tests)
    from .yard import AddOutcome

    started = time.monotonic()
    existing = yard.registry.find(pkg.name, pkg.content_hash)
    if existing is not None:
        return AddOutcome(pkg.name, "unchanged", version=existing.version, reasons=[INSTRUCTIONS_ONLY])
    gate = GateSummary(
        passed=True, tests=0, failures=0, errors=0, skipped=0, coverage=None, duration_s=0.0, reasons=[]
    )
    record = yard.registry.add_version(
        name=pkg.name,
        content_hash=pkg.content_hash,
        status="registered",
        description=pkg.description,
        tags=pkg.config.tags,
        instructions=pkg.instructions,
        gate=gate,
        gate_report={"passed": True, "tier": "instructions", "reasons": [INSTRUCTIONS_ONLY]},
        package=pkg.to_archive(),
    )
    log.info("skill_registered_instructions_only", skill=pkg.name, version=record.version)
    return AddOutcome(
        pkg.name,
        "registered",
        version=record.version,
        reasons=[INSTRUCTIONS_ONLY],
        duration_s=time.monotonic() - started,
    )
