"""The test gate for command skills, on a real engine: tests run a command with the `skill`
fixture, the command runs in the callee exactly as production runs it, and the mutation
check reaches the command's Python through the bootstrap."""

from __future__ import annotations

import textwrap

from tests.conftest import write_skill

SCRIPT = textwrap.dedent('''
    """count.py IN [OUT] [--words]: lines (or words) of a text file."""
    import sys


    def count(text, words):
        if words:
            return len(text.split())
        return text.count("\\n") + (1 if text and not text.endswith("\\n") else 0)


    def main(argv):
        words = "--words" in argv
        args = [a for a in argv if a != "--words"]
        if not args:
            print("usage: count.py IN [OUT] [--words]", file=sys.stderr)
            return 2
        try:
            with open(args[0], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        n = count(text, words)
        if len(args) > 1:
            with open(args[1], "w") as out:
                out.write(f"{n}\\n")
        else:
            print(n)
        return 0


    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
''')
SIDECAR = "commands:\n  count:\n    run: python scripts/main.py\n    description: count lines or words\n"
HONEST = textwrap.dedent("""
    CMD = ["python", "scripts/main.py"]

    def test_lines_to_stdout(skill):
        r = skill.run(CMD + ["in.txt"], files={"in.txt": "a\\nb\\nc"})
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"3\\n"

    def test_words_to_a_file(skill):
        r = skill.run(CMD + ["in.txt", "out.txt", "--words"], files={"in.txt": "one two\\nthree\\n"},
                      outputs=["out.txt"])
        assert r.returncode == 0 and r.stdout == b""
        assert r.files == {"out.txt": b"3\\n"}

    def test_empty_and_trailing_newline(skill):
        assert skill.run(CMD + ["e.txt"], files={"e.txt": ""}).stdout == b"0\\n"
        assert skill.run(CMD + ["n.txt"], files={"n.txt": "x\\n"}).stdout == b"1\\n"

    def test_errors(skill):
        r = skill.run(CMD)
        assert r.returncode == 2 and b"usage" in r.stderr
        r = skill.run(CMD + ["missing.txt"])
        assert r.returncode == 1 and b"error:" in r.stderr

    def test_missing_output_is_reported(skill):
        r = skill.run(CMD + ["in.txt"], files={"in.txt": "a"}, outputs=["never.txt"])
        assert r.files == {} and r.missing_files == ["never.txt"]
""")
WRONG = HONEST.replace('assert r.stdout == b"3\\n"', 'assert r.stdout == b"4\\n"')
VACUOUS = textwrap.dedent("""
    CMD = ["python", "scripts/main.py"]

    def test_runs(skill):
        skill.run(CMD + ["in.txt"], files={"in.txt": "a\\nb"})
        skill.run(CMD + ["in.txt", "o.txt", "--words"], files={"in.txt": "a b"}, outputs=["o.txt"])
        skill.run(CMD)
        assert True
""")


def command_skill(root, tests, sidecar=SIDECAR, script=SCRIPT):
    return write_skill(root, "counter", script=script, tests={"test_count.py": tests}, sidecar=sidecar)


def test_honest_command_tests_register(yard, tmp_path):
    outcome = yard.add(command_skill(tmp_path, HONEST))
    assert outcome.status == "registered", outcome.reasons
    report = outcome.report
    assert report.tests == 5 and report.calls >= 7
    assert report.coverage is not None and report.coverage > 80, report.uncovered  # traced commands
    mutation = report.mutation
    assert mutation["control"] == "passed" and mutation["ran"] >= 1
    assert all(m["file"] == "scripts/main.py" for m in mutation["mutants"])
    assert mutation["score"] >= 60, mutation


def test_wrong_command_tests_block(yard, tmp_path):
    outcome = yard.add(command_skill(tmp_path, WRONG))
    assert outcome.status == "blocked"
    assert any("test_lines_to_stdout" in r for r in outcome.reasons), outcome.reasons


def test_vacuous_command_tests_are_blocked_by_the_mutation_check(yard, tmp_path):
    outcome = yard.add(command_skill(tmp_path, VACUOUS))
    assert outcome.status == "blocked", outcome.reasons
    assert any("mutants" in r and "below the 60% floor" in r for r in outcome.reasons), outcome.reasons
    assert outcome.report.mutation["survivors"]


