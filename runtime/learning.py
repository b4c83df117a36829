"""Learning skills from experience: a conversation or event records in, at most one skill
version out, and an audited decision either way.

The steps:

1. **Durable signals** (runtime/experience.py): an experience with no preference,
   correction or procedure in it is a one-off request; it is discarded without asking
   the model (no tokens), unless the caller forces extraction (``now``).
2. **Extraction** (one request to the model, a ledger row of purpose ``learn``): it
   proposes at most one candidate skill -- name, description, instructions, the kind of
   lesson, the user's own words as evidence, and code with tests only when the lesson is
   a deterministic computation -- or none. A candidate whose evidence is not in the
   experience was invented and is discarded.
3. **Maintenance**: hybrid search finds the skills like the candidate (runtime/search.py,
   scored as runtime/maintain.py scores overlaps). None close enough: the candidate is
   added. Otherwise the model decides (a second ``learn`` request): **add** it as a new
   skill, **merge** it into one of them as a new version, or **discard** it (already
   known, or not worth keeping).
4. **Recording** (runtime/tiers.py): an instructions-only skill is registered as it is;
   a skill with code registers only if its gate passes (a merge into a code skill keeps
   that skill's tests frozen: new tests may be added, none changed). A merge bumps the
   patch number of the SKILL.md's ``metadata.version`` (0.1.0 for a new skill) and keeps
   every earlier version in the registry.

Invariants: nothing is written in a dry run (the model's tokens are still ledgered:
they were spent); the model's requests are ledgered under a ``(learning-...)``
placeholder and moved to the skill a version was recorded for, so a discard's tokens
stay visible as learning that produced no skill; every decision -- including the ones
made without the model -- is one ``learn`` audit entry with its reason.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field

from . import tiers
from .accounting import best_effort
from .errors import InvalidName
from .experience import Experience, Signal
from .fixer import FORMAT_RULES, FileEdit, Fixer, apply_edits
from .ledger import LEARNING_PREFIX
from .maintain import similarity_to
from .names import validate_name
from .package import PackageError, SkillPackage, package_from_files
from .workspace import Workspace

if TYPE_CHECKING:
    from .audit import AuditLog
    from .llm import LLM
    from .records import SkillRecord
    from .yard import AddOutcome, Yard

log = structlog.get_logger(__name__)

RELATED_FLOOR = 0.55  # overlap score from which an existing skill is shown to the decision
MAX_RELATED = 3
FIRST_VERSION = "0.1.0"
MAX_REASON = 300  # characters of a reason kept in the audit trail
CANDIDATE_PATHS = ("scripts/", "tests/", "skillyard.yaml", "resources/")

Decision = Literal["add", "merge", "discard"]


# -- the model's answers ----------------------------------------------------------------------------
class CandidateAnswer(BaseModel):
    """The skill the extraction proposes."""

    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=1024)
    instructions: str = Field(min_length=1, max_length=20_000)
    kind: Literal["preference", "correction", "procedure"]
    evidence: list[str] = Field(min_length=1, max_length=5)
    tags: list[str] = Field(default_factory=list, max_length=8)
    files: list[FileEdit] = Field(default_factory=list, max_length=20)


class ExtractAnswer(BaseModel):
    """The extraction's answer: at most one skill, and why."""

    model_config = ConfigDict(extra="ignore")
    skill: CandidateAnswer | None = None
    reason: str = Field(default="", max_length=2000)


class DecisionAnswer(BaseModel):
    """The maintenance decision: what to do with the candidate, and the merged skill."""

    model_config = ConfigDict(extra="ignore")
    action: Decision
    target: str | None = None
    reason: str = Field(default="", max_length=2000)
    description: str | None = Field(default=None, max_length=1024)
    instructions: str | None = Field(default=None, max_length=20_000)
    files: list[FileEdit] = Field(default_factory=list, max_length=20)


