"""Calls of a skill's Python code: one request envelope, one fresh process, under the skill's limits.

`run_callee` is the one way any caller runs the skill's code: a production call of the
entrypoint (`call_skill`: JSON in, JSON out, validated against the schemas) and every
call a test makes through the gate's judge use the same runner program, image,
environment, limits and warm pool. The envelope and the result carry plain data only
(runtime/harness/datacodec.py).
"""

from __future__ import annotations

import ast
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonschema

from sandbox import Limits, RunResult, RunSpec, Sandbox
from sandbox.pyboot import python_argv

from .harness import call_runner_source
from .harness.datacodec import Uncarriable, decode, encode
from .package import SkillConfig, SkillPackage

OUT_FILE = "/tmp/sy-out/result.json"
MAX_INPUT_BYTES = 4 * 1024 * 1024
MAX_INPUT_DEPTH = 64


@dataclass
class CallError:
    kind: str  # invalid_input, exception, timeout, oom, bad_output, crashed, sandbox
    message: str
    type: str | None = None
    traceback: str | None = None


@dataclass
class CallResult:
    skill: str
    version: int | None
    ok: bool
    output: Any = None
    error: CallError | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    peak_memory_bytes: int | None = None
    limits: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration_ms"] = round(self.duration_s * 1000, 1)
        del data["duration_s"]
        return data


def _depth(value: Any, limit: int) -> int:
    """Depth of nested containers, iteratively (hostile input must not blow our stack)."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if d > limit:
            return d
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def parse_input(text: str | bytes) -> Any:
    """Parse call input JSON with size and depth limits; ValueError says what is wrong."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_INPUT_BYTES:
        raise ValueError(f"input is {len(raw)} bytes; the limit is {MAX_INPUT_BYTES}")
    try:
        value = json.loads(raw)
    except RecursionError as exc:
        raise ValueError(f"input is nested deeper than {MAX_INPUT_DEPTH} levels") from exc
    except ValueError as exc:
        raise ValueError(f"input is not valid JSON: {exc}") from exc
    _check_depth(value)  # size was checked on the text above
    return value


def _check_depth(value: Any) -> None:
    if _depth(value, MAX_INPUT_DEPTH) > MAX_INPUT_DEPTH:
        raise ValueError(f"input is nested deeper than {MAX_INPUT_DEPTH} levels")


def encode_input(value: Any) -> bytes:
    """Check a call's input (from any caller) and serialise it once, for the container's stdin."""
    _check_depth(value)
    try:  # NaN and Infinity are not JSON: a skill's strict parser, and failures.jsonl, would break on them
        data = json.dumps(value, allow_nan=False).encode()
    except ValueError as exc:
        raise ValueError(
            "input holds a non-finite number (NaN, Infinity, or one like 1e999 that overflows): JSON has none"
        ) from exc
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"input is over {MAX_INPUT_BYTES} bytes")
    return data


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_json))


def _schema_errors(schema: dict[str, Any], value: Any, limit: int = 5) -> list[str]:
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = []
    for err in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        errors.append(f"{where}: {err.message[:300]}")
        if len(errors) >= limit:
            break
    return errors


def call_limits(config: SkillConfig, base: Limits) -> Limits:
    over = config.limits
    return base.replace(
        memory=over.memory,
        cpus=over.cpus,
        pids=over.pids,
        timeout=over.timeout,
        max_stdout=over.max_stdout,
        tmpfs={"/tmp": over.tmpfs} if over.tmpfs else None,
        runtime=over.runtime,
    )


def callee_argv() -> list[str]:
    """The runner program every call of a skill's code runs (production and gate alike)."""
    # Compiled here once rather than in every fresh process (sandbox/pyboot.py).
    return python_argv(call_runner_source(), "<call_runner>", args=(OUT_FILE,))


