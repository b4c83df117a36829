"""What one tenant sees: its private skills, the shared ones, nothing of another tenant's.

Isolation is by construction: each tenant has its own Yard -- its own LanceDB store and
workspace under ``<home>/tenants/<tenant>/`` -- and the shared skills live in the default
store at ``<home>``. A :class:`TenantView` resolves a skill name to the tenant's private
skill if it has one, else to the shared one; it has no path to another tenant's store.
Only an admin key may change shared skills. A non-admin's calls of a shared skill run in
a per-tenant view of the shared store (``<home>/tenants/<tenant>/shared/``), so the
notes and failing inputs those calls leave stay with that tenant.

``tenant=None`` is the local operator (the CLI user, a stdio MCP server started without
--tenant): no private store, full control of the shared one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from .config import Settings
from .errors import Forbidden, InvalidName, UnknownSkill
from .names import validate_name
from .tenants import Tenant, validate_tenant

if TYPE_CHECKING:
    from .records import SkillRecord
    from .yard import Yard

log = structlog.get_logger(__name__)

Scope = Literal["auto", "private", "shared"]


def tenant_settings(base: Settings, tenant: str) -> Settings:
    """Settings for a tenant's private yard: its own home and store; the shared wheelhouse and images."""
    home = Path(base.home) / "tenants" / validate_tenant(tenant)
    return base.model_copy(update={"home": home, "store_uri": None, "wheelhouse": base.wheel_dir})


def shared_view_settings(base: Settings, tenant: str) -> Settings:
    """Settings for a tenant's calls of shared skills: the shared store, a per-tenant workspace."""
    home = Path(base.home) / "tenants" / validate_tenant(tenant) / "shared"
    return base.model_copy(update={"home": home, "store_uri": base.store, "wheelhouse": base.wheel_dir})


@dataclass
class Target:
    """A resolved skill: which yard holds it and whether it is the tenant's own or shared."""

    name: str
    scope: Literal["private", "shared"]
    yard: Yard  # the yard that holds it (and records changes to it)
    run_yard: Yard  # the yard whose workspace the tenant's calls write to
    record: SkillRecord


@dataclass
class TenantView:
    """One tenant's window: its private yard, the shared yard, nothing else.

    ``tenant=None`` is the local operator (the CLI user, a stdio MCP server started without
    --tenant): no private store, full control of the shared one.
    """

    tenant: Tenant | None
    shared: Yard
    private: Yard | None = None
    shared_view: Yard | None = None

    @property
    def name(self) -> str:
        """The tenant's name ("local" for the operator): what audit entries and jobs carry."""
        return self.tenant.name if self.tenant else "local"

    @property
    def admin(self) -> bool:
        """Whether this view may change shared skills."""
        return self.tenant is None or self.tenant.admin

    def resolve(
        self, name: str, scope: Scope = "auto", version: int | None = None, *, follow_merges: bool = False
    ) -> Target:
        """The skill NAME as this tenant sees it. Raises UnknownSkill (also for a string that
        is not a skill name: to a caller that is simply no skill). With `follow_merges` (a
        call) and no version, a name a merge retired resolves to the skill that absorbed it,
        in the same store; everything else (show, versions, fix) sees the retired skill."""
        try:
            validate_name(name)
        except InvalidName as exc:
            raise UnknownSkill(f"no skill {name!r}") from exc
        if scope in ("auto", "private") and self.private is not None:
            rec = self.private.registry.get(name)
            if rec is not None:
                if version is not None:
                    rec = self.private.registry.get(name, version)
                    if rec is None:
                        raise UnknownSkill(f"no skill {name} v{version}")
                elif follow_merges:
                    rec = _absorbing(self.private, rec)
                return Target(rec.name, "private", self.private, self.private, rec)
        if scope in ("auto", "shared"):
            rec = self.shared.registry.get(name, version)
            if rec is not None:
                if version is None and follow_merges:
                    rec = _absorbing(self.shared, rec)
                run_yard = self.shared if self.admin or self.shared_view is None else self.shared_view
                return Target(rec.name, "shared", self.shared, run_yard, rec)
        what = f"{name} v{version}" if version is not None else name
        raise UnknownSkill(f"no skill {what}")  # each surface adds how to list skills there

    def target_of(self, record: SkillRecord, scope: Literal["private", "shared"]) -> Target:
        """The Target of a record this view found itself (a search hit of `scope`), read no
        second time: for a current registered version, what `resolve` would return."""
        if scope == "private" and self.private is not None:
            return Target(record.name, "private", self.private, self.private, record)
        run_yard = self.shared if self.admin or self.shared_view is None else self.shared_view
        return Target(record.name, "shared", self.shared, run_yard, record)

    def check_change(self, target: Target) -> None:
        """Forbidden unless this view may change `target` (a shared skill needs an admin)."""
        if target.scope == "shared" and not self.admin:
            raise Forbidden(
                f"{target.name} is a shared skill: only an admin key may change it "
                "(import your own version to shadow it)"
            )

    def yard_for_new(self, shared: bool) -> Yard:
        """Where an import or create goes."""
        if shared or self.private is None:
            if not self.admin:
                raise Forbidden("only an admin key may add shared skills")
            return self.shared
        return self.private

    def records(
        self, scope: Literal["private", "shared", "all"] = "all", status: str | None = None
    ) -> list[tuple[SkillRecord, str]]:
        """(record, scope) per visible skill; a private skill hides the shared one of its name."""
        out: list[tuple[SkillRecord, str]] = []
        names: set[str] = set()
        if scope in ("private", "all") and self.private is not None:
            for rec in self.private.list(status):
                out.append((rec, "private"))
                names.add(rec.name)
        if scope in ("shared", "all"):
            for rec in self.shared.list(status):
                if rec.name not in names:
                    out.append((rec, "shared"))
        return sorted(out, key=lambda t: t[0].name)

    def search(
        self, query: str, limit: int = 5, *, query_vector: Any = None
    ) -> list[tuple[SkillRecord, float, str]]:
        """Hybrid search over the private and shared stores, merged rank by rank
        (`query_vector`: the query already embedded, see Registry.search)."""
        lists: list[list[tuple[SkillRecord, float, str]]] = []
        private_names: set[str] = set()
        if self.private is not None:
            hits = self.private.search(query, limit=limit, query_vector=query_vector)
            lists.append([(r, s, "private") for r, s in hits])
            private_names = {r.name for r in self.private.list()}
        lists.append(
            [
                (r, s, "shared")
                for r, s in self.shared.search(query, limit=limit, query_vector=query_vector)
                if r.name not in private_names
            ]
        )
        merged: list[tuple[SkillRecord, float, str]] = []
        seen: set[str] = set()
        for rank in range(max((len(x) for x in lists), default=0)):
            for hits in lists:
                if rank < len(hits) and hits[rank][0].name not in seen:
                    merged.append(hits[rank])
                    seen.add(hits[rank][0].name)
        return merged[:limit]


