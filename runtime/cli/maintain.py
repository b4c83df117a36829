"""`skillyard maintain`: merge overlapping skills (proposals in a dry run) and retire unused ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from ..errors import LLMUnavailable
from ..maintain import DEFAULT_THRESHOLD, Overlap, UnusedPolicy, maintain
from ..merging import Merger
from ..yard import Yard
from .errors import Command
from .output import err, esc, out, reason_text
from .yard import one_shot_yard


def _merger(yard: Yard, attempts: int) -> Callable[[Overlap], dict[str, Any]]:
    """The merge step of --apply: the model merges each overlapping pair (runtime/merging.py);
    without an LLM endpoint every merge is skipped, and says how to configure one."""
    try:
        merger = Merger(yard)
    except LLMUnavailable as exc:
        reason = f"not merged: {exc}"

        def skip(o: Overlap) -> dict[str, Any]:
            return {"survivor": o.keep, "absorbed": o.merge, "status": "skipped", "reasons": [reason]}

        return skip
    return lambda o: merger.merge(o.keep, o.merge, max_attempts=attempts).to_dict()


@click.command("maintain", cls=Command)
@click.option(
    "--apply",
    is_flag=True,
    help="Merge overlapping skills (the model writes one version that passes both skills' tests) and "
    "retire the unused (default: a dry run that changes nothing).",
)
@click.option(
    "--merge-attempts",
    type=click.IntRange(min=1, max=5),
    default=2,
    show_default=True,
    help="Model answers tried per merge before it is refused.",
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
    apply: bool, merge_attempts: int, as_json: bool, unused_days: float, idle_days: float, threshold: float
) -> None:
    """Merge overlapping skills and retire unused ones (dry run unless --apply).

    A merge registers one new version of the skill kept, only if it passes both skills'
    tests; the other is retired with a pointer to it, and calls by its name keep working.
    Nothing is deleted: retired skills keep every version and can be reinstated."""
    yard = one_shot_yard(progress=None if as_json else lambda m: err.print(f"[dim]{esc(m)}[/]"))
    ledger = yard.ledger if apply else None
    report = maintain(
        yard.registry,
        apply=apply,
        policy=UnusedPolicy(unused_days, idle_days),
        threshold=threshold,
        ledger=ledger,
        merge=_merger(yard, merge_attempts) if apply else None,
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
    for m in report.merges:
        what = {"merged": "[green]merged[/]", "refused": "[red]refused[/]"}.get(
            m["status"], f"[yellow]{esc(m['status'])}[/]"
        )
        version = f" v{m['version']}" if m.get("version") and m["status"] == "merged" else ""
        why = f": {reason_text(m.get('reasons') or [])}" if m["status"] != "merged" else ""
        out.print(f"{what} {esc(m['absorbed'])} into {esc(m['survivor'])}{version}{why}")
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