def call_request(
    module: str, function: str, args: list[Any], kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The envelope of one call: wire-encoded arguments (raises Uncarriable, ValueError)."""
    return {
        "module": module,
        "function": function,
        "args": encode(list(args)),
        "kwargs": encode(dict(kwargs or {})),
    }


RUNNER_PACKAGES = ("yaml", "jsonschema")  # the runner image's own packages (images/runner/requirements.txt)
# Modules whose import does work a fresh process would repeat on every call: `time.strptime` and
# `datetime.strptime` build _strptime's locale tables (~80 ms) on first use.
FIRST_USE = {"datetime": ("_strptime",), "time": ("_strptime",)}


@functools.lru_cache(maxsize=512)
def _imports_of(code: tuple[tuple[str, bytes], ...]) -> tuple[str, ...]:
    """The absolute module names the code imports (a static scan; code that does not parse
    imports nothing here: the call reports its syntax error itself)."""
    found: set[str] = set()
    for _rel, data in code:
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return tuple(sorted(found))


def callee_env(pkg: SkillPackage) -> dict[str, str]:
    """The environment of every call of the skill's code (the same for production and the gate).

    SKILLYARD_PREIMPORT names what the call runner's fork server imports once for all calls:
    the standard-library modules the skill's code imports (plus what they build on first use),
    and the runner image's own packages it imports when the skill brings no requirements of its
    own (a requirement could have replaced them: then nothing of site-packages is imported
    before the call, where it would run in the fork server)."""
    code = tuple((rel, pkg.files[rel]) for rel in pkg.code_files)
    names: list[str] = []
    for name in _imports_of(code):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or (top in RUNNER_PACKAGES and not pkg.config.requirements):
            names.append(name)
            names.extend(FIRST_USE.get(name, ()))
    return {"SKILLYARD_PREIMPORT": ",".join(dict.fromkeys(names))} if names else {}


def callee_spec(image: str, limits: Limits, env: dict[str, str], tenant: str = "") -> RunSpec:
    """The run every call of the skill's code makes (to pre-warm a pool for it)."""
    return RunSpec(
        image=image,
        argv=callee_argv(),
        limits=limits,
        env=env,
        prestart=True,
        fork_server=True,
        collect=[OUT_FILE],
        owner="call",
        tenant=tenant,
    )


def run_callee(
    sandbox: Sandbox,
    *,
    image: str,
    limits: Limits,
    env: dict[str, str],
    request: bytes,
    tenant: str = "",
    labels: dict[str, str] | None = None,
    on_output: Callable[[str, bytes], None] | None = None,
) -> RunResult:
    """Run one request in a fresh process of the skill's image (warm container when pooled);
    `env` is `callee_env(pkg)`.
    `on_output` receives what it prints as it prints it."""
    return sandbox.run(
        callee_argv(),
        image=image,
        limits=limits,
        env=env,
        stdin=request,
        prestart=True,
        fork_server=True,
        collect=[OUT_FILE],
        owner="call",
        labels=labels or {},
        tenant=tenant,
        on_output=on_output,
    )


@dataclass
class CalleeOutcome:
    """What one run of the callee answered: a wire value, or an error with its kind."""

    ok: bool
    value: Any = None  # the wire form (still encoded)
    error: CallError | None = None
    raw_error: dict[str, Any] = field(default_factory=dict)  # the runner's error object, as data


def read_callee(run: RunResult, limits: Limits) -> CalleeOutcome:
    """Classify a callee run: sandbox failure, timeout, OOM, crash, the runner's answer."""
    if run.error:
        return CalleeOutcome(False, error=CallError("sandbox", run.error))
    if run.timed_out:
        return CalleeOutcome(
            False,
            error=CallError("timeout", f"the call exceeded its {limits.timeout:g} s limit and was killed"),
        )
    if run.oom_killed:
        return CalleeOutcome(
            False,
            error=CallError(
                "oom", f"the call ran out of memory (limit {limits.describe()['memory']}) and was killed"
            ),
        )
    raw = run.files.get(OUT_FILE)
    stderr = run.stderr[-300:].decode("utf-8", "replace").strip()
    if raw is None:
        return CalleeOutcome(
            False,
            error=CallError(
                "crashed",
                f"the skill's process ended (exit {run.exit_code}) without a result; stderr: {stderr!r}",
            ),
        )
    try:
        envelope = json.loads(raw)
        ok = envelope["ok"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return CalleeOutcome(
            False, error=CallError("bad_output", "the result file is not valid (the skill wrote over it?)")
        )
    if ok is True:
        return CalleeOutcome(True, value=envelope.get("value"))
    err = envelope.get("error") if isinstance(envelope.get("error"), dict) else {}
    kind = {"InvalidInput": "invalid_input", "OutputNotCarried": "bad_output"}.get(
        str(err.get("type")), "exception"
    )
    return CalleeOutcome(
        False,
        error=CallError(
            kind,
            str(err.get("message", ""))[:2000],
            type=_str_or_none(err.get("type")),
            traceback=_str_or_none(err.get("traceback")),
        ),
        raw_error=err,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def json_value(value: Any) -> Any:
    """A decoded value as JSON (tuples become lists); raises Uncarriable for anything JSON lacks."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Uncarriable("a non-finite number, which JSON has not")
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise Uncarriable("an object with keys that are not strings")
        return {key: json_value(item) for key, item in value.items()}
    raise Uncarriable(f"a value of type {type(value).__name__}, which JSON has not")


def call_skill(
    sandbox: Sandbox,
    *,
    name: str,
    version: int | None,
    image: str,
    config: SkillConfig,
    params: Any,
    limits: Limits,
    tenant: str = "",
    env: dict[str, str] | None = None,
    on_output: Callable[[str, bytes], None] | None = None,
) -> CallResult:
    """Validate input, run the entrypoint in a fresh process, validate output. `env`: the
    package's `callee_env` (what its calls' fork server imports once)."""
    started = time.monotonic()
    result = CallResult(skill=name, version=version, ok=False, limits=limits.describe())
    if not config.entrypoint:
        result.error = CallError(
            "invalid_input", f"skill {name} has no entrypoint in skillyard.yaml: it cannot be called"
        )
        return result
    try:
        encode_input(params)  # size, depth and non-finite numbers, before anything runs
    except ValueError as exc:
        result.error = CallError("invalid_input", str(exc))
        return result
    problems = _schema_errors(config.input_schema, params)
    if problems:
        result.error = CallError(
            "invalid_input", "input does not match the skill's input schema: " + "; ".join(problems)
        )
        return result
    entry_file, func = config.entrypoint.split(":")
    request = json.dumps(call_request(entry_file[:-3].replace("/", "."), func, [params])).encode()
    run = run_callee(
        sandbox,
        image=image,
        limits=limits,
        env=env or {},
        request=request,
        tenant=tenant,
        labels={"skill": name},
        on_output=on_output,
    )
    result.duration_s = time.monotonic() - started
    result.exit_code = run.exit_code
    result.stdout = run.stdout[-4000:].decode("utf-8", "replace")
    result.stderr = run.stderr[-4000:].decode("utf-8", "replace")
    result.peak_memory_bytes = run.peak_memory_bytes
    outcome = read_callee(run, limits)
    if not outcome.ok:
        result.error = outcome.error
        return result
    try:
        output = json_value(decode(outcome.value))
    except (ValueError, Uncarriable, RecursionError) as exc:
        result.error = CallError(
            "bad_output", f"the entrypoint returned {exc}: a skill's output must be JSON"
        )
        return result
    problems = _schema_errors(config.output_schema, output) if config.output_schema else []
    if problems:
        result.error = CallError(
            "bad_output", "output does not match the skill's output schema: " + "; ".join(problems)
        )
        result.output = output
        return result
    result.ok = True
    result.output = output
    return result
