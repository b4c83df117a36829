"""`skillyard audit`: who called, gated or fixed which skill, when, and how it went."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ..audit import query
from ..times import parse_when
from .errors import Command
from .output import esc, out, quiet_logs


@click.command("audit", cls=Command)
@click.option("--tenant", default=None, help="Only this tenant's entries.")
@click.option("--skill", default=None, help="Only this skill's entries.")
@click.option("--since", default=None, help="ISO time or relative (30m, 2h, 7d).")
@click.option("--until", default=None, help="ISO time or relative (30m, 2h, 7d).")
@click.option("--event", default=None, help="call, gate, import, rollback, fix or create.")
@click.option("--limit", type=int, default=200, show_default=True, help="The newest N entries.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def audit_command(tenant, skill, since, until, event, limit, as_json) -> None:
    """Who called, gated or fixed which skill, when, and how it went."""
    quiet_logs()
    try:
        entries = query(
            tenant,
            skill,
            parse_when(since) if since else None,
            parse_when(until) if until else None,
            event=event,
            limit=limit,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if as_json:
        for e in entries:
            click.echo(json.dumps(e, default=str))
        return
    table = Table(title=f"audit: {len(entries)} entries")
    for col in ("time", "event", "tenant", "skill", "v", "outcome", "ms", "tokens"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            *(
                esc(v)
                for v in (
                    str(e.get("ts", ""))[:19],
                    e.get("event", ""),
                    e.get("tenant", ""),
                    e.get("skill", ""),
                    e.get("version", "") or "",
                    e.get("outcome", ""),
                    e.get("duration_ms", "") or "",
                    e.get("tokens", "") or "",
                )
            )
        )
    out.print(table)
