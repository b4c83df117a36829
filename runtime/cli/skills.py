"""Commands over skills: add, test, list, show, search, run, versions, rollback, export,
fix, create, and the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .errors import FIND_HINT, Command, fail
from .output import emit_json, err, esc, out, reason_text
from .yard import one_shot_yard


def _add_table(outcomes) -> Table:
    table = Table(title="skills")
    for col in ("skill", "status", "tier", "version", "tests", "coverage", "time", "why"):
        table.add_column(col, overflow="fold")
    colors = {
        "registered": "green",
        "unchanged": "cyan",
        "blocked": "red",
        "rejected": "red",
        "error": "yellow",
    }
    for o in outcomes:
        rep = o.report
        table.add_row(
            esc(o.name),
            f"[{colors.get(o.status, 'white')}]{o.status}[/]",
            o.tier or "-",
            str(o.version or "-"),
            f"{rep.tests - rep.failures - rep.errors}/{rep.tests}" if rep else "-",
            f"{rep.coverage:.0f}%" if rep and rep.coverage is not None else "-",
            f"{o.duration_s:.1f}s",
            reason_text(o.reasons),
        )
    return table


def add_with_progress(yard, path: Path, force: bool, quiet: bool = False, workers: int = 2):
    """Add every skill under `path` with a progress bar on stderr; (the outcomes, the
    folders discovery passed over)."""
    from ..discovery import find_skills
    from ..yard import discover

    folders = discover(path)  # SkillError (with what was passed over) when there is none
    skipped = find_skills(path).skipped
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=quiet,
    ) as bar:
        task = bar.add_task("gating skills", total=len(folders))
        yard.progress = lambda m: bar.update(task, description=esc(m[:60]))
        bar.update(task, description="checking, then building and gating")

        def done(outcome) -> None:
            bar.update(task, description=f"{esc(outcome.name)}: {outcome.status}")
            bar.advance(task)

        outcomes = yard.add_many(folders, force=force, workers=workers, on_result=done)
        bar.update(task, description="done")
    return outcomes, skipped


@click.command(cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Re-gate even if this exact package was gated before.")
@click.option("--workers", type=int, default=2, show_default=True, help="Skills built and gated at once.")
@click.option("--json", "as_json", is_flag=True)
def add(path: Path, force: bool, workers: int, as_json: bool) -> None:
    """Build, test-gate and register one skill folder or a folder of skills."""
    yard = one_shot_yard()
    outcomes, skipped = add_with_progress(yard, path, force, quiet=as_json, workers=workers)
    if as_json:
        # A list, as before; what discovery passed over goes to stderr (the JSON stays one shape).
        emit_json([o.to_dict() for o in outcomes])
        for s in skipped:
            err.print(f"skipped {esc(s.path)}: {esc(s.reason)}", highlight=False)
    else:
        out.print(_add_table(outcomes))
        for s in skipped:
            out.print(f"  skipped {esc(s.path)}: {esc(s.reason)}", highlight=False)
    if any(o.status in ("blocked", "rejected", "error") for o in outcomes):
        sys.exit(2)


def coverage_text(coverage: float | None) -> str:
    """Line coverage as the CLI shows it (information; absent when nothing was measured)."""
    return f"coverage {coverage:.0f}%" if coverage is not None else "coverage not measured"


def _report_table(report) -> None:
    out.print(
        f"[bold]{'PASSED' if report.passed else 'BLOCKED'}[/]  tests {report.tests}  failures "
        f"{report.failures}  errors {report.errors}  skipped {report.skipped}  "
        f"{coverage_text(report.coverage)}  ({report.duration_s:.1f}s)"
    )
    for reason in report.reasons:
        out.print(f"  - {esc(reason)}", highlight=False)
    for case in report.cases:
        if case.status != "passed":
            out.print(f"  [red]{case.status}[/] {esc(case.name)}: {esc(case.message[:200])}", highlight=False)


@click.command(cls=Command)
@click.argument("name")
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def test(name: str, version: int | None, as_json: bool) -> None:
    """Re-run the test gate on a stored skill (nothing is recorded)."""
    yard = one_shot_yard()
    with err.status(f"gating {esc(name)}"):
        report = yard.test(name, version)
    if as_json:
        emit_json(report.to_dict())
    else:
        _report_table(report)
    sys.exit(0 if report.passed else 2)


def _record_row(r) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "status": r.status,
        "tier": r.tier,
        "current": r.current,
        "description": r.description,
        "tags": r.tags,
        "tests": r.gate.tests,
        "coverage": r.gate.coverage,
        "gate_passed": r.gate.passed,
        "reasons": r.gate.reasons,
        "calls": r.calls,
        "failures": r.failures,
        "last_used": r.last_used,
        "created_at": r.created_at,
        "content_hash": r.content_hash,
    }


@click.command(name="list", cls=Command)
@click.option("--status", type=click.Choice(["registered", "blocked", "retired"]), default=None)
@click.option(
    "--tier",
    type=click.Choice(["instructions", "verified", "blocked"]),
    default=None,
    help="instructions: no code, read only; verified: code whose gate passed; blocked.",
)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(status: str | None, tier: str | None, as_json: bool) -> None:
    """Skills in the store: one line per skill (its current version, else its latest)."""
    records = one_shot_yard().list(status, tier)
    if as_json:
        emit_json([_record_row(r) for r in records])
        return
    table = Table(title=f"{len(records)} skill(s)")
    for col in ("skill", "v", "status", "tier", "tests", "coverage", "calls", "fail", "description"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(
            r.name,
            str(r.version),
            r.status,
            r.tier,
            str(r.gate.tests) if r.tier != "instructions" else "-",
            f"{r.gate.coverage:.0f}%" if r.gate.coverage is not None else "-",
            str(r.calls),
            str(r.failures),
            esc(r.description[:70]),
        )
    out.print(table)


@click.command(cls=Command)
@click.argument("name")
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def show(name: str, version: int | None, as_json: bool) -> None:
    """A skill's record, gate report, instructions and memory."""
    data = one_shot_yard().show(name, version)
    rec, pkg = data["record"], data["package"]
    if as_json:
        emit_json(
            {
                **_record_row(rec),
                "skill_md": pkg.skill_md,
                "config": pkg.config.model_dump(),
                "gate_report": data["report"],
                "memory": data["memory"],
                "files": sorted(pkg.files),
            }
        )
        return
    out.print(
        f"[bold]{esc(rec.name)}[/] v{rec.version} ({rec.status}, {rec.tier}"
        f"{', current' if rec.current else ''})  calls {rec.calls}  failures {rec.failures}"
    )
    out.print(esc(rec.description), highlight=False)
    entry = f"entrypoint: {esc(pkg.config.entrypoint)}   " if pkg.config.entrypoint else ""
    out.print(f"{entry}files: {len(pkg.files)}   hash: {rec.content_hash[:16]}")
    if rec.tier == "instructions":
        out.print("gate: none (instructions only: no executable code, so nothing is gated or run)")
    else:
        verdict = "passed" if rec.gate.passed else "blocked"
        out.print(f"gate: {verdict}; tests {rec.gate.tests}; {coverage_text(rec.gate.coverage)}")
    for reason in rec.gate.reasons:
        out.print(f"  - {esc(reason)}", highlight=False)
    if pkg.config.examples:
        out.print(f"example input: {esc(json.dumps(pkg.config.examples[0].input)[:200])}", highlight=False)
    if pkg.instructions.strip():
        out.print("\n[bold]instructions[/] (SKILL.md)")
        out.print(esc(pkg.instructions.strip()), highlight=False)
    if data["memory"]:
        out.print("\n[bold].memory.md[/]")
        out.print(esc(data["memory"]), highlight=False)


