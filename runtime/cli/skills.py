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


def add_with_progress(yard, path: Path | list[Path], force: bool, quiet: bool = False, workers: int = 2):
    """Add every skill under `path` (or these folders) with a progress bar on stderr; (the outcomes, the
    folders discovery passed over)."""
    from ..discovery import find_skills
    from ..yard import discover

    if isinstance(path, list):
        folders, skipped = path, []
    else:
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
    out.print(
        f"{entry}family: {esc(pkg.config.family)}   files: {len(pkg.files)}   hash: {rec.content_hash[:16]}"
    )
    for command_name, command in sorted(pkg.config.commands.items()):
        out.print(
            f"command {esc(command_name)}: {esc(' '.join(command.run))} ...  {esc(command.description)}",
            highlight=False,
        )
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
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.option("--input", "input_json", default=None, help="Input JSON (an object, per the skill's schema).")
@click.option(
    "--input-file", type=click.File("rb"), default=None, help="Read the input JSON from a file ('-' = stdin)."
)
@click.option(
    "--file",
    "file_args",
    multiple=True,
    metavar="[NAME=]PATH",
    help="A command's input file, put in its working dir under its own name (or NAME). Repeatable.",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="NAME",
    help="A file the command writes, to bring back (default: every argument that looks like a file name "
    "and is no input file).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where output files are written (default: the current dir).",
)
@click.option(
    "--stdin-file", type=click.File("rb"), default=None, help="A command's stdin, from a file ('-' = stdin)."
)
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result envelope as JSON.")
def run(
    name: str,
    argv: tuple[str, ...],
    input_json: str | None,
    input_file,
    file_args: tuple[str, ...],
    outputs: tuple[str, ...],
    out_dir: Path | None,
    stdin_file,
    version: int | None,
    as_json: bool,
) -> None:
    """Run a registered skill in a fresh container: a function on JSON input (prints its JSON
    output), or one of its commands (argv after `--`; prints its output, writes its files).

    \b
    Examples:
      skillyard run unit-convert --input '{"value": 5, "from": "km", "to": "mi"}'
      skillyard run pdf-text --file in.pdf -- python scripts/extract.py in.pdf out.txt
    """
    if argv:
        if input_json is not None or input_file is not None:
            fail("give either --input (a function call) or a command after `--`, not both")
        _run_command(name, list(argv), file_args, outputs, out_dir, stdin_file, version, as_json)
        return
    if file_args or outputs or out_dir or stdin_file:
        fail("--file, --output, --out and --stdin-file are for commands: give the command after `--`")
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


def _input_files(file_args: tuple[str, ...]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for arg in file_args:
        target, sep, source = arg.partition("=")
        path = Path(source if sep else arg)
        name = target if sep else path.name
        if not path.is_file():
            fail(f"--file {arg}: {path} is not a readable file")
        if name in files:
            fail(f"--file {arg}: two input files are named {name}")
        files[name] = path.read_bytes()
    return files


def _looks_like_output(arg: str, inputs: dict[str, bytes]) -> bool:
    """A caller argument the CLI asks back as an output file when none is named: a relative
    file name with an extension or a folder, that is not an input file or an option."""
    if arg in inputs or arg.startswith("-") or arg.startswith("/") or ".." in arg.split("/"):
        return False
    base = arg.rsplit("/", 1)[-1]
    return bool(base) and ("." in base.strip(".") or "/" in arg) and len(arg) < 256 and "=" not in arg


def write_outputs(files: dict[str, bytes], dest: Path) -> list[Path]:
    """Write a command's output files under `dest` (relative paths, checked by the runtime);
    never through a symlink, never outside `dest`."""
    import os

    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written = []
    for rel, data in sorted(files.items()):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if root not in target.parent.resolve().parents and target.parent.resolve() != root:
            fail(f"output {rel}: its folder resolves outside {root}; nothing written there")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        written.append(target)
    return written


def _run_command(
    name: str,
    argv: list[str],
    file_args: tuple[str, ...],
    outputs: tuple[str, ...],
    out_dir: Path | None,
    stdin_file,
    version: int | None,
    as_json: bool,
) -> None:
    files = _input_files(file_args)
    wanted = list(outputs) or [a for a in argv[1:] if _looks_like_output(a, files)][:8]
    stdin = stdin_file.read() if stdin_file else b""
    result = one_shot_yard().run_command(
        name, argv, stdin=stdin, files=files, outputs=wanted, version=version
    )
    written = write_outputs(result.files, out_dir or Path.cwd()) if result.files else []
    if as_json:
        data = result.to_dict()
        data["files"] = {rel: {"bytes": len(blob)} for rel, blob in result.files.items()}
        data["written"] = [str(p) for p in written]
        emit_json(data)
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        for path in written:
            err.print(f"[dim]skillyard: wrote {esc(path)}[/]", highlight=False)
        for rel in result.truncated_files:
            err.print(f"[yellow]skillyard:[/] {esc(rel)} was cut at the output cap", highlight=False)
        if result.error is not None and result.error.kind != "exit":
            e = result.error
            text = f"{e.message}: {FIND_HINT}" if e.kind == "not_found" else e.message
            err.print(f"[bold red]{esc(name)}: {esc(e.kind)}[/]: {esc(text)}", highlight=False)
    kind = result.error.kind if result.error else None
    codes = {"invalid_input": 3, "timeout": 124, "sandbox": 125}
    if kind is None:
        sys.exit(0)
    sys.exit(codes.get(kind, result.exit_code if kind == "exit" and result.exit_code else 1))


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


def _family_ready(yard, folder: Path) -> str | None:
    """The image family a skill folder needs when it is not built yet (None: ready, or not a
    valid package, which its add reports)."""
    from ..package import PackageError, load_package

    try:
        family = load_package(folder, yard.settings).config.family
    except PackageError:  # its add reports it
        return None
    return None if yard.images.has_family(family) else family


@click.command(cls=Command)
@click.argument("path", type=click.Path(exists=True, path_type=Path), default="skills")
@click.option("--calls", "max_calls", type=int, default=20, help="Run at most this many example calls.")
@click.option(
    "--families",
    "build_families",
    is_flag=True,
    help="Also gate skills whose image family (node, documents) is not built yet, building it.",
)
def demo(path: Path, max_calls: int, build_families: bool) -> None:
    """The main job: gate every skill in PATH, register those that pass, make example calls,
    and print a summary. A second run reuses every image and verdict. Skills of an image family
    not built yet are skipped (they would build it first: minutes) unless --families."""
    import time as _time

    from ..yard import discover

    started = _time.monotonic()
    yard = one_shot_yard()
    out.print(f"[bold]skillyard demo[/]: store {esc(yard.settings.store)}, skills from {esc(path)}")
    folders = discover(path)
    skipped = {} if build_families else {f.name: fam for f in folders if (fam := _family_ready(yard, f))}
    outcomes, _ = add_with_progress(yard, [f for f in folders if f.name not in skipped], force=False)
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
    for name, family in sorted(skipped.items()):
        out.print(
            f"  skipped {esc(name)}: it needs the {esc(family)} image family, not built yet "
            f"(`skillyard images build --family {esc(family)}`, or `skillyard demo --families`)",
            highlight=False,
        )
    out.print("next: skillyard list | skillyard show NAME | skillyard run NAME --input '{...}'")
    from ..tenants import Tenants
    from .serve import console_url

    keys = "" if Tenants(yard.settings.home) else "; first make a key: `skillyard tenant add ops --admin`"
    out.print(
        f"console: {console_url()} while `skillyard serve` runs (sign in with a tenant key{keys})",
        highlight=False,
    )
