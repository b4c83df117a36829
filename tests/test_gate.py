"""The test gate on a real engine: honest verdicts, the judge/callee split, the mutation check.

The tests run in the judge container; the skill's code runs only in the callee, a fresh
process per call. Suites that try to fake a pass from the test side (creation time, when
the tests are untrusted) must never register: either the judge sees the failure, or the
mutation check sees tests that pass whatever the code does.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import write_skill

GOOD_SCRIPT = textwrap.dedent('''
    class NegativeError(ValueError):
        """n was negative."""

    LIMIT = 1000

    def run(params):
        return {"square": square(params["n"])}

    def square(n):
        if n < 0:
            raise NegativeError(f"n must be >= 0, got {n}")
        if n > LIMIT:
            raise OverflowError("too big")
        return n * n

    def pair(n):
        return (n, square(n))
''')
GOOD_TEST = textwrap.dedent("""
    import pytest
    from scripts import main
    from scripts.main import LIMIT, NegativeError, pair, run, square

    def test_square():
        assert run({"n": 3}) == {"square": 9}
        assert square(0) == 0 and square(LIMIT) == LIMIT * LIMIT

    def test_negative():
        with pytest.raises(NegativeError, match="got -1"):
            run({"n": -1})
        with pytest.raises(ValueError):
            square(-2)

    def test_overflow():
        with pytest.raises(OverflowError):
            square(LIMIT + 1)

    def test_tuples_cross_as_tuples():
        assert pair(4) == (4, 16)

    def test_same_objects():
        assert main.run is run and getattr(main, "square") is square
""")
# The real behaviour is wrong (square of 3 is not 10): honest tests of it fail.
FAILING_TEST = textwrap.dedent("""
    from scripts.main import run

    def test_square_is_wrong():
        assert run({"n": 3}) == {"square": 10}

    def test_other():
        assert run({"n": 2}) == {"square": 4}
""")
VACUOUS_TEST = textwrap.dedent("""
    from scripts.main import pair, run, square

    def test_runs():
        run({"n": 3})
        square(5)
        pair(2)
        assert True
