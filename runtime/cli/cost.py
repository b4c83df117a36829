"""The token ledger's commands: `cost` (the break-even report, optionally plotted) and
`ledger calls` / `ledger uses` (the raw rows, like `llm logs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from .. import accounting
from ..accounting import SkillCost, unattributed
from ..ledger import Ledger
from .errors import Command, Group
from .output import emit_json, err, esc, out
from .plot import plot_costs
from .yard import one_shot_yard


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@click.command("cost", cls=Command)
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.png",
    help="Also draw cumulative cost vs savings per skill to this PNG.",
)
def cost_command(name: str | None, as_json: bool, plot_file: Path | None) -> None:
    """Tokens invested in each skill, what each use saves, and its break-even point N*.

    A use saves (baseline - context) tokens: the tokens an agent spends on the task
    without the skill, minus the skill's SKILL.md in its context. N* is the number of
    uses after which the savings cover the creation and fix tokens. Only successful
    uses save tokens; failed creations are shown as cost not attributed to a skill.

    --json prints {"skills": [...], "not_attributed": {...}} (not_attributed is null
    with NAME)."""
    yard = one_shot_yard()
    report = accounting.report(yard, name)
    if as_json:
        emit_json(
            {
                "skills": [c.to_dict() for c in report],
                "not_attributed": unattributed(yard.ledger) if name is None else None,
            }
        )
    else:
        _print_report(report, yard.ledger if name is None else None)
    if plot_file is not None:
        path = plot_costs(report, plot_file)
        err.print(f"plot written to {esc(path)}", highlight=False)


def _print_not_attributed(ledger: Ledger) -> None:
    loose = unattributed(ledger)
    if not loose["llm_calls"]:
        return
    parts = []
    if loose["no_skill"]["llm_calls"]:
        n = loose["no_skill"]
        parts.append(f"{n['llm_calls']} LLM call(s) with no skill, {n['total_tokens']:,} tokens")
    if loose["failed_creations"]["llm_calls"]:
        f = loose["failed_creations"]
        parts.append(
            f"{f['count']} failed creation(s): {f['llm_calls']} LLM call(s), {f['total_tokens']:,} tokens"
        )
    if loose["learning_without_skill"]["llm_calls"]:
        f = loose["learning_without_skill"]
        parts.append(
            f"{f['count']} learning run(s) that added no skill: {f['llm_calls']} LLM call(s), "
            f"{f['total_tokens']:,} tokens"
        )
    out.print(f"[dim]not attributed to a skill: {'; '.join(parts)}; ${loose['cost_usd']:.4f}[/]")


def _print_report(report: list[SkillCost], ledger: Ledger | None) -> None:
    if not report:
        out.print("no skills yet: `skillyard add PATH` or `skillyard create TASK`")
        if ledger is not None:
            _print_not_attributed(ledger)
        return
    table = Table(title="token ledger: cost and break-even per skill")
    for col in (
        "skill",
        "created tok",
        "fix tok",
        "learn tok",
        "$",
        "uses",
        "context tok",
        "baseline tok",
        "saved/use",
        "break-even N*",
        "paid off?",
        "net",
    ):
        table.add_column(col, justify="left" if col in ("skill", "paid off?") else "right")
    for c in report:
        label = esc(c.skill) + (f" [dim]({c.status})[/]" if c.status and c.status != "registered" else "")
        if c.alias_of:
            label += f" [dim]-> {esc(c.alias_of)}[/]"
        src = {"skill": "", "creation": " [dim]est[/]", "config": " [dim]default[/]"}[c.baseline_source]
        n_star = "never" if c.break_even_uses is None else f"{c.break_even_uses:,}"
        paid = (
            "[green]yes[/]"
            if c.paid_off
            else ("[dim]no (unused)[/]" if not c.successful_uses else "[red]no[/]")
        )
        net = f"[green]{c.net_tokens:+,}[/]" if c.net_tokens >= 0 else f"[red]{c.net_tokens:+,}[/]"
        table.add_row(
            label,
            _count(c.creation_tokens),
            _count(c.fix_tokens),
            _count(c.learning_tokens + c.merge_tokens),
            f"{c.cost_usd:.4f}",
            _count(c.uses),
            _count(c.context_tokens),
            _count(c.baseline_tokens) + src,
            f"{c.savings_per_use:,}",
            n_star,
            paid,
            net,
        )
    table.add_section()
    table.add_row(
        f"[bold]total[/] ({len(report)})",
        _count(sum(c.creation_tokens for c in report)),
        _count(sum(c.fix_tokens for c in report)),
        _count(sum(c.learning_tokens + c.merge_tokens for c in report)),
        f"{sum(c.cost_usd for c in report):.4f}",
        _count(sum(c.uses for c in report)),
        "",
        "",
        "",
        "",
        f"{sum(c.paid_off for c in report)}/{len(report)}",
        f"{sum(c.net_tokens for c in report):+,}",
    )
    out.print(table)
    _print_proxy(report)
    if ledger is not None:
        _print_not_attributed(ledger)
    out.print(
        "[dim]baseline: est = the model's estimate at creation, default = default_baseline_tokens; "
        "N* = ceil(invested / saved per use); only successful uses save tokens, and a skill with "
        "no successful use has not paid off[/]"
    )


def _print_proxy(report: list[SkillCost]) -> None:
    """The proxy's part per skill: what it spent in the upstream's prompts and what it saved."""
    proxied = [c for c in report if c.proxy_requests]
    if not proxied:
        return
    table = Table(title="the proxy: spent and saved per skill (upstream usage as it reported it)")
    for col in (
        "skill",
        "requests",
        "spent tok",
        "tool runs",
        "failed",
        "saved tok",
        "upstream prompt",
        "upstream compl.",
        "usage",
    ):
        table.add_column(col, justify="left" if col in ("skill", "usage") else "right")
    for c in proxied:
        saved = (
            f"[green]{c.proxy_saved_tokens:+,}[/]"
            if c.proxy_saved_tokens >= 0
            else f"[red]{c.proxy_saved_tokens:+,}[/]"
        )
        table.add_row(
            esc(c.skill),
            _count(c.proxy_requests),
            _count(c.proxy_spent_tokens),
            _count(c.proxy_tool_runs),
            _count(c.proxy_tool_failures),
            saved,
            _count(c.proxy_upstream_prompt_tokens),
            _count(c.proxy_upstream_completion_tokens),
            esc(c.proxy_usage_source),
        )
    out.print(table)
    out.print(
        "[dim]spent: the skill's instructions, tool definition and tool results in every upstream round; "
        "saved: baseline - spent for each answered request; upstream: the whole requests that used it[/]"
    )


@click.group("ledger", cls=Group)
def ledger_group() -> None:
    """The token ledger: every LLM call spent on skills, and every skill use."""


def _time(ts: Any) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts is not None else ""


@ledger_group.command("calls")
@click.option("--skill", default=None, help="Only this skill's calls.")
@click.option("--purpose", type=click.Choice(["create", "fix", "retry", "learn", "merge"]), default=None)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="The newest N calls (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, oldest first.")
def ledger_calls(skill: str | None, purpose: str | None, limit: int, as_json: bool) -> None:
    """LLM calls with their token usage, oldest first."""
    rows = one_shot_yard().ledger.llm_calls(skill, purpose=purpose, limit=limit or None)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("no LLM calls recorded" + (f" for {esc(skill)}" if skill else ""))
        return
    table = Table(title="LLM calls")
    for col in (
        "time (UTC)",
        "skill",
        "v",
        "purpose",
        "model",
        "prompt",
        "compl.",
        "cached",
        "tiktoken",
        "$",
        "ms",
        "outcome",
        "detail",
    ):
        numeric = col in ("v", "prompt", "compl.", "cached", "tiktoken", "$", "ms")
        table.add_column(
            col,
            justify="right" if numeric else "left",
            overflow="fold",
            max_width=40 if col == "detail" else None,
        )
    for r in rows:
        table.add_row(
            _time(r["ts"]),
            esc(r["skill"] or "-"),
            str(r["version"] or ""),
            esc(r["purpose"]),
            esc(r["model"] or ""),
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
            f"{r['cached_tokens']:,}",
            f"{r['tiktoken_prompt_tokens']:,}",
            f"{r['cost_usd']:.4f}",
            f"{r['latency_ms']:.0f}",
            esc(r["outcome"]),
            esc((r["detail"] or "")[:120]),
        )
    out.print(table)
    out.print(
        f"[dim]{len(rows)} call(s), {sum(r['total_tokens'] for r in rows):,} tokens, "
        f"${sum(r['cost_usd'] for r in rows):.4f}[/]"
    )


@ledger_group.command("uses")
@click.option("--skill", default=None, help="Only this skill's uses.")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="The newest N uses (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, oldest first.")
def ledger_uses(skill: str | None, limit: int, as_json: bool) -> None:
    """Skill uses with the context tokens each cost, oldest first."""
    rows = one_shot_yard().ledger.uses(skill, limit=limit or None)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("no uses recorded" + (f" for {esc(skill)}" if skill else ""))
        return
    table = Table(title="skill uses")
    for col in ("time (UTC)", "skill", "v", "context tok", "outcome", "ms"):
        table.add_column(col, justify="right" if col in ("v", "context tok", "ms") else "left")
    for r in rows:
        table.add_row(
            _time(r["ts"]),
            esc(r["skill"]),
            str(r["version"] or ""),
            f"{r['context_tokens']:,}",
            esc(r["outcome"]),
            f"{r['duration_ms']:.0f}",
        )
    out.print(table)
    fails = sum(r["outcome"] != "ok" for r in rows)
    context = sum(r["context_tokens"] for r in rows)
    out.print(f"[dim]{len(rows)} use(s), {fails} failed, {context:,} context tokens[/]")
