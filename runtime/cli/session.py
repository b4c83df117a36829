"""`skillyard session`: workspace containers with skills inside, from the shell.

A session started here is detached: its container outlives the command, later commands
find it by id (labels on the container, scoped to this state dir), and it ends itself when
idle longer than its timeout. Commands on one session are serialised with a lock file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.table import Table

from sandbox.images import digest

from ..config import get_settings
from ..sessions import DEFAULT_IDLE_S, Session, attach_cli_session, cli_sessions, resolve_skills
from .errors import Command, Group, fail
from .output import emit_json, err, esc, out
from .skills import write_outputs
from .yard import one_shot_yard


def home_label() -> str:
    """This state dir, as a label value: sessions of another SKILLYARD_HOME are not ours."""
    return digest(str(get_settings().home.resolve()))


@contextmanager
def attached(session_id: str) -> Iterator[Session]:
    """The detached session `session_id`, locked for this command."""
    from filelock import FileLock

    if not session_id.isalnum() or len(session_id) > 64:
        fail(f"{session_id!r} is not a session id: `skillyard session list` shows them")
    locks = get_settings().home / "sessions"
    locks.mkdir(parents=True, exist_ok=True)
    yard = one_shot_yard(collect_orphans=False)
    with FileLock(str(locks / f"{session_id}.lock"), timeout=600):
        yield attach_cli_session(yard.docker_backend(), session_id, home_label())


@click.group("session", cls=Group)
def session_group() -> None:
    """Workspace containers: skills read-only under /skills/NAME, a writable /work that lasts,
    commands run one after another under the sandbox's limits (start, exec, put, get, list, stop)."""


@session_group.command("start")
@click.argument("skills", nargs=-1, required=True)
@click.option(
    "--idle",
    type=float,
    default=DEFAULT_IDLE_S,
    show_default=True,
    help="Seconds without a command before the session ends itself.",
)
@click.option("--json", "as_json", is_flag=True)
def start(skills: tuple[str, ...], idle: float, as_json: bool) -> None:
    """Start a session holding SKILLS (registered ones); prints its id."""
    with err.status("session: building its image") as status:
        yard = one_shot_yard(progress=lambda m: status.update(f"session: {esc(m)}"))
        records = resolve_skills(yard, list(skills))
        session = yard.sessions.start(
            [(yard, rec) for rec in records],
            idle_timeout=idle,
            detached=True,
            labels={"home": home_label()},
        )
    if as_json:
        emit_json(session.to_dict())
        return
    out.print(session.id)
    err.print(
        f"[dim]skills under /skills ({esc(', '.join(skills))}), working dir /work; "
        f"ends after {idle:g} s idle. next: skillyard session exec {session.id} -- ls /skills[/]",
        highlight=False,
    )


@session_group.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("session_id")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option(
    "--timeout", type=float, default=None, help="Seconds before the command is killed (default 60)."
)
@click.option("--cwd", default=None, help="Working dir inside /work (default /work).")
@click.option("--stdin-file", type=click.File("rb"), default=None, help="The command's stdin ('-' = ours).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of streaming output.")
def exec_in(
    session_id: str, argv: tuple[str, ...], timeout: float | None, cwd: str | None, stdin_file, as_json: bool
) -> None:
    """Run a command in the session (output streams as it comes; the exit status is the command's).

    Example: skillyard session exec ID -- python /skills/pdf-text/scripts/extract.py in.pdf out.txt"""

    def live(stream: str, data: bytes) -> None:
        target = sys.stdout.buffer if stream == "stdout" else sys.stderr.buffer
        target.write(data)
        target.flush()

    stdin = stdin_file.read() if stdin_file else b""
    with attached(session_id) as session:
        result = session.exec(
            list(argv), stdin=stdin, timeout=timeout, cwd=cwd, on_output=None if as_json else live
        )
    if as_json:
        emit_json(result.to_dict())
    else:
        if result.stdout_truncated or result.stderr_truncated:
            err.print("[yellow]skillyard:[/] output cut at the cap (1 MB per stream)", highlight=False)
        if result.timed_out:
            err.print("[yellow]skillyard:[/] the command was killed at its timeout", highlight=False)
        if result.oom_killed:
            err.print("[yellow]skillyard:[/] the command ran out of memory and was killed", highlight=False)
    if result.timed_out:
        sys.exit(124)
    sys.exit(result.exit_code if result.exit_code is not None else 1)


@session_group.command("put")
@click.argument("session_id")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--as", "target", default=None, help="The path in /work (one file only; default: its name).")
def put(session_id: str, files: tuple[Path, ...], target: str | None) -> None:
    """Copy local FILES into the session's /work."""
    if target is not None and len(files) != 1:
        fail("--as names one file: give one file with it")
    with attached(session_id) as session:
        for path in files:
            where = session.write_file(target or path.name, path.read_bytes())
            err.print(f"[dim]{esc(path)} -> {esc(where)}[/]", highlight=False)


@session_group.command("get")
@click.argument("session_id")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the files go (default: the current dir).",
)
def get(session_id: str, paths: tuple[str, ...], out_dir: Path | None) -> None:
    """Copy files (paths in /work) out of the session."""
    with attached(session_id) as session:
        files = {path.removeprefix("/work/"): session.read_file(path) for path in paths}
    for written in write_outputs(files, out_dir or Path.cwd()):
        err.print(f"[dim]wrote {esc(written)}[/]", highlight=False)


@session_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_sessions(as_json: bool) -> None:
    """This state dir's sessions; ended ones are removed as they are listed."""
    yard = one_shot_yard(collect_orphans=False)
    backend = yard.docker_backend()
    rows = []
    for info in cli_sessions(backend, home_label()):
        labels = info.get("Labels") or {}
        running = info.get("State") == "running"
        if not running:
            backend.remove_quietly(info["Id"])
        rows.append(
            {
                "id": labels.get("skillyard.session", ""),
                "skills": labels.get("skillyard.session.skills", ""),
                "state": "running" if running else "ended (removed now)",
                "status": info.get("Status", ""),
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = Table(title=f"{sum(r['state'] == 'running' for r in rows)} session(s)")
    for col in ("id", "skills", "state", "status"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(esc(row[k]) for k in ("id", "skills", "state", "status")))
    out.print(table)


@session_group.command("stop", cls=Command)
@click.argument("session_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Stop every session of this state dir.")
def stop(session_ids: tuple[str, ...], everything: bool) -> None:
    """Stop sessions (their containers, and everything in /work, are removed)."""
    if not session_ids and not everything:
        fail("name a session id, or --all")
    yard = one_shot_yard(collect_orphans=False)
    backend = yard.docker_backend()
    found = cli_sessions(backend, home_label())
    wanted = {(c.get("Labels") or {}).get("skillyard.session"): c["Id"] for c in found}
    for session_id in session_ids:
        if session_id not in wanted:
            fail(f"no session {session_id}: `skillyard session list` shows them")
    for session_id, cid in wanted.items():
        if everything or session_id in session_ids:
            backend.remove_quietly(cid)
            out.print(f"stopped {esc(session_id)}")
