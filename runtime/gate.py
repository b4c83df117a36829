"""The test gate: run a skill's tests in its container and decide from facts the tests
cannot forge (see harness/gate_runner.py for the in-container half).

A skill passes only if: no policy violation; the run stayed within its limits; the
runner recorded pytest's exit status 0; the JUnit report exists and shows >= 1 test,
all passed, none skipped; the independent per-test record agrees with the JUnit report
and shows the session finished; and line coverage of scripts/ meets the threshold.
"""
from __future__ import annotations

import functools
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from sandbox import Limits, RunResult, Sandbox, SandboxError

from .package import SkillPackage
from .policy import check_package

OUT = "/tmp/sy-out"
HARNESS = "/tmp/sy"
PYTEST_EXIT = {0: "all tests passed", 1: "tests failed", 2: "the run was interrupted", 3: "pytest hit an internal error",
               4: "pytest was called wrongly (usage error)", 5: "no tests were collected"}


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
    coverage: float | None = None
    coverage_threshold: float = 80.0
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
    limits: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""
    infrastructure_error: bool = False  # the engine failed: the run says nothing about the skill

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "tests": self.tests, "failures": self.failures, "errors": self.errors,
                "skipped": self.skipped, "coverage": self.coverage, "duration_s": round(self.duration_s, 3),
                "reasons": self.reasons}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GateReport":
        data = dict(data)
        data["cases"] = [TestCase(**c) for c in data.get("cases", [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


GATE_FILES = ("gate_runner.py", "skillyard_gate_plugin.py", "pytest.ini", "coveragerc")


@functools.lru_cache(maxsize=8)
def _harness(names: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    pkg = resources.files("runtime.harness")
    return tuple((f"{HARNESS}/{name}", pkg.joinpath(name).read_bytes()) for name in names)


def harness_files(names: tuple[str, ...] = GATE_FILES) -> dict[str, bytes]:
    """The in-container harness, read once per process."""
    return dict(_harness(names))


@functools.lru_cache(maxsize=4)
def harness_source(name: str) -> str:
    """One harness script's text, to pass with `python3 -c`."""
    return resources.files("runtime.harness").joinpath(name).read_text(encoding="utf-8")


def gate_limits(pkg: SkillPackage, base: Limits, default_timeout: float) -> Limits:
    over = pkg.config.limits
    timeout = pkg.config.gate.timeout or default_timeout
    memory = over.memory or max(base.memory, 512 * 1024**2)  # pytest + coverage need more than one call
    return base.loosen(memory=memory, cpus=over.cpus, pids=max(base.pids, over.pids or 0, 128), timeout=timeout,
                       tmpfs={"/tmp": over.tmpfs or "128m"}, max_collect="16m", runtime=over.runtime)


def run_gate(sandbox: Sandbox, pkg: SkillPackage, image: str, *, limits: Limits, threshold: float) -> GateReport:
    # An untrusted package may ask for more coverage than the operator's threshold, never less:
    # `gate: {coverage: 0}` registered a skill at 36.6% before.
    threshold = max(threshold, pkg.config.gate.coverage or 0.0)
    started = time.monotonic()
    violations = [str(v) for v in check_package(pkg.files)]
    if violations:
        return GateReport(passed=False, reasons=[f"test policy: {v}" for v in violations], policy=violations,
                          coverage_threshold=threshold, image=image, limits=limits.describe(),
                          content_hash=pkg.content_hash, duration_s=time.monotonic() - started)
    if not pkg.test_files:
        return GateReport(passed=False, reasons=["no test files: add tests/test_*.py"], coverage_threshold=threshold,
                          image=image, limits=limits.describe(), content_hash=pkg.content_hash)
    collect = [f"{OUT}/{n}" for n in ("runner.json", "junit.xml", "records.jsonl", "coverage.json")]
    result = sandbox.run(
        ["python3", f"{HARNESS}/gate_runner.py", OUT, "/skill/scripts", "/skill/tests"],
        image=image, limits=limits, files=harness_files(), collect=collect, owner="gate",
        labels={"skill": pkg.name},
    )
    report = judge(result, threshold=threshold, scripts=pkg.script_files)
    report.image = image
    report.limits = limits.describe()
    report.content_hash = pkg.content_hash
    report.duration_s = time.monotonic() - started
    return report


# -- the verdict ----------------------------------------------------------------------------------
def _parse_junit(data: bytes) -> list[TestCase]:
    root = ET.fromstring(data)
    cases = []
    for tc in root.iter("testcase"):
        name = f"{tc.get('classname', '')}::{tc.get('name', '')}".strip(":")
        status, message, detail = "passed", "", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or "")[:500]
                detail = (child.text or "")[-2500:]
                if status != "skipped":
                    break
        cases.append(TestCase(name=name, status=status, message=message, detail=detail))
    return cases


def _parse_records(data: bytes) -> tuple[int | None, dict[str, str], dict[str, Any] | None]:
    collected, finish = None, None
    outcome: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        kind = rec.get("kind")
        if kind == "collected":
            collected = int(rec.get("count", 0))
        elif kind == "phase":
            raw, node = rec.get("raw"), str(rec.get("id"))
            prev = outcome.get(node, "passed")
            if raw == "failed" or prev == "failed":
                outcome[node] = "failed"
            elif raw in ("skipped", "xfailed") or prev == "skipped":
                outcome[node] = "skipped"
            else:
                outcome[node] = "passed"
        elif kind == "finish":
            finish = rec
    return collected, outcome, finish


def judge(result: RunResult, *, threshold: float, scripts: list[str]) -> GateReport:
    reasons: list[str] = []
    report = GateReport(passed=False, reasons=reasons, coverage_threshold=threshold, timed_out=result.timed_out,
                        oom_killed=result.oom_killed, peak_memory_bytes=result.peak_memory_bytes)
    report.output_tail = (result.stdout[-3000:] + b"\n" + result.stderr[-2000:]).decode("utf-8", "replace").strip()
    if result.error:
        reasons.append(f"sandbox error: {result.error}")
        report.infrastructure_error = True  # not the skill's fault: not a verdict
    if result.timed_out:
        reasons.append("the test run exceeded its time limit and was killed")
    if result.oom_killed:
        reasons.append("the test run ran out of memory and was killed")
    # The gate runner itself must end normally (exit 0). A test that forges every report and then
    # kills its parent, the runner, is caught here: the supervisor saw the runner die.
    if result.error is None and not result.timed_out and not result.oom_killed and (
            result.exit_code != 0 or result.signal is not None):
        reasons.append(f"the gate runner did not finish normally (exit {result.exit_code}"
                       f"{f', signal {result.signal}' if result.signal else ''}): the test run killed or broke it")
    runner_raw = result.files.get(f"{OUT}/runner.json")
    runner: dict[str, Any] = {}
    if runner_raw is None:
        if not reasons:
            reasons.append("the gate runner's report is missing: the run was killed or tampered with")
    else:
        try:
            runner = json.loads(runner_raw)
        except ValueError:
            reasons.append("the gate runner's report is unreadable")
    pytest_exit = runner.get("pytest_exit")
    report.pytest_exit = pytest_exit
    if runner and pytest_exit != 0:
        if isinstance(pytest_exit, int) and pytest_exit < 0:
            reasons.append(f"pytest was killed by signal {-pytest_exit}")
        else:
            reasons.append(f"pytest exited with status {pytest_exit} ({PYTEST_EXIT.get(pytest_exit, 'unknown status')})")

    junit = result.files.get(f"{OUT}/junit.xml")
    cases: list[TestCase] = []
    junit_readable = False
    if runner and junit is None:
        reasons.append("pytest wrote no JUnit report: the test process ended before pytest finished")
    elif junit is not None:
        try:
            cases = _parse_junit(junit)
            junit_readable = True
        except ET.ParseError as exc:
            reasons.append(f"the JUnit report is not valid XML ({exc}): truncated or tampered with")
    report.cases = cases
    report.tests = len(cases)
    report.failures = sum(c.status == "failed" for c in cases)
    report.errors = sum(c.status == "error" for c in cases)
    report.skipped = sum(c.status == "skipped" for c in cases)
    if junit_readable and not cases:
        reasons.append("no tests were collected: add tests/test_*.py with test_* functions")
    if report.failures or report.errors:
        bad = list(dict.fromkeys(c.name for c in cases if c.status in ("failed", "error")))
        n_bad = report.failures + report.errors
        reasons.append(f"{n_bad} of {len(cases)} test{'s' if len(cases) != 1 else ''} failed: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}")
    if report.skipped:
        reasons.append(f"{report.skipped} tests were skipped or xfailed: every test must run and pass")

    # Cross-check against the independent record the gate plugin sent the runner down a pipe.
    records = result.files.get(f"{OUT}/records.jsonl")
    channel = runner.get("records_channel")
    if runner and channel != "ok":
        reasons.append({"closed early": "the gate plugin's record channel was closed while the tests ran: "
                                        "reporting was tampered with",
                        "overflow": "the gate plugin's record channel was flooded past 16 MB: reporting was "
                                    "tampered with"}.get(channel, "the gate runner kept no record channel"))
    if runner and junit is not None and cases:
        collected, outcome, finish = _parse_records(records or b"")
        if finish is None:
            reasons.append("pytest's session did not finish normally (no finish record): a test or conftest ended the process")
        ran = [c for c in cases if not c.message.startswith("collection")]  # collection skips/errors never become items
        if collected is not None and collected != len(ran):
            reasons.append(f"the JUnit report lists {len(ran)} tests but {collected} were collected: reporting was tampered with")
        raw_failed = sum(v == "failed" for v in outcome.values())
        raw_passed = sum(v == "passed" for v in outcome.values())
        if raw_failed and not (report.failures or report.errors):
            reasons.append(f"{raw_failed} tests raised errors but were reported as passed: reporting was tampered with")
        if cases and raw_passed < len(cases) - report.skipped - report.failures - report.errors:
            reasons.append("fewer tests actually passed than the JUnit report claims: reporting was tampered with")

    cov_raw = result.files.get(f"{OUT}/coverage.json")
    if scripts:
        if cov_raw is None:
            if runner:
                reasons.append("coverage wrote no report: " + str(runner.get("coverage_output", ""))[-300:].strip())
        else:
            try:
                cov = json.loads(cov_raw)
                totals = cov.get("totals", {})
                report.coverage = round(float(totals.get("percent_covered", 0.0)), 2)
                report.uncovered = {
                    path.replace("/skill/", ""): info.get("missing_lines", [])[:50]
                    for path, info in (cov.get("files") or {}).items() if info.get("missing_lines")
                }
                measured = {p.replace("/skill/", "") for p in (cov.get("files") or {})}
                never = [s for s in scripts if s not in measured and s.count("/") == 1]
                if never:
                    reasons.append(f"scripts never imported by any test: {', '.join(never)}")
                if report.coverage < threshold:
                    reasons.append(f"line coverage of scripts/ is {report.coverage:.1f}%, below the {threshold:.0f}% threshold")
            except (ValueError, TypeError, AttributeError):
                reasons.append("the coverage report is unreadable")
    report.passed = not reasons
    return report


def gate_error_report(exc: SandboxError, pkg: SkillPackage) -> GateReport:
    return GateReport(passed=False, reasons=[f"sandbox error: {exc}"], content_hash=pkg.content_hash)
