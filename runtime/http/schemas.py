"""The HTTP API's request and response models (pydantic: the API's boundary and its
OpenAPI document), the conversions from the runtime's records, and the shared
descriptions of error responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..calls import CallResult
from ..experience import ExperienceIn
from ..names import NAME_PATTERN
from ..records import SkillRecord


class ErrorOut(BaseModel):
    """Every error answer's body."""

    error: str = Field(description="What went wrong and, where it helps, what to do.")
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
    """Why a call failed (never the raw traceback)."""

    kind: str = Field(
        description="invalid_input, exception, timeout, oom, bad_output, crashed, sandbox, "
        "not_found, not_registered"
    )
    message: str
    type: str | None = Field(default=None, description="The exception type, for kind=exception.")
    location: str | None = Field(default=None, description="Where in the skill's scripts it was raised.")


class CallResultOut(BaseModel):
    """What a run answers: the output, or the error, and what the run used."""

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


class RunRequest(BaseModel):
    """The body of a run."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    input: Any = Field(
        default_factory=dict, description="The call's input, checked against the skill's input_schema."
    )
    version: int | None = Field(default=None, ge=1, le=2**31, description="Default: the current version.")
    async_: bool = Field(
        default=False, alias="async", description="true: return 202 and a job instead of waiting."
    )


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
}
SKILL_ERRORS = {**COMMON_ERRORS, 404: error_doc("No such skill (for this key)")}
# A run's answers other than 200 carry a call result when the skill was reached, else an error.
RESULT_OR_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/CallResultOut"},
                    {"$ref": "#/components/schemas/ErrorOut"},
                ]
            }
        }
    }
}
