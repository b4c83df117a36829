"""Commands of a skill: programs run with argv, stdin, input files and output files.

A command call (`CommandRequest`) is an argv that begins with one of the skill's declared
commands (skillyard.yaml `commands`), stdin bytes, input files and the output files to
bring back. It runs like every call of a skill: a fresh process in the skill's image,
under the skill's limits, through the caller's sandbox (the yard's warm pool or a fresh
container; the gate's callee pool), hardened the same way. `run_command` is the one way
any caller runs a command: a production use, and a test's `skill.run(...)` in the gate's
verdict pass, build the same RunSpec from the same request.

The argv rule (docs/SECURITY.md, "Commands"): only the declared commands run, each with
whatever arguments the caller adds. The declared part is given with the package's paths
resolved under /skill (`python scripts/extract.py` runs `python /skill/scripts/extract.py`);
the caller's arguments are passed unchanged. The working dir is the sandbox's writable
WORKDIR: input files are written there before the program starts, relative paths in
arguments mean files there, and output files are read back from there after every
process of the call has been killed, each capped (`truncated_files` says which were).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox import WORKDIR, Limits, RunResult, Sandbox

from .calls import CallError
from .errors import InvalidInput
from .package import SkillConfig

SKILL_ROOT = "/skill"
MAX_ARGS = 256
MAX_ARGV_BYTES = 64 * 1024
MAX_INPUT_FILES = 64
MAX_INPUT_BYTES = 12 * 1024 * 1024  # all input files together (they travel in the request)
MAX_STDIN_BYTES = 4 * 1024 * 1024
MAX_OUTPUT_FILES = 8
MAX_OUTPUT_BYTES = 8 * 1024 * 1024  # per output file, at most (less when memory is small)
MAX_PATH_BYTES = 1024
OnOutput = Callable[[str, bytes], None]


@dataclass
class CommandRequest:
    """One use of a command: argv (a declared command and the caller's arguments), stdin,
    input files and output files (relative paths in the working dir)."""

    argv: list[str]
    stdin: bytes = b""
    files: dict[str, bytes] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """What notes and logs may say about the request: argv and file names, never contents."""
        return {"argv": self.argv[:20], "files": sorted(self.files)[:20], "outputs": self.outputs}


@dataclass
class CommandResult:
    """What a command call did. `ok`: it ran within its limits and exited 0; otherwise
    `error` says why (kind: invalid_input, not_found, not_registered, exit, timeout, oom,
    sandbox). Output files that existed are in `files` (capped: `truncated_files`)."""

    skill: str
    version: int | None
    ok: bool
    command: str = ""  # the declared command the argv began with
    argv: list[str] = field(default_factory=list)
    exit_code: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    missing_files: list[str] = field(default_factory=list)
    truncated_files: list[str] = field(default_factory=list)
    timed_out: bool = False
    oom_killed: bool = False
    error: CallError | None = None
    duration_s: float = 0.0
    peak_memory_bytes: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: text as UTF-8 (replacing what is not), bytes also as base64."""
        return {
            "skill": self.skill,
            "version": self.version,
            "ok": self.ok,
            "command": self.command,
            "argv": self.argv,
            "exit_code": self.exit_code,
            "stdout": self.stdout.decode("utf-8", "replace"),
            "stderr": self.stderr.decode("utf-8", "replace"),
            "stdout_b64": base64.b64encode(self.stdout).decode(),
            "stderr_b64": base64.b64encode(self.stderr).decode(),
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "files": {name: base64.b64encode(data).decode() for name, data in self.files.items()},
            "missing_files": self.missing_files,
            "truncated_files": self.truncated_files,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "error": None
            if self.error is None
            else {"kind": self.error.kind, "message": self.error.message, "type": self.error.type},
            "duration_ms": round(self.duration_s * 1000, 1),
            "peak_memory_bytes": self.peak_memory_bytes,
            "limits": self.limits,
        }


# -- checking a request --------------------------------------------------------------------------
def check_relative(path: str, what: str) -> str:
    """`path` as a plain relative path inside the working dir, or InvalidInput."""
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"{what}: a file name must be a non-empty string")
    parts = path.split("/")
    if (
        path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or any(ord(c) < 32 for c in path)
        or "\\" in path
        or len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES
        or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in parts)
    ):
        raise InvalidInput(
            f"{what}: {path[:100]!r} must be a plain relative path in the working dir "
            "(no '..', no '/' at the start, no empty parts)"
        )
    return path


def match_command(config: SkillConfig, argv: list[str]) -> str:
    """The declared command `argv` begins with (the longest that fits), or InvalidInput
    naming the commands there are."""
    best = ""
    for name, command in config.commands.items():
        if argv[: len(command.run)] == command.run and len(command.run) > len(
            config.commands[best].run if best else []
        ):
            best = name
    if not best:
        declared = "; ".join(f"{name}: {' '.join(c.run)}" for name, c in sorted(config.commands.items()))
        raise InvalidInput(
            f"argv must begin with one of the skill's commands ({declared or 'it declares none'}), "
            "then your arguments"
        )
    return best


def resolve_argv(config: SkillConfig, name: str, argv: list[str], files: set[str]) -> list[str]:
    """The argv the program gets: the declared part with the package's files under /skill,
    the caller's arguments unchanged."""
    declared = config.commands[name].run
    resolved = [f"{SKILL_ROOT}/{token}" if token in files else token for token in declared]
    return resolved + argv[len(declared) :]


