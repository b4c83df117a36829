"""The test gate on a real engine: honest verdicts, and every spoofing trick we know blocked.

Each spoof below is a test suite whose real tests FAIL but which tries to make the gate
believe they passed. None may register.
"""
from __future__ import annotations

import textwrap

import pytest

from runtime.package import load_package
from tests.conftest import write_skill

GOOD_SCRIPT = textwrap.dedent('''
    def run(params):
        n = params["n"]
        if n < 0:
            raise ValueError("n must be >= 0")
        return {"square": n * n}
''')
GOOD_TEST = textwrap.dedent('''
    import pytest
    from scripts.main import run

    def test_square():
        assert run({"n": 3}) == {"square": 9}

    def test_negative():
        with pytest.raises(ValueError):
            run({"n": -1})
''')
# The real behaviour is wrong (square of 3 is not 10): honest tests of it fail.
FAILING_TEST = textwrap.dedent('''
    from scripts.main import run

    def test_square_is_wrong():
        assert run({"n": 3}) == {"square": 10}

    def test_other():
        assert run({"n": 2}) == {"square": 4}
''')


def gate(yard, path):
    return yard.add(path)


def test_good_skill_registers(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": GOOD_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "registered", outcome.reasons
    assert outcome.report.tests == 2 and outcome.report.failures == 0
    assert outcome.report.coverage == 100.0


def test_failing_tests_block_with_names(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": FAILING_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("1 of 2 tests failed" in r and "test_square_is_wrong" in r for r in outcome.reasons), outcome.reasons
    failed = [c for c in outcome.report.cases if c.status == "failed"]
    assert failed and "10" in failed[0].detail  # the fixer gets the assertion detail


def test_low_coverage_blocks(yard, tmp_path):
    script = GOOD_SCRIPT + "\n\ndef unused(x):\n" + "".join(f"    x += {i}\n" for i in range(30)) + "    return x\n"
    d = write_skill(tmp_path, "square", script=script, tests={"test_main.py": GOOD_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("below the 80% threshold" in r for r in outcome.reasons), outcome.reasons


def test_a_skill_cannot_lower_the_coverage_threshold(yard, tmp_path):
    script = GOOD_SCRIPT + "\n\ndef unused(x):\n" + "".join(f"    x += {i}\n" for i in range(30)) + "    return x\n"
    d = write_skill(tmp_path, "square", script=script, tests={"test_main.py": GOOD_TEST},
                    sidecar="entrypoint: scripts/main.py:run\ngate: {coverage: 0}\n")
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("below the 80% threshold" in r for r in outcome.reasons), outcome.reasons


def test_no_tests_blocks(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"helpers.py": "X = 1\n"})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("no test files" in r for r in outcome.reasons), outcome.reasons


def test_collected_nothing_blocks(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": "from scripts.main import run\n"})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("no tests were collected" in r for r in outcome.reasons), outcome.reasons


def test_skipped_test_blocks(yard, tmp_path):
    body = GOOD_TEST + "\n\n@pytest.mark.skip(reason='later')\ndef test_later():\n    assert False\n"
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": body})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("skipped" in r for r in outcome.reasons), outcome.reasons


def test_gate_timeout_blocks(yard, tmp_path):
    body = GOOD_TEST + "\n\ndef test_slow():\n    import time\n    time.sleep(60)\n"
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": body},
                    sidecar="entrypoint: scripts/main.py:run\ngate:\n  timeout: 4\n")
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert outcome.report.timed_out
    assert any("time limit" in r for r in outcome.reasons), outcome.reasons


# -- spoofing ---------------------------------------------------------------------------------------
FAKE_PASSED = "print('\\n'.join(f'tests/test_main.py::test_{i} PASSED' for i in range(20)))\nprint('20 passed in 0.01s')\n"

SPOOFS = {
    # Prints pytest's success lines and exits 0 from conftest at import: caught by the static policy.
    "exit0_conftest_plain": {
        "conftest.py": "import os\n" + FAKE_PASSED + "os._exit(0)\n",
    },
    # The same, obfuscated past the static policy: no JUnit report, so blocked at run time.
    "exit0_conftest_obfuscated": {
        "conftest.py": FAKE_PASSED + "getattr(__import__('o' + 's'), '_ex' + 'it')(0)\n",
    },
    # Exits 0 from inside a test after the failing one ran: pytest never finishes.
    "exit0_mid_run": {
        "test_z.py": "def test_zz():\n    getattr(__import__('o' + 's'), '_ex' + 'it')(0)\n",
    },
    # Writes its own all-passed JUnit file over pytest's at interpreter exit, then exits 0.
    "forged_junit_atexit": {
        "conftest.py": textwrap.dedent('''
            import atexit
            FORGED = ('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="2" failures="0" errors="0">'
                      '<testcase classname="tests.test_main" name="test_square_is_wrong"/>'
                      '<testcase classname="tests.test_main" name="test_other"/></testsuite></testsuites>')
            def forge():
                import glob
                for path in glob.glob("/tmp/*/junit.xml"):
                    open(path, "w").write(FORGED)
                getattr(__import__("o" + "s"), "_ex" + "it")(0)
            atexit.register(forge)
        '''),
    },
    # Deletes the report after pytest wrote it.
    "delete_report": {
        "conftest.py": textwrap.dedent('''
            import atexit, glob, os as _o
            atexit.register(lambda: [_o.remove(p) for p in glob.glob("/tmp/*/junit.xml")])
        '''),
    },
    # Truncates the report after pytest wrote it.
    "truncate_report": {
        "conftest.py": textwrap.dedent('''
            import atexit, glob
            def cut():
                for p in glob.glob("/tmp/*/junit.xml"):
                    data = open(p).read()
                    open(p, "w").write(data[: len(data) // 2])
            atexit.register(cut)
        '''),
    },
    # Monkeypatches pytest's reporting through the public API (no hooks, no _pytest import):
    # every report says "passed", so the JUnit file and the exit status look clean.
    "monkeypatch_reports": {
        "conftest.py": textwrap.dedent('''
            import pytest
            _orig = pytest.TestReport.from_item_and_call.__func__
            def _always_pass(cls, item, call):
                rep = _orig(cls, item, call)
                rep.outcome = "passed"
                rep.longrepr = None
                return rep
            pytest.TestReport.from_item_and_call = classmethod(_always_pass)
        '''),
    },
    # Defines a reporting hook: refused by the policy.
    "makereport_hook": {
        "conftest.py": textwrap.dedent('''
            import pytest
            @pytest.hookimpl(hookwrapper=True)
            def pytest_runtest_makereport(item, call):
                outcome = yield
                outcome.get_result().outcome = "passed"
        '''),
    },
    # The audit's forge-all (2026-12-02), past the static policy: pytest's failure count zeroed at
    # session teardown (exit 0), failures cut from the JUnit file and every raw record rewritten to
    # "passed" at exit. The records now go down the runner's pipe, so the rewrite finds no file and
    # the sent failure sticks.
    "forge_all_reports_atexit": {
        "conftest.py": textwrap.dedent('''
            import atexit, glob, json, re
            import pytest

            @pytest.fixture(scope="session", autouse=True)
            def _zero(request):
                yield
                setattr(request.session, "tests" + "failed", 0)

            def forge():
                for path in glob.glob("/tmp/*/junit.xml"):
                    xml = re.sub(r"<failure[^>]*>.*?</failure>", "", open(path).read(), flags=re.S)
                    open(path, "w").write(re.sub(r'failures="[0-9]+"', 'failures="0"', xml))
                for path in glob.glob("/tmp/*/records.jsonl"):
                    recs = [json.loads(line) for line in open(path)]
                    for rec in recs:
                        rec.update({"raw": "passed"} if rec.get("kind") == "phase" else {})
                        rec.update({"exitstatus": 0, "testsfailed": 0} if rec.get("kind") == "finish" else {})
                    open(path, "w").write("".join(json.dumps(r) + "\\n" for r in recs))
            atexit.register(forge)
        '''),
    },
    # Smarter: forge passing records for every collected test down the plugin's pipe, then put
    # /dev/null over its fd so the real failures go nowhere, zero the count, cut the JUnit file.
    "forge_then_silence_record_channel": {
        "conftest.py": textwrap.dedent('''
            import atexit, glob, json, os, re, time
            import pytest

            @pytest.fixture(scope="session", autouse=True)
            def _silence(request):
                null = os.open("/dev/null", os.O_WRONLY)
                for name in os.listdir("/proc/self/fd"):
                    try:
                        if int(name) > 2 and os.readlink("/proc/self/fd/" + name).startswith("pipe:"):
                            fd = int(name)
                            items = request.session.items
                            lines = [{"kind": "phase", "id": i.nodeid, "when": w, "raw": "passed"}
                                     for i in items for w in ("setup", "call", "teardown")]
                            lines.append({"kind": "finish", "exitstatus": 0, "testsfailed": 0,
                                          "testscollected": len(items)})
                            os.write(fd, "".join(json.dumps(r) + "\\n" for r in lines).encode())
                            os.dup2(null, fd)
                    except (OSError, ValueError):
                        pass
                yield
                time.sleep(1)  # the tests go on for a while after the channel was cut
                setattr(request.session, "tests" + "failed", 0)

            def cut():
                for path in glob.glob("/tmp/*/junit.xml"):
                    xml = re.sub(r"<failure[^>]*>.*?</failure>", "", open(path).read(), flags=re.S)
                    open(path, "w").write(re.sub(r'failures="[0-9]+"', 'failures="0"', xml))
            atexit.register(cut)
        '''),
    },
    # Imports pytest internals: refused by the policy.
    "import_internals": {
        "conftest.py": "import _pytest.reports\n_pytest.reports.TestReport.outcome = 'passed'\n",
    },
}


@pytest.mark.parametrize("spoof", sorted(SPOOFS))
def test_spoofed_verdict_never_registers(yard, tmp_path, spoof):
    tests = {"test_main.py": FAILING_TEST, **SPOOFS[spoof]}
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests=tests)
    outcome = gate(yard, d)
    assert outcome.status == "blocked", f"{spoof} registered: {outcome.reasons}"
    assert outcome.reasons
    assert yard.registry.get("square").status == "blocked"


def test_forged_report_reasons_are_specific(yard, tmp_path):
    """The monkeypatch spoof is caught by the cross-check, and the reason says so."""
    tests = {"test_main.py": FAILING_TEST, **SPOOFS["monkeypatch_reports"]}
    outcome = gate(yard, write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests=tests))
    assert any("tampered" in r for r in outcome.reasons), outcome.reasons


def test_stdout_claims_are_ignored(yard, tmp_path):
    """A suite whose tests fail but print pytest's success summary is judged on facts."""
    body = FAILING_TEST + "\n\ndef test_print():\n    print('=== 3 passed in 0.01s ===')\n"
    outcome = gate(yard, write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": body}))
    assert outcome.status == "blocked"


def test_bundled_skills_register_and_broken_is_blocked(yard, skill_copy):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "skills"
    names = sorted(p.name for p in root.iterdir() if (p / "SKILL.md").exists())
    assert len(names) >= 13
    results = {name: yard.add(skill_copy(name)) for name in names}
    broken = results.pop("broken-median")
    assert broken.status == "blocked"
    assert any("tests failed" in r for r in broken.reasons), broken.reasons
    assert not any("coverage" in r or "policy" in r for r in broken.reasons), broken.reasons
    bad = {n: o.reasons for n, o in results.items() if o.status != "registered"}
    assert not bad, bad
    for name, outcome in results.items():
        assert outcome.report.coverage >= 80, name
        pkg = load_package(outcome.source)
        assert pkg.config.entrypoint


def test_silenced_record_channel_is_named(yard, tmp_path):
    tests = {"test_main.py": FAILING_TEST, **SPOOFS["forge_then_silence_record_channel"]}
    outcome = gate(yard, write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests=tests))
    assert outcome.status == "blocked"
    assert any("record channel was closed" in r for r in outcome.reasons), outcome.reasons
