"""The auto-fix loop and skill creation.

fix: after a failed gate (or on demand after runtime errors) the model gets the package,
the failing tests' reports with trimmed tracebacks, recent runtime errors and the skill's
memory, fitted to a token budget; it answers with whole-file replacements as JSON. Each
answer is validated (one corrective retry, charged to the skill) and applied only inside
the package, then rebuilt and regated as a new version candidate. The loop stops at
success, at the attempt limit, or when an attempt makes no progress. Every HTTP request
to the LLM is one ledger row with its outcome (retries included: runtime/llm.py).

Frozen tests (docs/SECURITY.md, "The test gate"): the whole `tests/` tree of the version
being repaired decides. An answer that changes, adds or deletes anything under `tests/`,
adds a `conftest.py` anywhere, a module defining pytest hooks, or a module whose import
name shadows the standard library or the harness, is refused. With `allow_test_edits` an
answer may *add* test files; they run in a separate judge session from the frozen ones,
and both must pass.

create: the model writes a whole package from a task description (refused if the name is
taken, unless `replace`); then the gate; on failure the fix loop. `create_tests` writes
tests for a registered or blocked skill that has none.
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
from .llm import LLM, FailedRequest, LLMError, LLMReply, count_prompt_tokens
from .package import (
    MEMORY_FILE,
    NAME_RE,
    PackageError,
    SkillPackage,
    is_executable_code,
    package_from_files,
)
from .records import INSTRUCTIONS
from .tokens import encoding_for_model
from .workspace import Workspace

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
- SKILL.md: YAML frontmatter between '---' lines with exactly: name (equals NAME: 1-64 chars
  of a-z, 0-9, single hyphens), description (what it does and when to use it, <= 1024 chars),
  optional license, metadata (string -> string); then instructions for an agent (input,
  output, an example).
- skillyard.yaml (optional): entrypoint: scripts/FILE.py:run when the skill is called with
  JSON (a function taking one JSON object, returning JSON) ; input_schema and output_schema
  (JSON Schema objects) ; tags (list) ; examples: [{input: {...}}] ; baseline_tokens (int:
  tokens an agent would spend on the task without the skill). A skill without an entrypoint
  is code an agent runs as programs (e.g. scripts/extract.py with a main() and argv).
- code: Python files (in scripts/ or elsewhere), standard library only unless listed in
  requirements (PyYAML and jsonschema are also installed). Raise ValueError with a clear
  message on bad input.
- tests/test_*.py: pytest tests importing the skill's functions from their modules
  (`from scripts.FILE import run`, `from core.convert import paragraphs`), checking real
  behaviour with concrete expected values and error cases.
How the gate runs them: the tests and the code run in separate sandboxes. A test calls the
skill's functions across the boundary: arguments and results are plain data (JSON values,
tuples, bytes, sets); exceptions come back with their type and message. A test cannot
patch the skill's modules or get objects back. After the tests pass, the gate changes the
code in small ways (mutants: flipped comparisons, off-by-one numbers, removed statements,
`return None`) and runs the tests again: tests that do not notice at least 60% of those
changes block the skill. So assert on exact results, not just that a call returns.
No conftest.py outside tests/, no pytest hooks, no skips, no file named like a standard
library module. Code runs with no network, a read-only filesystem except /tmp, and no
environment from the host."""

FIX_SYSTEM = f"""You repair skills for skillyard, a runtime that runs agent skills in
sandboxes and registers a skill only when its tests pass in a container.
{FORMAT_RULES}
Answer with ONE JSON object and nothing else:
{{"files": [{{"path": "scripts/x.py", "content": "<the whole new file>"}}],
 "explanation": "<one or two sentences>"}}
Give whole-file replacements only for files you change. Paths are relative to the skill folder.
The tests are frozen: they define correct behaviour. An answer that changes, adds or deletes
anything under tests/, or adds a conftest.py, is refused: fix the code."""