@click.command(cls=Command)
@click.argument("query")
@click.option("--limit", type=int, default=5)
@click.option("--json", "as_json", is_flag=True)
def search(query: str, limit: int, as_json: bool) -> None:
    """Find registered skills by meaning and words (hybrid search)."""
    hits = one_shot_yard().search(query, limit=limit)
    if as_json:
        emit_json([{**_record_row(r), "score": s} for r, s in hits])
        return
    table = Table(title=f"search: {esc(query)}")
    for col in ("score", "skill", "v", "description"):
        table.add_column(col, overflow="fold")
    for r, s in hits:
        table.add_row(f"{s:.3f}", r.name, str(r.version), esc(r.description[:90]))
    out.print(table)


@click.command(cls=Command)
@click.argument("name")
@click.option("--input", "input_json", default=None, help="Input JSON (an object, per the skill's schema).")
@click.option(
    "--input-file", type=click.File("rb"), default=None, help="Read the input JSON from a file ('-' = stdin)."
)
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result envelope as JSON.")
def run(name: str, input_json: str | None, input_file, version: int | None, as_json: bool) -> None:
    """Run a registered skill on JSON input in a fresh container; prints its JSON output."""
    from ..calls import parse_input

    raw = input_file.read() if input_file else (input_json if input_json is not None else "{}")
    try:
        params = parse_input(raw)
    except ValueError as exc:
        fail(f"--input: {exc}")
    result = one_shot_yard().run(name, params, version=version)
    if as_json:
        emit_json(result.to_dict())
    elif result.ok:
        text = json.dumps(result.output, indent=2, ensure_ascii=False)
        try:
            text.encode(sys.stdout.encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = json.dumps(result.output, indent=2)  # lone surrogates etc.: \u escapes keep it valid JSON
        click.echo(text)
    else:
        e = result.error
        text = f"{e.message}: {FIND_HINT}" if e.kind == "not_found" else e.message
        err.print(f"[bold red]{esc(name)}: {esc(e.kind)}[/]: {esc(text)}", highlight=False)
        if e.traceback:
            err.print(esc(e.traceback.rstrip()), highlight=False)
    sys.exit(0 if result.ok else (3 if result.error and result.error.kind == "invalid_input" else 1))


@click.command(cls=Command)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def versions(name: str, as_json: bool) -> None:
    """Every version of a skill, with its verdict."""
    recs = one_shot_yard().versions(name)
    if as_json:
        emit_json([_record_row(r) for r in recs])
        return
    table = Table(title=f"{esc(name)}: {len(recs)} version(s)")
    for col in ("v", "status", "tier", "current", "tests", "coverage", "hash", "created", "why"):
        table.add_column(col, overflow="fold")
    for r in recs:
        table.add_row(
            str(r.version),
            r.status,
            r.tier,
            "*" if r.current else "",
            str(r.gate.tests),
            f"{r.gate.coverage:.0f}%" if r.gate.coverage is not None else "-",
            r.content_hash[:12],
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            reason_text(r.gate.reasons),
        )
    out.print(table)


@click.command(cls=Command)
@click.argument("name")
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True)
def rollback(name: str, version: int, as_json: bool) -> None:
    """Make an earlier registered version current again (its files and record, exactly)."""
    rec = one_shot_yard().rollback(name, version)
    if as_json:
        emit_json(_record_row(rec))
    else:
        out.print(f"{esc(name)}: v{rec.version} is current again")


