"""`skillyard tools`: registered skills as tool definitions (JSON) for OpenAI, Anthropic or MCP."""

from __future__ import annotations

import json
from typing import cast

import click

from ..exports import Vendor, tool_definitions
from .errors import Command
from .output import quiet_logs
from .yard import one_shot_yard


@click.command("tools", cls=Command)
@click.argument("names", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["openai", "openai-chat", "anthropic", "mcp"]),
    default="openai",
    show_default=True,
    help="openai: Responses API tools; openai-chat: Chat Completions tools; anthropic: Messages API "
    "tools; mcp: MCP tool definitions.",
)
def tools_command(names: tuple[str, ...], fmt: str) -> None:
    """Print registered skills (all, or NAMES) as tool definitions (JSON). Schemas the vendors
    would refuse are flattened or wrapped (the description says so); instructions-only skills
    are offered through one load_skill tool, answered with their SKILL.md."""
    quiet_logs()  # stdout is the JSON
    tools = tool_definitions(one_shot_yard(), cast(Vendor, fmt), list(names) or None)
    click.echo(json.dumps(tools, indent=2, ensure_ascii=False))
