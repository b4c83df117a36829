"""Serving tenants: what a server process keeps for them, and the one path a tenant's call
takes, whichever surface it came through (HTTP API or MCP server).

The call path, written once: check the input (finite numbers, bounded nesting) -> take
one of the tenant's concurrent-run slots (over the limit: an audited refusal, TooManyRuns)
-> run the resolved version, audited however it ends -> give the slot back. The caller
resolves the skill first (TenantView.resolve) and the record it found is the one that
runs: the yard does not look it up again.

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

from .audit import AuditLog, audited
from .calls import MAX_INPUT_DEPTH, CallResult
from .config import Settings
from .errors import ConfigError, Forbidden, InvalidInput, TooManyRuns
from .tenants import Tenant, Tenants, bearer_key
from .views import Target, TenantView, TenantYards

if TYPE_CHECKING:
    from .yard import Yard

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

    def authenticate(self, authorization: str | None) -> Tenant | None:
        """The tenant an ``Authorization: Bearer KEY`` header speaks for, or None (no key,
        a bad one, or one of a tenant this server does not admit)."""
        key = bearer_key(authorization)
        tenant = self.tenants.authenticate(key) if key else None
        if tenant is not None and self.only_tenant is not None and tenant.name != self.only_tenant:
            return None
        return tenant

    def view(self, tenant: Tenant | None) -> TenantView:
        """What `tenant` sees (None: the local operator)."""
        return self.yards.view(tenant)

    @contextmanager
    def refusals_audited(
        self, event: str, view: TenantView, skill: str | None = None, **context: Any
    ) -> Iterator[None]:
        """Record a Forbidden raised in the block as a refused `event` (then let it go on):
        an attempt to change what the caller may only read is part of the trail."""
        try:
            yield
        except Forbidden:
            self.audit.record(
                event, tenant=view.name, skill=skill, outcome="refused", error="forbidden", **context
            )
            raise

    # -- the call path ---------------------------------------------------------------------
    def acquire_run(self, view: TenantView, target: Target, **context: Any) -> None:
        """Take one of the tenant's run slots, or record the refusal and raise TooManyRuns.
        `context` (request_id, via, ...) goes into the audit entry."""
        if self.runs.try_acquire(view.tenant):
            return
        self.audit.record(
            "call",
            tenant=view.name,
            skill=target.name,
            version=target.record.version,
            scope=target.scope,
            outcome="refused",
            error="too_many_runs",
            **context,
        )
        raise TooManyRuns(
            f"{self.runs.active(view.tenant)} runs of yours are in progress (the limit is "
            f"{self.runs.limit_for(view.tenant)}); retry when one finishes"
        )

    def release_run(self, view: TenantView) -> None:
        """Give back the slot `acquire_run` took."""
        self.runs.release(view.tenant)

    def run(
        self, view: TenantView, target: Target, params: Any, *, ledger_use: bool = True, **context: Any
    ) -> CallResult:
        """Run the resolved version on `params` in the tenant's yard, audited however it ends.
        The caller holds a run slot (see `call`). `ledger_use`: see Yard.call."""
        with audited(
            self.audit,
            "call",
            tenant=view.name,
            skill=target.name,
            version=target.record.version,
            scope=target.scope,
            **context,
        ) as entry:
            result = target.run_yard.call(target.record, params, ledger_use=ledger_use)
            entry.update(
                version=result.version,
                limits=result.limits,
                peak_memory_bytes=result.peak_memory_bytes,
                outcome="ok" if result.ok else result.error.kind if result.error else "error",
                duration_ms=round(result.duration_s * 1000, 1),
            )
        return result

    def call(
        self, view: TenantView, target: Target, params: Any, *, ledger_use: bool = True, **context: Any
    ) -> CallResult:
        """The whole path: check the input, take a slot, run, give the slot back."""
        check_input(params)
        self.acquire_run(view, target, **context)
        try:
            return self.run(view, target, params, ledger_use=ledger_use, **context)
        finally:
            self.release_run(view)

    def close(self) -> None:
        """Stop every yard's warm containers and wait for their accounting (at shutdown)."""
        self.yards.close()
