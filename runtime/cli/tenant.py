"""`skillyard tenant`: tenants of the HTTP API and their API keys."""

from __future__ import annotations

import json
from datetime import datetime

import click

from ..errors import TenantError
from ..serving import DEFAULT_MAX_RUNS
from ..tenants import DEFAULT_OVERLAP, Tenants, add_tenant, list_tenants, remove_tenant
from ..times import parse_duration, utc_now
from .errors import Group
from .output import quiet_logs


def _store() -> Tenants:
    from ..config import get_settings

    return Tenants(get_settings().home)


def _expiry(expires: str | None) -> datetime | None:
    """When a key made now with `--expires` stops working (None: never)."""
    return utc_now() + parse_duration(expires) if expires else None


@click.group("tenant", cls=Group)
def tenant_group() -> None:
    """Tenants of the HTTP API and their API keys."""
    quiet_logs()


@tenant_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="The key may change shared skills.")
@click.option(
    "--max-runs", type=int, default=None, help=f"Concurrent runs allowed (default {DEFAULT_MAX_RUNS})."
)
@click.option("--expires", default=None, help="The key stops working after this long (90d, 12h, ...).")
@click.option("--json", "as_json", is_flag=True)
def tenant_add(name: str, admin: bool, max_runs: int | None, expires: str | None, as_json: bool) -> None:
    """Add tenant NAME and print its API key (once: only a hash of it is stored)."""
    if expires:
        key = _store().add_tenant(name, admin, max_concurrent_runs=max_runs, expires_at=_expiry(expires))
    else:
        key = add_tenant(name, admin, max_concurrent_runs=max_runs)
    if as_json:
        click.echo(json.dumps({"tenant": name, "admin": admin, "key": key}))
    else:
        click.echo(key)
        click.echo(
            f"tenant {name}{' (admin)' if admin else ''} added; the key above is shown only now: "
            "store it safely (Authorization: Bearer KEY)",
            err=True,
        )


@tenant_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def tenant_list(as_json: bool) -> None:
    """Tenants (never their keys)."""
    tenants = list_tenants()
    if as_json:
        click.echo(json.dumps([tenant.to_dict() for tenant in tenants], indent=2))
        return
    if not tenants:
        click.echo("no tenants: add one with `skillyard tenant add NAME [--admin]`")
    for tenant in tenants:
        click.echo(
            f"{tenant.name:<34}{'admin' if tenant.admin else 'tenant':<8}{tenant.created_at}"
            f"{'  max-runs ' + str(tenant.max_concurrent_runs) if tenant.max_concurrent_runs else ''}"
        )


@tenant_group.command("remove")
@click.argument("name")
@click.option("--purge", is_flag=True, help="Also delete the tenant's private skills and workspace.")
def tenant_remove(name: str, purge: bool) -> None:
    """Remove tenant NAME: its key stops working at once."""
    removed = remove_tenant(name, purge=purge)
    if not removed:
        raise TenantError(f"no tenant {name!r}")
    click.echo(
        f"tenant {name} removed"
        + (" with its skills" if purge else " (its skills are kept; --purge deletes them)")
    )


@tenant_group.command("keys")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def tenant_keys(name: str, as_json: bool) -> None:
    """Tenant NAME's keys: id, label, when each expires and was last used (never the keys)."""
    keys = _store().keys(name)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    for k in keys:
        state = "expired" if k.expired else f"expires {k.expires_at}" if k.expires_at else "no expiry"
        click.echo(f"{k.id}  {state:<38} last used {k.last_used or 'never':<27}{k.label or ''}")


@tenant_group.command("add-key")
@click.argument("name")
@click.option("--expires", default=None, help="It stops working after this long (90d, 12h, ...).")
@click.option("--label", default=None, help="What the key is for (shown, not secret).")
def tenant_add_key(name: str, expires: str | None, label: str | None) -> None:
    """Add a key to tenant NAME and print it (once)."""
    key, info = _store().add_key(name, expires_at=_expiry(expires), label=label)
    click.echo(key)
    click.echo(f"key {info.id} added to {name}; the key above is shown only now", err=True)


@tenant_group.command("rotate-key")
@click.argument("name")
@click.argument("key_id")
@click.option(
    "--overlap",
    default=None,
    help="How long the old key keeps working (default 1h; 0s: it stops now).",
)
@click.option("--expires", default=None, help="The new key stops working after this long.")
def tenant_rotate_key(name: str, key_id: str, overlap: str | None, expires: str | None) -> None:
    """Replace key KEY_ID of tenant NAME: print the new key (once); the old one works for --overlap."""
    span = parse_duration(overlap) if overlap else DEFAULT_OVERLAP
    key, info, old = _store().rotate_key(name, key_id, overlap=span, expires_at=_expiry(expires))
    click.echo(key)
    click.echo(f"key {info.id} replaces {key_id}, which stops working at {old.expires_at}", err=True)


@tenant_group.command("revoke-key")
@click.argument("name")
@click.argument("key_id")
def tenant_revoke_key(name: str, key_id: str) -> None:
    """Revoke key KEY_ID of tenant NAME: it stops working at once."""
    _store().revoke_key(name, key_id)
    click.echo(f"key {key_id} of {name} revoked")
