"""`skillyard tools`: registered skills as function-calling tool definitions (JSON)."""

from __future__ import annotations

import json

import click

from ..exports import openai_tools
from .errors import Command
from .output import quiet_logs
from .yard import one_shot_yard


@click.command("tools", cls=Command)
@click.argument("names", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["openai", "openai-chat"]),
    default="openai",
    show_default=True,
    help="openai: Responses API tools; openai-chat: Chat Completions tools.",
)
def tools_command(names: tuple[str, ...], fmt: str) -> None:
    """Print registered skills (all, or NAMES) as function-calling tool definitions (JSON)."""
    quiet_logs()  # stdout is the JSON
    style = "chat" if fmt == "openai-chat" else "responses"
    tools = openai_tools(one_shot_yard(), list(names) or None, style)
    click.echo(json.dumps(tools, indent=2, ensure_ascii=False))
