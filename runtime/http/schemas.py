"""The HTTP API's request and response models (pydantic: the API's boundary and its
OpenAPI document), the conversions from the runtime's records, and the shared
descriptions of error responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..calls import CallResult
from ..commands import CommandResult
from ..experience import ExperienceIn
from ..names import NAME_PATTERN
from ..records import SkillRecord
from ..tenants import TENANT_PATTERN
from ..times import as_utc, parse_duration, utc_now


class ErrorOut(BaseModel):
    """Every error answer's body."""

    error: str = Field(description="What went wrong and, where it helps, what to do.")
    kind: str = Field(
        description="The error's kind, stable for programs: invalid_input, not_found, not_registered, "
        "forbidden, unauthorized, too_many_runs, too_many_jobs, too_many_requests, too_large, "
        "unsupported_media_type, conflict, registry, sandbox, store, llm_unavailable, internal, ..."
    )
    request_id: str | None = Field(default=None, description="Quote it when reporting a problem.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems of a rejected request."
    )


class GateSummaryOut(BaseModel):
    """A version's gate verdict, in short."""

    passed: bool
    tests: int
    failures: int
    errors: int
    skipped: int
    coverage: float | None
    duration_s: float
    reasons: list[str]


class SkillOut(BaseModel):
    """A skill version as the API lists it."""

    name: str
    version: int
    scope: Literal["private", "shared"] = Field(description="private: this tenant's own; shared: everyone's.")
    status: str = Field(description="registered, blocked or retired")
    tier: str = Field(
        description="instructions (no code: read its SKILL.md, never run), verified (code whose "
        "gate passed: it runs) or blocked (code whose gate failed, or code without tests)"
    )
    current: bool
    description: str
    tags: list[str]
    content_hash: str
    gate: GateSummaryOut
    calls: int
    failures: int
    last_used: datetime | None
    created_at: datetime
    updated_at: datetime


class SkillDetailOut(SkillOut):
    """A skill version with its config, files, gate report and notes."""

    config: dict[str, Any] = Field(
        description="skillyard.yaml: entrypoint, input_schema, output_schema, limits ..."
    )
    files: list[str]
    gate_report: dict[str, Any] | None
    memory: str | None = Field(description="The skill's .memory.md (own skills, and shared ones for admins).")


class SearchHitOut(SkillOut):
    """A search hit: the version and its score."""

    score: float = Field(description="Relevance; comparable within one list only.")


class CallErrorOut(BaseModel):
    """Why the skill's run failed (never the raw traceback)."""

    kind: str = Field(
        description="invalid_input, exception, timeout, oom, bad_output, crashed, sandbox, "
        "not_found, not_registered, not_runnable (an instructions-only skill: read it, do not run it)"
    )
    message: str
    type: str | None = Field(default=None, description="The exception type, for kind=exception.")
    location: str | None = Field(default=None, description="Where in the skill's scripts it was raised.")


class CallResultOut(BaseModel):
    """What a run answers when the skill ran: its output (ok), or its failure (ok false,
    `error`), and what the run used. A call that did not reach the skill is an error answer."""

    skill: str
    version: int | None
    scope: Literal["private", "shared"] | None = None
    ok: bool
    output: Any = None
    error: CallErrorOut | None = None
    duration_ms: float
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    peak_memory_bytes: int | None = None
    limits: dict[str, Any] = Field(default_factory=dict)


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    kind: Literal["import", "gate", "fix", "create", "run", "learn"]
    state: Literal["queued", "running", "succeeded", "failed"]
    skill: str | None
    scope: Literal["private", "shared"] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(description="The job's outcome once it succeeded (shape by kind).")
    error: str | None = Field(description="Why the job could not complete.")
    events: int = Field(description="Progress events so far.")
    links: dict[str, str]


B64 = "base64 (standard alphabet)"


