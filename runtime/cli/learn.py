"""`skillyard learn`: learn a skill from a conversation or from behaviour/event records
(runtime/learning.py). The decision -- add, merge or discard -- and its reason are shown,
audited, and with --dry-run nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ..errors import InvalidInput
from ..experience import ExperienceIn
from .errors import Command
from .output import emit_json, err, esc, out, quiet_logs
from .yard import one_shot_yard


def read_experience(source: str, events: bool) -> ExperienceIn:
    """The experience in a JSON file (or `-`: stdin): {"messages": [...]} or {"events": [...]},
    or a bare list (messages, or with --events, event records)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror or exc}") from exc
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{source} is not JSON: {exc}") from exc
    if isinstance(data, list):
        data = {"events": data} if events else {"messages": data}
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: want an object with `messages` or `events`, or a list")
    try:
        return ExperienceIn.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False, include_input=False)[:5]
        )
        raise InvalidInput(f"{source}: {problems}") from exc


@click.command("learn", cls=Command)
@click.argument("source", default="-", metavar="FILE")
@click.option("--events", is_flag=True, help="A bare JSON list in FILE holds event records, not messages.")
@click.option("--dry-run", is_flag=True, help="Decide and show the skill, write nothing.")
@click.option(
    "--now",
    is_flag=True,
    help="Extract even when no durable preference, correction or procedure shows (one-off requests are "
    "otherwise discarded without asking the model).",
)
@click.option("--json", "as_json", is_flag=True)
def learn_command(source: str, events: bool, dry_run: bool, now: bool, as_json: bool) -> None:
    """Learn a skill from the conversation (OpenAI-format messages) or event records in FILE
    (`-`: stdin). At most one skill: added, merged into a similar skill as a new version, or
    discarded, with the reason. Skills with code register only if their gate passes."""
    from ..audit import AuditLog
    from ..learning import Learner

    quiet_logs()
    experience = read_experience(source, events).experience()
    yard = one_shot_yard()
    learner = Learner(yard, audit=AuditLog(yard.home), tenant="local")
    with err.status("learning") as status:
        yard.progress = lambda m: status.update(esc(m))
        outcome = learner.learn(experience, dry_run=dry_run, now=now, via="cli")
    if as_json:
        emit_json(outcome.to_dict())
    else:
        _print(outcome.to_dict())
    sys.exit(2 if outcome.status == "blocked" else 0)


def _print(o: dict[str, Any]) -> None:
    verb = {"add": "[green]add[/]", "merge": "[cyan]merge[/]", "discard": "[yellow]discard[/]"}[o["decision"]]
    head = f"{'[dim](dry run)[/] ' if o['dry_run'] else ''}{verb}"
    if o["skill"] and o["decision"] != "discard":
        version = f" v{o['version']}" if o["version"] else ""
        semver = f" ({o['previous_semver'] or '?'} -> {o['semver']})" if o["decision"] == "merge" else ""
        status = f": {o['status']}" if o["status"] else ""
        head += f" {esc(o['skill'])}{version}{semver} [{o['tier']}]{status}"
    out.print(head, highlight=False)
    out.print(f"  why: {esc(o['reason'])}", highlight=False)
    if o["signals"]:
        shown = "; ".join(f"{s['kind']}: {s['excerpt']}" for s in o["signals"])
        out.print(f"  [dim]signals: {esc(shown)}[/]", highlight=False)
    if o["related"]:
        shown = ", ".join(f"{r['name']} ({r['score']:.2f})" for r in o["related"])
        out.print(f"  [dim]similar: {esc(shown)}[/]", highlight=False)
    out.print(f"  [dim]{o['tokens']:,} tokens in {o['llm_calls']} LLM call(s)[/]", highlight=False)
    if o["dry_run"] and o["skill_md"]:
        out.print("  [dim]--- SKILL.md (not written) ---[/]")
        out.print(esc(o["skill_md"]), highlight=False)