EXTRACT_SYSTEM = f"""You extract reusable skills from an agent's experience for skillyard, a
runtime that stores skills (SKILL.md instructions, optionally with tested code) and serves them
to agents in later conversations.

Propose AT MOST ONE skill, and only for durable knowledge that will matter again:
- a preference or constraint the user wants applied from now on (format, tone, tools, limits);
- a correction of the assistant that should not have to be repeated;
- a reusable procedure (steps the user taught or approved).
A one-off request (answer this question, do this task once) with no lasting preference,
correction or procedure teaches nothing: answer {{"skill": null, "reason": "..."}}.

Generalise: drop one-off details (names, dates, figures of this case), keep the rule. The
instructions are for an agent: when the skill applies, the rules, and one short example.
evidence: one to three VERBATIM quotes of the user's own words that state the durable rule
(they are checked against the experience; an invented quote discards the skill).
name: 1-64 chars of a-z, 0-9 and single hyphens, saying what the skill is for.
Only when the lesson is a deterministic computation worth running (a conversion, a format
check, a calculation) add code, as files: scripts/FILE.py, tests/test_FILE.py and
skillyard.yaml; never SKILL.md (it is written from name, description and instructions).
{FORMAT_RULES}

Answer with ONE JSON object and nothing else:
{{"skill": {{"name": "...", "description": "what it does and when to use it", "instructions": "...",
 "kind": "preference|correction|procedure", "evidence": ["..."], "tags": ["..."],
 "files": [{{"path": "scripts/x.py", "content": "..."}}]}} or null, "reason": "one sentence"}}"""

DECIDE_SYSTEM = """You maintain a library of agent skills for skillyard. A new candidate skill was
learnt from an experience; similar skills already exist. Decide:
- "merge" into one of them (give its name as "target") when both serve the same job and the
  candidate refines it: an added constraint, a correction, a better procedure. The candidate is
  the more recent lesson: where they conflict, it wins. Give the merged skill's "description"
  and "instructions" in full (keep the existing rules that still hold).
- "add" when the candidate is a different job (another deliverable, audience or purpose).
- "discard" when an existing skill already says everything the candidate says, or the
  candidate is not worth keeping.
For a merge into a skill with code: its tests/ are frozen (never change them; you may add new
test files); give whole files under "files" only for code you change or add.
Answer with ONE JSON object and nothing else:
{"action": "add|merge|discard", "target": "<existing skill name or null>", "reason": "one sentence",
 "description": "... (merge only)", "instructions": "... (merge only)", "files": []}"""


# -- what learning produced --------------------------------------------------------------------------
@dataclass
class Candidate:
    """A candidate skill: its package, and what the extraction said about it."""

    package: SkillPackage
    kind: str
    evidence: list[str]
    reason: str

    @property
    def name(self) -> str:
        """The candidate's skill name."""
        return self.package.name


@dataclass
class Related:
    """An existing skill like the candidate, and how alike (the maintain overlap score)."""

    record: SkillRecord
    score: float
    package: SkillPackage

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "name": self.record.name,
            "version": self.record.version,
            "score": round(self.score, 4),
            "tier": tiers.tier(self.package),
            "semver": semver_of(self.package),
        }


@dataclass
class LearnOutcome:
    """What one learning run decided and did."""

    decision: Decision
    reason: str
    dry_run: bool = False
    skill: str | None = None
    version: int | None = None
    status: str | None = None  # registered, blocked, unchanged, error (a version was attempted)
    tier: str | None = None
    semver: str | None = None
    previous_semver: str | None = None
    merged_into: str | None = None
    kind: str | None = None
    tokens: int = 0
    llm_calls: int = 0
    signals: list[Signal] = field(default_factory=list)
    related: list[Related] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skill_md: str | None = None
    gate: dict[str, Any] | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data (the CLI's --json, the job's result)."""
        return {
            "decision": self.decision,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "skill": self.skill,
            "version": self.version,
            "status": self.status,
            "tier": self.tier,
            "semver": self.semver,
            "previous_semver": self.previous_semver,
            "merged_into": self.merged_into,
            "kind": self.kind,
            "tokens": self.tokens,
            "llm_calls": self.llm_calls,
            "signals": [s.to_dict() for s in self.signals],
            "related": [r.to_dict() for r in self.related],
            "evidence": self.evidence,
            "files": self.files,
            "skill_md": self.skill_md,
            "gate": self.gate,
            "duration_s": round(self.duration_s, 3),
        }


# -- SKILL.md and versions --------------------------------------------------------------------------
def semver_of(pkg: SkillPackage) -> str | None:
    """The skill's own version (SKILL.md ``metadata.version``), if it states one."""
    value = pkg.meta.metadata.get("version")
    return value if isinstance(value, str) and _parse_semver(value) is not None else None


