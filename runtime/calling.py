"""One call of a registered version, and what it leaves behind.

`sandboxed_call` runs the version in its image through the yard's call sandbox (the warm
pool or a fresh container): an image removed since its tag was cached is rebuilt once,
and an engine failure becomes a ``sandbox`` error in the result, never an exception.
`account` then records what a use of the skill records: the registry's call counters
and a ledger use (a `Use`, durable when `account` returns: the yard's accounting writer
journals it, or writes it at once; never failing the call), and, for the skill's own
failures, a dated note and the failing input (for the fixer to replay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from sandbox import ImageMissing, SandboxError

from . import notes
from .accounting import Use, Writer, best_effort
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


def account(yard: Yard, writer: Writer, record: SkillRecord, params: Any, result: CallResult) -> None:
    """Record the call as a use of the skill (see the module docstring)."""
    kind = result.error.kind if result.error else None
    if kind not in NOT_A_USE:
        # A field that fails the ledger's checks is a bug of ours: logged and counted, never the call's.
        use = best_effort(
            "record a use",
            lambda: Use.of(
                skill=record.name,
                version=record.version,
                ok=result.ok,
                outcome="ok" if result.ok else result.error.kind if result.error else "error",
                context_tokens=yard.known_context_tokens(record.name, record.version),
                duration_ms=round(result.duration_s * 1000, 1),
            ),
            skill=record.name,
        )
        if use is not None:
            writer.record(use)  # durable when it returns: the call may be acknowledged
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
