"""`skillyard maintain`: propose merges of overlapping skills and retire unused ones."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ..maintain import DEFAULT_THRESHOLD, UnusedPolicy, maintain
from .errors import Command
from .output import esc, out
from .yard import one_shot_yard


@click.command("maintain", cls=Command)
@click.option(
    "--apply", is_flag=True, help="Retire the unused skills (default: a dry run that changes nothing)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--unused-days",
    type=click.FloatRange(min=0),
    default=30,
    show_default=True,
    help="Retire a never-called skill whose current version is older than this.",
)
@click.option(
    "--idle-days",
    type=click.FloatRange(min=0),
    default=90,
    show_default=True,
    help="Retire a skill last called longer ago than this.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Overlap score from which a merge is proposed.",
)
def maintain_command(
    apply: bool, as_json: bool, unused_days: float, idle_days: float, threshold: float
) -> None:
    """Propose merges of overlapping skills and retire unused ones (dry run unless --apply).

    Nothing is deleted: retired skills keep every version and can be reinstated."""
    yard = one_shot_yard()
    ledger = yard.ledger if apply else None
    report = maintain(
        yard.registry,
        apply=apply,
        policy=UnusedPolicy(unused_days, idle_days),
        threshold=threshold,
        ledger=ledger,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    if report.overlaps:
        table = Table(title=f"overlapping skills: merge proposals ({report.method} similarity)")
        for col in ("keep", "merge into it", "score", "text", "name", "why"):
            table.add_column(col, justify="right" if col in ("score", "text", "name") else "left")
        for o in report.overlaps:
            table.add_row(
                esc(o.keep),
                esc(o.merge),
                f"{o.score:.2f}",
                f"{o.text_similarity:.2f}",
                f"{o.name_similarity:.2f}",
                esc(o.reason.split("; ", 1)[-1]),
            )
        out.print(table)
    else:
        out.print(f"no overlapping skills (threshold {threshold:g}, {report.method} similarity)")
    if report.unused:
        table = Table(title="unused skills")
        for col in ("skill", "v", "calls", "last used", "reason", "action"):
            table.add_column(col, justify="right" if col in ("v", "calls") else "left")
        for u in report.unused:
            action = (
                "[green]retired[/]"
                if u.name in report.retired
                else f"[yellow]skipped: {esc(report.skipped.get(u.name, ''))}[/]"
                if apply
                else "retire"
            )
            table.add_row(
                esc(u.name),
                str(u.version),
                str(u.calls),
                u.last_used.strftime("%Y-%m-%d") if u.last_used else "never",
                esc(u.reason),
                action,
            )
        out.print(table)
    else:
        out.print("no unused skills")
    if not apply and report.unused:
        out.print(
            f"[dim]dry run: nothing changed; --apply retires {len(report.unused)} skill(s) "
            "(every version is kept)[/]"
        )
    elif not apply:
        out.print("[dim]dry run: nothing changed[/]")