CREATE_SYSTEM = f"""You write new skills for skillyard, a runtime that runs agent skills in
sandboxes and registers a skill only when its tests pass in a container.
{FORMAT_RULES}
A new skill has an entrypoint: scripts/FILE.py:run.
Answer with ONE JSON object and nothing else:
{{"name": "<skill-name>", "files": [{{"path": "SKILL.md", "content": "..."}},
 {{"path": "skillyard.yaml", "content": "..."}}, {{"path": "scripts/x.py", "content": "..."}},
 {{"path": "tests/test_x.py", "content": "..."}}], "explanation": "...", "baseline_tokens": <int>}}"""

TESTS_SYSTEM = f"""You write tests for an existing skill of skillyard, a runtime that runs agent
skills in sandboxes and registers a skill only when its tests pass in a container.
{FORMAT_RULES}
Answer with ONE JSON object and nothing else:
{{"files": [{{"path": "tests/test_x.py", "content": "..."}}], "explanation": "..."}}
Write only files under tests/. Do not change the skill's code: the tests must pass against
it as it is, and must fail if its behaviour changes."""

MAX_FILE_PROMPT_CHARS = 12_000  # a file shown to the model, beyond code and tests (e.g. a LICENSE)


def skill_shape(pkg: SkillPackage) -> str:
    """How this skill's code is reached, for a prompt (FORMAT_RULES covers both shapes)."""
    if pkg.config.entrypoint:
        return (
            f"`{pkg.name}` is called through its entrypoint `{pkg.config.entrypoint}`: one JSON "
            "object in, JSON out."
        )
    code = ", ".join(pkg.executable_code[:12]) or "none"
    return (
        f"`{pkg.name}` has no entrypoint: its code ({code}) is programs and modules an agent runs. "
        "Tests import their functions and call them with plain data."
    )


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
            measured = f" (coverage {report.coverage:.0f}%)" if report.coverage is not None else ""
            sections.append(PromptSection(f"Lines not covered{measured}", body, 4))
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
    sections += file_sections(pkg)
    body, dropped = fit_sections(sections, budget, model)
    user = f"Fix the skill `{pkg.name}`. {skill_shape(pkg)}\n\n{body}"
    return [{"role": "system", "content": FIX_SYSTEM}, {"role": "user", "content": user}], dropped


def file_sections(pkg: SkillPackage) -> list[PromptSection]:
    """The package's files for a prompt: code, tests, SKILL.md and skillyard.yaml whole (the
    budget may still cut them), anything else capped, binary files only named."""
    order = sorted(pkg.files, key=lambda p: (not p.startswith("scripts/"), not p.startswith("tests/"), p))
    sections = []
    for rel in order:
        data = pkg.files[rel]
        essential = (
            is_executable_code(rel, data, rel in pkg.executable)
            or (rel.startswith("tests/") and rel.endswith(".py"))
            or rel in ("SKILL.md", "skillyard.yaml")
        )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = f"(binary, {len(data)} bytes)"
        if not essential and len(text) > MAX_FILE_PROMPT_CHARS:
            text = (
                text[:MAX_FILE_PROMPT_CHARS] + f"\n... [{len(text) - MAX_FILE_PROMPT_CHARS} more characters]"
            )
        priority = 2 if essential else 6
        sections.append(PromptSection(f"File {rel}", f"```\n{text}\n```", priority))
    return sections


def is_pytest_machinery(rel: str, data: bytes) -> str:
    """Why a file outside tests/ would act on pytest ("" if it would not)."""
    base = rel.rsplit("/", 1)[-1]
    if base == "conftest.py":
        return "a conftest.py"
    if base.startswith("pytest_") and base.endswith(".py"):
        return "a module named like a pytest plugin"
    if rel.endswith(".py") and re.search(
        rb"(?m)^\s*(async\s+)?def\s+pytest_\w+|^\s*pytest_plugins\s*=", data
    ):
        return "a module defining pytest hooks or pytest_plugins"
    return ""