@click.command(cls=Command)
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--version", "version", type=int, default=None)
def export(name: str, dest: Path, version: int | None) -> None:
    """Write a skill's package (a valid Agent Skills folder) to DEST/NAME."""
    target = one_shot_yard().export(name, dest, version)
    out.print(f"exported {esc(name)} to {esc(target)}")


def _print_fix(outcome) -> None:
    for a in outcome.attempts:
        out.print(
            f"  attempt {a.number}: {a.outcome}{f' (v{a.version})' if a.version else ''}"
            f"{': ' + reason_text(a.reasons) if a.reasons else ''}",
            highlight=False,
        )
    color = "green" if outcome.status == "fixed" else "red"
    out.print(
        f"[{color}]{esc(outcome.name)}: {outcome.status}[/] after {len(outcome.attempts)} attempt(s), "
        f"{outcome.tokens} tokens; {esc(outcome.stop_reason)}",
        highlight=False,
    )


@click.command(cls=Command)
@click.argument("name")
@click.option("--max-attempts", type=int, default=3, show_default=True)
@click.option(
    "--allow-test-edits",
    is_flag=True,
    help="Let the model change existing tests (off: such answers are refused).",
)
@click.option("--json", "as_json", is_flag=True)
def fix(name: str, max_attempts: int, allow_test_edits: bool, as_json: bool) -> None:
    """Ask the LLM to repair a blocked skill (or one with runtime errors); regate each attempt."""
    from ..fixer import Fixer

    yard = one_shot_yard()
    fixer = Fixer(yard)  # LLMUnavailable: the one error line, before any work
    with err.status(f"fixing {esc(name)}") as status:
        yard.progress = lambda m: status.update(esc(m))
        outcome = fixer.fix(name, max_attempts=max_attempts, allow_test_edits=allow_test_edits)
    if as_json:
        emit_json(outcome.to_dict())
    else:
        _print_fix(outcome)
    sys.exit(0 if outcome.status == "fixed" else 2)