class RunRequest(BaseModel):
    """The body of a run: a function call (`input`) or a command (`argv`, with files)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    input: Any = Field(
        default_factory=dict, description="The call's input, checked against the skill's input_schema."
    )
    argv: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Run a command instead: argv beginning with one of the skill's commands (skillyard.yaml "
        "`commands`), then your arguments. Relative paths are in the command's working dir.",
    )
    stdin_b64: str = Field(default="", description=f"A command's stdin, {B64}.")
    files: dict[str, str] = Field(
        default_factory=dict, description=f"A command's input files: relative path -> content, {B64}."
    )
    outputs: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Files (relative paths) the command writes, returned in `files` (base64), each capped.",
    )
    version: int | None = Field(default=None, ge=1, le=2**31, description="Default: the current version.")
    async_: bool = Field(
        default=False, alias="async", description="true: return 202 and a job instead of waiting."
    )
    stream: bool = Field(
        default=False,
        description="true: answer with server-sent events: `stdout`/`stderr` as the run prints, then one "
        "`result` event holding what the run answers otherwise.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> RunRequest:
        if self.argv is not None and "input" in self.model_fields_set:
            raise ValueError("give either `input` (a function call) or `argv` (a command), not both")
        if self.argv is None and (self.files or self.outputs or self.stdin_b64):
            raise ValueError("files, outputs and stdin_b64 go with `argv` (a command)")
        if self.async_ and self.stream:
            raise ValueError("`async` and `stream` exclude each other: a stream is the live answer")
        return self


class CommandResultOut(BaseModel):
    """What a command run answers: exit status, output, the output files (base64)."""

    skill: str
    version: int | None
    scope: Literal["private", "shared"] | None = None
    ok: bool = Field(description="It ran within its limits and exited 0.")
    command: str = Field(description="The declared command the argv began with.")
    argv: list[str]
    exit_code: int | None
    stdout: str = Field(description="As UTF-8 text (what is not UTF-8 replaced); stdout_b64 has the bytes.")
    stderr: str
    stdout_b64: str
    stderr_b64: str
    stdout_truncated: bool
    stderr_truncated: bool
    files: dict[str, str] = Field(description=f"The output files that existed, {B64}.")
    missing_files: list[str]
    truncated_files: list[str] = Field(description="Output files cut at the cap.")
    timed_out: bool
    oom_killed: bool
    error: CallErrorOut | None = Field(
        default=None,
        description="kind: invalid_input, not_found, not_registered, exit, timeout, oom, sandbox.",
    )
    duration_ms: float
    peak_memory_bytes: int | None = None
    limits: dict[str, Any] = Field(default_factory=dict)


class SessionCreateRequest(BaseModel):
    """The body of a new session."""

    model_config = ConfigDict(extra="forbid")
    skills: list[str] = Field(
        min_length=1, max_length=16, description="Registered skills, under /skills/NAME."
    )
    idle_timeout: float = Field(default=600.0, gt=0, le=86400, description="Seconds idle before it ends.")


class SessionOut(BaseModel):
    """A session: its skills, its working dir and how long it has left."""

    id: str
    skills: list[dict[str, Any]]
    workdir: str
    created_at: str
    idle_timeout_s: float
    expires_in_s: float
    commands: int
    alive: bool
    links: dict[str, str] = Field(default_factory=dict)


class SessionExecRequest(BaseModel):
    """One command in a session."""

    model_config = ConfigDict(extra="forbid")
    argv: list[str] = Field(min_length=1, max_length=1024, description="Any program in the session's image.")
    stdin_b64: str = Field(default="", description=f"stdin, {B64}.")
    timeout: float | None = Field(default=None, gt=0, le=3600, description="Seconds (default 60).")
    cwd: str | None = Field(default=None, description="Working dir inside /work (default /work).")
    stream: bool = Field(
        default=False, description="true: server-sent events (see POST /v1/skills/{name}/run)."
    )


class SessionResultOut(BaseModel):
    """What one session command did."""

    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    oom_killed: bool
    duration_ms: float


class RollbackRequest(BaseModel):
    """The body of a rollback."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31)


class GateRequest(BaseModel):
    """The body of a gate re-run (optional)."""

    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(default=None, ge=1, le=2**31)


