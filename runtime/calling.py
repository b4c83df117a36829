"""One call of a registered version, and what it leaves behind.

`sandboxed_call` runs the version in its image through the yard's call sandbox (the warm
pool or a fresh container): an image removed since its tag was cached is rebuilt once,
and an engine failure becomes a ``sandbox`` error in the result, never an exception.
`sandboxed_command` does the same for a command (runtime/commands.py). `account` then
records what a use of the skill records, for a function call and a command alike: the
registry's call counters and a ledger use (a `Use` named by its call's id, durable when
`account` returns: the yard's accounting writer journals it, or writes it at once; never
failing the call; a call accounted twice counts once), and, for the skill's own failures,
a dated note and the failing input (for the fixer to replay; a command's inputs are not
kept: the fixer replays functions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from sandbox import ImageMissing, SandboxError

from . import notes
from .accounting import Use, Writer, best_effort
from .calls import CallError, CallResult, call_limits, call_skill
from .commands import CommandRequest, CommandResult, OnOutput, run_command
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


def sandboxed_call(
    yard: Yard, record: SkillRecord, params: Any, on_output: OnOutput | None = None
) -> CallResult:
    """Run `record`'s version on `params` in `yard`'s call sandbox; account for nothing.
    `on_output` receives what the skill prints as it prints it."""
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
            on_output=on_output,
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


def sandboxed_command(
    yard: Yard, record: SkillRecord, request: CommandRequest, on_output: OnOutput | None = None
) -> CommandResult:
    """Run a command of `record`'s version in `yard`'s call sandbox (runtime/commands.py);
    account for nothing. As `sandboxed_call`: only registered versions run, a removed image
    is rebuilt once, an engine failure is a ``sandbox`` error in the result."""
    if record.status != "registered":
        message = f"{record.name} v{record.version} is {record.status}; only registered versions run"
        return CommandResult(
            skill=record.name,
            version=record.version,
            ok=False,
            argv=list(request.argv),
            error=CallError("not_registered", message),
        )
    pkg = yard.package(record.name, record.version)
    limits = call_limits(pkg.config, yard.base_limits)

    def attempt(*, fresh: bool) -> CommandResult:
        result, _ = run_command(
            yard.call_sandbox,
            skill=record.name,
            version=record.version,
            image=yard.image_for(pkg, fresh=fresh),
            config=pkg.config,
            package_files=set(pkg.image_files),
            request=request,
            limits=limits,
            tenant=yard.tenant,
            on_output=on_output,
        )
        return result

    try:
        try:
            return attempt(fresh=False)
        except ImageMissing:  # removed since we cached its tag: rebuild once
            return attempt(fresh=True)
    except SandboxError as exc:
        return CommandResult(
            skill=record.name,
            version=record.version,
            ok=False,
            argv=list(request.argv),
            error=CallError("sandbox", str(exc)),
        )


def account(
    yard: Yard,
    writer: Writer,
    record: SkillRecord,
    params: Any,
    result: CallResult | CommandResult,
    call_id: str,
    *,
    ledger_use: bool = True,
) -> None:
    """Record the call as a use of the skill (see the module docstring). The use row is keyed
    on `call_id` and the counters move only when that row is new: a call accounted twice
    (retried, replayed, from two servers) counts once. Without `ledger_use` the call is
    counted and noted but is no ledger use of its own: it is part of a use the caller
    records (the proxy's ``proxy_uses`` row of a chat request)."""
    kind = result.error.kind if result.error else None
    if kind not in NOT_A_USE:
        # A field that fails the ledger's checks is a bug of ours: logged and counted, never the call's.
        use = best_effort(
            "record a use",
            lambda: Use.of(
                call_id=call_id,
                skill=record.name,
                version=record.version,
                ok=result.ok,
                outcome="ok" if result.ok else result.error.kind if result.error else "error",
                context_tokens=yard.known_context_tokens(record.name, record.version),
                duration_ms=round(result.duration_s * 1000, 1),
            ),
            skill=record.name,
        )
        if use is not None and ledger_use:
            writer.record(use)  # durable when it returns: the call may be acknowledged
        elif use is not None:  # part of its caller's use: the counters move, no ledger row
            best_effort(
                "count a call",
                lambda: yard.registry.count_calls(
                    record.name, record.version, calls=1, failures=0 if result.ok else 1, last_used=use.ts
                ),
                skill=record.name,
            )
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
