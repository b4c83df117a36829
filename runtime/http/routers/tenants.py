"""Routes over tenants and their API keys, for admin keys only: list, create, change and
remove tenants; list, add, rotate (with an overlap) and revoke keys. A key is shown once,
in the answer that made it. Every change is audited (events `tenant` and `key`, in the
acting admin's trail, with the `target` tenant); a non-admin's attempt is a counted refusal.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from ...errors import Forbidden, TenantConflict, UnknownTenant
from ...tenants import TENANT_PATTERN, UNSET, Tenant
from ...times import parse_duration
from ..deps import Caller, State
from ..errors import request_id
from ..schemas import (
    BODY_ERRORS,
    COMMON_ERRORS,
    KeyOut,
    NewKeyOut,
    NewKeyRequest,
    NewTenantOut,
    NewTenantRequest,
    RotatedKeyOut,
    RotateKeyRequest,
    TenantOut,
    TenantPatch,
    error_doc,
    key_out,
    tenant_out,
)

router = APIRouter(tags=["tenants"])
TenantName = Annotated[
    str, Path(min_length=1, max_length=32, pattern=TENANT_PATTERN, description="A tenant name.")
]
KeyId = Annotated[str, Path(pattern=r"^[a-z0-9]{12}$", description="A key's id (the part after `sy_`).")]
ADMIN_ERRORS = {**COMMON_ERRORS, 403: error_doc("Not an admin key")}
ONE_ERRORS = {**ADMIN_ERRORS, 404: error_doc("No such tenant (or key)")}


def admin(request: Request, state: State, tenant: Caller) -> Tenant:
    """The caller, if its key is an admin's; else a counted refusal and Forbidden (403)."""
    if not tenant.admin:
        event = "key" if "/keys" in request.url.path else "tenant"
        state.service.refuse(tenant, event, error="forbidden", request_id=request_id(request))
        raise Forbidden("tenant and key management needs an admin key")
    return tenant


Admin = Annotated[Tenant, Depends(admin)]


def _tenant_out(state: State, name: str) -> TenantOut:
    tenant = state.service.tenants.get(name)
    if tenant is None:
        raise UnknownTenant(f"no tenant {name!r}")
    return tenant_out(tenant, state.service.tenants.keys(name))


def _audit(state: State, request: Request, actor: Tenant, event: str, action: str, **fields: Any) -> None:
    state.service.audit.record(
        event, tenant=actor.name, action=action, outcome="ok", request_id=request_id(request), **fields
    )


@router.get("/tenants", response_model=list[TenantOut], responses=ADMIN_ERRORS)
def list_tenants(state: State, actor: Admin) -> list[TenantOut]:
    """Every tenant and its keys (never the keys themselves)."""
    return [tenant_out(t, state.service.tenants.keys(t.name)) for t in state.service.tenants.list()]


@router.post(
    "/tenants",
    status_code=201,
    response_model=NewTenantOut,
    responses={**ADMIN_ERRORS, **BODY_ERRORS, 409: error_doc("A tenant of that name exists")},
)
def create_tenant(request: Request, state: State, actor: Admin, body: NewTenantRequest) -> JSONResponse:
    """Create a tenant and its first key, which this answer shows once. A reserved name (`local`,
    `shared`, ...) is a 422."""
    key = state.service.tenants.add_tenant(
        body.name,
        body.admin,
        max_concurrent_runs=body.max_concurrent_runs,
        expires_at=body.expiry(),
        label=body.label,
    )
    tenant = _tenant_out(state, body.name)
    info = next(k for k in tenant.keys if key.startswith(f"sy_{k.id}_"))
    _audit(state, request, actor, "tenant", "add", target=body.name, admin=body.admin, key_id=info.id)
    out = NewTenantOut(key=key, info=info, tenant=tenant)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


@router.get("/tenants/{tenant}", response_model=TenantOut, responses=ONE_ERRORS)
def get_tenant(state: State, actor: Admin, tenant: TenantName) -> TenantOut:
    """One tenant and its keys."""
    return _tenant_out(state, tenant)


