"""One call of a registered version, and what it leaves behind.

`sandboxed_call` runs the version in its image through the yard's call sandbox (the warm
pool or a fresh container): an image removed since its tag was cached is rebuilt once,
and an engine failure becomes a ``sandbox`` error in the result, never an exception.
`account` then records what a use of the skill records: the registry's call counters
and a ledger use (through the yard's accounting writer, never failing the call), and, for
the skill's own failures, a dated note and the failing input (for the fixer to replay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from sandbox import ImageMissing, SandboxError

from . import notes
from .accounting import Writer
from .calls import CallError, CallResult, call_limits, call_skill
from .records import SkillRecord
from .workspace import Workspace

if TYPE_CHECKING:
    from .yard import Yard

log = structlog.get_logger(__name__)

# Call errors that are not a use of the skill: the caller's input, the engine, a version
# that may not run. No counter, no ledger row, and nothing for its notes.
NOT_A_USE = ("invalid_input", "sandbox", "not_registered", "not_runnable", "not_found")
# Failures whose input is worth replaying once a fix exists.
REPLAYABLE = ("exception", "bad_output", "crashed")


def sandboxed_call(yard: Yard, record: SkillRecord, params: Any) -> CallResult:
    """Run `record`'s version on `params` in `yard`'s call sandbox; account for nothing."""
    if record.status != "registered":
        message = f"{record.name} v{record.version} is {record.status}; only registered versions run"
        return CallResult(
            skill=record.name, version=record.version, ok=False, error=CallError("not_registered", message)
        )
    if not record.runnable:  # registered, but instructions only: there is nothing to run
        message = (
            f"{record.name} is an instructions-only skill: it has no code to run. Read its "
            f"instructions instead (`skillyard show {record.name}`, GET /v1/skills/{record.name}/skill.md, "
            "or the MCP tool load_skill)"
        )
        return CallResult(
            skill=record.name, version=record.version, ok=False, error=CallError("not_runnable", message)
        )
    pkg = yard.package(record.name, record.version)
    limits = call_limits(pkg.config, yard.base_limits)

    def attempt(*, fresh: bool) -> CallResult:
        return call_skill(
            yard.call_sandbox,
            name=record.name,
            version=record.version,
            image=yard.image_for(pkg, fresh=fresh),
            config=pkg.config,
            params=params,
            limits=limits,
            tenant=yard.tenant,
            env=yard.callee_env(pkg),
        )

    try:
        try:
            return attempt(fresh=False)
        except ImageMissing:  # removed since we cached its tag (docker image prune): rebuild once
            return attempt(fresh=True)
    except SandboxError as exc:
        return CallResult(
            skill=record.name, version=record.version, ok=False, error=CallError("sandbox", str(exc))
        )


def account(
    yard: Yard,
    writer: Writer,
    record: SkillRecord,
    params: Any,
    result: CallResult,
    *,
    ledger_use: bool = True,
) -> None:
    """Record the call as a use of the skill (see the module docstring). Without
    `ledger_use` the call is counted and noted but is no ledger use of its own: it is part
    of a use the caller records (the proxy's ``proxy_uses`` row of a chat request)."""
    kind = result.error.kind if result.error else None
    if kind not in NOT_A_USE:
        ok = result.ok
        writer.submit(
            "count a call",
            lambda: yard.registry.record_call(record.name, record.version, ok),
            skill=record.name,
        )
        if ledger_use:
            writer.submit("record a use", lambda: _record_use(yard, record, result), skill=record.name)
    if result.error is not None and kind not in NOT_A_USE:
        workspace = Workspace(yard.workspace(record.name))
        error = result.error
        workspace.add_note(
            error.kind,
            f"v{record.version} {error.kind}: {error.type + ': ' if error.type else ''}"
            f"{notes.shorten(error.message, 200)} (input: {notes.describe_value(params)})",
        )
        if kind in REPLAYABLE:
            workspace.remember_failed_input(params, error)
    log.info(
        "skill_call",
        skill=record.name,
        version=record.version,
        ok=result.ok,
        error=kind,
        duration_s=round(result.duration_s, 3),
    )


def _record_use(yard: Yard, record: SkillRecord, result: CallResult) -> None:
    yard.ledger.record_use(
        skill=record.name,
        version=record.version,
        context_tokens=yard.context_tokens(yard.package(record.name, record.version)),
        outcome="ok" if result.ok else result.error.kind if result.error else "error",
        duration_ms=round(result.duration_s * 1000, 1),
    )
