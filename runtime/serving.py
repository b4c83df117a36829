"""Serving tenants: what a server process keeps for them, and the one path a tenant's call
takes, whichever surface it came through (HTTP API or MCP server).

The call path, written once: take one of the tenant's concurrent-run slots (over the
limit: TooManyRuns) -> check the input (finite numbers, bounded nesting) -> resolve the
skill (TenantView.resolve) -> run the resolved version, audited however it ends -> give
the slot back. The record the view resolved is the one that runs: the yard does not look
it up again.

Refusals are cheap, and their cost stays with the refused tenant: the slot is asked for
first, before the store is read or anything written, and a refusal is only counted in
the audit trail (AuditLog.refused aggregates them per tenant, in that tenant's file).

A call that did not reach the skill (bad input, a version that may not run, the engine
down) is a request that failed, not a result: `request_error` names it as an error of the
tree, which each surface maps as it maps any other.

Limits are per server process: an HTTP server and an MCP server beside it each count
only their own runs.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog

from .audit import AuditLog, audited
from .calls import MAX_INPUT_DEPTH, CallResult
from .commands import CommandRequest, CommandResult, OnOutput
from .config import Settings
from .errors import (
    ConfigError,
    Forbidden,
    InvalidInput,
    NotRegistered,
    NotRunnable,
    SandboxError,
    SkillError,
    SkillyardError,
    TooManyRuns,
    UnknownSkill,
)
from .sessions import Session, SessionManager, SessionResult, check_argv
from .tenants import Tenant, Tenants, bearer_key
from .views import Target, TenantView, TenantYards

if TYPE_CHECKING:
    from .image_retention import RetentionLoop, RetentionReport
    from .yard import Yard

log = structlog.get_logger(__name__)

DEFAULT_MAX_RUNS = 4


def check_input(value: Any) -> None:
    """Refuse call input no JSON reader should see, before anything runs: numbers that
    are not finite (NaN, Infinity, 1e999: Python's JSON reader accepts them, JSON has
    none) and nesting deeper than MAX_INPUT_DEPTH. InvalidInput says where. Iterative:
    hostile input must not blow the stack."""
    stack: list[tuple[str, Any, int]] = [("input", value, 1)]
    while stack:
        where, item, depth = stack.pop()
        if depth > MAX_INPUT_DEPTH:
            raise InvalidInput(f"input is nested deeper than {MAX_INPUT_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput(f"{where} is not a finite number: JSON has no NaN or Infinity (1e999 is one)")
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}", v, depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", v, depth + 1) for i, v in enumerate(item))


def request_error(result: CallResult | CommandResult) -> SkillyardError | None:
    """Why a call did not reach the skill, as an error of the tree -- or None when the skill
    ran, whether it returned or failed (an exception, a timeout, ... is its answer)."""
    err = result.error
    if err is None:
        return None
    errors: dict[str, type[SkillyardError]] = {
        "invalid_input": InvalidInput,
        "not_found": UnknownSkill,
        "not_registered": NotRegistered,
        "not_runnable": NotRunnable,
        "sandbox": SandboxError,
    }
    cls = errors.get(err.kind)
    return None if cls is None else cls(err.message)


def configured_max_runs(settings: Settings | None = None) -> int:
    """The per-tenant default of concurrent runs for a server process: the settings'
    max_concurrent_runs if they have one, else SKILLYARD_MAX_CONCURRENT_RUNS, else
    DEFAULT_MAX_RUNS."""
    value = getattr(settings, "max_concurrent_runs", None) if settings is not None else None
    if value is None:
        value = os.environ.get("SKILLYARD_MAX_CONCURRENT_RUNS", "").strip() or DEFAULT_MAX_RUNS
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"SKILLYARD_MAX_CONCURRENT_RUNS={value!r} is not a whole number") from exc
    if n < 1:
        raise ConfigError(f"SKILLYARD_MAX_CONCURRENT_RUNS={n} must be at least 1")
    return n


class RunLimiter:
    """Concurrent runs per tenant: try_acquire is non-blocking (over the limit -> False).
    A tenant's own max_concurrent_runs wins over the default."""

    def __init__(self, default_limit: int = DEFAULT_MAX_RUNS) -> None:
        self.default_limit = max(1, int(default_limit))
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def limit_for(self, tenant: Tenant | None) -> int:
        """How many runs `tenant` may have at once here."""
        if tenant is not None and tenant.max_concurrent_runs:
            return int(tenant.max_concurrent_runs)
        return self.default_limit

    def try_acquire(self, tenant: Tenant | None) -> bool:
        """Take a slot if one is free."""
        name = tenant.name if tenant else "local"
        with self._lock:
            n = self._counts.get(name, 0)
            if n >= self.limit_for(tenant):
                return False
            self._counts[name] = n + 1
            return True

    def release(self, tenant: Tenant | None) -> None:
        """Give a slot back."""
        name = tenant.name if tenant else "local"
        with self._lock:
            n = self._counts.get(name, 0) - 1
            if n <= 0:
                self._counts.pop(name, None)
            else:
                self._counts[name] = n

    def active(self, tenant: Tenant | None) -> int:
        """Runs `tenant` has in progress here."""
        with self._lock:
            return self._counts.get(tenant.name if tenant else "local", 0)