def _absorbing(yard: Yard, rec: SkillRecord) -> SkillRecord:
    """`rec`, or for a skill a merge retired, the skill that absorbed it (same store)."""
    return yard.resolve(rec.name) if rec.status == "retired" else rec


class TenantYards:
    """The yards one server process serves: the shared one, and per tenant a private one
    and a view of the shared one. They are made by `yard_factory(settings)` and kept for
    the life of the process (each holds a store connection and warm containers)."""

    def __init__(
        self,
        settings: Settings,
        yard_factory: Callable[[Settings], Yard] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._factory = yard_factory
        self._progress = progress
        self._lock = threading.Lock()
        self._yards: dict[tuple[str, str], Yard] = {}
        self.shared = self._make(settings)

    def _make(self, settings: Settings) -> Yard:
        if self._factory is not None:
            yard = self._factory(settings)
        else:
            from .yard import Yard

            shared = getattr(self, "shared", None)
            # long-lived whatever the pool: a server with pool_size 0 (cold calls only) still
            # keeps accounting off the call path
            yard = Yard(settings, sandbox=shared.sandbox if shared is not None else None, long_lived=True)
        if self._progress is not None:
            yard.progress = self._progress
        return yard

    def _get(self, kind: str, tenant: str, make_settings: Callable[[Settings, str], Settings]) -> Yard:
        key = (kind, tenant)
        with self._lock:
            yard = self._yards.get(key)
            if yard is None:
                yard = self._yards[key] = self._make(make_settings(self.settings, tenant))
                # Warm containers are pooled per tenant: one that served this tenant serves no other.
                yard.tenant = tenant
            return yard

    def all(self) -> list[Yard]:
        """Every yard made so far, the shared one first."""
        with self._lock:
            return [self.shared, *self._yards.values()]

    def close(self) -> None:
        """Stop every yard's warm containers (call at shutdown)."""
        for yard in self.all():
            close = getattr(yard, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                    log.warning("yard_close_failed", home=str(yard.settings.home), error=str(exc))

    def view(self, tenant: Tenant | None) -> TenantView:
        """What `tenant` sees (None: the local operator), its yards made on first use."""
        if tenant is None:
            return TenantView(tenant=None, shared=self.shared)
        private = self._get("private", tenant.name, tenant_settings)
        shared_view = None if tenant.admin else self._get("shared", tenant.name, shared_view_settings)
        return TenantView(tenant=tenant, shared=self.shared, private=private, shared_view=shared_view)

    def forget(self, tenant: str) -> list[Yard]:
        """Drop a removed tenant's yards from the process's memory and return them (they are
        not closed: the caller closes them when nothing uses them any more)."""
        with self._lock:
            return [y for kind in ("private", "shared") if (y := self._yards.pop((kind, tenant), None))]