@router.patch("/tenants/{tenant}", response_model=TenantOut, responses={**ONE_ERRORS, **BODY_ERRORS})
def update_tenant(
    request: Request, state: State, actor: Admin, tenant: TenantName, body: TenantPatch
) -> TenantOut:
    """Change a tenant's admin flag or run limit (only the fields sent). An admin cannot take its
    own admin flag away (409): another admin, or the CLI, can."""
    if tenant == actor.name and body.admin is False:
        raise TenantConflict("you cannot take the admin flag from your own tenant: use another admin key")
    runs = body.max_concurrent_runs if "max_concurrent_runs" in body.model_fields_set else UNSET
    state.service.tenants.update(tenant, admin=body.admin, max_concurrent_runs=runs)
    _audit(state, request, actor, "tenant", "update", target=tenant, **body.model_dump(exclude_unset=True))
    return _tenant_out(state, tenant)


@router.delete(
    "/tenants/{tenant}",
    response_model=dict[str, Any],
    responses={**ONE_ERRORS, 409: error_doc("Your own tenant")},
)
def remove_tenant(
    request: Request,
    state: State,
    actor: Admin,
    tenant: TenantName,
    purge: Annotated[bool, Query(description="Also delete its private skills and workspace.")] = False,
) -> dict[str, Any]:
    """Remove a tenant: its keys stop working at once, its warm containers stop; with purge=true its
    private skills and workspace are deleted too (its audit trail is kept). Not your own (409)."""
    if tenant == actor.name:
        raise TenantConflict("you cannot remove the tenant of the key you use: use another admin key")
    if state.service.tenants.get(tenant) is None:
        raise UnknownTenant(f"no tenant {tenant!r}")
    state.service.remove_tenant(tenant, purge=purge)
    _audit(state, request, actor, "tenant", "remove", target=tenant, purge=purge)
    return {"name": tenant, "removed": True, "purged": purge}


@router.get("/tenants/{tenant}/keys", response_model=list[KeyOut], responses=ONE_ERRORS)
def list_keys(state: State, actor: Admin, tenant: TenantName) -> list[KeyOut]:
    """A tenant's keys, oldest first, with when each expires and was last used."""
    return [key_out(k) for k in state.service.tenants.keys(tenant)]


@router.post(
    "/tenants/{tenant}/keys",
    status_code=201,
    response_model=NewKeyOut,
    responses={**ONE_ERRORS, **BODY_ERRORS, 409: error_doc("The tenant has as many keys as it may")},
)
def add_key(
    request: Request, state: State, actor: Admin, tenant: TenantName, body: NewKeyRequest | None = None
) -> JSONResponse:
    """A new key for the tenant, shown this once (a tenant may have several, at most 10)."""
    body = body or NewKeyRequest()
    key, info = state.service.tenants.add_key(tenant, expires_at=body.expiry(), label=body.label)
    _audit(state, request, actor, "key", "add", target=tenant, key_id=info.id)
    return JSONResponse(NewKeyOut(key=key, info=key_out(info)).model_dump(mode="json"), status_code=201)


@router.post(
    "/tenants/{tenant}/keys/{key_id}/rotate",
    status_code=201,
    response_model=RotatedKeyOut,
    responses={**ONE_ERRORS, **BODY_ERRORS, 409: error_doc("The tenant has as many keys as it may")},
)
def rotate_key(
    request: Request,
    state: State,
    actor: Admin,
    tenant: TenantName,
    key_id: KeyId,
    body: RotateKeyRequest | None = None,
) -> JSONResponse:
    """Replace a key: the new one is shown this once, the old one keeps working for `overlap`
    (default 1h; 0s ends it now), so clients switch without a gap."""
    body = body or RotateKeyRequest()
    key, info, previous = state.service.tenants.rotate_key(
        tenant, key_id, overlap=parse_duration(body.overlap), expires_at=body.expiry(), label=body.label
    )
    _audit(state, request, actor, "key", "rotate", target=tenant, key_id=info.id, previous=key_id)
    out = RotatedKeyOut(key=key, info=key_out(info), previous=key_out(previous))
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


@router.delete("/tenants/{tenant}/keys/{key_id}", response_model=KeyOut, responses=ONE_ERRORS)
def revoke_key(request: Request, state: State, actor: Admin, tenant: TenantName, key_id: KeyId) -> KeyOut:
    """Revoke a key: it stops working at once."""
    info = state.service.tenants.revoke_key(tenant, key_id)
    _audit(state, request, actor, "key", "revoke", target=tenant, key_id=key_id)
    return key_out(info)
