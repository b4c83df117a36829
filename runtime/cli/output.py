"""How the CLI prints: two rich consoles, `esc` for every piece of text the CLI did not
write itself, and JSON for machines.

Rich parses `[...]` in printed strings as markup. Skill names, gate reasons, test ids
(`test_x[values0-2.5]`), error messages, outputs and notes are written by skills, models or
users: unescaped, `[values0-2.5]` silently vanishes and `[/bold]` raises MarkupError and kills
the command. So every such string goes through `esc` before it meets the CLI's own markup.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

# Rich falls back to 80 columns when not on a terminal (CI logs, pipes): tables need more.
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def esc(value: Any) -> str:
    """`value` as text that prints literally inside rich markup."""
    return escape(str(value))


def emit_json(data: Any) -> None:
    """`data` as indented JSON on stdout (ASCII escapes: always valid UTF-8)."""
    click.echo(json.dumps(data, indent=2, default=str))


def reason_text(reasons: list[str]) -> str:
    """Gate or fix reasons, shortened and escaped: they quote test ids and messages."""
    return esc("; ".join(reasons)[:300])


def quiet_logs() -> None:
    """For a command run on its own (not under the `skillyard` group, which sets logging
    up): log warnings to stderr only, stdout stays the command's."""
    import structlog

    if not structlog.is_configured():
        from .. import logs

        logs.configure("WARNING")