# -- applying an answer -----------------------------------------------------------------------------
def apply_edits(
    pkg: SkillPackage,
    edits: list[FileEdit],
    *,
    allow_test_edits: bool,
    frozen: frozenset[str] | None = None,
) -> tuple[dict[str, bytes], list[str]]:
    """Return (new files, refusals as "path: why"). Raises ValueError for paths outside the
    package. The tests/ tree is frozen (`frozen`, default: the package's tests/ files): only
    new files may be added there, and only with `allow_test_edits`; nothing may add pytest
    machinery or shadow a module anywhere."""
    from .policy import check_shadowing

    if frozen is None:
        frozen = frozenset(rel for rel in pkg.files if rel.startswith("tests/"))
    files = dict(pkg.files)
    refused: list[str] = []
    for edit in edits:
        p = PurePosixPath(edit.path)
        rel = p.as_posix()
        if p.is_absolute() or ".." in p.parts or rel.startswith("/") or "\\" in rel or rel in ("", "."):
            raise ValueError(f"the answer writes outside the package: {edit.path!r}")
        if p.name == MEMORY_FILE:
            raise ValueError(".memory.md is written by skillyard, not by fixes")
        new = None if edit.content is None else edit.content.encode("utf-8")
        if new == files.get(rel):
            continue  # restating a file unchanged changes nothing
        if rel.startswith("tests/"):
            if rel in frozen:
                refused.append(f"{rel}: the tests are frozen (changed or deleted)")
                continue
            if not allow_test_edits:
                refused.append(f"{rel}: the tests are frozen (a new test file needs --allow-test-edits)")
                continue
        if new is not None:
            why = is_pytest_machinery(rel, new) if rel.endswith(".py") else ""
            if why:
                refused.append(f"{rel}: {why} is not allowed in a fix")
                continue
            shadow = check_shadowing({rel: new})
            if shadow:
                refused.append(f"{rel}: {shadow[0].problem}")
                continue
            files[rel] = new
        else:
            files.pop(rel, None)
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
        failed: FailedRequest | None = None,
    ) -> str | None:
        """One ledger row for one HTTP request (reply None: the request failed). Never raises:
        accounting.best_effort logs and counts a row it could not store."""

        def write() -> str:
            nonlocal detail
            ledger = self.yard.ledger
            if reply is None:
                # No usage came back, but we know what we sent: tiktoken's count of it.
                sent = count_prompt_tokens(messages, self.llm.model) if messages else 0
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
                    latency_ms=round(failed.elapsed_s * 1000, 1) if failed is not None else 0.0,
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

    def ask(
        self,
        messages: list[dict[str, str]],
        schema: type[BaseModel],
        *,
        skill: str | None,
        version: int | None,
        purpose: str,
        validate: Any = None,
        ids: list[str | None] | None = None,
    ) -> tuple[Any, int, _Pending]:
        """A structured request to the model (one JSON object in `schema`, checked by
        `validate`, one corrective retry), every HTTP request one ledger row under `skill`:
        the learner (runtime/learning.py) and the merger (runtime/merging.py) ask this way
        too. Returns (answer, tokens spent, pending); `pending.finish(outcome)` records the
        usable answer's row. FixError when no usable answer came."""
        return self._ask(
            messages, schema, skill=skill, version=version, purpose=purpose, validate=validate, ids=ids
        )

    def _ask(
        self,
        messages: list[dict[str, str]],
        schema: type[BaseModel],
        *,
        skill: str | None,
        version: int | None,
        purpose: str,
        validate: Any = None,
        ids: list[str | None] | None = None,
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
                self._record_failed(exc.failed, messages, skill, version, this_purpose, ids)
                raise FixError(str(exc)) from exc
            self._record_failed(reply.failed, messages, skill, version, this_purpose, ids)
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

    def _record_failed(
        self,
        requests: list[FailedRequest],
        messages: list[dict[str, str]],
        skill: str | None,
        version: int | None,
        purpose: str,
        ids: list[str | None],
    ) -> None:
        """One ledger row per HTTP request that failed (a timeout, a 429, a 5xx...)."""
        for number, request in enumerate(requests, start=1):
            status = f"HTTP {request.status} " if request.status else ""
            ids.append(
                self._record(
                    None,
                    skill=skill,
                    version=version,
                    purpose=purpose,
                    outcome="error",
                    detail=f"request {number} failed ({request.reason}): {status}{request.message}",
                    messages=messages,
                    failed=request,
                )
            )

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
        if latest.tier == INSTRUCTIONS:
            raise FixError(
                f"{name} is instructions only: it has no code to fix (edit its SKILL.md and add it again)"
            )
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
        frozen = frozenset(rel for rel in pkg.files if rel.startswith("tests/"))
        workspace = Workspace(self.yard.workspace(name))
        first = workspace.next_attempts(max_attempts)  # numbers continue across fix runs
        counter = [0]  # attempts this run made (the rest of the reserved numbers are given back)
        try:
            return self._fix_loop(
                name,
                pkg,
                report,
                runtime_errors,
                outcome,
                feedback,
                best,
                mem_path,
                repairing,
                frozen,
                first,
                max_attempts,
                allow_test_edits,
                counter,
            )
        finally:
            workspace.attempts_used(counter[0], max_attempts, first)

    def _fix_loop(
        self,
        name: str,
        pkg: SkillPackage,
        report: GateReport | None,
        runtime_errors: list[str],
        outcome: FixOutcome,
        feedback: list[str],
        best: tuple[int, float, int],
        mem_path: Any,
        repairing: int,
        frozen: frozenset[str],
        first: int,
        max_attempts: int,
        allow_test_edits: bool,
        counter: list[int],
    ) -> FixOutcome:
        for number in range(first, first + max_attempts):
            counter[0] += 1
            self.yard.progress(f"{name}: fix attempt {number} ({counter[0]}/{max_attempts} this run)")
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
                    name, number, pkg, answer, attempt, pending, feedback, mem_path, allow_test_edits, frozen
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
            outcome.stop_reason = f"gave up after {max_attempts} attempts (up to attempt {number})"
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
        frozen: frozenset[str],
    ) -> Any:
        """Apply one answer. Returns None (refused or invalid: try again), "unchanged", or
        (candidate, AddOutcome). The answer's ledger row gets its final outcome here."""
        try:
            files, refused = apply_edits(pkg, answer.files, allow_test_edits=allow_test_edits, frozen=frozen)
        except ValueError as exc:
            attempt.reasons = [str(exc)]
            pending.finish("invalid", f"answer rejected: {exc}")
            feedback.append(f"attempt {number} was rejected: {exc}")
            notes.add_entry(mem_path, "fix", f"attempt {number} rejected: {exc}")
            return None
        if refused:
            attempt.outcome = "refused"
            attempt.reasons = [f"refused: {'; '.join(refused)}"]
            pending.finish("refused", f"answer refused: {'; '.join(refused)}")
            feedback.append(
                f"attempt {number} was refused ({'; '.join(refused)}): the tests are frozen and decide; "
                "fix the code, not the tests or pytest"
            )
            notes.add_entry(mem_path, "fix", f"attempt {number} refused: {'; '.join(refused)}")
            log.warning("fix_refused", skill=name, refusals=refused)
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
        added = self.yard.add_package(candidate, frozen_tests=frozen)
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
    def _taken(self, name: str) -> bool:
        return bool(self.yard.registry.versions(name))

    def create(
        self,
        task: str,
        *,
        name: str | None = None,
        max_attempts: int = 3,
        allow_test_edits: bool = False,
        replace: bool = False,
    ) -> tuple[AddOutcome, FixOutcome | None]:
        """Have the model write a new skill for `task`, gate it, and fix it if it fails. A name
        already registered (or blocked) is refused unless `replace` (then the package becomes
        that skill's next version)."""
        if name is not None and not NAME_RE.match(name):
            raise FixError(f"--name {name!r}: use a-z, 0-9 and single hyphens")
        if name is not None and not replace and self._taken(name):
            raise FixError(
                f"a skill named {name!r} exists: pass --replace to make the new package its next version, "
                "or choose another --name"
            )
        user = f"Task: {task.strip()}\n"
        if name:
            user += f"Name the skill exactly `{name}`.\n"
        messages = [{"role": "system", "content": CREATE_SYSTEM}, {"role": "user", "content": user}]
        holder: dict[str, SkillPackage] = {}

        def validate(answer: CreateAnswer) -> None:
            if name and answer.name != name:
                raise ValueError(f"the skill must be named {name!r}, not {answer.name!r}")
            if not name and not replace and self._taken(answer.name):
                raise ValueError(f"a skill named {answer.name!r} already exists: choose another name")
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

    # tests for an existing skill ------------------------------------------------------------------
    def create_tests(self, name: str, *, max_attempts: int = 3) -> tuple[AddOutcome, FixOutcome | None]:
        """Have the model write tests for `name`'s latest version (its code unchanged), then gate
        the package with them as a new version: tests written now are untrusted, so the gate's
        mutation check decides whether they can fail. If they fail against the code, the model
        gets the failures back (the code stays as it is; only tests/ may change)."""
        latest = self.yard.versions(name)[-1]
        pkg = self.yard.package(name, latest.version)
        if not pkg.has_code:
            raise FixError(f"{name} has no code: an instructions-only skill needs no tests")
        sections = file_sections(pkg)
        body, _ = fit_sections(sections, self.budget, self.llm.model)
        user = f"Write tests for the skill `{name}` as it is. {skill_shape(pkg)}\n\n{body}"
        feedback: list[str] = []
        added: AddOutcome | None = None
        for number in range(1, max_attempts + 1):
            self.yard.progress(f"{name}: writing tests ({number}/{max_attempts})")
            extra = (
                ("\n\n## About your previous answers\n" + "\n".join(f"- {f}" for f in feedback))
                if feedback
                else ""
            )
            messages = [
                {"role": "system", "content": TESTS_SYSTEM},
                {"role": "user", "content": user + extra},
            ]

            def validate(answer: FixAnswer) -> None:
                outside = [
                    e.path for e in answer.files if not PurePosixPath(e.path).as_posix().startswith("tests/")
                ]
                if outside:
                    raise ValueError(f"write only files under tests/ (not {', '.join(outside)})")

            answer, _spent, pending = self._ask(
                messages, FixAnswer, skill=name, version=latest.version, purpose="create", validate=validate
            )
            files = dict(pkg.files)
            for edit in answer.files:
                rel = PurePosixPath(edit.path).as_posix()
                if edit.content is not None:
                    files[rel] = edit.content.encode("utf-8")
            try:
                candidate = package_from_files(name, files, pkg.executable)
            except PackageError as exc:
                pending.finish("invalid", f"invalid package: {exc}")
                feedback.append(f"the answer made an invalid package: {exc}")
                continue
            added = self.yard.add_package(candidate)
            pending.finish("ok", f"v{added.version} {added.status}" if added.version else added.status)
            notes.add_entry(
                self.yard.workspace(name) / MEMORY_FILE,
                "create",
                f"v{added.version} tests written by the model ({added.status})",
            )
            if added.status in ("registered", "unchanged"):
                return added, None
            feedback.append(f"those tests were blocked: {notes.shorten('; '.join(added.reasons), 600)}")
        if added is None:
            raise FixError(f"the model wrote no usable tests for {name} in {max_attempts} attempts")
        return added, None
