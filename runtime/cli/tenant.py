"""`skillyard tenant`: tenants of the HTTP API and their API keys."""

from __future__ import annotations

import json

import click

from ..errors import TenantError
from ..serving import DEFAULT_MAX_RUNS
from ..tenants import add_tenant, list_tenants, remove_tenant
from .errors import Group
from .output import quiet_logs


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
@click.option("--json", "as_json", is_flag=True)
def tenant_add(name: str, admin: bool, max_runs: int | None, as_json: bool) -> None:
    """Add tenant NAME and print its API key (once: only a hash of it is stored)."""
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
