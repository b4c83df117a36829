"""The test gate: a skill is registered only when its tests pass against its code, with the
code unable to touch the verdict, and only when those tests can fail.

Design (docs/SECURITY.md states the threat model):

- **Judge and callee apart.** The tests run in the *judge* container (the skill's
  dependencies image: no code of the skill's in it), under pytest, in a pass process the
  judge runner forks (runtime/harness/judge_runner.py). The skill's code runs only in
  the *callee*: warm containers of the skill's production image, a fresh process per call,
  started by the same runner program, environment and limits as a production call
  (runtime/calls.py). A test reaches the code through proxy modules; each call crosses
  judge -> host -> callee and back as plain data (runtime/harness/datacodec.py).
- **The verdict is computed where no untrusted code runs.** The judge runner (which never
  runs test code) collects pytest's per-test reports of each pass and sends them to this
  module over the sandbox channel, which no process of the tests holds. Nothing the code
  does can reach the judge except the values its functions return.
- **Tests must be able to fail (mutation check).** Once the tests pass, the code is
  traced once more to see which lines they ran (coverage: information), mutants are
  sampled over those lines (runtime/mutation.py), and each mutant gets its own pass, in
  random order, beside one more pass against the unchanged code (the control). Which code
  answers a pass only this module knows. A skill whose tests kill fewer mutants than the
  floor is blocked, and the survivors are listed as `file:line before -> after`.

Invariants: a pass starts from a clean judge (no process, file or shared memory of an
earlier pass survives), so no pass can compare its answers with another's; a verdict
needs the unchanged code to pass twice (the verdict pass and the control); every message
from the judge is validated here as untrusted input, and every call it asks for names a
module of the package.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from sandbox import Limits, RunResult, Sandbox, SandboxError

from .calls import CallError, callee_env, read_callee, run_callee
from .commands import CommandRequest, CommandResult, check_request, resolve_argv, run_command
from .errors import InvalidInput
from .gate_commands import TRACE_FILE, PythonCommand, bootstrap, python_command
from .harness import harness_source
from .mutation import Mutant, MutantSampler, executable_lines
from .package import SkillPackage
from .policy import check_package

log = structlog.get_logger(__name__)

JUDGE_ROOT = "/tmp/skill"
HARNESS = "/tmp/sy"
JUDGE_FILES = ("judge_runner.py", "skillyard_judge.py", "datacodec.py", "pytest.ini")
PYTEST_EXIT = {
    0: "all tests passed",
    1: "tests failed",
    2: "the run was interrupted",
    3: "pytest hit an internal error",
    4: "pytest was called wrongly (usage error)",
    5: "no tests were collected",
}
MAX_CALLS = 50_000  # per gate: a test suite cannot make the host run more callee processes than this
MAX_REPLAY_BYTES = 8 << 20  # recorded calls kept for the coverage replay
MAX_REPLY_TEXT = 64 * 1024  # of the callee's stdout and stderr, per call, sent back to the test
MAX_TRACED_COMMANDS = 40  # commands of the verdict pass run again, traced, for coverage
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class TestCase:
    name: str
    status: str  # passed, failed, error, skipped
    message: str = ""
    detail: str = ""  # trimmed traceback


@dataclass
class GateReport:
    passed: bool
    reasons: list[str]
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    coverage: float | None = None  # % of the code's function lines the tests ran (information only)
    duration_s: float = 0.0
    cases: list[TestCase] = field(default_factory=list)
    uncovered: dict[str, list[int]] = field(default_factory=dict)
    policy: list[str] = field(default_factory=list)
    pytest_exit: int | None = None
    timed_out: bool = False
    oom_killed: bool = False
    peak_memory_bytes: int | None = None
    output_tail: str = ""
    image: str = ""
    judge_image: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    calls: int = 0  # calls the tests made to the skill's code
    mutation: dict[str, Any] = field(default_factory=dict)
    infrastructure_error: bool = False  # the engine failed: the run says nothing about the skill

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "tests": self.tests,
            "failures": self.failures,
            "errors": self.errors,
            "skipped": self.skipped,
            "coverage": self.coverage,
            "duration_s": round(self.duration_s, 3),
            "mutation_score": self.mutation.get("score"),
            "reasons": self.reasons,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateReport:
        data = dict(data)
        data["cases"] = [TestCase(**c) for c in data.get("cases", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class GatePolicy:
    """What the operator decided (settings) merged with what the package asks (stricter only)."""

    mutants: int = 10
    mutation_threshold: float = 60.0
    timeout: float = 180.0
    seed: str = ""


def gate_limits(pkg: SkillPackage, base: Limits, default_timeout: float) -> Limits:
    """The judge container's limits: pytest needs more than one call does."""
    over = pkg.config.limits
    timeout = pkg.config.gate.timeout or default_timeout
    memory = max(base.memory, 512 * 1024**2)
    return base.replace(
        memory=memory,
        pids=max(base.pids, 128),
        timeout=timeout,
        tmpfs={"/tmp": "128m"},
        max_collect="16m",
        runtime=over.runtime,
    )


def gate_policy(pkg: SkillPackage, *, mutants: int, threshold: float, timeout: float) -> GatePolicy:
    return GatePolicy(
        mutants=mutants,
        mutation_threshold=max(threshold, pkg.config.gate.mutation or 0.0),
        timeout=pkg.config.gate.timeout or timeout,
        seed=pkg.content_hash,
    )