def check_request(config: SkillConfig, request: CommandRequest) -> str:
    """Validate a request against the skill's commands and the limits; the command's name."""
    argv = request.argv
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise InvalidInput("argv must be a non-empty list of strings")
    if len(argv) > MAX_ARGS or sum(len(a.encode("utf-8", "surrogatepass")) for a in argv) > MAX_ARGV_BYTES:
        raise InvalidInput(f"argv is over {MAX_ARGS} arguments or {MAX_ARGV_BYTES} bytes")
    if any("\0" in a for a in argv):
        raise InvalidInput("an argument holds a NUL character")
    name = match_command(config, argv)
    if len(request.stdin) > MAX_STDIN_BYTES:
        raise InvalidInput(f"stdin is over {MAX_STDIN_BYTES} bytes")
    if len(request.files) > MAX_INPUT_FILES:
        raise InvalidInput(f"at most {MAX_INPUT_FILES} input files")
    for path in request.files:
        check_relative(path, "files")
    total = sum(len(data) for data in request.files.values())
    if total > MAX_INPUT_BYTES:
        raise InvalidInput(f"the input files hold {total} bytes; the limit is {MAX_INPUT_BYTES}")
    if len(request.outputs) > MAX_OUTPUT_FILES:
        raise InvalidInput(f"at most {MAX_OUTPUT_FILES} output files")
    for path in request.outputs:
        check_relative(path, "outputs")
    names = set(request.files)
    for path in names:  # `a` and `a/b` cannot both be files
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise InvalidInput(f"files: {'/'.join(parts[:i])} is a file and also a folder of {path}")
    return name


def command_limits(limits: Limits, outputs: int) -> Limits:
    """The call's limits with each output file capped so that all of them fit the run's
    memory on the way back (the supervisor holds them, base64, until it answers)."""
    cap = min(limits.max_collect, MAX_OUTPUT_BYTES, limits.memory // (3 * max(1, outputs)))
    return limits.replace(max_collect=max(cap, 1024))


# -- running -------------------------------------------------------------------------------------
def run_command(
    sandbox: Sandbox,
    *,
    skill: str,
    version: int | None,
    image: str,
    config: SkillConfig,
    package_files: set[str],
    request: CommandRequest,
    limits: Limits,
    tenant: str = "",
    on_output: OnOutput | None = None,
    argv: list[str] | None = None,
    extra_files: dict[str, bytes] | None = None,
    extra_collect: list[str] | None = None,
) -> tuple[CommandResult, RunResult | None]:
    """Check `request` and run it in a fresh process of the skill's image; (result, the raw
    run, or None when the request was refused). `argv`, `extra_files` and `extra_collect`
    are the gate's: they replace the program's argv (a mutant's bootstrap) and add files
    outside the working dir; production never passes them."""
    started = time.monotonic()
    result = CommandResult(skill=skill, version=version, ok=False, argv=list(request.argv))
    try:
        result.command = check_request(config, request)
    except InvalidInput as exc:
        result.error = CallError("invalid_input", str(exc))
        return result, None
    limits = command_limits(limits, len(request.outputs))
    result.limits = limits.describe()
    files = {f"{WORKDIR}/{path}": data for path, data in request.files.items()}
    files.update(extra_files or {})
    collect = [f"{WORKDIR}/{path}" for path in request.outputs] + list(extra_collect or [])
    run = sandbox.run(
        argv or resolve_argv(config, result.command, request.argv, package_files),
        image=image,
        limits=limits,
        files=files,
        stdin=request.stdin,
        env={"SKILL_DIR": SKILL_ROOT},
        collect=collect,
        collect_root=WORKDIR if not extra_collect else None,
        owner="command",
        labels={"skill": skill},
        tenant=tenant,
        on_output=on_output,
    )
    fill(result, run, limits, request.outputs)
    result.duration_s = time.monotonic() - started
    return result, run


def fill(result: CommandResult, run: RunResult, limits: Limits, outputs: list[str]) -> None:
    """Put what the run did into `result` and decide ok/error."""
    prefix = WORKDIR + "/"
    result.exit_code = run.exit_code
    result.stdout, result.stderr = run.stdout, run.stderr
    result.stdout_truncated, result.stderr_truncated = run.stdout_truncated, run.stderr_truncated
    wanted = {prefix + path: path for path in outputs}
    result.files = {wanted[p]: data for p, data in run.files.items() if p in wanted}
    result.missing_files = [wanted[p] for p in run.missing_files if p in wanted]
    result.truncated_files = [wanted[p] for p in run.truncated_files if p in wanted]
    result.timed_out, result.oom_killed = run.timed_out, run.oom_killed
    result.peak_memory_bytes = run.peak_memory_bytes
    if run.error:
        result.error = CallError("sandbox", run.error)
    elif run.timed_out:
        result.error = CallError(
            "timeout", f"the command exceeded its {limits.timeout:g} s limit and was killed"
        )
    elif run.oom_killed:
        result.error = CallError(
            "oom", f"the command ran out of memory (limit {limits.describe()['memory']}) and was killed"
        )
    elif run.exit_code != 0:
        tail = run.stderr[-300:].decode("utf-8", "replace").strip()
        result.error = CallError("exit", f"the command exited with status {run.exit_code}: {tail!r}")
    result.ok = result.error is None