""")


def gate(yard, path):
    return yard.add(path)


def test_good_skill_registers(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": GOOD_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "registered", outcome.reasons
    report = outcome.report
    assert report.tests == 5 and report.failures == 0
    assert report.coverage == 100.0
    assert report.calls >= 9
    mutation = report.mutation
    assert mutation["control"] == "passed"
    assert mutation["score"] >= 60 and mutation["ran"] >= 1, mutation


def test_failing_tests_block_with_names(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": FAILING_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("1 of 2 tests failed" in r and "test_square_is_wrong" in r for r in outcome.reasons), (
        outcome.reasons
    )
    failed = [c for c in outcome.report.cases if c.status == "failed"]
    assert failed and "10" in failed[0].detail  # the fixer gets the assertion detail
    assert not outcome.report.mutation  # no mutation check without a passing verdict


def test_vacuous_tests_are_blocked_with_the_survivors_named(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": VACUOUS_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "blocked", outcome.reasons
    reason = next(
        (r for r in outcome.reasons if "mutants" in r), str(outcome.reasons) + str(outcome.report.mutation)
    )
    assert "below the 60% floor" in reason and "mutants tried" in reason
    survivors = outcome.report.mutation["survivors"]
    assert survivors
    # file:line before -> after
    assert all(s.startswith("scripts/main.py:") and " -> " in s for s in survivors), survivors
    assert survivors[0].split(" ", 1)[0] in reason


def test_tests_that_never_call_the_skill_are_blocked(yard, tmp_path):
    body = "def test_nothing():\n    assert 1 + 1 == 2\n"
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": body})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("never ran the skill's code" in r for r in outcome.reasons), outcome.reasons


def test_coverage_is_information_not_a_verdict(yard, tmp_path):
    script = (
        GOOD_SCRIPT
        + "\n\ndef unused(x):\n"
        + "".join(f"    x += {i}\n" for i in range(30))
        + "    return x\n"
    )
    d = write_skill(tmp_path, "square", script=script, tests={"test_main.py": GOOD_TEST})
    outcome = gate(yard, d)
    assert outcome.status == "registered", outcome.reasons
    assert outcome.report.coverage < 50
    assert len(outcome.report.uncovered["scripts/main.py"]) >= 30
    # no mutant is placed where no test runs
    assert all(m["line"] < 24 for m in outcome.report.mutation["mutants"]), outcome.report.mutation


def test_module_level_lines_do_not_pad_coverage(yard, tmp_path):
    constants = "".join(f"C{i} = {i}\n" for i in range(200))
    script = GOOD_SCRIPT + "\n" + constants + "\ndef unused(x):\n    return x + 1\n"
    d = write_skill(tmp_path, "square", script=script, tests={"test_main.py": GOOD_TEST})
    report = gate(yard, d).report
    assert report.uncovered["scripts/main.py"]  # the unused function's lines
    assert report.coverage < 95  # 200 executed constants did not lift it to ~100%


def test_code_outside_scripts_is_measured_and_mutated(yard, tmp_path):
    d = write_skill(
        tmp_path,
        "square",
        script="from lib.calc import square\n\ndef run(params):\n"
        "    return {'square': square(params['n'])}\n",
        tests={
            "test_main.py": "from scripts.main import run\n\ndef test_it():\n"
            "    assert run({'n': 3}) == {'square': 9}\n    assert run({'n': 0}) == {'square': 0}\n"
        },
    )
    (d / "lib").mkdir()
    (d / "lib" / "calc.py").write_text(
        "def square(n):\n    if n > 100:\n        return -1\n    return n * n\n"
    )
    outcome = gate(yard, d)
    report = outcome.report
    assert "lib/calc.py" in report.uncovered  # line 3 never ran
    assert any(m["file"] == "lib/calc.py" for m in report.mutation["mutants"]), report.mutation


def test_a_package_can_raise_but_not_lower_the_mutation_floor(yard, tmp_path):
    lower = write_skill(
        tmp_path / "a",
        "square",
        script=GOOD_SCRIPT,
        tests={"test_main.py": VACUOUS_TEST},
        sidecar="entrypoint: scripts/main.py:run\ngate: {mutation: 0}\n",
    )
    outcome = gate(yard, lower)
    assert outcome.status == "blocked" and outcome.report.mutation["threshold"] == 60
    higher = write_skill(
        tmp_path / "b",
        "square",
        script=GOOD_SCRIPT,
        tests={"test_main.py": GOOD_TEST},
        sidecar="entrypoint: scripts/main.py:run\ngate: {mutation: 99}\n",
    )
    assert gate(yard, higher).report.mutation["threshold"] == 99


def test_no_tests_blocks(yard, tmp_path):
    d = write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"helpers.py": "X = 1\n"})
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("no test files" in r for r in outcome.reasons), outcome.reasons


def test_collected_nothing_blocks(yard, tmp_path):
    d = write_skill(
        tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": "from scripts.main import run\n"}
    )
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
    d = write_skill(
        tmp_path,
        "square",
        script=GOOD_SCRIPT,
        tests={"test_main.py": body},
        sidecar="entrypoint: scripts/main.py:run\ngate:\n  timeout: 6\n",
    )
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    assert any("time limit" in r for r in outcome.reasons), outcome.reasons


def test_a_call_that_times_out_fails_its_test(yard, tmp_path):
    script = GOOD_SCRIPT + "\n\ndef spin():\n    while True:\n        pass\n"
    body = GOOD_TEST + "\n\ndef test_spin():\n    spin()\n"
    d = write_skill(
        tmp_path,
        "square",
        script=script,
        tests={"test_main.py": body.replace("import pytest", "import pytest\nfrom scripts.main import spin")},
        sidecar="entrypoint: scripts/main.py:run\nlimits: {timeout: 2}\n",
    )
    outcome = gate(yard, d)
    assert outcome.status == "blocked"
    case = next(c for c in outcome.report.cases if c.name.endswith("test_spin"))
    assert case.status == "failed" and "timeout" in case.detail, case


def test_what_the_skill_prints_reaches_the_test(yard, tmp_path):
    script = "def run(params):\n    print('hello from the callee')\n    return {'ok': params['x'] > 0}\n"
    body = (
        "from scripts.main import run\n\ndef test_print(capsys):\n    assert run({'x': 1}) == {'ok': True}\n"
        "    assert run({'x': -1}) == {'ok': False}\n"
        "    assert 'hello from the callee' in capsys.readouterr().out\n"
    )
    outcome = gate(yard, write_skill(tmp_path, "printer", script=script, tests={"test_main.py": body}))
    assert outcome.status == "registered", outcome.reasons


def test_objects_do_not_cross_the_boundary(yard, tmp_path):
    script = (
        "class Box:\n    def __eq__(self, other):\n        return True\n\n"
        "def run(params):\n    return {'n': params['n']}\n\ndef box():\n    return Box()\n"
    )
    body = (
        "import pytest\nfrom scripts.main import box, run\n\n"
        "def test_run():\n    assert run({'n': 2}) == {'n': 2}\n    assert run({'n': 3}) != {'n': 2}\n\n"
        "def test_box():\n"
        "    with pytest.raises(Exception, match='cannot cross the sandbox boundary'):\n        box()\n"
    )
    outcome = gate(yard, write_skill(tmp_path, "boxes", script=script, tests={"test_main.py": body}))
    assert outcome.status == "registered", outcome.reasons


# -- suites that try to fake a pass from the test side (creation time) -------------------------
FAKE_PASSED = (
    "print('\\n'.join(f'tests/test_main.py::test_{i} PASSED' for i in range(20)))\n"
    "print('20 passed in 0.01s')\n"
)

SPOOFS = {
    # Prints pytest's success lines and exits 0 from conftest at import: refused by the static policy.
    "exit0_conftest_plain": {"conftest.py": "import os\n" + FAKE_PASSED + "os._exit(0)\n"},
    # The same, obfuscated past the static policy: the pass never finishes.
    "exit0_conftest_obfuscated": {
        "conftest.py": FAKE_PASSED + "getattr(__import__('o' + 's'), '_ex' + 'it')(0)\n"
    },
    # Exits 0 from inside a test after the failing one ran: pytest never finishes.
    "exit0_mid_run": {"test_z.py": "def test_zz():\n    getattr(__import__('o' + 's'), '_ex' + 'it')(0)\n"},
    # Monkeypatches pytest's reporting through the public API: every report says "passed".
    # The verdict pass looks clean; then every mutant "survives" too.
    "monkeypatch_reports": {
        "conftest.py": textwrap.dedent("""
        import pytest
        _orig = pytest.TestReport.from_item_and_call.__func__
        def _always_pass(cls, item, call):
            rep = _orig(cls, item, call)
            rep.outcome = "passed"
            rep.longrepr = None
            return rep
        pytest.TestReport.from_item_and_call = classmethod(_always_pass)
    """)
    },
    # Patches the test item's run method so no test body runs.
    "patch_runtest": {"conftest.py": "import pytest\npytest.Function.runtest = lambda self: None\n"},
    # An autouse fixture that swaps the test function for one that passes.
    "swap_node_obj": {
        "conftest.py": textwrap.dedent("""
        import pytest
        @pytest.fixture(autouse=True)
        def _swap(request):
            request.node.obj = lambda *a, **k: None
    """)
    },
    # Defines a reporting hook: refused by the policy.
    "makereport_hook": {
        "conftest.py": textwrap.dedent("""
        import pytest
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_makereport(item, call):
            outcome = yield
            outcome.get_result().outcome = "passed"
    """)
    },
    # A hook installed through globals(), past the static check.
    "hook_through_globals": {
        "conftest.py": textwrap.dedent("""
        def _report(report):
            report.outcome = "passed"
        globals()["pytest_" + "runtest_logreport"] = _report
    """)
    },
    # Imports pytest internals: refused by the policy.
    "import_internals": {
        "conftest.py": "import _pytest.reports\n_pytest.reports.TestReport.outcome = 'passed'\n"
    },
    # __test__ = False: the failing tests are not collected at all.
    "dunder_test_false": {
        "conftest.py": "collect_ignore = ['test_main.py']\n",
        "test_pass.py": "from scripts.main import run\n\ndef test_ok():\n    run({'n': 1})\n",
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


def test_stdout_claims_are_ignored(yard, tmp_path):
    """A suite whose tests fail but print pytest's success summary is judged on facts."""
    body = FAILING_TEST + "\n\ndef test_print():\n    print('=== 3 passed in 0.01s ===')\n"
    outcome = gate(yard, write_skill(tmp_path, "square", script=GOOD_SCRIPT, tests={"test_main.py": body}))
    assert outcome.status == "blocked"


@pytest.mark.slow
def test_bundled_skills_register_and_broken_is_blocked(yard, skill_copy):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "skills"
    names = sorted(p.name for p in root.iterdir() if (p / "SKILL.md").exists() and (p / "tests").is_dir())
    assert len(names) >= 13
    results = dict(zip(names, yard.add_many([skill_copy(name) for name in names], workers=2), strict=True))
    broken = results.pop("broken-median")
    assert broken.status == "blocked"
    assert any("tests failed" in r for r in broken.reasons), broken.reasons
    assert not any("policy" in r or "mutants" in r for r in broken.reasons), broken.reasons
    bad = {n: o.reasons for n, o in results.items() if o.status != "registered"}
    assert not bad, bad
    for name, outcome in results.items():
        assert outcome.report.mutation["score"] >= 60, (name, outcome.report.mutation)
        if name == "md-to-html":  # JavaScript: no coverage; its output mutants stand in for code mutants
            assert outcome.report.coverage is None, name
            operators = {m["operator"] for m in outcome.report.mutation["mutants"]}
            assert operators >= {"Output_stdout", "Output_exit"}, operators
        else:
            assert outcome.report.coverage >= 80, name
