"""Merging two registered skills into one: what ``skillyard maintain --apply`` does with the
overlaps runtime/maintain.py finds.

The model writes one new version of the skill to keep (the *survivor*) that does what both
did. Its tests are frozen, and they are the **union of both skills' tests**: the survivor's
``tests/`` tree as it is, plus the absorbed skill's (a test module whose file name the
survivor already uses is renamed ``test_<absorbed>_...``, since pytest needs distinct
module names; two different data files at one path cannot both be kept, and refuse the
merge). The merged version registers only if the gate passes on all of them (runtime/gate.py,
``frozen``): a merge whose code fails either suite is refused, and nothing else changes --
the survivor's current version stays current, the absorbed skill stays registered (the
blocked attempt is kept in the survivor's history, as every gated version is).

Once the merged version is registered, the absorbed skill is retired with a pointer to the
survivor (Registry.retire_into): calls, exports and tenants' look-ups of its name run the
survivor. Every request the merge made is one ledger row of purpose ``merge``, on the
survivor. The SKILL.md's ``metadata.version`` patch number is bumped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog

from . import notes, tiers
from .errors import FixError, SkillError
from .fixer import FORMAT_RULES, FixAnswer, Fixer, apply_edits, file_sections, fit_sections
from .learning import bump_patch, semver_of, skill_md
from .package import PackageError, SkillPackage, package_from_files
from .workspace import Workspace

if TYPE_CHECKING:
    from .llm import LLM
    from .yard import Yard

log = structlog.get_logger(__name__)

DEFAULT_ATTEMPTS = 2
MERGE_BUDGET = 24_000  # prompt tokens

MERGE_SYSTEM = f"""You merge two overlapping skills of skillyard, a runtime that runs agent
skills in sandboxes and registers a skill only when its tests pass in a container.
{FORMAT_RULES}
You get both skills' files. Write ONE skill, named as the skill to keep, that does everything
both did. The tests of BOTH skills are frozen and must all pass against your code: keep every
module path and function the tests import working (a test of the absorbed skill may import a
module the kept skill does not have: keep that module). Never change, add or delete anything
under tests/. Merge the SKILL.md descriptions and instructions into one.
Answer with ONE JSON object and nothing else:
{{"files": [{{"path": "scripts/x.py", "content": "<the whole new file>"}}],
 "explanation": "<one or two sentences>"}}