# -- the package as the judge sees it ---------------------------------------------------------
def module_names(code_files: list[str]) -> tuple[list[str], list[str]]:
    """(modules, packages) the package's code defines: `scripts/a.py` -> scripts.a in package scripts."""
    modules: set[str] = set()
    packages: set[str] = set()
    for rel in code_files:
        parts = rel[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if not parts:
                continue
            packages.add(".".join(parts))
        if not all(IDENT.match(p) for p in parts):
            continue
        modules.add(".".join(parts))
        for i in range(1, len(parts)):
            packages.add(".".join(parts[:i]))
    return sorted(modules | packages), sorted(packages)


# Files the judge never gets outside tests/: the package's programs, in any language.
CODE_SUFFIXES = (".py", ".pyw", ".js", ".mjs", ".cjs", ".ts", ".sh", ".bash", ".rb", ".pl", ".php", ".lua")


def is_code(pkg: SkillPackage, rel: str) -> bool:
    """Whether a package file is code (a program or a module) rather than data for the tests."""
    return rel.endswith(CODE_SUFFIXES) or rel in pkg.executable


def judge_files(pkg: SkillPackage, manifest: dict[str, Any]) -> dict[str, bytes]:
    """The tests and the package's data files (never its code: no Python module, no script of
    a command in any language), the harness and the manifest."""
    files = {
        f"{JUDGE_ROOT}/{rel}": data
        for rel, data in pkg.files.items()
        if rel.startswith("tests/") or not is_code(pkg, rel)
    }
    for name in JUDGE_FILES:
        files[f"{HARNESS}/{name}"] = harness_source(name).encode()
    files[f"{HARNESS}/manifest.json"] = json.dumps(manifest).encode()
    return files


def tests_import(pkg: SkillPackage, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` the test files name in an import (a cheap text scan, never a parse)."""
    text = b"\n".join(
        data for rel, data in pkg.files.items() if rel.startswith("tests/") and rel.endswith(".py")
    )
    return [
        name
        for name in candidates
        if re.search(rb"\b(import|from)\s+" + name.encode() + rb"\b", text)
        or re.search(rb"importorskip\(\s*[\"']" + name.encode(), text)
    ]


# -- the conductor: the host's half of the conversation with the judge -----------------------
@dataclass
class PassPlan:
    id: int
    target: str  # "original", "control" or "mutant"
    mutant: Mutant | None = None
    maxfail: int = 0
    timeout: float = 60.0
    select: list[str] | None = None  # the tests the pass runs, in order (None: all)
    result: dict[str, Any] | None = None
    twin: str | None = None  # the control: the file its twin mutant changes, sent unchanged the same way


class Conductor:
    """Answers the judge runner: which pass next, and every call a pass makes.

    Runs on the thread reading the judge's channel. Every message is untrusted input."""

    def __init__(
        self,
        pkg: SkillPackage,
        *,
        callee: Sandbox,
        image: str,
        call_limits: Limits,
        policy: GatePolicy,
        modules: list[str],
        deadline: float,
    ) -> None:
        self.pkg = pkg
        self.callee = callee
        self.image = image
        self.call_limits = call_limits
        self.policy = policy
        self.modules = set(modules)
        self.deadline = deadline
        self.rng = random.Random(policy.seed + ":passes")
        self.verdict = PassPlan(
            id=self.rng.randrange(1, 2**31), target="original", timeout=self._remaining(0.6)
        )
        self.plans: dict[int, PassPlan] = {self.verdict.id: self.verdict}
        self.queue: list[PassPlan] = [self.verdict]
        self.mutants: list[Mutant] = []
        self.mutation_done = False
        self.calls = 0
        self.replay: list[dict[str, Any]] = []
        self.replay_tests: list[str | None] = []  # the test that made each recorded call
        self.test_lines: dict[str | None, set[tuple[str, int]]] = {}  # (file, line) each test ran
        self.test_calls: dict[str | None, int] = {}
        self.replay_bytes = 0
        self.commands: list[tuple[CommandRequest, str | None]] = []  # the verdict pass's, for coverage
        # Commands whose program is not the package's Python (node, a shell script, a system
        # tool): what their runs in the verdict pass produced, for their output mutants.
        self.foreign: dict[str, dict[str, Any]] = {}
        self.package_files = set(pkg.image_files)
        self.slowest_call = 0.0
        self.coverage: dict[str, set[int]] | None = None
        self.executable: dict[str, set[int]] = {}
        self.sources = {rel: pkg.files[rel].decode("utf-8", "replace") for rel in pkg.code_files}
        self.env = callee_env(pkg)  # exactly what a production call of this package gets
        self.notes: list[str] = []
        self.protocol_errors: list[str] = []
        self._lock = threading.Lock()
        # Mutants are made while the tests run: sampling waits only for what is still missing.
        self.sampler: MutantSampler | None = None
        self._warming: threading.Thread | None = None
        if policy.mutants > 0 and self.sources:
            self._warming = threading.Thread(target=self._warm, daemon=True, name="skillyard-mutants")
            self._warming.start()

    def _warm(self) -> None:
        try:
            self.sampler = MutantSampler(self.sources, self.policy.seed)
            self.sampler.warm(2 * self.policy.mutants)
        except Exception as exc:  # noqa: BLE001 - sampling happens again, inline, when needed
            log.warning("mutant_warmup_failed", error=str(exc)[:200])

    def _remaining(self, share: float = 1.0) -> float:
        return max(1.0, (self.deadline - time.monotonic()) * share)

    # -- the channel handler ------------------------------------------------------------------
    def handle(self, data: bytes) -> bytes:
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("a message must be a JSON object")
            op = message.get("op")
            if op == "next":
                answer = self._next()
            elif op == "pass_done":
                answer = self._pass_done(message)
            elif op in ("call", "describe"):
                answer = self._call(message)
            elif op == "command":
                answer = self._command(message)
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self.protocol_errors.append(str(exc)[:300])
            answer = {
                "ok": False,
                "error": {"kind": "refused", "message": f"the gate refused the request: {exc}"},
            }
        return json.dumps(answer).encode()

    def _next(self) -> dict[str, Any]:
        if not self.queue and not self.mutation_done and self.verdict.result is not None:
            self._plan_mutation()
        while self.queue:
            plan = self.queue[0]
            if plan.result is None:
                return {
                    "op": "pass",
                    "pass": plan.id,
                    "maxfail": plan.maxfail,
                    "timeout": round(plan.timeout, 1),
                    "select": plan.select,
                    "quiet": plan is not self.verdict,
                }
            self.queue.pop(0)
        return {"op": "done"}

    def _pass_done(self, message: dict[str, Any]) -> dict[str, Any]:
        plan = self.plans.get(int(message.get("pass", -1)))
        if plan is None or plan.result is not None:
            raise ValueError("a result for a pass that is not running")
        plan.result = message
        if self.queue and self.queue[0] is plan:
            self.queue.pop(0)
        if plan is not self.verdict and self._mutation_decided():
            self.queue.clear()  # the rest cannot change the outcome
        return {"ok": True}

    def _call(self, message: dict[str, Any]) -> dict[str, Any]:
        plan = self.plans.get(int(message.get("pass", -1)))
        if plan is None or plan.result is not None:
            raise ValueError("a call from a pass that is not running")
        module = message.get("module")
        if not isinstance(module, str) or module not in self.modules:
            raise ValueError(f"{str(module)[:100]!r} is not a module of this skill")
        with self._lock:
            self.calls += 1
            if self.calls > MAX_CALLS:
                return {
                    "ok": False,
                    "error": {"kind": "refused", "message": f"the tests made over {MAX_CALLS} calls"},
                }
        request: dict[str, Any] = {"module": module}
        if message["op"] == "describe":
            request["describe"] = True
        else:
            function = message.get("function")
            if not isinstance(function, str) or not IDENT.match(function):
                raise ValueError("a call names a function by its identifier")
            args, kwargs = message.get("args", []), message.get("kwargs", {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise ValueError("args must be a list and kwargs an object")
            request.update(function=function, args=args, kwargs=kwargs)
        limits, sources = self._pass_code(plan)
        if sources:
            request["sources"] = sources
        body = json.dumps(request).encode()
        started = time.monotonic()
        run = run_callee(
            self.callee,
            image=self.image,
            limits=limits,
            env=self.env,
            request=body,
            labels={"skill": self.pkg.name},
        )
        took = time.monotonic() - started
        if plan is self.verdict and message["op"] == "call":
            self.slowest_call = max(self.slowest_call, took)
            # A call cut off by its limits is not replayed for coverage: replayed, it would run
            # into the replay's (much longer) time limit, and it finished nothing to measure.
            cut_off = run.timed_out or run.oom_killed
            if not cut_off and self.replay_bytes + len(body) <= MAX_REPLAY_BYTES:
                self.replay.append({k: request[k] for k in ("module", "function", "args", "kwargs")})
                test = message.get("test")
                self.replay_tests.append(test[:500] if isinstance(test, str) else None)
                self.replay_bytes += len(body)
        return self._answer(run, limits, describe=message["op"] == "describe")

    def _pass_code(self, plan: PassPlan) -> tuple[Limits, dict[str, str] | None]:
        """(the call limits, the sources to deliver as text) for a pass; sources None for the
        verdict pass, which runs the code as production does.

        Nothing may tell the control from a mutant pass: the same call timeout, and the code
        delivered the same way (source text compiled in the call, not the image's bytecode
        cache). A control with the call's own timeout passed a 3 s call that every mutant pass
        failed, and one loading from the cache was faster: tests could fail exactly the mutants.
        The control delivers its twin's source; an output mutant changes no source."""
        if plan.target not in ("mutant", "control"):
            return self.call_limits, None
        limits = self.call_limits.replace(timeout=self._mutant_call_timeout())
        if plan.mutant is not None:
            if is_output_mutant(plan.mutant):
                return limits, {}
            return limits, {plan.mutant.file: plan.mutant.source}
        twin = self.sources.get(plan.twin) if plan.twin is not None else None  # an output point has none
        return limits, {plan.twin: twin} if twin is not None else {}

    def _run_command(
        self,
        request: CommandRequest,
        limits: Limits,
        argv: list[str] | None,
        extra: dict[str, bytes] | None,
        collect: list[str] | None = None,
    ) -> tuple[CommandResult, RunResult | None]:
        """A command of the package in the callee, by the production command path."""
        return run_command(
            self.callee,
            skill=self.pkg.name,
            version=None,
            image=self.image,
            config=self.pkg.config,
            package_files=self.package_files,
            request=request,
            limits=limits,
            argv=argv,
            extra_files=extra,
            extra_collect=collect,
        )

    def _running(self, message: dict[str, Any]) -> PassPlan:
        plan = self.plans.get(int(message.get("pass", -1)))
        if plan is None or plan.result is not None:
            raise ValueError("a call from a pass that is not running")
        return plan

    def _command(self, message: dict[str, Any]) -> dict[str, Any]:
        """A test's `skill.run(...)`: the command runs through the production command path
        (runtime/commands.py). The verdict pass and the control run its argv exactly as
        production does; a mutant pass runs a Python command through the bootstrap that puts
        the mutant in place (runtime/gate_commands.py)."""
        plan = self._running(message)
        with self._lock:
            self.calls += 1
            if self.calls > MAX_CALLS:
                return {
                    "ok": False,
                    "error": {"kind": "refused", "message": f"the tests made over {MAX_CALLS} calls"},
                }
        request = command_request(message)
        argv: list[str] | None = None
        extra: dict[str, bytes] | None = None
        python = self._python_command(request)
        limits, sources = self._pass_code(plan)
        if sources is not None and python is not None:
            # Every Python command of a mutant or control pass goes through the bootstrap (with
            # nothing to replace in an output mutant's pass), so the passes look alike.
            argv, extra = bootstrap(python, sources=sources)
        started = time.monotonic()
        result, _ = self._run_command(request, limits, argv, extra)
        took = time.monotonic() - started
        kind = result.error.kind if result.error else None
        if kind in ("invalid_input", "sandbox"):
            return {
                "ok": False,
                "error": {"kind": kind, "message": result.error.message if result.error else ""},
            }
        test = message.get("test")
        test = test[:500] if isinstance(test, str) else None
        if plan is self.verdict:
            self.slowest_call = max(self.slowest_call, took)
            size = len(request.stdin) + sum(len(d) for d in request.files.values())
            cut_off = kind in ("timeout", "oom")  # not replayed for coverage (see _call)
            if not cut_off and self.replay_bytes + size <= MAX_REPLAY_BYTES:
                self.commands.append((request, test))
                self.replay_bytes += size
            if python is None:
                seen = self.foreign.setdefault(
                    result.command,
                    {"stdout": False, "files": False, "run": self.pkg.config.commands[result.command].run},
                )
                seen["stdout"] |= bool(result.stdout)
                seen["files"] |= bool(result.files)
                self.test_lines.setdefault(test, set()).add((output_point(result.command), 0))
        elif plan.mutant is not None and plan.mutant.file == output_point(result.command):
            result = changed_output(result, plan.mutant.operator)
        return command_answer(result)

    def _python_command(self, request: CommandRequest) -> PythonCommand | None:
        """The request's resolved argv as a Python command of the package, or None."""
        try:
            name = check_request(self.pkg.config, request)
        except InvalidInput:
            return None  # run_command refuses it the same way
        return python_command(
            resolve_argv(self.pkg.config, name, request.argv, self.package_files), self.package_files
        )

    def _answer(self, run: RunResult, limits: Limits, *, describe: bool) -> dict[str, Any]:
        outcome = read_callee(run, limits)
        text = {
            "stdout": run.stdout[-MAX_REPLY_TEXT:].decode("utf-8", "replace"),
            "stderr": run.stderr[-MAX_REPLY_TEXT:].decode("utf-8", "replace"),
        }
        if describe:
            text = {}  # importing a module prints nothing the test asked to see
        if outcome.ok:
            return {"ok": True, ("describe" if describe else "value"): outcome.value, **text}
        error: dict[str, Any] = {
            "kind": outcome.error.kind if outcome.error else "crashed",
            "message": outcome.error.message if outcome.error else "",
        }
        if outcome.error and outcome.error.kind == "exception":
            raw = outcome.raw_error
            error.update(
                {k: raw.get(k) for k in ("type", "qualname", "module", "bases", "args", "traceback")}
            )
        return {"ok": False, "error": error, **text}

    def _mutant_call_timeout(self) -> float:
        # A mutant that loops forever is killed; it must not cost the call's full limit.
        return min(self.call_limits.timeout, max(2.0, 5 * self.slowest_call + 1.0))

    # -- coverage and mutants ------------------------------------------------------------------
    def _plan_mutation(self) -> None:
        self.mutation_done = True
        self._measure_coverage()
        if not verdict_passed(self.verdict.result) or self.policy.mutants <= 0:
            return
        covered = self.coverage if self.coverage is not None else self.executable
        if self._warming is not None:
            self._warming.join()
        sampler = self.sampler or MutantSampler(self.sources, self.policy.seed)
        # About one mutant per covered line, and at least six when the code has that many
        # mutation points: a few lines of code get a few mutants, not ten on the same lines,
        # but never so few that one survivor decides.
        points = [key for key in sampler.points if key[1] in covered.get(key[0], set())]
        lines = len(points)
        total = sum(len(sampler.points[key]) + len(sampler.made.get(key, [])) for key in points)
        self.mutants = sampler.sample(covered, min(self.policy.mutants, max(lines, min(6, total), 1)))
        self.mutants += self._output_mutants()
        if not self.mutants:
            return
        duration = float(self.verdict.result.get("duration_s") or 0.0) if self.verdict.result else 0.0
        per_pass = max(15.0, 3 * duration + 10 * self.slowest_call + 5.0)
        plans = [
            PassPlan(id=0, target="mutant", mutant=m, maxfail=1, timeout=per_pass, select=self._selection(m))
            for m in self.mutants
        ]
        # The control runs what one of the mutant passes runs, so nothing in its command sets it apart.
        # Its time limit, call timeout and code delivery are the mutants' too (a longer limit for the
        # control alone let a suite that outlasted the mutants' limit fail exactly the mutant passes).
        twin = self.rng.choice(plans)
        plans.append(
            PassPlan(
                id=0,
                target="control",
                maxfail=1,
                timeout=per_pass,
                select=twin.select,
                twin=twin.mutant.file if twin.mutant else None,
            )
        )
        self.rng.shuffle(plans)
        used = set(self.plans)
        for plan in plans:
            plan.id = self.rng.randrange(1, 2**31)
            while plan.id in used:
                plan.id = self.rng.randrange(1, 2**31)
            used.add(plan.id)
            self.plans[plan.id] = plan
        self.queue = plans

    def _output_mutants(self) -> list[Mutant]:
        """For commands that are not the package's Python (no code mutant reaches them): passes
        in which their answers change (stdout emptied, output files emptied, exit status
        flipped; a change that would alter nothing they produced is left out). Tests that
        never look at what such a command returns let these survive."""
        mutants = []
        for name in sorted(self.foreign)[:MAX_OUTPUT_MUTATED_COMMANDS]:
            seen = self.foreign[name]
            for change, after in OUTPUT_CHANGES.items():
                if change in ("stdout", "files") and not seen[change]:
                    continue
                before = " ".join(seen["run"])[:80]
                mutants.append(Mutant(output_point(name), 0, f"Output_{change}", before, after, source=""))
        return mutants

    def _selection(self, mutant: Mutant) -> list[str] | None:
        """The tests that ran the mutated line, fewest calls first; None (all) if none is known to."""
        point = (mutant.file, mutant.line)
        tests = [t for t, lines in self.test_lines.items() if t is not None and point in lines]
        if not tests or None in self.test_lines and point in self.test_lines[None]:
            return None  # a call made outside any test (at collection) ran it: every test may depend on it
        return sorted(tests, key=lambda t: (self.test_calls.get(t, 0), t))

    def _measure_coverage(self) -> None:
        self.executable = {rel: executable_lines(src, f"/skill/{rel}") for rel, src in self.sources.items()}
        coverage: dict[str, set[int]] = {rel: set() for rel in self.sources}
        traced = self._trace_calls(coverage) if self.replay else True
        if self.commands:
            self._trace_commands(coverage)
        self.coverage = coverage if traced else None

    def _ran(self, coverage: dict[str, set[int]], test: str | None, lines: Any) -> None:
        """Merge one call's or command's traced lines ({file: [line, ...]}) into `coverage`
        and into what `test` ran."""
        if not isinstance(lines, dict):
            return
        ran = self.test_lines.setdefault(test, set())
        self.test_calls[test] = self.test_calls.get(test, 0) + 1
        for rel, numbers in lines.items():
            if rel in coverage and isinstance(numbers, list):
                found = {n for n in numbers if isinstance(n, int)} & self.executable[rel]
                coverage[rel] |= found
                ran.update((rel, n) for n in found)

    def _trace_calls(self, coverage: dict[str, set[int]]) -> bool:
        """Replay the verdict pass's function calls in one traced callee process."""
        request = {"module": self.replay[0]["module"], "replay": self.replay, "trace": True}
        limits = self.call_limits.replace(
            timeout=min(self._remaining(0.5), 30 + 20 * self.slowest_call * len(self.replay))
        )
        try:
            run = run_callee(
                self.callee,
                image=self.image,
                limits=limits,
                env=self.env,
                request=json.dumps(request).encode(),
                labels={"skill": self.pkg.name},
            )
        except SandboxError as exc:
            self.notes.append(f"coverage could not be measured: {exc}")
            return False
        outcome = read_callee(run, limits)
        if not outcome.ok or not isinstance(outcome.value, dict):
            why = outcome.error.message if outcome.error else "no answer"
            self.notes.append(f"coverage could not be measured: the traced replay failed ({why[:200]})")
            return False
        per_call = outcome.value.get("per_call") if isinstance(outcome.value.get("per_call"), list) else []
        for test, lines in zip(self.replay_tests, per_call, strict=False):  # a crashed replay answers fewer
            self._ran(coverage, test, lines)
        return True

    def _trace_commands(self, coverage: dict[str, set[int]]) -> None:
        """Run the verdict pass's Python commands again, each traced (one process per command,
        as each was): the lines they ran. Other programs have no coverage."""
        for request, test in self.commands[:MAX_TRACED_COMMANDS]:
            python = self._python_command(request)
            if python is None or self._remaining() < 5:
                continue
            argv, extra = bootstrap(python, trace=True)
            limits = self.call_limits.replace(timeout=min(self._remaining(0.5), 30 + 5 * self.slowest_call))
            try:
                _, run = self._run_command(request, limits, argv, extra, collect=[TRACE_FILE])
            except SandboxError as exc:
                self.notes.append(f"a command's coverage could not be measured: {exc}")
                continue
            raw = run.files.get(TRACE_FILE) if run is not None else None
            try:
                lines = json.loads(raw) if raw else None
            except ValueError:
                lines = None
            if lines is None:
                self.notes.append("a command's coverage could not be measured: it left no trace")
                continue
            self._ran(coverage, test, lines)

    def _mutation_decided(self) -> bool:
        control = [p for p in self.plans.values() if p.target == "control"]
        if any(p.result is not None and not verdict_passed(p.result) for p in control):
            return True  # blocked: the tests failed against the unchanged code
        total = len(self.mutants)
        needed = math.ceil(total * self.policy.mutation_threshold / 100)
        done = [p for p in self.plans.values() if p.mutant is not None and p.result is not None]
        killed = sum(mutant_killed(p.result) for p in done)
        survived = len(done) - killed
        control_done = all(p.result is not None for p in control)
        return (killed >= needed and control_done) or survived > total - needed

    # -- the report ----------------------------------------------------------------------------
    def mutation_report(self) -> dict[str, Any]:
        if not self.mutants:
            return {}
        plans = [p for p in self.plans.values() if p.mutant is not None]
        ran = [p for p in plans if p.result is not None]
        killed = [p for p in ran if mutant_killed(p.result)]
        control = next((p for p in self.plans.values() if p.target == "control"), None)
        score = round(100 * len(killed) / len(ran), 1) if ran else None
        needed = math.ceil(len(self.mutants) * self.policy.mutation_threshold / 100)
        return {
            "threshold": self.policy.mutation_threshold,
            "sampled": len(self.mutants),
            "ran": len(ran),
            "killed": len(killed),
            "score": score,
            "needed": needed,
            # Too many survivors already: the floor cannot be met even if every mutant not run were killed.
            "short": len(ran) - len(killed) > len(self.mutants) - needed,
            "control": None
            if control is None or control.result is None
            else ("passed" if verdict_passed(control.result) else "failed"),
            "control_timed_out": bool(control and control.result and control.result.get("how") == "timeout"),
            "survivors": [p.mutant.label for p in ran if not mutant_killed(p.result)],
            "mutants": [
                dict(
                    p.mutant.to_dict(),
                    killed=None if p.result is None else mutant_killed(p.result),
                    by=_killed_by(p.result),
                )
                for p in plans
            ],
        }

    def coverage_report(self) -> tuple[float | None, dict[str, list[int]]]:
        if self.coverage is None:
            return None, {}
        total = sum(len(lines) for lines in self.executable.values())
        if not total and self.foreign:
            return None, {}  # no Python, and the other programs have no coverage to report
        ran = sum(len(self.coverage.get(rel, set())) for rel in self.executable)
        missing = {
            rel: sorted(lines - self.coverage.get(rel, set()))[:50]
            for rel, lines in self.executable.items()
            if lines - self.coverage.get(rel, set())
        }
        return (round(100 * ran / total, 2) if total else 100.0), missing


OUTPUT_CHANGES = {"stdout": "stdout emptied", "files": "output files emptied", "exit": "exit status flipped"}
MAX_OUTPUT_MUTATED_COMMANDS = 3


def output_point(command: str) -> str:
    """Where an output mutant is "placed": the command, as a file name no package file has."""
    return f"command:{command}"


def is_output_mutant(mutant: Mutant) -> bool:
    return mutant.operator.startswith("Output_")


def changed_output(result: CommandResult, operator: str) -> CommandResult:
    """A command's result with one thing changed (an output mutant's pass)."""
    change = operator.removeprefix("Output_")
    if change == "stdout":
        return dataclasses.replace(result, stdout=b"")
    if change == "files":
        return dataclasses.replace(result, files={name: b"" for name in result.files})
    return dataclasses.replace(result, exit_code=1 if result.exit_code == 0 else 0)


def command_request(message: dict[str, Any]) -> CommandRequest:
    """A test's command request, from the judge's message (untrusted): ValueError if malformed."""
    argv, files, outputs = message.get("argv"), message.get("files", {}), message.get("outputs", [])
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a list of strings")
    if not isinstance(files, dict) or not isinstance(outputs, list):
        raise ValueError("files must be an object and outputs a list")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError("files map names to base64 text")
    if not all(isinstance(o, str) for o in outputs) or not isinstance(message.get("stdin", ""), str):
        raise ValueError("outputs are names and stdin is base64 text")
    try:
        stdin = base64.b64decode(message.get("stdin", ""), validate=True)
        data = {name: base64.b64decode(text, validate=True) for name, text in files.items()}
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64 in a command request: {exc}") from exc
    return CommandRequest(argv, stdin, data, outputs)


MAX_COMMAND_ANSWER = 24 << 20  # base64 bytes: under the judge's 32 MB message limit


def command_answer(result: CommandResult) -> dict[str, Any]:
    """What a test gets back from a command: exit status, output and files, as plain data."""
    answer = {
        "ok": True,
        "returncode": result.exit_code,
        "stdout": base64.b64encode(result.stdout).decode(),
        "stderr": base64.b64encode(result.stderr).decode(),
        "files": {name: base64.b64encode(data).decode() for name, data in result.files.items()},
        "missing_files": result.missing_files,
        "truncated_files": result.truncated_files,
        "timed_out": result.timed_out,
        "oom_killed": result.oom_killed,
    }
    size = len(answer["stdout"]) + len(answer["stderr"]) + sum(len(v) for v in answer["files"].values())
    if size > MAX_COMMAND_ANSWER:
        return {
            "ok": False,
            "error": {
                "kind": "too_large",
                "message": f"the command's output and files hold {size} bytes of base64; a test may get "
                f"at most {MAX_COMMAND_ANSWER}",
            },
        }
    return answer


def verdict_passed(result: dict[str, Any] | None) -> bool:
    """A pass that counts as passing: it finished, ran at least one test, and every test passed."""
    if not result or result.get("how") != "ended" or not result.get("finished"):
        return False
    tests = int(result.get("tests") or 0)
    return (
        tests > 0
        and result.get("passed") == tests
        and not result.get("collect_errors")
        and result.get("exitstatus") == 0
    )


def mutant_killed(result: dict[str, Any] | None) -> bool:
    return result is not None and not verdict_passed(result)


def _killed_by(result: dict[str, Any] | None) -> str:
    if result is None:
        return ""
    if result.get("how") != "ended":
        return str(result.get("how"))
    failing = [c for c in result.get("cases", []) if c.get("outcome") != "passed"]
    if failing:
        return str(failing[0].get("name", ""))[:200]
    return "" if verdict_passed(result) else "the pass did not finish"


# -- the gate ----------------------------------------------------------------------------------
def run_gate(
    sandbox: Sandbox,
    callee: Sandbox,
    pkg: SkillPackage,
    *,
    judge_image: str,
    image: str,
    judge_limits: Limits,
    call_limits: Limits,
    policy: GatePolicy,
    frozen: frozenset[str] | None = None,
) -> GateReport:
    """Gate one package: static checks, the verdict pass, coverage, the mutation check.

    `frozen`: the tests/ tree that decides (a fix's). Only those files reach the judge; test
    files the fix added (allowed by the operator) then run in a separate judge session with
    no mutation check, and must pass too."""
    if frozen is None:
        return _one_session(
            sandbox,
            callee,
            pkg,
            pkg,
            judge_image=judge_image,
            image=image,
            judge_limits=judge_limits,
            call_limits=call_limits,
            policy=policy,
        )
    added = sorted(rel for rel in pkg.files if rel.startswith("tests/") and rel not in frozen)
    decide = _tests_view(pkg, frozen)
    report = _one_session(
        sandbox,
        callee,
        pkg,
        decide,
        judge_image=judge_image,
        image=image,
        judge_limits=judge_limits,
        call_limits=call_limits,
        policy=policy,
    )
    new_tests = [rel for rel in added if rel in pkg.test_files]
    if not report.passed or not new_tests:
        return report
    extra_files = frozenset(added) | {rel for rel in frozen if not rel.endswith(".py")}  # their data too
    extra = _one_session(
        sandbox,
        callee,
        pkg,
        _tests_view(pkg, extra_files),
        judge_image=judge_image,
        image=image,
        judge_limits=judge_limits,
        call_limits=call_limits,
        policy=dataclasses.replace(policy, mutants=0),
    )
    report.cases += [dataclasses.replace(c, name=f"(added by the fix) {c.name}") for c in extra.cases]
    report.calls += extra.calls
    if not extra.passed:
        report.passed = False
        report.reasons += [f"the test files the fix added: {r}" for r in extra.reasons]
    report.duration_s += extra.duration_s
    return report


def _tests_view(pkg: SkillPackage, tests: frozenset[str]) -> SkillPackage:
    """The package as one judge session sees it: only `tests` of its tests/ tree."""
    files = {rel: data for rel, data in pkg.files.items() if not rel.startswith("tests/") or rel in tests}
    return dataclasses.replace(pkg, files=files)


def _one_session(
    sandbox: Sandbox,
    callee: Sandbox,
    pkg: SkillPackage,
    view: SkillPackage,
    *,
    judge_image: str,
    image: str,
    judge_limits: Limits,
    call_limits: Limits,
    policy: GatePolicy,
) -> GateReport:
    """One judge session: `view` is what the judge gets of the package (its tests)."""
    started = time.monotonic()
    report = GateReport(
        passed=False,
        reasons=[],
        image=image,
        judge_image=judge_image,
        limits=judge_limits.describe(),
        content_hash=pkg.content_hash,
    )
    violations = [str(v) for v in check_package(pkg.files)]
    if violations:
        report.reasons = [f"test policy: {v}" for v in violations]
        report.policy = violations
        report.duration_s = time.monotonic() - started
        return report
    if not view.test_files:
        report.reasons = [
            f"no test files: add tests/test_*.py (`skillyard create --tests-for {pkg.name}` has the model "
            "write them; the gate and its mutation check then decide)"
        ]
        report.duration_s = time.monotonic() - started
        return report
    modules, packages = module_names(pkg.code_files)
    manifest = {
        "root": JUDGE_ROOT,
        "tests": "tests",
        "modules": modules,
        "packages": packages,
        # Trusted modules the zygote may import before any test runs: the runner image's own
        # packages the tests import, unless the skill's requirements could have replaced them.
        "preimport": [] if pkg.config.requirements else tests_import(view, ("yaml", "jsonschema")),
    }
    conductor = Conductor(
        pkg,
        callee=callee,
        image=image,
        call_limits=call_limits,
        policy=policy,
        modules=modules,
        deadline=started + judge_limits.timeout,
    )
    result = sandbox.run(
        # -S: no site module, so no .pth file of an installed requirement runs in the runner (which
        # holds the host channel); the zygote adds site-packages to its path itself.
        ["python3", "-I", "-S", f"{HARNESS}/judge_runner.py", f"{HARNESS}/manifest.json"],
        image=judge_image,
        limits=judge_limits,
        files=judge_files(view, manifest),
        channel=conductor.handle,
        owner="gate",
        labels={"skill": pkg.name},
    )
    judge(report, result, conductor)
    report.duration_s = time.monotonic() - started
    return report


def judge(report: GateReport, result: RunResult, conductor: Conductor) -> None:
    """Fill the report from the passes the judge runner reported, and decide."""
    reasons = report.reasons
    report.timed_out, report.oom_killed = result.timed_out, result.oom_killed
    report.peak_memory_bytes = result.peak_memory_bytes
    report.output_tail = (
        (result.stdout[-3000:] + b"\n" + result.stderr[-2000:]).decode("utf-8", "replace").strip()
    )
    report.calls = conductor.calls
    report.coverage, report.uncovered = conductor.coverage_report()
    report.mutation = conductor.mutation_report()
    verdict = conductor.verdict.result
    if result.error:
        reasons.append(f"sandbox error: {result.error}")
        report.infrastructure_error = True  # not the skill's fault: not a verdict
    if result.timed_out:
        reasons.append("the test run exceeded its time limit and was killed")
    if result.oom_killed:
        reasons.append("the test run ran out of memory and was killed")
    if verdict is None:
        if not reasons:
            reasons.append(
                f"the judge ended before the tests ran (exit {result.exit_code}): see the output tail"
            )
        return
    report.cases = [
        TestCase(
            name=str(c.get("name", "")),
            status={"passed": "passed", "failed": "failed", "error": "error"}.get(
                c.get("outcome"), "skipped"
            ),
            message=str(c.get("message", ""))[:500],
            detail=str(c.get("detail", ""))[-2500:],
        )
        for c in verdict.get("cases", [])
    ]
    report.tests = len(report.cases)
    report.failures = sum(c.status == "failed" for c in report.cases)
    report.errors = sum(c.status == "error" for c in report.cases)
    report.skipped = sum(c.status == "skipped" for c in report.cases)
    report.pytest_exit = verdict.get("exitstatus") if isinstance(verdict.get("exitstatus"), int) else None
    how = str(verdict.get("how", ""))
    if how != "ended":
        reasons.append(
            {"timeout": "the tests ran past their time limit and were killed"}.get(
                how, f"the test run did not end normally ({how[:200]})"
            )
        )
    elif not verdict.get("finished"):
        reasons.append("pytest's session did not finish: a test or conftest ended the test process")
    for error in verdict.get("collect_errors", [])[:5]:
        reasons.append(
            f"collecting {error.get('nodeid') or 'the tests'} failed: "
            f"{str(error.get('detail', '')).strip().splitlines()[-1:] or ['']}"
        )
    if how == "ended" and verdict.get("finished") and not report.cases and not verdict.get("collect_errors"):
        reasons.append("no tests were collected: add tests/test_*.py with test_* functions")
    if report.failures or report.errors:
        bad = [c.name for c in report.cases if c.status in ("failed", "error")]
        reasons.append(
            f"{len(bad)} of {report.tests} test{'s' if report.tests != 1 else ''} failed: "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}"
        )
    if report.skipped:
        reasons.append(f"{report.skipped} tests were skipped or xfailed: every test must run and pass")
    if not reasons and report.pytest_exit not in (0, None):
        reasons.append(
            f"pytest exited with status {report.pytest_exit} "
            f"({PYTEST_EXIT.get(report.pytest_exit, 'unknown status')})"
        )
    if reasons:
        return
    if conductor.calls == 0 or (
        conductor.coverage is not None
        and not any(conductor.coverage.values())
        and any(conductor.executable.values())
    ):
        reasons.append(
            "the tests never ran the skill's code: import its modules in the tests and check what "
            "their functions return"
        )
        return
    unclean = [
        p.result.get("how")
        for p in conductor.plans.values()
        if p.result and str(p.result.get("how", "")).startswith("unclean")
    ]
    if unclean:
        reasons.append(
            f"the judge could not reset between passes ({str(unclean[0])[9:200]}): the mutation check "
            "cannot be trusted"
        )
        return
    mutation = report.mutation
    if mutation:
        if mutation.get("control_timed_out"):
            # The control's limit is the mutants' (it must look like one), so a loaded machine can
            # exhaust it: that says nothing about the skill. Not a verdict; an attack gains nothing.
            reasons.append(
                "the control pass ran out of time (an overloaded machine, or tests that outlast "
                "the mutation passes' limit): nothing was recorded; retry"
            )
            report.infrastructure_error = True
        elif mutation.get("control") == "failed":
            reasons.append(
                "the tests failed against the unchanged code in a later pass: a flaky test, or tests "
                "that behave differently from one run to the next"
            )
        elif mutation.get("short") or (
            mutation.get("control") is not None
            and mutation.get("score") is not None
            and mutation["score"] < mutation["threshold"]
        ):
            shown = "; ".join(mutation["survivors"][:8])
            reasons.append(
                f"the tests killed {mutation['killed']} of {mutation['ran']} mutants tried "
                f"({mutation['score']:g}%; {mutation['needed']} of {mutation['sampled']} needed), below "
                f"the {mutation['threshold']:g}% floor: tests that pass whatever the code does. "
                f"Surviving mutants: {shown}{' ...' if len(mutation['survivors']) > 8 else ''}"
            )
        elif mutation.get("control") is None:
            reasons.append(
                "the mutation check did not finish (time limit): raise the gate timeout or make the "
                "tests faster"
            )
    report.passed = not reasons
    if report.passed and conductor.notes:
        log.info("gate_notes", notes=conductor.notes)


def gate_error_report(exc: SandboxError, pkg: SkillPackage) -> GateReport:
    return GateReport(
        passed=False,
        reasons=[f"sandbox error: {exc}"],
        content_hash=pkg.content_hash,
        infrastructure_error=True,
    )


def package_seed(pkg: SkillPackage) -> str:
    return hashlib.sha256(pkg.content_hash.encode()).hexdigest()[:16]


__all__ = ["CallError", "GatePolicy", "GateReport", "TestCase", "gate_limits", "gate_policy", "run_gate"]
