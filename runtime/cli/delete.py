"""`skillyard delete`: delete a skill, or one version of it; the ledger keeps its history."""

from __future__ import annotations

import click

from .errors import Command
from .output import emit_json, esc, out
from .yard import one_shot_yard


@click.command("delete", cls=Command)
@click.argument("name")
@click.option(
    "--version", type=int, default=None, help="Only this version (not the current one, unless last)."
)
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.option("--json", "as_json", is_flag=True)
def delete_command(name: str, version: int | None, yes: bool, as_json: bool) -> None:
    """Delete skill NAME (every version, its package and notes), or one --version. The ledger's rows
    stay (`skillyard cost` still reports the skill), so does the registry's history, and version
    numbers are never given out again. Images go with `skillyard gc --images`."""
    yard = one_shot_yard()
    what = f"{name} v{version}" if version is not None else f"{name} (every version)"
    if not yes and not as_json:
        click.confirm(f"delete {what}?", abort=True, err=True)
    removed = yard.delete(name, version)
    versions = [r.version for r in removed]
    if as_json:
        emit_json({"name": name, "versions": versions, "skill_deleted": not yard.registry.versions(name)})
    else:
        out.print(f"{esc(name)}: deleted v{', v'.join(str(v) for v in versions)}; the ledger keeps its rows")