def test_a_command_the_skill_does_not_declare_fails_the_test(yard, tmp_path):
    body = HONEST + textwrap.dedent("""

        def test_other_program(skill):
            skill.run(["sh", "-c", "echo hi"])
    """)
    outcome = yard.add(command_skill(tmp_path, body))
    assert outcome.status == "blocked"
    case = next(c for c in outcome.report.cases if c.name.endswith("test_other_program"))
    assert case.status == "failed" and "must begin with one of the skill's commands" in case.detail, case


def test_the_judge_never_gets_the_commands_code(yard, tmp_path):
    """The tests cannot read the code they test, in any language: only the callee has it."""
    body = textwrap.dedent("""
        import os

        def test_no_code_here(skill):
            root = "/tmp/skill"
            here = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
            assert not [p for p in here if p.startswith("scripts/")], here
            assert "data/table.csv" in here
            r = skill.run(["sh", "scripts/tool.sh"])
            assert r.stdout == b"tool\\n"
            r = skill.run(["python", "scripts/main.py", "in.txt"], files={"in.txt": "a"})
            assert r.stdout == b"1\\n"
    """)
    d = command_skill(
        tmp_path,
        body,
        sidecar=SIDECAR + "  tool:\n    run: sh scripts/tool.sh\n",
    )
    (d / "scripts" / "tool.sh").write_text("echo tool\n")
    (d / "data").mkdir()
    (d / "data" / "table.csv").write_text("a,b\n")
    outcome = yard.add(d)
    case = next(c for c in outcome.report.cases if c.name.endswith("test_no_code_here"))
    assert case.status == "passed", case


def test_production_runs_the_command_its_tests_saw(yard, tmp_path):
    outcome = yard.add(command_skill(tmp_path, HONEST))
    assert outcome.status == "registered", outcome.reasons
    result = yard.run_command(
        "counter",
        ["python", "scripts/main.py", "in.txt", "out.txt"],
        files={"in.txt": b"a\nb\nc"},
        outputs=["out.txt"],
    )
    assert result.ok and result.exit_code == 0, result
    assert result.files == {"out.txt": b"3\n"}
    assert yard.registry.get("counter").calls == 1  # a use, like a function call


# -- a program that is not the package's Python: no code mutant reaches it ---------------------
SHOUT_JS = """
const text = require("fs").readFileSync(0, "utf8");
if (!text) { process.stderr.write("nothing to shout\\n"); process.exit(3); }
process.stdout.write(text.toUpperCase());
"""
NODE_SIDECAR = "family: node\ncommands:\n  shout:\n    run: node scripts/shout.js\n"
NODE_HONEST = textwrap.dedent("""
    def test_shouts(skill):
        r = skill.run(["node", "scripts/shout.js"], stdin="hey you\\n")
        assert (r.returncode, r.stdout) == (0, b"HEY YOU\\n")

    def test_nothing_to_shout(skill):
        r = skill.run(["node", "scripts/shout.js"])
        assert r.returncode == 3 and r.stderr == b"nothing to shout\\n"
""")
NODE_VACUOUS = textwrap.dedent("""
    def test_runs(skill):
        skill.run(["node", "scripts/shout.js"], stdin="hey")
        skill.run(["node", "scripts/shout.js"])
        assert True
""")


def node_skill(root, tests):
    d = write_skill(root, "shouter", script="", tests={"test_shout.py": tests}, sidecar=NODE_SIDECAR)
    (d / "scripts" / "main.py").unlink()
    (d / "scripts" / "shout.js").write_text(SHOUT_JS)
    return d


def test_node_command_registers_on_its_output_mutants(yard, tmp_path):
    outcome = yard.add(node_skill(tmp_path, NODE_HONEST))
    assert outcome.status == "registered", outcome.reasons
    mutation = outcome.report.mutation
    assert {m["operator"] for m in mutation["mutants"]} == {"Output_stdout", "Output_exit"}
    assert mutation["killed"] == mutation["ran"] == 2, mutation
    assert outcome.report.coverage is None  # no Python to measure
    result = yard.run_command("shouter", ["node", "scripts/shout.js"], stdin=b"ok")
    assert result.ok and result.stdout == b"OK"


def test_vacuous_tests_of_a_node_command_are_blocked(yard, tmp_path):
    outcome = yard.add(node_skill(tmp_path, NODE_VACUOUS))
    assert outcome.status == "blocked", outcome.reasons
    reason = next(r for r in outcome.reasons if "mutants" in r)
    assert "command:shout:0 node scripts/shout.js -> stdout emptied" in reason, reason