class FixRequest(BaseModel):
    """The body of a fix (optional)."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=5)
    allow_test_edits: bool = False


class CreateRequest(BaseModel):
    """The body of a creation."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=8000, description="What the new skill should do.")
    name: str | None = Field(default=None, pattern=NAME_PATTERN, max_length=64)
    shared: bool = Field(default=False, description="Add it to the shared skills (admin keys only).")
    max_attempts: int = Field(default=3, ge=1, le=5)
    allow_test_edits: bool = False
    replace: bool = Field(
        default=False, description="A skill of that name exists: make the new package its next version."
    )


class ExperienceRequest(ExperienceIn):
    """The body of POST /v1/experiences: a conversation (`messages`, OpenAI format) or a
    list of behaviour/event records (`events`), and how to learn from it."""

    dry_run: bool = Field(default=False, description="Decide and show, write nothing.")
    now: bool = Field(
        default=False,
        description="Send it to the model even when it shows no durable preference, correction or procedure.",
    )
    shared: bool = Field(default=False, description="Learn into the shared skills (admin keys only).")


class HealthOut(BaseModel):
    """The liveness answer."""

    ok: bool
    version: str


# -- conversions -------------------------------------------------------------------------------------
def skill_out(rec: SkillRecord, scope: str, cls: type[SkillOut] = SkillOut, **extra: Any) -> Any:
    """The API's view of a record (as `cls`, with `extra` fields)."""
    g = rec.gate
    return cls(
        name=rec.name,
        version=rec.version,
        scope=scope,
        status=rec.status,
        tier=rec.tier,
        current=rec.current,
        description=rec.description,
        tags=list(rec.tags or []),
        content_hash=rec.content_hash,
        gate=GateSummaryOut(
            passed=g.passed,
            tests=g.tests,
            failures=g.failures,
            errors=g.errors,
            skipped=g.skipped,
            coverage=g.coverage,
            duration_s=g.duration_s,
            reasons=list(g.reasons or []),
        ),
        calls=rec.calls,
        failures=rec.failures,
        last_used=rec.last_used,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        **extra,
    )


_FRAME_RE = re.compile(r'File "/skill/([^"]+)", line (\d+), in (\S+)')


def command_out(result: CommandResult, scope: str | None) -> CommandResultOut:
    """The API's view of a command run."""
    data = result.to_dict()
    err = data.pop("error")
    return CommandResultOut(
        **data, scope=scope, error=CallErrorOut(**err, location=None) if err is not None else None
    )


def call_out(result: CallResult, scope: str | None) -> CallResultOut:
    """The API's view of a call: everything but the raw traceback text (its last frame in the
    skill's own files is given as `location`)."""
    err = None
    if result.error is not None:
        frames = _FRAME_RE.findall(result.error.traceback or "")
        where = f"{frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]}" if frames else None
        err = CallErrorOut(
            kind=result.error.kind, message=result.error.message, type=result.error.type, location=where
        )
    return CallResultOut(
        skill=result.skill,
        version=result.version,
        scope=scope,
        ok=result.ok,
        output=result.output,
        error=err,
        duration_ms=round(result.duration_s * 1000, 1),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        peak_memory_bytes=result.peak_memory_bytes,
        limits=result.limits,
    )


# -- error responses, as the OpenAPI document describes them ---------------------------------------------
def error_doc(description: str) -> dict[str, Any]:
    """An error response (an ErrorOut body) with its description, for `responses=`."""
    return {"model": ErrorOut, "description": description}


COMMON_ERRORS = {
    401: error_doc("No or a bad API key"),
    422: error_doc("Invalid request"),
    413: error_doc("Request body too large"),
    429: error_doc("Too many requests of this key's tenant in progress"),
}
BODY_ERRORS = {415: error_doc("The body's media type is not one this endpoint takes (see requestBody)")}
SKILL_ERRORS = {**COMMON_ERRORS, 404: error_doc("No such skill (for this key)")}


# -- tenants and keys (admin keys only) ---------------------------------------------------------------------
class KeyOut(BaseModel):
    """What may be shown of an API key: never the key or its hash."""

    id: str = Field(description="The key's id: the part after `sy_`, not secret.")
    tenant: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None = Field(description="When it stops working; null: never.")
    expired: bool
    last_used: datetime | None = Field(description="When it last opened a request (to the minute).")


