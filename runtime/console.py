"""The CLI's two consoles, and `esc` for every piece of text the CLI did not write itself.

Rich parses `[...]` in printed strings as markup. Skill names, gate reasons, test ids
(`test_x[values0-2.5]`), error messages, outputs and memory are written by skills, models or
users: unescaped, `[values0-2.5]` silently vanishes and `[/bold]` raises MarkupError and kills
the command. So every such string goes through `esc` before it meets the CLI's own markup.
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

# Rich falls back to 80 columns when not on a terminal (CI logs, pipes): tables need more.
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


def esc(value: Any) -> str:
    """`value` as text that prints literally inside rich markup."""
    return escape(str(value))