Give whole files only for files you change or add (SKILL.md, skillyard.yaml, scripts/...)."""


@dataclass
class MergeOutcome:
    """What merging `absorbed` into `survivor` came to: merged (a new version, the absorbed
    skill retired), refused (the gate blocked every attempt), or skipped (not mergeable)."""

    survivor: str
    absorbed: str
    status: str  # merged, refused, skipped
    version: int | None = None
    reasons: list[str] = field(default_factory=list)
    tokens: int = 0
    tests: list[str] = field(default_factory=list)  # the frozen union
    renamed: dict[str, str] = field(default_factory=dict)  # absorbed test file -> its path in the merge
    attempts: int = 0
    semver: str | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "survivor": self.survivor,
            "absorbed": self.absorbed,
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
            "tokens": self.tokens,
            "tests": self.tests,
            "renamed": self.renamed,
            "attempts": self.attempts,
            "semver": self.semver,
            "duration_s": round(self.duration_s, 3),
        }


def union_tests(survivor: SkillPackage, absorbed: SkillPackage) -> tuple[dict[str, bytes], dict[str, str]]:
    """The absorbed skill's tests/ files as they join the survivor's: (files by their path in
    the merge, renames). SkillError when both hold different data at one path."""
    taken = {rel for rel in survivor.files if rel.startswith("tests/")}
    taken_modules = {PurePosixPath(rel).name for rel in taken if rel.endswith(".py")}
    prefix = absorbed.name.replace("-", "_")
    joined: dict[str, bytes] = {}
    renamed: dict[str, str] = {}
    for rel, data in sorted(absorbed.files.items()):
        if not rel.startswith("tests/"):
            continue
        if survivor.files.get(rel) == data:
            continue  # the very same file: once is enough
        path = PurePosixPath(rel)
        is_test_module = path.suffix == ".py" and path.name != "conftest.py" and path.name != "__init__.py"
        if is_test_module and path.name in taken_modules:
            new = path.with_name(f"test_{prefix}_{path.name.removeprefix('test_')}").as_posix()
            if new in taken or new in joined:
                raise SkillError(
                    f"cannot merge: {rel} of {absorbed.name} has no free name in {survivor.name}"
                )
            renamed[rel] = new
            joined[new] = data
            continue
        if rel in taken:
            raise SkillError(
                f"cannot merge {absorbed.name} into {survivor.name}: both have {rel}, with different "
                "content; the frozen tests need both"
            )
        joined[rel] = data
    return joined, renamed


class Merger:
    """Merges registered skills of one yard (see the module docstring)."""

    def __init__(self, yard: Yard, llm: LLM | None = None, *, budget: int = MERGE_BUDGET) -> None:
        self.yard = yard
        self.fixer = Fixer(yard, llm, budget=budget)  # its ledgered, structured requests
        self.budget = budget

    def merge(self, survivor: str, absorbed: str, *, max_attempts: int = DEFAULT_ATTEMPTS) -> MergeOutcome:
        """Merge `absorbed` into `survivor`: a new version of the survivor whose frozen tests
        are both skills' tests, registered only if they all pass; then the absorbed skill is
        retired into the survivor."""
        started = time.monotonic()
        out = MergeOutcome(survivor, absorbed, "skipped")
        keep, gone = self.yard.record(survivor), self.yard.record(absorbed)
        if survivor == absorbed or keep.status != "registered" or gone.status != "registered":
            out.reasons = [
                f"both must be registered and distinct ({survivor}: {keep.status}, {absorbed}: {gone.status})"
            ]
            return out
        kept_pkg = self.yard.package(keep.name, keep.version)
        gone_pkg = self.yard.package(gone.name, gone.version)
        try:
            joined, out.renamed = union_tests(kept_pkg, gone_pkg)
        except SkillError as exc:
            out.reasons = [str(exc)]
            return out
        base_files = {**kept_pkg.files, **joined}
        frozen = frozenset(rel for rel in base_files if rel.startswith("tests/"))
        out.tests = sorted(rel for rel in frozen if rel.endswith(".py"))
        base = package_from_files(keep.name, base_files, kept_pkg.executable)
        self.yard.progress(
            f"merge: {absorbed} into {survivor} ({len(out.tests)} frozen test files from both skills)"
        )
        feedback: list[str] = []
        wanted = bump_patch(semver_of(kept_pkg))
        holder: dict[str, SkillPackage] = {}

        def validate(answer: FixAnswer) -> None:
            holder["pkg"] = self._candidate(base, answer, frozen, wanted)

        for attempt in range(1, max_attempts + 1):
            out.attempts = attempt
            messages = self._prompt(base, gone_pkg, feedback)
            holder.clear()

            try:
                answer, spent, pending = self.fixer.ask(
                    messages,
                    FixAnswer,
                    skill=keep.name,
                    version=keep.version,
                    purpose="merge",
                    validate=validate,
                )
            except FixError as exc:
                out.status, out.reasons = "refused", [str(exc)]
                break
            out.tokens += spent
            candidate = holder["pkg"]
            self.yard.progress(f"merge: gating {survivor} against both test suites (attempt {attempt})")
            added = tiers.register(self.yard, candidate, frozen_tests=frozen if frozen else None)
            pending.finish("ok", f"v{added.version} {added.status}" if added.version else added.status)
            out.version, out.reasons = added.version, list(added.reasons)
            if added.status == "registered" or (
                added.status == "unchanged" and self._current(keep.name, added.version)
            ):
                self._retire(out, keep.name, gone.name, added.version, answer.explanation)
                out.semver = semver_of(candidate)
                break
            out.status = "refused"
            feedback.append(f"attempt {attempt} was blocked: {notes.shorten('; '.join(added.reasons), 800)}")
        out.duration_s = time.monotonic() - started
        if out.status == "refused":
            Workspace(self.yard.workspace(survivor)).add_note(
                "merge", f"merging {absorbed} refused: {notes.shorten('; '.join(out.reasons), 200)}"
            )
            log.info("merge_refused", survivor=survivor, absorbed=absorbed, reasons=out.reasons[:3])
        return out

    def _current(self, name: str, version: int | None) -> bool:
        rec = self.yard.registry.get(name)
        return rec is not None and rec.version == version and rec.status == "registered"

    def _retire(self, out: MergeOutcome, survivor: str, absorbed: str, version: int | None, why: str) -> None:
        reason = f"merged into {survivor} v{version}"
        self.yard.registry.retire_into(absorbed, survivor, reason=reason)
        out.status = "merged"
        note = f"v{version} merged {absorbed} in: {why[:150]}" if why else f"v{version} merged {absorbed} in"
        Workspace(self.yard.workspace(survivor)).add_note("merge", note)
        Workspace(self.yard.workspace(absorbed)).add_note("merge", f"retired: {reason}")
        log.info("skills_merged", survivor=survivor, absorbed=absorbed, version=version)

    def _prompt(
        self, base: SkillPackage, absorbed: SkillPackage, feedback: list[str]
    ) -> list[dict[str, str]]:
        sections = file_sections(base)
        for section in file_sections(absorbed):
            if section.title.startswith("File tests/"):
                continue  # they are in the base already, under their merged paths
            section.title = section.title.replace("File ", f"File of {absorbed.name} (absorbed): ", 1)
            sections.append(section)
        body, _ = fit_sections(sections, self.budget, self.fixer.llm.model)
        head = (
            f"Merge the skill `{absorbed.name}` into `{base.name}` (keep the name `{base.name}`). "
            f"The tests/ files below are both skills' tests, frozen.\n"
        )
        if feedback:
            head += "\n## About your previous answers\n" + "\n".join(f"- {f}" for f in feedback) + "\n"
        return [{"role": "system", "content": MERGE_SYSTEM}, {"role": "user", "content": f"{head}\n{body}"}]

    def _candidate(
        self, base: SkillPackage, answer: FixAnswer, frozen: frozenset[str], semver: str
    ) -> SkillPackage:
        """The merged package from an answer (ValueError says what is wrong: one retry)."""
        files, refused = apply_edits(base, answer.files, allow_test_edits=False, frozen=frozen)
        if refused:
            raise ValueError(f"refused: {'; '.join(refused)} (both skills' tests are frozen)")
        try:
            pkg = package_from_files(base.name, files, base.executable)
        except PackageError as exc:
            raise ValueError(f"the merged skill is not a valid package: {exc}") from exc
        # The skill's own version: the survivor's patch number bumped, whatever the answer said.
        metadata = {**{k: v for k, v in pkg.meta.metadata.items() if isinstance(v, str)}, "version": semver}
        files["SKILL.md"] = skill_md(pkg.name, pkg.description, pkg.instructions, metadata, pkg).encode()
        try:
            return package_from_files(base.name, files, base.executable)
        except PackageError as exc:
            raise ValueError(f"the merged skill is not a valid package: {exc}") from exc
