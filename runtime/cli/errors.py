"""The CLI's one mapping from errors to what a user sees: one clear line on stderr
(``error: ...``) and exit code 1, never a traceback; with ``--json`` also one JSON object
on stdout, so a machine reading stdout gets an answer on every path.

Every command is a :class:`Command` (the group hands its class down), so the mapping
applies however a command is invoked, on its own or under ``skillyard``. Exit codes
besides 1 are a command's own answer, not an error: 2 (a gate blocked, a fix did not
fix), 3 (input that does not fit a skill), 124/125 (``exec``: timeout, sandbox failure).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from ..errors import SkillyardError, UnknownSkill
from .output import emit_json, err, esc

FIND_HINT = "`skillyard list` shows what is registered, `skillyard add PATH` adds one"
# Limits fields as `skillyard exec` spells them, so an error names the flag to change.
FLAG_OF_FIELD = {
    "memory": "--memory",
    "cpus": "--cpus",
    "pids": "--pids",
    "timeout": "--timeout",
    "max_stdout": "--max-output",
    "max_stderr": "--max-output",
    "max_file_size": "--max-file-size",
    "tmpfs": "--tmp-size",
}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `message` as the command's error (and as JSON with --json), exit `code`."""
    err.print(f"[bold red]error:[/] {esc(message)}", highlight=False)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        emit_json({"ok": False, "error": {"message": message, "exit_code": code}})
    sys.exit(code)


def message(exc: SkillyardError) -> str:
    """What the CLI says about an error: its message, and for an unknown skill where to look."""
    if isinstance(exc, UnknownSkill):
        return f"{exc}: {FIND_HINT}"
    return str(exc)


def validation_text(exc: ValidationError) -> str:
    """A pydantic error as one line per problem, without its input dump and docs URL."""
    parts = []
    for e in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(x) for x in e.get("loc", ()))
        field = str(e["loc"][0]) if e.get("loc") else ""
        label = f"{where} ({FLAG_OF_FIELD[field]})" if field in FLAG_OF_FIELD else where
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{label}: {msg}" if label else msg)
    return f"invalid {exc.title}: " + "; ".join(parts)


class Command(click.Command):
    """A click command whose known errors end as one line and exit 1 (see the module docstring).
    A bare ValueError is bad input too (a size like "64x", an invalid limit)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            fail(validation_text(exc))
        except SkillyardError as exc:
            fail(message(exc))
        except ValueError as exc:
            fail(str(exc))


class Group(click.Group):
    """A click group whose commands (and sub-groups) map errors as Command does."""

    command_class = Command
    group_class = type  # sub-groups are Groups too