@click.command(cls=Command)
@click.argument("task", required=False)
@click.option("--name", default=None, help="The skill's name (a-z, 0-9, hyphens). Default: the model picks.")
@click.option(
    "--max-attempts", type=int, default=3, show_default=True, help="Fix attempts if the first gate fails."
)
@click.option(
    "--allow-test-edits",
    is_flag=True,
    help="Let fix attempts add test files (run apart from the frozen ones).",
)
@click.option("--replace", is_flag=True, help="A skill of that name exists: make this its next version.")
@click.option(
    "--tests-for",
    "tests_for",
    default=None,
    metavar="NAME",
    help="Have the model write tests for the existing skill NAME (its code unchanged); the gate decides.",
)
@click.option("--json", "as_json", is_flag=True)
def create(
    task: str | None,
    name: str | None,
    max_attempts: int,
    allow_test_edits: bool,
    replace: bool,
    tests_for: str | None,
    as_json: bool,
) -> None:
    """Have the LLM write a new skill for TASK, then gate it (and fix it if it fails); or, with
    --tests-for NAME, write tests for a skill that has none."""
    from ..fixer import Fixer, creation_status

    if (task is None) == (tests_for is None):
        raise click.UsageError("give either a TASK or --tests-for NAME")
    yard = one_shot_yard()
    fixer = Fixer(yard)  # LLMUnavailable: the one error line, before any work
    with err.status("creating a skill" if task else f"writing tests for {esc(tests_for or '')}") as status:
        yard.progress = lambda m: status.update(esc(m))
        if tests_for is not None:
            added, fixed = fixer.create_tests(tests_for, max_attempts=max_attempts)
        else:
            added, fixed = fixer.create(
                task or "",
                name=name,
                max_attempts=max_attempts,
                allow_test_edits=allow_test_edits,
                replace=replace,
            )
    final = creation_status(added, fixed)
    if as_json:
        emit_json(
            {
                "name": added.name,
                "status": final,
                "created": added.to_dict(),
                "fix": fixed.to_dict() if fixed else None,
            }
        )
    else:
        out.print(
            f"created {esc(added.name)} v{added.version}: {added.status}"
            f"{': ' + reason_text(added.reasons) if added.reasons else ''}",
            highlight=False,
        )
        if fixed:
            _print_fix(fixed)
        out.print(f"{esc(added.name)}: [bold]{final}[/]")
    sys.exit(0 if final == "registered" else 2)


@click.command(cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path), default="skills")
@click.option("--calls", "max_calls", type=int, default=20, help="Run at most this many example calls.")
def demo(path: Path, max_calls: int) -> None:
    """The main job: gate every skill in PATH, register those that pass, make example calls,
    and print a summary. A second run reuses every image and verdict."""
    import time as _time

    started = _time.monotonic()
    yard = one_shot_yard()
    out.print(f"[bold]skillyard demo[/]: store {esc(yard.settings.store)}, skills from {esc(path)}")
    outcomes, _ = add_with_progress(yard, path, force=False)
    gate_s = _time.monotonic() - started
    out.print(_add_table(outcomes))
    calls = Table(title="example calls (each in a fresh hardened container)")
    for col in ("skill", "ok", "ms", "input", "output / error"):
        calls.add_column(col, overflow="fold")
    made = 0
    call_started = _time.monotonic()
    for o in outcomes:
        if made >= max_calls or o.status not in ("registered", "unchanged"):
            continue
        rec = yard.registry.get(o.name)
        if rec is None or not rec.runnable:
            continue
        pkg = yard.package(rec.name, rec.version)
        if not pkg.config.examples:
            continue
        example = pkg.config.examples[0].input
        result = yard.run(o.name, example)
        made += 1
        shown = (
            json.dumps(result.output, ensure_ascii=False)
            if result.ok
            else f"{result.error.kind}: {result.error.message}"
        )
        calls.add_row(
            o.name,
            "[green]yes[/]" if result.ok else "[red]no[/]",
            f"{result.duration_s * 1000:.0f}",
            esc(json.dumps(example, ensure_ascii=False)[:60]),
            esc(shown[:110]),
        )
    if made:
        out.print(calls)
    hits = yard.search("how many words and sentences are in this text", limit=3)
    if hits:
        out.print(
            "search 'how many words and sentences are in this text': "
            + ", ".join(f"{r.name} ({s:.2f})" for r, s in hits)
        )
    verified = sum(o.tier == "verified" for o in outcomes)
    instructions = sum(o.tier == "instructions" for o in outcomes)
    blocked = [o for o in outcomes if o.tier == "blocked" or o.status in ("rejected", "error")]
    out.print(
        f"\n[bold]{verified + instructions} registered ({verified} verified, {instructions} instructions "
        f"only), {len(blocked)} blocked[/] "
        f"(gate {gate_s:.1f} s, {made} calls {_time.monotonic() - call_started:.1f} s, "
        f"total {_time.monotonic() - started:.1f} s)"
    )
    for o in blocked:
        out.print(f"  blocked {esc(o.name)}: {reason_text(o.reasons)}", highlight=False)
    out.print("next: skillyard list | skillyard show NAME | skillyard run NAME --input '{...}'")
    from ..tenants import Tenants
    from .serve import console_url

    keys = "" if Tenants(yard.settings.home) else "; first make a key: `skillyard tenant add ops --admin`"
    out.print(
        f"console: {console_url()} while `skillyard serve` runs (sign in with a tenant key{keys})",
        highlight=False,
    )