class TenantOut(BaseModel):
    """A tenant and its keys."""

    name: str
    admin: bool
    created_at: datetime | None
    max_concurrent_runs: int | None = Field(description="Its own run limit; null: the server's default.")
    keys: list[KeyOut]


class _KeyTerms(BaseModel):
    """When a new key stops working: `expires_in` (90d, 12h, ...) or `expires_at` (ISO 8601), or never."""

    model_config = ConfigDict(extra="forbid")
    expires_in: str | None = Field(
        default=None, max_length=32, description="A length of time: 90s, 30m, 12h, 90d, 1w."
    )
    expires_at: datetime | None = Field(default=None, description="An instant (naive: UTC).")
    label: str | None = Field(
        default=None, max_length=64, description="What the key is for (shown, not secret)."
    )

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)  # ValueError: a field error
        return v

    @model_validator(mode="after")
    def _one_expiry(self) -> _KeyTerms:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self

    def expiry(self) -> datetime | None:
        """The instant the key stops working, or None."""
        if self.expires_in is not None:
            return utc_now() + parse_duration(self.expires_in)
        return as_utc(self.expires_at) if self.expires_at is not None else None


class NewTenantRequest(_KeyTerms):
    """A tenant to create; the expiry and label are its first key's."""

    name: str = Field(pattern=TENANT_PATTERN, description="1-32 of a-z, 0-9 and '-'; not a reserved name.")
    admin: bool = False
    max_concurrent_runs: int | None = Field(default=None, ge=1, le=256)


class TenantPatch(BaseModel):
    """Changes to a tenant: only the fields given change (null run limit: the server's default)."""

    model_config = ConfigDict(extra="forbid")
    admin: bool | None = None
    max_concurrent_runs: int | None = Field(default=None, ge=1, le=256)


class NewKeyRequest(_KeyTerms):
    """A new key for a tenant."""


class RotateKeyRequest(_KeyTerms):
    """A key's rotation: the new key's terms, and how long the old one keeps working."""

    overlap: str = Field(
        default="1h", max_length=32, description="How long the old key keeps working: 0s to 30d (default 1h)."
    )

    @field_validator("overlap")
    @classmethod
    def _overlap(cls, v: str) -> str:
        parse_duration(v)
        return v


class NewKeyOut(BaseModel):
    """A key, shown this once: store it now (only its hash is kept)."""

    key: str = Field(description="sy_<id>_<secret>: send it as 'Authorization: Bearer <key>'.")
    info: KeyOut


class NewTenantOut(NewKeyOut):
    """A created tenant and its first key (shown this once)."""

    tenant: TenantOut


class RotatedKeyOut(NewKeyOut):
    """The new key (shown this once) and the old one, with when it now stops working."""

    previous: KeyOut


def key_out(info: Any) -> KeyOut:
    """The API's view of a runtime.tenants.KeyInfo."""
    return KeyOut(**info.to_dict())


def tenant_out(tenant: Any, keys: list[Any]) -> TenantOut:
    """The API's view of a tenant and its keys."""
    return TenantOut(
        name=tenant.name,
        admin=tenant.admin,
        created_at=tenant.created_at or None,
        max_concurrent_runs=tenant.max_concurrent_runs,
        keys=[key_out(k) for k in keys],
    )


class DeletedOut(BaseModel):
    """What a delete removed, and what it kept."""

    name: str
    scope: Literal["private", "shared"]
    versions: list[int] = Field(description="The versions deleted.")
    skill_deleted: bool = Field(description="Whether no version of the skill is left.")
    kept: str = Field(
        default="the ledger's rows (GET /v1/cost still reports the skill's account) "
        "and the registry's history",
        description="What a delete never removes.",
    )


class ToolsOut(BaseModel):
    """Tool definitions for the registered skills a key can call, in one agent's shape."""

    format: Literal["openai", "openai-chat", "anthropic", "mcp"]
    tools: list[dict[str, Any]] = Field(description="Ready to pass to that agent's API as its tool list.")
    skills: list[dict[str, Any]] = Field(
        description="For each tool, in the same order: the skill's name, version and scope."
    )