def _parse_semver(value: str) -> tuple[int, int, int] | None:
    parts = value.strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def bump_patch(version: str | None) -> str:
    """The next patch number (a skill that states none counts as 0.1.0)."""
    major, minor, patch = _parse_semver(version or "") or _parse_semver(FIRST_VERSION) or (0, 1, 0)
    return f"{major}.{minor}.{patch + 1}"


def skill_md(
    name: str,
    description: str,
    instructions: str,
    metadata: dict[str, str],
    keep_from: SkillPackage | None = None,
) -> str:
    """A SKILL.md: spec frontmatter (name, description, metadata, and the license,
    compatibility and allowed-tools of `keep_from`, the version it follows) and the
    instructions."""
    front: dict[str, Any] = {"name": name, "description": " ".join(description.split())}
    if keep_from is not None:
        meta = keep_from.meta
        extras = {
            "license": meta.license,
            "compatibility": meta.compatibility,
            "allowed-tools": meta.allowed_tools,
        }
        front.update({k: v for k, v in extras.items() if v is not None})
    front["metadata"] = metadata
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{dumped}---\n{instructions.strip()}\n"


def _files(edits: list[FileEdit]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for edit in edits:
        rel = PurePosixPath(edit.path).as_posix()
        if edit.content is None:
            continue
        if rel == "SKILL.md" or not rel.startswith(CANDIDATE_PATHS) or ".." in PurePosixPath(rel).parts:
            raise ValueError(
                "files may only be under scripts/, tests/, resources/ or skillyard.yaml "
                f"(not {edit.path!r}): SKILL.md is written from name, description and instructions"
            )
        files[rel] = edit.content.encode("utf-8")
    return files


def _check_code(pkg: SkillPackage) -> None:
    """A package with code must be callable and tested: an entrypoint and test files."""
    if tiers.instructions_only(pkg):
        return
    if not pkg.config.entrypoint:
        raise ValueError("code needs skillyard.yaml with `entrypoint: scripts/FILE.py:run`")
    if not pkg.test_files:
        raise ValueError("code needs tests: tests/test_*.py checking exact results")


def _short(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the learner ----------------------------------------------------------------------------------
class Learner:
    """Learns skills from experiences into one yard (see the module docstring).

    `audit` (with `tenant`) receives one ``learn`` entry per decision; `llm` defaults to the
    yard's configured endpoint (LLMUnavailable if there is none, raised only when an
    extraction needs the model)."""

    def __init__(
        self,
        yard: Yard,
        llm: LLM | None = None,
        *,
        audit: AuditLog | None = None,
        tenant: str = "local",
        related_floor: float = RELATED_FLOOR,
    ) -> None:
        self.yard = yard
        self._llm = llm
        self._fixer: Fixer | None = None
        self.audit = audit
        self.tenant = tenant
        self.related_floor = related_floor

    @property
    def fixer(self) -> Fixer:
        """The structured, ledgered requests (made on first need: a discard without the model
        needs no endpoint)."""
        if self._fixer is None:
            self._fixer = Fixer(self.yard, self._llm)
        return self._fixer

    def learn(
        self, experience: Experience, *, dry_run: bool = False, now: bool = False, **context: Any
    ) -> LearnOutcome:
        """Learn from one experience (see the module docstring). `now` sends it to the model
        even without a durable signal; `context` (request_id, job_id, via) goes into the
        audit entry."""
        started = time.monotonic()
        run = _Run(self, experience, dry_run=dry_run, label=f"{LEARNING_PREFIX}-{uuid.uuid4().hex[:8]})")
        try:
            outcome = run.go(now=now)
        except BaseException as exc:
            self._audit(run.partial(), context, error=exc)
            raise
        outcome.duration_s = time.monotonic() - started
        self._audit(outcome, context)
        return outcome

    def _audit(
        self, outcome: LearnOutcome, context: dict[str, Any], error: BaseException | None = None
    ) -> None:
        if self.audit is None:
            return
        from .errors import error_kind

        fields: dict[str, Any] = {
            "tenant": self.tenant,
            "skill": outcome.skill,
            "version": outcome.version,
            "decision": outcome.decision,
            "reason": _short(outcome.reason),
            "status": outcome.status,
            "tier": outcome.tier,
            "semver": outcome.semver,
            "merged_into": outcome.merged_into,
            "tokens": outcome.tokens,
            "dry_run": outcome.dry_run or None,
            "duration_ms": round(outcome.duration_s * 1000, 1),
            **context,
        }
        if error is not None:  # no decision was made: the entry says how far the run got
            fields.update(outcome="error", error=error_kind(error), decision=None)
        else:
            fields["outcome"] = "dry_run" if outcome.dry_run else outcome.decision
        self.audit.record("learn", **fields)


class _Run:
    """One learning run's state: the ledger label its requests go under, what was spent."""

    def __init__(self, learner: Learner, experience: Experience, *, dry_run: bool, label: str) -> None:
        self.learner = learner
        self.yard = learner.yard
        self.experience = experience
        self.dry_run = dry_run
        self.label = label
        self.ids: list[str | None] = []
        self.tokens = 0
        self.signals: list[Signal] = []
        self.candidate: Candidate | None = None

    def progress(self, message: str) -> None:
        self.yard.progress(f"learn: {message}")

    def outcome(self, decision: Decision, reason: str, **fields: Any) -> LearnOutcome:
        return LearnOutcome(
            decision=decision,
            reason=reason,
            dry_run=self.dry_run,
            tokens=self.tokens,
            llm_calls=len([i for i in self.ids if i]),
            signals=self.signals,
            **fields,
        )

    def partial(self) -> LearnOutcome:
        """What is known when the run failed: for its audit entry."""
        name = self.candidate.name if self.candidate else None
        return self.outcome("discard", "the run failed before a decision", skill=name)

    # -- the steps -------------------------------------------------------------------------
    def go(self, *, now: bool) -> LearnOutcome:
        self.signals = self.experience.signals()
        if not self.signals and not now:
            turns = self.experience.user_turns()
            reason = (
                f"no durable preference, correction or procedure in {turns} "
                f"{'user turn' if turns == 1 else 'user turns'}: a one-off request; nothing was sent "
                "to the model (force extraction with --now)"
            )
            self.progress(reason)
            return self.outcome("discard", reason)
        shown = ", ".join(s.kind for s in self.signals) or "none (forced)"
        self.progress(f"durable signals: {shown}; asking the model for a candidate skill")
        candidate, why = self.extract()
        if candidate is None:
            self.progress(f"no skill: {why}")
            return self.outcome("discard", why)
        self.candidate = candidate
        self.progress(f"candidate {candidate.name} ({candidate.kind}, {tiers.tier(candidate.package)})")
        related = self.related(candidate)
        base = {"kind": candidate.kind, "evidence": candidate.evidence, "related": related}
        if not related:
            return self.record(
                "add", f"new: no similar skill ({candidate.reason})", candidate.package, None, base
            )
        names = ", ".join(f"{r.record.name} {r.score:.2f}" for r in related)
        self.progress(f"similar skills: {names}; asking the model to add, merge or discard")
        decision, target, merged, reason = self.decide(candidate, related)
        if decision == "discard":
            return self.outcome("discard", reason, skill=candidate.name, **base)
        if decision == "add":
            return self.record("add", reason, candidate.package, None, base)
        assert target is not None and merged is not None
        return self.record("merge", reason, merged, target, base)

    def extract(self) -> tuple[Candidate | None, str]:
        """The extraction request; (candidate, reason) or (None, why not)."""
        fixer = self.learner.fixer
        transcript = self.experience.transcript(model=fixer.llm.model)
        what = "conversation" if self.experience.kind == "conversation" else "event records"
        messages = [
            {"role": "system", "content": EXTRACT_SYSTEM},
            {"role": "user", "content": f"The experience ({what}):\n\n{transcript}"},
        ]
        holder: dict[str, Any] = {}

        def validate(answer: ExtractAnswer) -> None:
            holder.clear()
            if answer.skill is None:
                return
            cand = answer.skill
            try:
                validate_name(cand.name)
            except InvalidName as exc:
                raise ValueError(f"skill.name: {exc}") from exc
            files = {**_files(cand.files)}
            semver = FIRST_VERSION
            metadata = {"version": semver, "learned-from": self.experience.kind, "lesson": cand.kind}
            files["SKILL.md"] = skill_md(cand.name, cand.description, cand.instructions, metadata).encode()
            try:
                pkg = package_from_files(cand.name, files)
            except PackageError as exc:
                raise ValueError(f"the skill is not a valid package: {exc}") from exc
            _check_code(pkg)
            holder["package"] = pkg

        answer, spent, pending = fixer.ask(
            messages,
            ExtractAnswer,
            skill=self.label,
            version=None,
            purpose="learn",
            validate=validate,
            ids=self.ids,
        )
        self.tokens += spent
        if answer.skill is None:
            pending.finish("ok", "no skill in this experience")
            return None, _short(answer.reason or "the model found nothing durable to learn", 500)
        invented = [q for q in answer.skill.evidence if not self.experience.contains(q)]
        if invented:
            pending.finish("invalid", "evidence not in the experience")
            return None, _short(
                f"the candidate {answer.skill.name} quoted words that are not in the experience "
                f"({invented[0]!r}): an invented lesson is not learnt",
                500,
            )
        pending.finish("ok", f"candidate {answer.skill.name}")
        pkg = holder["package"]
        return Candidate(pkg, answer.skill.kind, list(answer.skill.evidence), answer.reason or ""), ""

    def related(self, candidate: Candidate) -> list[Related]:
        """The skills of the yard like the candidate (hybrid search, then the overlap score),
        most alike first; a skill of the candidate's own name always counts."""
        yard = self.yard
        query = f"{candidate.name.replace('-', ' ')}: {candidate.package.description}"
        hits = [rec for rec, _ in yard.search(query, limit=MAX_RELATED * 3)]
        same = yard.registry.get(candidate.name)
        if same is not None and same.status == "registered" and all(h.name != same.name for h in hits):
            hits.insert(0, same)
        if not hits:
            return []
        scores = similarity_to(candidate.name, candidate.package.description, hits, yard.registry.embedder)
        out = []
        for rec, score in zip(hits, scores, strict=True):
            if rec.name == candidate.name:
                score = max(score, 1.0)
            if score < self.learner.related_floor:
                continue
            out.append(Related(rec, score, yard.package(rec.name, rec.version)))
        out.sort(key=lambda r: -r.score)
        return out[:MAX_RELATED]

    def decide(
        self, candidate: Candidate, related: list[Related]
    ) -> tuple[Decision, Related | None, SkillPackage | None, str]:
        """The decision request: (decision, target, merged package, reason)."""
        fixer = self.learner.fixer
        by_name = {r.record.name: r for r in related}
        body = [_describe("The candidate (learnt now)", candidate.package, candidate.kind)]
        for r in related:
            body.append(
                _describe(
                    f"Existing skill {r.record.name} v{r.record.version} (similarity {r.score:.2f})",
                    r.package,
                    None,
                )
            )
        messages = [
            {"role": "system", "content": DECIDE_SYSTEM},
            {"role": "user", "content": "\n\n".join(body)},
        ]
        holder: dict[str, Any] = {}

        def validate(answer: DecisionAnswer) -> None:
            holder.clear()
            if answer.action == "add":
                if candidate.name in by_name or self.yard.registry.versions(candidate.name):
                    raise ValueError(
                        f"a skill named {candidate.name} exists: merge into it, or discard the candidate"
                    )
                return
            if answer.action == "discard":
                return
            if answer.target not in by_name:
                raise ValueError(f"target must be one of {sorted(by_name)}, not {answer.target!r}")
            holder["merged"] = self.merged(candidate, by_name[answer.target], answer)

        answer, spent, pending = fixer.ask(
            messages,
            DecisionAnswer,
            skill=self.label,
            version=None,
            purpose="learn",
            validate=validate,
            ids=self.ids,
        )
        self.tokens += spent
        pending.finish("ok", f"{answer.action} {answer.target or ''}".strip())
        reason = _short(answer.reason or answer.action, 500)
        if answer.action != "merge":
            return answer.action, None, None, reason
        return "merge", by_name[str(answer.target)], holder["merged"], reason

    def merged(self, candidate: Candidate, target: Related, answer: DecisionAnswer) -> SkillPackage:
        """The target's next version: the merged SKILL.md (patch bumped), the answer's file
        edits on the target's package (its tests frozen), and the candidate's code when the
        target had none and the answer gave no files. ValueError says what is wrong."""
        pkg = target.package
        if not (answer.description and answer.instructions):
            raise ValueError("a merge needs the merged skill's description and instructions")
        metadata = {
            **{k: v for k, v in pkg.meta.metadata.items() if isinstance(v, str)},
            "version": bump_patch(semver_of(pkg)),
            "learned-from": self.experience.kind,
            "lesson": candidate.kind,
        }
        base = dict(pkg.files)
        base["SKILL.md"] = skill_md(pkg.name, answer.description, answer.instructions, metadata, pkg).encode()
        edits = list(answer.files)
        if not edits and tiers.instructions_only(pkg) and not tiers.instructions_only(candidate.package):
            edits = [
                FileEdit(path=rel, content=data.decode("utf-8"))
                for rel, data in candidate.package.files.items()
                if rel != "SKILL.md"
            ]
        for edit in edits:
            _files([edit])  # the same path rule as a candidate's files
        frozen = frozenset(rel for rel in pkg.files if rel.startswith("tests/"))
        staged = package_from_files(pkg.name, base, pkg.executable)
        files, refused = apply_edits(staged, edits, allow_test_edits=True, frozen=frozen)
        if refused:
            raise ValueError(f"refused: {'; '.join(refused)} (the existing skill's tests are frozen)")
        try:
            merged = package_from_files(pkg.name, files, pkg.executable)
        except PackageError as exc:
            raise ValueError(f"the merged skill is not a valid package: {exc}") from exc
        _check_code(merged)
        return merged

    def record(
        self,
        decision: Decision,
        reason: str,
        pkg: SkillPackage,
        target: Related | None,
        base: dict[str, Any],
    ) -> LearnOutcome:
        """Record the new version (not in a dry run) and say what happened."""
        fields: dict[str, Any] = {
            **base,
            "skill": pkg.name,
            "tier": tiers.tier(pkg),
            "semver": semver_of(pkg),
            "files": sorted(pkg.files),
        }
        if target is not None:
            fields["previous_semver"] = semver_of(target.package)
            fields["merged_into"] = target.record.name
        if self.dry_run:
            self.progress(f"dry run: would {decision} {pkg.name} ({reason})")
            return self.outcome(decision, reason, skill_md=pkg.skill_md, **fields)
        frozen = (
            frozenset(rel for rel in target.package.files if rel.startswith("tests/"))
            if target is not None and not tiers.instructions_only(target.package)
            else None
        )
        if not tiers.instructions_only(pkg):
            self.progress(f"{pkg.name}: gating the code (tests, then the mutation check)")
        added = tiers.register(self.yard, pkg, frozen_tests=frozen or None)
        self.account(added)
        fields.update(version=added.version, status=added.status)
        if added.report is not None:
            fields["gate"] = added.report.summary
        verb = {"add": "added", "merge": f"merged into {pkg.name}"}[decision]
        if added.version is not None and added.status in ("registered", "blocked"):
            Workspace(self.yard.workspace(pkg.name)).add_note(
                "learn",
                f"v{added.version} {verb} from {self.experience.kind} ({added.status}): "
                + _short(reason, 200),
            )
        if added.status == "blocked":
            reason = f"{reason}; the gate blocked v{added.version}: {_short('; '.join(added.reasons), 200)}"
        self.progress(f"{pkg.name}: {decision} -> v{added.version} {added.status}")
        return self.outcome(decision, reason, **fields)

    def account(self, added: AddOutcome) -> None:
        """The run's requests belong to the skill a version was recorded for."""
        if added.version is None or added.status not in ("registered", "blocked", "unchanged"):
            return
        ledger = self.yard.ledger
        name, version = added.name, added.version
        best_effort("reassign learning", lambda: ledger.reassign(self.label, name), skill=name)
        ids = [i for i in self.ids if i]
        best_effort("tag version", lambda: ledger.tag_version(ids, version), skill=name)


def _describe(title: str, pkg: SkillPackage, kind: str | None) -> str:
    """A skill as the decision request shows it: SKILL.md, and its code and tests."""
    lines = [f"## {title}: {pkg.name}", f"tier: {tiers.tier(pkg)}"]
    if kind:
        lines.append(f"lesson: {kind}")
    lines.append(f"### SKILL.md\n{pkg.skill_md[:6000]}")
    for rel in sorted(pkg.files):
        if rel == "SKILL.md" or not rel.endswith((".py", ".yaml")):
            continue
        lines.append(f"### {rel}\n```\n{pkg.files[rel].decode('utf-8', 'replace')[:6000]}\n```")
    return "\n".join(lines)
