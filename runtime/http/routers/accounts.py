"""Routes over what was spent and done: the token accounts (cost) and the audit trail."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from ... import accounting
from ...errors import Forbidden, InvalidInput, UnknownSkill
from ...names import NAME_PATTERN
from ...tenants import TENANT_PATTERN
from ...times import parse_when
from ...yard import Yard
from ..deps import ScopeQ, SkillName, State, View, WhenQ
from ..schemas import COMMON_ERRORS, SKILL_ERRORS, error_doc

router = APIRouter()
AuditEvent = Literal[
    "call", "gate", "import", "rollback", "delete", "fix", "create", "tenant", "key", "request"
]
SHARED_COST = "the cost of shared skills (all tenants' use) is visible to admin keys only"


def _cost_rows(yard: Yard, scope: str, name: str | None = None) -> list[dict[str, Any]]:
    return [{**c.to_dict(), "scope": scope} for c in accounting.report(yard, name)]


@router.get(
    "/cost",
    response_model=list[dict[str, Any]],
    tags=["cost"],
    responses={**COMMON_ERRORS, 403: error_doc("Shared skills' cost needs an admin key")},
)
def cost(view: View, scope: Literal["private", "shared", "all"] = "all") -> list[dict[str, Any]]:
    """Tokens invested in each skill, what a use saves and the break-even point (runtime.accounting).
    Your private skills; with an admin key, the shared ones too."""
    if scope == "shared" and not view.admin:
        raise Forbidden(SHARED_COST)
    rows: list[dict[str, Any]] = []
    if scope in ("private", "all") and view.private is not None:
        rows += _cost_rows(view.private, "private")
    if scope in ("shared", "all") and view.admin:
        rows += _cost_rows(view.shared, "shared")
    return rows


@router.get(
    "/cost/{name}",
    response_model=dict[str, Any],
    tags=["cost"],
    responses={**SKILL_ERRORS, 403: error_doc("A shared skill and no admin key")},
)
def cost_one(view: View, name: SkillName, scope: ScopeQ = "auto") -> dict[str, Any]:
    """One skill's token account; a deleted skill's too (its ledger rows stay)."""
    try:
        target = view.resolve(name, scope)
        yard, found = target.yard, target.scope
    except UnknownSkill:
        yard, found = _deleted(view, name, scope)
    if found == "shared" and not view.admin:
        raise Forbidden(SHARED_COST)
    return _cost_rows(yard, found, name)[0]


def _deleted(view: View, name: str, scope: str) -> tuple[Yard, str]:
    """The yard whose ledger still holds `name` (a deleted skill), as resolution would pick it."""
    places: list[tuple[Yard, str]] = []
    if scope in ("auto", "private") and view.private is not None:
        places.append((view.private, "private"))
    if scope in ("auto", "shared"):
        places.append((view.shared, "shared"))
    for yard, where in places:
        if any(row.skill == name for row in accounting.report(yard)):
            return yard, where
    raise UnknownSkill(f"no skill {name}")


@router.get(
    "/audit",
    response_model=list[dict[str, Any]],
    tags=["audit"],
    responses={**COMMON_ERRORS, 403: error_doc("Another tenant's entries without an admin key")},
)
def audit(
    state: State,
    view: View,
    tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
    skill: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=64)] = None,
    since: WhenQ = None,
    until: WhenQ = None,
    event: AuditEvent | None = None,
    outcome: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 200,
) -> list[dict[str, Any]]:
    """The audit trail, oldest first (the newest `limit` entries). Admin keys see every tenant's;
    other keys see their own. `since`/`until`: ISO 8601 or relative (30m, 2h, 7d), as in the CLI.
    Repeated refusals are one entry with a `count` (and `first_ts`, `last_ts`)."""
    try:
        lo = parse_when(since) if since else None
        hi = parse_when(until) if until else None
    except ValueError as exc:
        raise InvalidInput(f"invalid request: {exc}") from exc
    if not view.admin:
        if tenant is not None and tenant != view.name:
            raise Forbidden("a tenant key sees only its own audit entries")
        tenant = view.name
    return state.service.audit.query(tenant, skill, lo, hi, event=event, outcome=outcome, limit=limit)
