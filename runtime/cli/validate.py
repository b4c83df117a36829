"""`skillyard validate PATH`: the spec and the sidecar, checked with nothing built."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from ..validation import ValidationReport, validate_path
from .errors import Command
from .output import emit_json, esc, out

PLAN_COLOURS = {"instructions": "cyan", "gate": "green", "blocked": "red", "rejected": "red"}


def print_skipped(report: ValidationReport) -> None:
    """The folders discovery passed over, and why (also after `add`)."""
    for skipped in report.skipped:
        out.print(f"  skipped {esc(skipped.path)}: {esc(skipped.reason)}", highlight=False)


@click.command("validate", cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="The verdicts as JSON.")
def validate_command(path: Path, as_json: bool) -> None:
    """Check the skill at PATH, or every skill under it (nested repository layouts too),
    against the Agent Skills spec and skillyard.yaml, and say what `add` would do. Builds
    nothing and writes nothing. Exit 0 when every skill found can be added as it is."""
    from ..config import get_settings

    report = validate_path(path, get_settings())
    if as_json:
        emit_json(report.to_dict())
        sys.exit(0 if report.ok else 2)
    table = Table(title=f"{len(report.results)} skill(s) under {esc(path)}")
    for col in ("skill", "spec", "skillyard", "plan", "code", "tests", "why, or what add does"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        why = r.problems or r.spec_problems or r.reasons or [r.next_step]
        colour = PLAN_COLOURS.get(r.plan, "white")
        table.add_row(
            esc(r.name),
            "[green]valid[/]" if r.spec_valid else "[red]invalid[/]",
            "[green]ok[/]" if r.loadable else "[red]refused[/]",
            f"[{colour}]{r.plan}[/]",
            str(len(r.code_files)),
            str(len(r.test_files)),
            esc("; ".join(why)[:400]),
        )
    out.print(table)
    for r in report.results:
        for note in r.notes:
            out.print(f"  {esc(r.name)}: {esc(note)}", highlight=False)
    print_skipped(report)
    if not report.results:
        out.print(f"no skill found under {esc(path)}: a skill is a folder holding SKILL.md")
    sys.exit(0 if report.ok else 2)
