"""Runtime calls: JSON in, JSON out, in a fresh container under the skill's limits."""
from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonschema

from sandbox import Limits, Sandbox

from .gate import harness_source
from .package import SkillConfig

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
        raise ValueError("input holds a non-finite number (NaN, Infinity, or one like 1e999 that overflows): JSON has none") from exc
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
    return base.loosen(memory=over.memory, cpus=over.cpus, pids=over.pids, timeout=over.timeout,
                       max_stdout=over.max_stdout, tmpfs={"/tmp": over.tmpfs} if over.tmpfs else None,
                       runtime=over.runtime)


def call_skill(sandbox: Sandbox, *, name: str, version: int | None, image: str, config: SkillConfig,
               params: Any, limits: Limits, tenant: str = "") -> CallResult:
    """Validate input, run the entrypoint in a fresh container, validate output."""
    started = time.monotonic()
    result = CallResult(skill=name, version=version, ok=False, limits=limits.describe())
    if not config.entrypoint:
        result.error = CallError("invalid_input", f"skill {name} has no entrypoint in skillyard.yaml: it cannot be called")
        return result
    try:
        stdin = encode_input(params)
    except ValueError as exc:
        result.error = CallError("invalid_input", str(exc))
        return result
    problems = _schema_errors(config.input_schema, params)
    if problems:
        result.error = CallError("invalid_input", "input does not match the skill's input schema: " + "; ".join(problems))
        return result
    entry_file, func = config.entrypoint.split(":")
    run = sandbox.run(
        ["python3", "-c", harness_source("call_runner.py"), entry_file, func, OUT_FILE],
        image=image, limits=limits, stdin=stdin, prestart=True,
        collect=[OUT_FILE], owner="call", labels={"skill": name}, tenant=tenant,
    )
    result.duration_s = time.monotonic() - started
    result.exit_code = run.exit_code
    result.stdout = run.stdout[-4000:].decode("utf-8", "replace")
    result.stderr = run.stderr[-4000:].decode("utf-8", "replace")
    result.peak_memory_bytes = run.peak_memory_bytes
    if run.error:
        result.error = CallError("sandbox", run.error)
        return result
    if run.timed_out:
        result.error = CallError("timeout", f"the call exceeded its {limits.timeout:g} s limit and was killed")
        return result
    if run.oom_killed:
        result.error = CallError("oom", f"the call ran out of memory (limit {limits.describe()['memory']}) and was killed")
        return result
    raw = run.files.get(OUT_FILE)
    if raw is None:
        result.error = CallError("crashed", f"the skill's process ended (exit {run.exit_code}) without a result; "
                                            f"stderr: {result.stderr[-300:].strip()!r}")
        return result
    try:
        envelope = json.loads(raw)
        ok = envelope["ok"]
    except (ValueError, KeyError, TypeError):
        result.error = CallError("bad_output", "the result file is not valid JSON (the skill wrote over it?)")
        return result
    if not ok:
        err = envelope.get("error") or {}
        kind = "invalid_input" if err.get("type") == "InvalidInput" else (
            "bad_output" if err.get("type") == "OutputNotJSON" else "exception")
        result.error = CallError(kind, str(err.get("message", ""))[:2000], type=err.get("type"),
                                 traceback=err.get("traceback"))
        return result
    output = envelope.get("output")
    problems = _schema_errors(config.output_schema, output) if config.output_schema else []
    if problems:
        result.error = CallError("bad_output", "output does not match the skill's output schema: " + "; ".join(problems))
        result.output = output
        return result
    result.ok = True
    result.output = output
    return result
