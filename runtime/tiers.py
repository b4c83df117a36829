"""Which tier a skill is in, asked in one place by what learns, merges and serves skills.

A skill with no executable code is *instructions only*: an agent reads its SKILL.md;
nothing of it runs, so there is nothing to gate or build. A skill with code is *verified*
once its gate passed: only then does it run, and only then does the proxy offer it as a
tool. The registry records each version's tier (``SkillRecord.tier``: instructions,
verified or blocked; runtime/records.py), set by ``Yard.add_package`` when the version is
added. A package not yet recorded (a learning candidate) is ``instructions`` or ``code``
by what it holds (``SkillPackage.has_code``, runtime/package.py).

Invariant: every version is registered through ``Yard.add_package``, so a package with code
is never recorded without its gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import INSTRUCTIONS

if TYPE_CHECKING:
    from .package import SkillPackage
    from .records import SkillRecord
    from .yard import AddOutcome, Yard


def instructions_only(pkg: SkillPackage) -> bool:
    """Whether the package holds no executable code (an agent only reads it)."""
    return not pkg.has_code


def tier(pkg: SkillPackage) -> str:
    """What a package is before it is recorded: "instructions" or "code"."""
    return INSTRUCTIONS if instructions_only(pkg) else "code"


def verified(record: SkillRecord, pkg: SkillPackage) -> bool:
    """Whether the version runs: registered in tier verified (code whose gate passed), with
    an entrypoint to call."""
    return record.runnable and bool(pkg.config.entrypoint)


def register(yard: Yard, pkg: SkillPackage, *, frozen_tests: frozenset[str] | None = None) -> AddOutcome:
    """Record `pkg` as a new version of its skill (Yard.add_package): code through the gate,
    `frozen_tests` deciding; instructions with none, in tier instructions. Content recorded
    before is "unchanged"."""
    return yard.add_package(pkg, frozen_tests=frozen_tests)