class Service:
    """What one server process keeps for its tenants: their keys, their yards, the run
    limiter and the audit log. Both surfaces serve through one of these.

    `yard_factory(settings) -> Yard` makes every yard (default: a long-lived Yard sharing
    one Docker sandbox); `only_tenant` admits only that tenant's keys; `progress` receives
    the yards' progress messages."""

    def __init__(
        self,
        settings: Settings,
        *,
        yard_factory: Callable[[Settings], Yard] | None = None,
        max_concurrent_runs: int | None = None,
        progress: Callable[[str], None] | None = None,
        only_tenant: str | None = None,
    ) -> None:
        self.settings = settings
        self.tenants = Tenants(settings.home)
        self.only_tenant = only_tenant
        self.yards = TenantYards(settings, yard_factory, progress=progress)
        limit = max_concurrent_runs if max_concurrent_runs is not None else configured_max_runs(settings)
        self.runs = RunLimiter(limit)
        self.audit = AuditLog(settings.home)
        # Sessions run on the shared yard's engine; each belongs to one tenant.
        self.sessions = SessionManager(lambda: self.yards.shared.docker_backend())
        self._retention: RetentionLoop | None = None
        if settings.image_gc_interval_s > 0:
            from .image_retention import RetentionLoop  # docker and the store: only for servers

            self._retention = RetentionLoop(settings.image_gc_interval_s, self.retain_images).start()

    def authenticate(self, authorization: str | None) -> Tenant | None:
        """The tenant an ``Authorization: Bearer KEY`` header speaks for, or None (no key,
        a bad one, or one of a tenant this server does not admit). May hash: not on an event loop."""
        key = bearer_key(authorization)
        tenant = self.tenants.authenticate(key) if key else None
        return self._admitted(tenant)

    def authenticate_cached(self, authorization: str | None) -> Tenant | None:
        """As `authenticate` for a key this process verified before, else None: no hashing."""
        key = bearer_key(authorization)
        return self._admitted(self.tenants.authenticate_cached(key) if key else None)

    def _admitted(self, tenant: Tenant | None) -> Tenant | None:
        if tenant is not None and self.only_tenant is not None and tenant.name != self.only_tenant:
            return None
        return tenant

    @property
    def key_uses_due(self) -> bool:
        """Whether when keys were last used should be written (save_key_uses, off the event loop)."""
        return self.tenants.uses_due

    def save_key_uses(self) -> None:
        """Write when keys were last used (runtime.tenants)."""
        self.tenants.save_uses()

    def view(self, tenant: Tenant | None) -> TenantView:
        """What `tenant` sees (None: the local operator)."""
        return self.yards.view(tenant)

    def remove_tenant(self, name: str, *, purge: bool = False) -> bool:
        """Remove a tenant: its keys stop working at once, its yards here are closed (warm
        containers stopped), and with `purge` its private skills and workspace are deleted."""
        removed = self.tenants.remove(name)
        for yard in self.yards.forget(name):
            try:
                yard.close()
            except Exception as exc:  # noqa: BLE001 - the tenant is gone either way; say what stayed
                log.warning("tenant_yard_close_failed", tenant=name, error=str(exc)[:200])
        if purge:
            self.tenants.purge(name)
        return removed

    # -- refusals ----------------------------------------------------------------------------
    def refuse(
        self, tenant: Tenant | None, event: str, *, error: str, skill: str | None = None, **context: Any
    ) -> None:
        """Count a refused attempt of `tenant`'s in its own audit trail (aggregated: no I/O here)."""
        self.audit.refused(
            event, tenant=tenant.name if tenant else "local", error=error, skill=skill, **context
        )

    @contextmanager
    def refusals_audited(
        self, event: str, view: TenantView, skill: str | None = None, **context: Any
    ) -> Iterator[None]:
        """Record a Forbidden raised in the block as a refused `event` (then let it go on):
        an attempt to change what the caller may only read is part of the trail."""
        try:
            yield
        except Forbidden:
            self.refuse(view.tenant, event, error="forbidden", skill=skill, **context)
            raise

    # -- the call path ---------------------------------------------------------------------------
    def acquire_run(self, tenant: Tenant | None, skill: str, **context: Any) -> None:
        """Take one of `tenant`'s run slots, or count the refusal and raise TooManyRuns.
        Decided before anything is looked up: a refusal reads no store and writes nothing.
        `context` (request_id, via, ...) goes into the audit entry."""
        if self.runs.try_acquire(tenant):
            return
        self.refuse(tenant, "call", error="too_many_runs", skill=skill, **context)
        raise TooManyRuns(
            f"{self.runs.active(tenant)} runs of yours are in progress (the limit is "
            f"{self.runs.limit_for(tenant)}); retry when one finishes"
        )

    def release_run(self, tenant: Tenant | None) -> None:
        """Give back the slot `acquire_run` took."""
        self.runs.release(tenant)

    @contextmanager
    def run_slot(self, tenant: Tenant | None, skill: str, **context: Any) -> Iterator[None]:
        """One of `tenant`'s run slots for the block (see acquire_run)."""
        self.acquire_run(tenant, skill, **context)
        try:
            yield
        finally:
            self.release_run(tenant)

    def run(
        self,
        view: TenantView,
        target: Target,
        params: Any,
        *,
        on_output: OnOutput | None = None,
        ledger_use: bool = True,
        **context: Any,
    ) -> CallResult:
        """Run the resolved version on `params` in the tenant's yard, audited however it ends
        (`on_output`: live output; `ledger_use`: see Yard.call). The caller holds a run slot
        (see `call`)."""
        with audited(
            self.audit,
            "call",
            tenant=view.name,
            skill=target.name,
            version=target.record.version,
            scope=target.scope,
            **context,
        ) as entry:
            result = target.run_yard.call(target.record, params, on_output=on_output, ledger_use=ledger_use)
            entry.update(
                version=result.version,
                limits=result.limits,
                peak_memory_bytes=result.peak_memory_bytes,
                outcome="ok" if result.ok else result.error.kind if result.error else "error",
                duration_ms=round(result.duration_s * 1000, 1),
            )
        return result

    def run_command(
        self,
        view: TenantView,
        target: Target,
        request: CommandRequest,
        *,
        on_output: OnOutput | None = None,
        **context: Any,
    ) -> CommandResult:
        """Run a command of the resolved version, audited however it ends (event `call`,
        `command` naming which). The caller holds a run slot."""
        with audited(
            self.audit,
            "call",
            tenant=view.name,
            skill=target.name,
            version=target.record.version,
            scope=target.scope,
            **context,
        ) as entry:
            result = target.run_yard.call_command(target.record, request, on_output=on_output)
            entry.update(
                command=result.command or None,
                limits=result.limits,
                peak_memory_bytes=result.peak_memory_bytes,
                outcome="ok" if result.ok else result.error.kind if result.error else "error",
                duration_ms=round(result.duration_s * 1000, 1),
            )
        return result

    # -- sessions ---------------------------------------------------------------------------
    def open_session(
        self, view: TenantView, skills: list[str], *, idle_timeout: float, **context: Any
    ) -> Session:
        """Start a session for the tenant with these skills (as it sees them), audited."""
        if len(skills) != len(set(skills)):
            raise InvalidInput("name each skill once")
        targets = [view.resolve(name) for name in skills]
        for target in targets:
            if target.record.status != "registered":
                raise SkillError(
                    f"{target.name} v{target.record.version} is {target.record.status}: "
                    "only registered skills go into a session"
                )
        with audited(
            self.audit, "session", tenant=view.name, skill=",".join(skills)[:200], **context
        ) as entry:
            session = self.sessions.start(
                [(t.yard, t.record) for t in targets], tenant=view.name, idle_timeout=idle_timeout
            )
            entry.update(outcome="ok", session=session.id)
        return session

    def session_exec(
        self,
        view: TenantView,
        session: Session,
        argv: list[str],
        *,
        stdin: bytes = b"",
        timeout: float | None = None,
        cwd: str | None = None,
        on_output: OnOutput | None = None,
        **context: Any,
    ) -> SessionResult:
        """One command in the tenant's session: a run slot, audited (argv is not logged)."""
        check_argv(argv)
        if not self.runs.try_acquire(view.tenant):
            self.audit.record(
                "session_exec", tenant=view.name, outcome="refused", error="too_many_runs", **context
            )
            raise TooManyRuns(
                f"{self.runs.active(view.tenant)} runs of yours are in progress (the limit is "
                f"{self.runs.limit_for(view.tenant)}); retry when one finishes"
            )
        try:
            with audited(
                self.audit, "session_exec", tenant=view.name, session=session.id, **context
            ) as entry:
                result = self.sessions.run(
                    session,
                    lambda: session.exec(argv, stdin=stdin, timeout=timeout, cwd=cwd, on_output=on_output),
                )
                entry.update(
                    outcome="ok" if result.ok else "timeout" if result.timed_out else "exit",
                    duration_ms=round(result.duration_s * 1000, 1),
                )
            return result
        finally:
            self.runs.release(view.tenant)

    def call(
        self, view: TenantView, target: Target, params: Any, *, ledger_use: bool = True, **context: Any
    ) -> CallResult:
        """The whole path for a resolved skill: a slot, the input check, the run, the slot back.
        `ledger_use`: see Yard.call."""
        with self.run_slot(view.tenant, target.name, **context):
            check_input(params)
            return self.run(view, target, params, ledger_use=ledger_use, **context)

    def retain_images(self) -> RetentionReport | None:
        """One image retention pass with the settings (runtime.image_retention); None when
        the yards do not run on a Docker engine."""
        from sandbox.docker_backend import DockerBackend

        from .image_retention import retain_configured

        backend = self.yards.shared.sandbox.backend
        if not isinstance(backend, DockerBackend):
            return None
        return retain_configured(backend.client, self.settings)

    def close(self) -> None:
        """Close every session, stop image retention and every yard's warm containers, wait for
        their accounting and write the audit trail's pending refusals (at shutdown)."""
        self.sessions.close_all()
        if self._retention is not None:
            self._retention.stop()
        self.yards.close()
        self.audit.close()
