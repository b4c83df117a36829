"""The auto-fix loop and skill creation.

fix: after a failed gate (or on demand after runtime errors) the model gets the package,
the failing tests' reports with trimmed tracebacks, recent runtime errors and the skill's
memory, fitted to a token budget; it answers with whole-file replacements as JSON. Each
answer is validated (one corrective retry, charged to the skill), applied only inside the
package, with tests/ protected unless explicitly allowed, then rebuilt and regated as a
new version candidate. The loop stops at success, at the attempt limit, or when an
attempt makes no progress. Every LLM call goes into the ledger with its outcome.

create: the model writes a whole package from a task description; then the gate; on
failure the fix loop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import notes
from .accounting import best_effort
from .errors import FixError
from .gate import GateReport
from .ledger import TIKTOKEN_USAGE_NOTE
from .llm import LLM, LLMError, LLMReply, count_prompt_tokens
from .package import MEMORY_FILE, NAME_RE, PackageError, SkillPackage, package_from_files
from .tokens import encoding_for_model

if TYPE_CHECKING:
    from .yard import AddOutcome, Yard

log = structlog.get_logger(__name__)

DEFAULT_BUDGET = 24_000  # prompt tokens for a fix request
MAX_DETAIL_CHARS = 1_800


# -- the structured answer --------------------------------------------------------------------------
class FileEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=200)
    content: str | None = Field(default=None, max_length=400_000)  # None deletes the file


class FixAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    files: list[FileEdit] = Field(min_length=1, max_length=50)
    explanation: str = ""


class CreateAnswer(FixAnswer):
    name: str = Field(min_length=1, max_length=64)
    baseline_tokens: int | None = Field(default=None, ge=0)


def parse_answer(text: str, model: type[BaseModel]) -> Any:
    """Parse a model answer: a JSON object, possibly inside a ``` fence. ValueError says what is wrong."""
    body = text.strip()
    fence = re.search(r"```(?:json)?\s*(\{.*\})\s*```", body, re.DOTALL)
    if fence:
        body = fence.group(1)
    elif not body.startswith("{"):
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the answer holds no JSON object")
        body = body[start : end + 1]
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"the JSON does not have the required shape: {problems}") from exc


# -- prompts ---------------------------------------------------------------------------------------
FORMAT_RULES = """\
A skill is a folder NAME/ with:
- SKILL.md: YAML frontmatter between '---' lines with exactly: name (equals NAME: 1-64 chars of a-z, 0-9, single hyphens),
  description (what it does and when to use it, <= 1024 chars), optional license, metadata (string -> string); then instructions
  for an agent (input, output, an example).
- skillyard.yaml: entrypoint: scripts/FILE.py:run ; input_schema and output_schema (JSON Schema objects) ; tags (list) ;
  examples: [{input: {...}}] ; baseline_tokens (int: tokens an agent would spend on the task without the skill).
- scripts/FILE.py: def run(params: dict) -> dict, standard library only (PyYAML and jsonschema are also installed).
  Raise ValueError with a clear message on bad input.
- tests/test_*.py: pytest tests importing `from scripts.FILE import run`, checking real behaviour with concrete expected values
  and error cases. They must pass and cover at least 80% of the lines in scripts/. No pytest hooks, no conftest tricks,
  no os._exit/sys.exit, no imports of _pytest or coverage, no skips.
Code runs in a container with no network, a read-only filesystem except /tmp, and no environment from the host."""

FIX_SYSTEM = f"""You repair skills for skillyard, a runtime that runs agent skills in sandboxes and registers a skill only when its
tests pass in a container.
{FORMAT_RULES}
Answer with ONE JSON object and nothing else:
{{"files": [{{"path": "scripts/x.py", "content": "<the whole new file>"}}], "explanation": "<one or two sentences>"}}
Give whole-file replacements only for files you change. Paths are relative to the skill folder.
The tests define correct behaviour: do NOT change existing files under tests/ (such an answer is refused). You may add new
test files, e.g. a regression test for a runtime failure."""

CREATE_SYSTEM = f"""You write new skills for skillyard, a runtime that runs agent skills in sandboxes and registers a skill only
when its tests pass in a container.
{FORMAT_RULES}
Answer with ONE JSON object and nothing else:
{{"name": "<skill-name>", "files": [{{"path": "SKILL.md", "content": "..."}}, {{"path": "skillyard.yaml", "content": "..."}},
 {{"path": "scripts/x.py", "content": "..."}}, {{"path": "tests/test_x.py", "content": "..."}}],
 "explanation": "...", "baseline_tokens": <int>}}"""


def _trim(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n... [trimmed] ...\n" + text[-half:]


@dataclass
class PromptSection:
    title: str
    body: str
    priority: int  # lower = kept first


def fit_sections(sections: list[PromptSection], budget: int, model: str) -> tuple[str, list[str]]:
    """Keep sections in priority order while they fit `budget` tokens; shorten or drop the rest."""
    enc = encoding_for_model(model)
    kept: dict[int, str] = {}
    dropped: list[str] = []
    used = 0
    order = sorted(range(len(sections)), key=lambda i: sections[i].priority)
    for i in order:
        s = sections[i]
        text = f"## {s.title}\n{s.body}\n"
        n = len(enc.encode(text, disallowed_special=()))
        if used + n <= budget:
            kept[i] = text
            used += n
            continue
        room = budget - used
        if room > 200:
            tokens = enc.encode(text, disallowed_special=())[: room - 30]
            kept[i] = enc.decode(tokens) + f"\n... [{s.title}: cut to fit the token budget]\n"
            used = budget
        dropped.append(s.title)
    return "\n".join(kept[i] for i in sorted(kept)), dropped


def fix_prompt(
    pkg: SkillPackage,
    report: GateReport | None,
    runtime_errors: list[str],
    memory_text: str,
    budget: int,
    model: str,
    feedback: list[str],
) -> tuple[list[dict[str, str]], list[str]]:
    sections: list[PromptSection] = []
    if report is not None and not report.passed:
        reasons = "\n".join(f"- {r}" for r in report.reasons)
        sections.append(PromptSection("Why the gate blocked the skill", reasons, 0))
        failing = [c for c in report.cases if c.status in ("failed", "error")]
        if failing:
            body = "\n\n".join(
                f"### {c.name}\n{_trim(c.message, 300)}\n{_trim(c.detail)}" for c in failing[:10]
            )
            sections.append(PromptSection("Failing tests (trimmed tracebacks)", body, 1))
        if report.uncovered:
            body = "\n".join(f"- {path}: lines {lines}" for path, lines in report.uncovered.items())
            sections.append(PromptSection(f"Lines not covered (coverage {report.coverage}%)", body, 4))
        if report.output_tail and not failing:
            sections.append(PromptSection("Test run output (tail)", _trim(report.output_tail, 2500), 3))
    if runtime_errors:
        sections.append(
            PromptSection(
                "Recent runtime errors", "\n".join(f"- {_trim(e, 600)}" for e in runtime_errors[:8]), 1
            )
        )
    if feedback:
        sections.append(
            PromptSection("About your previous answers", "\n".join(f"- {f}" for f in feedback), 0)
        )
    if memory_text.strip():
        sections.append(PromptSection("The skill's memory (.memory.md)", _trim(memory_text, 3000), 5))
    order = sorted(pkg.files, key=lambda p: (not p.startswith("scripts/"), not p.startswith("tests/"), p))
    for rel in order:
        try:
            text = pkg.files[rel].decode("utf-8")
        except UnicodeDecodeError:
            text = f"(binary, {len(pkg.files[rel])} bytes)"
        priority = 2 if rel.startswith(("scripts/", "tests/")) or rel in ("SKILL.md", "skillyard.yaml") else 6
        sections.append(PromptSection(f"File {rel}", f"```\n{text}\n```", priority))
    body, dropped = fit_sections(sections, budget, model)
    user = f"Fix the skill `{pkg.name}`.\n\n{body}"
    return [{"role": "system", "content": FIX_SYSTEM}, {"role": "user", "content": user}], dropped


# -- applying an answer -----------------------------------------------------------------------------
def apply_edits(
    pkg: SkillPackage, edits: list[FileEdit], *, allow_test_edits: bool
) -> tuple[dict[str, bytes], list[str]]:
    """Return (new files, refused test paths). Raises ValueError for paths outside the package."""
    files = dict(pkg.files)
    refused: list[str] = []
    for edit in edits:
        p = PurePosixPath(edit.path)
        rel = p.as_posix()
        if p.is_absolute() or ".." in p.parts or rel.startswith("/") or "\\" in rel or rel in ("", "."):
            raise ValueError(f"the answer writes outside the package: {edit.path!r}")
        if p.name == MEMORY_FILE:
            raise ValueError(".memory.md is written by skillyard, not by fixes")
        if rel.startswith("tests/") and rel in files and not allow_test_edits:
            if edit.content is None or edit.content.encode() != files[rel]:
                refused.append(rel)
            continue
        if edit.content is None:
            if rel.startswith("tests/") and not allow_test_edits:
                refused.append(rel)
                continue
            files.pop(rel, None)
        else:
            files[rel] = edit.content.encode("utf-8")
    return files, refused


# -- the loop --------------------------------------------------------------------------------------
@dataclass
class Attempt:
    number: int
    outcome: str  # registered, blocked, refused, invalid, unchanged
    version: int | None = None
    reasons: list[str] = field(default_factory=list)
    explanation: str = ""
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class FixOutcome:
    name: str
    status: str  # fixed, blocked, gave_up
    attempts: list[Attempt] = field(default_factory=list)
    version: int | None = None
    tokens: int = 0
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "version": self.version,
            "tokens": self.tokens,
            "stop_reason": self.stop_reason,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def creation_status(added: AddOutcome, fixed: FixOutcome | None) -> str:
    """Where a creation ended: "registered" if its first version passed or a fix made one pass."""
    return "registered" if added.status == "registered" or (fixed and fixed.status == "fixed") else "blocked"


@dataclass
class _Pending:
    """A usable answer whose ledger row waits for its final outcome (ok, refused, invalid, unchanged)."""

    fixer: Fixer
    reply: LLMReply
    skill: str | None
    version: int | None
    purpose: str
    ids: list[str | None]
    done: bool = False

    def finish(self, outcome: str, detail: str = "") -> None:
        if self.done:
            return
        self.done = True
        self.ids.append(
            self.fixer._record(
                self.reply,
                skill=self.skill,
                version=self.version,
                purpose=self.purpose,
                outcome=outcome,
                detail=detail,
            )
        )


def _score(report: GateReport | None) -> tuple[int, float, int]:
    """Lower is better: failing tests, missing coverage, other reasons."""
    if report is None:
        return (10**6, 100.0, 10**6)
    return (
        report.failures + report.errors + (0 if report.tests else 1000),
        -(report.coverage or 0.0),
        len(report.reasons),
    )


class Fixer:
    def __init__(self, yard: Yard, llm: LLM | None = None, *, budget: int = DEFAULT_BUDGET) -> None:
        self.yard = yard
        self.llm = llm or LLM(yard.settings)
        self.budget = budget

    # ledger ---------------------------------------------------------------------------------------
    def _record(
        self,
        reply: LLMReply | None,
        *,
        skill: str | None,
        version: int | None,
        purpose: str,
        outcome: str,
        detail: str = "",
        messages: list[dict[str, str]] | None = None,
        error: LLMError | None = None,
    ) -> str | None:
        """One ledger row for one HTTP request (reply None: the request failed). Never raises:
        accounting.best_effort logs and counts a row it could not store."""

        def write() -> str:
            nonlocal detail
            ledger = self.yard.ledger
            if reply is None:
                # No usage came back, but we know what we sent: tiktoken's count of it.
                sent = count_prompt_tokens(messages, self.llm.model) if messages else 0
                if error is not None and error.attempts:
                    detail = f"{error.attempts} attempt(s), {error.elapsed_s:.1f} s: {detail}"
                return ledger.record_llm_call(
                    skill=skill,
                    version=version,
                    purpose=purpose,
                    model=self.llm.model,
                    prompt_tokens=0,
                    completion_tokens=0,
                    cached_tokens=0,
                    tiktoken_prompt_tokens=sent,
                    cost_usd=0.0,
                    latency_ms=round(error.elapsed_s * 1000, 1) if error is not None else 0.0,
                    outcome=outcome,
                    detail=detail[:500],
                )
            if reply.usage_source == "tiktoken":  # the endpoint reported no usage: say the counts are ours
                detail = TIKTOKEN_USAGE_NOTE + (f"; {detail}" if detail else "")
            return ledger.record_llm_call(
                skill=skill,
                version=version,
                purpose=purpose,
                model=reply.model,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                cached_tokens=reply.cached_tokens,
                tiktoken_prompt_tokens=reply.tiktoken_prompt_tokens,
                cost_usd=reply.cost_usd,
                latency_ms=reply.latency_ms,
                outcome=outcome,
                detail=detail[:500],
                request_id=reply.request_id,
            )

        return best_effort("record an LLM call", write, skill=skill)

    def _ask(
        self,
        messages: list[dict[str, str]],
        schema: type[BaseModel],
        *,
        skill: str | None,
        version: int | None,
        purpose: str,
        validate: Any = None,
        ids: list[str] | None = None,
    ) -> tuple[Any, int, _Pending]:
        """One request plus at most one corrective retry. Returns (answer, tokens spent, pending): the
        usable answer's request is recorded once, with its final outcome, by `pending.finish(...)`."""
        spent = 0
        ids = ids if ids is not None else []
        for round_ in range(2):
            this_purpose = purpose if round_ == 0 else "retry"
            try:
                reply = self.llm.chat(messages)
            except LLMError as exc:
                ids.append(
                    self._record(
                        None,
                        skill=skill,
                        version=version,
                        purpose=this_purpose,
                        outcome="error",
                        detail=str(exc),
                        messages=messages,
                        error=exc,
                    )
                )
                raise FixError(str(exc)) from exc
            spent += reply.total_tokens
            try:
                answer = parse_answer(reply.text, schema)
                if validate is not None:
                    validate(answer)
            except ValueError as exc:
                ids.append(
                    self._record(
                        reply,
                        skill=skill,
                        version=version,
                        purpose=this_purpose,
                        outcome="malformed",
                        detail=str(exc),
                    )
                )
                if round_ == 1:
                    raise FixError(
                        f"the model's answer was malformed twice (last: {exc}); nothing was changed. "
                        "Try again, or use a stronger model (SKILLYARD_MODEL)."
                    ) from exc
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text[:20000]},
                    {
                        "role": "user",
                        "content": f"Your answer was not usable: {exc}. Answer again with only "
                        "the JSON object in the required shape.",
                    },
                ]
                continue
            return answer, spent, _Pending(self, reply, skill, version, this_purpose, ids)
        raise AssertionError("unreachable")

    def _runtime_errors(self, name: str, version: int) -> list[str]:
        """The runtime failures recorded for `version` (older versions' failures were fixed or are
        not this version's; gate, fix and create notes are not runtime errors)."""
        found = []
        for e in notes.entries(self.yard.memory_text(name)):
            if e.kind in notes.RUNTIME_KINDS and e.text.startswith(f"v{version} "):
                found.append(f"{e.day}{f' (x{e.count})' if e.count > 1 else ''}: {e.text}")
        return found[-8:]

    # fix ------------------------------------------------------------------------------------------
    def fix(
        self,
        name: str,
        *,
        max_attempts: int = 3,
        allow_test_edits: bool = False,
        pkg: SkillPackage | None = None,
        report: GateReport | None = None,
    ) -> FixOutcome:
        versions = self.yard.versions(name)
        latest = versions[-1]
        if pkg is None:
            pkg = self.yard.package(name, latest.version)
            report = GateReport.from_dict(latest.gate_report) if latest.gate_report else None
        runtime_errors = self._runtime_errors(name, latest.version)
        if report is not None and report.passed and not runtime_errors:
            return FixOutcome(
                name=name,
                status="fixed",
                version=latest.version,
                stop_reason=f"nothing to fix: v{latest.version} passed its gate and has no recorded "
                "runtime errors (no LLM call was made)",
            )
        outcome = FixOutcome(name=name, status="blocked")
        feedback: list[str] = []
        best = _score(report)
        mem_path = self.yard.workspace(name) / MEMORY_FILE
        repairing = latest.version  # the version each call tries to repair (ledger tag)
        for number in range(1, max_attempts + 1):
            self.yard.progress(f"{name}: fix attempt {number}/{max_attempts}")
            messages, dropped = fix_prompt(
                pkg,
                report,
                runtime_errors,
                self.yard.memory_text(name),
                self.budget,
                self.llm.model,
                feedback,
            )
            answer, spent, pending = self._ask(
                messages, FixAnswer, skill=name, version=repairing, purpose="fix"
            )
            outcome.tokens += spent
            attempt = Attempt(
                number=number, outcome="invalid", explanation=answer.explanation[:500], tokens=spent
            )
            outcome.attempts.append(attempt)
            try:
                step = self._try_answer(
                    name, number, pkg, answer, attempt, pending, feedback, mem_path, allow_test_edits
                )
            finally:
                pending.finish("ok")  # a path that recorded nothing else (e.g. an exception while gating)
            if step is None:
                continue
            if step == "unchanged":
                outcome.stop_reason = f"attempt {number} made no change"
                break
            candidate, added = step
            latest_version = added.version
            if added.status == "registered":
                replay = self.replay_failures(name, latest_version)
                notes.add_entry(
                    mem_path,
                    "fix",
                    f"v{latest_version} fixed it: {answer.explanation[:200]}"
                    + (f" ({replay})" if replay else ""),
                )
                outcome.status = "fixed"
                outcome.version = latest_version
                outcome.stop_reason = f"attempt {number} passed the gate"
                return outcome
            notes.add_entry(
                mem_path,
                "fix",
                f"attempt {number} (v{latest_version}) still blocked: {'; '.join(added.reasons)[:200]}",
            )
            score = _score(added.report)
            pkg, report = candidate, added.report
            if added.version is not None:
                repairing = added.version
            if score >= best:
                outcome.stop_reason = f"attempt {number} made no progress ({'; '.join(added.reasons)[:200]})"
                break
            best = score
            feedback.append(f"attempt {number} improved things but the gate still blocks it")
        else:
            outcome.stop_reason = f"gave up after {max_attempts} attempts"
        outcome.version = self.yard.versions(name)[-1].version
        return outcome

    def _try_answer(
        self,
        name: str,
        number: int,
        pkg: SkillPackage,
        answer: FixAnswer,
        attempt: Attempt,
        pending: _Pending,
        feedback: list[str],
        mem_path: Any,
        allow_test_edits: bool,
    ) -> Any:
        """Apply one answer. Returns None (refused or invalid: try again), "unchanged", or
        (candidate, AddOutcome). The answer's ledger row gets its final outcome here."""
        try:
            files, refused = apply_edits(pkg, answer.files, allow_test_edits=allow_test_edits)
        except ValueError as exc:
            attempt.reasons = [str(exc)]
            pending.finish("invalid", f"answer rejected: {exc}")
            feedback.append(f"attempt {number} was rejected: {exc}")
            notes.add_entry(mem_path, "fix", f"attempt {number} rejected: {exc}")
            return None
        if refused:
            attempt.outcome = "refused"
            attempt.reasons = [f"changes protected tests: {', '.join(refused)}"]
            pending.finish("refused", f"answer changed tests: {', '.join(refused)}")
            feedback.append(
                f"attempt {number} was refused because it changed tests ({', '.join(refused)}); "
                "fix the code, not the tests"
            )
            notes.add_entry(
                mem_path, "fix", f"attempt {number} refused: it changed tests ({', '.join(refused)})"
            )
            log.warning("fix_refused_test_edit", skill=name, files=refused)
            return None
        try:
            candidate = package_from_files(name, files, pkg.executable)
        except PackageError as exc:
            attempt.reasons = [str(exc)]
            pending.finish("invalid", f"invalid package: {exc}")
            feedback.append(f"attempt {number} made an invalid package: {exc}")
            return None
        if candidate.content_hash == pkg.content_hash:
            attempt.outcome = "unchanged"
            attempt.reasons = ["the answer changed nothing"]
            pending.finish("unchanged", "the answer changed nothing")
            return "unchanged"
        added = self.yard.add_package(candidate)
        attempt.version = added.version
        attempt.outcome = added.status
        attempt.reasons = added.reasons
        pending.finish("ok", f"v{added.version} {added.status}" if added.version else added.status)
        return candidate, added

    def replay_failures(self, name: str, version: int | None = None) -> str:
        """Re-run recorded failing inputs on the new version; report how many now succeed.

        This is the fixer's own verification, not a use of the skill: the calls go straight to
        the sandbox, so they add no ledger use, no registry call counter and no memory entry."""
        inputs = self.yard.failed_inputs(name)
        if not inputs:
            return ""
        rec = self.yard.record(name, version)
        fixed = 0
        for params in inputs:
            result = self.yard.trial_call(rec, params)  # an engine failure is a sandbox error, not a raise
            if result.error is not None and result.error.kind == "sandbox":
                log.warning("replay_failed", skill=name, error=result.error.message[:200])
            fixed += result.ok
        return f"{fixed}/{len(inputs)} recorded failing inputs now succeed"

    # create ---------------------------------------------------------------------------------------
    def create(
        self, task: str, *, name: str | None = None, max_attempts: int = 3, allow_test_edits: bool = False
    ) -> tuple[AddOutcome, FixOutcome | None]:
        if name is not None and not NAME_RE.match(name):
            raise FixError(f"--name {name!r}: use a-z, 0-9 and single hyphens")
        user = f"Task: {task.strip()}\n"
        if name:
            user += f"Name the skill exactly `{name}`.\n"
        messages = [{"role": "system", "content": CREATE_SYSTEM}, {"role": "user", "content": user}]
        holder: dict[str, SkillPackage] = {}

        def validate(answer: CreateAnswer) -> None:
            if name and answer.name != name:
                raise ValueError(f"the skill must be named {name!r}, not {answer.name!r}")
            files: dict[str, bytes] = {}
            for edit in answer.files:
                if edit.content is None:
                    continue
                files[PurePosixPath(edit.path).as_posix()] = edit.content.encode("utf-8")
            try:
                holder["pkg"] = package_from_files(answer.name, files)
            except PackageError as exc:
                raise ValueError(f"the package is invalid: {exc}") from exc

        import uuid

        # Creations running at once must not share a placeholder: reassign moves exactly ours.
        ledger_name = name or f"(creating-{uuid.uuid4().hex[:8]})"
        ids: list[str | None] = []
        answer, spent, pending = self._ask(
            messages,
            CreateAnswer,
            skill=ledger_name,
            version=None,
            purpose="create",
            validate=validate,
            ids=ids,
        )
        pending.finish("ok")
        pkg = holder["pkg"]
        if ledger_name != pkg.name:
            best_effort("reassign", lambda: self.yard.ledger.reassign(ledger_name, pkg.name), skill=pkg.name)
        added = self.yard.add_package(pkg)
        if added.version is not None:  # the creation's calls belong to the version they created
            best_effort(
                "tag version",
                lambda: self.yard.ledger.tag_version([i for i in ids if i], added.version),
                skill=pkg.name,
            )
        notes.add_entry(
            self.yard.workspace(pkg.name) / MEMORY_FILE,
            "create",
            f"v{added.version} created from task: {task[:150]} ({added.status})",
        )
        if answer.baseline_tokens and not pkg.config.baseline_tokens:
            # An estimate of the tokens the task costs without the skill: a baseline, not tokens spent.
            best_effort(
                "record a baseline",
                lambda: self.yard.ledger.record_baseline(
                    skill=pkg.name,
                    version=added.version,
                    baseline_tokens=answer.baseline_tokens,
                    source="creation",
                    detail="baseline estimated by the model at creation",
                ),
                skill=pkg.name,
            )
        if added.status == "registered":
            return added, None
        fixed = self.fix(
            pkg.name,
            max_attempts=max_attempts,
            allow_test_edits=allow_test_edits,
            pkg=pkg,
            report=added.report,
        )
        return added, fixed
