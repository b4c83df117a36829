"""Mutants of a skill's code: cosmic-ray's operators plus ours, sampled over covered lines."""

from __future__ import annotations

import textwrap

from runtime.mutation import OPERATORS, MutantSampler, executable_lines, make_mutant, sample_mutants

SOURCE = textwrap.dedent('''
    LIMIT = 10
    TABLE = {"a": 1, "b": 2}


    def clamp(n):
        """Keep n in range."""
        if n < 0:
            return 0
        if n >= LIMIT:
            return LIMIT
        return n


    def total(items):
        result = 0
        for item in items:
            result += item
        return result


    class Box:
        size = 3

        def grow(self, by):
            self.size = self.size + by
            return self.size
''').lstrip()


def test_executable_lines_are_function_lines_only():
    lines = executable_lines(SOURCE, "x.py")
    text = SOURCE.splitlines()
    assert 1 not in lines and 2 not in lines  # module-level constants
    assert any("if n < 0" in text[n - 1] for n in lines)
    assert any("self.size = self.size + by" in text[n - 1] for n in lines)
    assert not any(text[n - 1].strip() == "size = 3" for n in lines)  # a class body runs at import


def test_each_operator_kind_of_the_issue_is_there():
    for name in (
        "ReplaceComparisonOperator_Lt_LtE",
        "ReplaceComparisonOperator_GtE_Gt",
        "NumberReplacer",
        "AddNot",
        "ReturnNone",
        "DeleteStatement",
        "ReplaceBinaryOperator_Add_Sub",
    ):
        assert name in OPERATORS


def test_a_mutant_changes_one_line_and_says_how():
    lines = executable_lines(SOURCE, "x.py")
    mutants = sample_mutants({"x.py": SOURCE}, {"x.py": lines}, 40, "seed")
    assert len(mutants) >= 10
    for mutant in mutants:
        before, after = SOURCE.splitlines(), mutant.source.splitlines()
        changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True), 1) if a != b]
        assert changed == [mutant.line], mutant.label
        assert mutant.label.startswith(f"x.py:{mutant.line} ") and " -> " in mutant.label
        compile(mutant.source, "x.py", "exec")
    kinds = {m.operator for m in mutants}
    assert {"ReturnNone", "DeleteStatement", "NumberReplacer"} & kinds


def test_mutants_land_only_on_covered_lines():
    covered = {8, 9}  # `if n < 0:` and `return 0`
    mutants = sample_mutants({"x.py": SOURCE}, {"x.py": covered}, 10, "seed")
    assert mutants and all(m.line in covered for m in mutants)


def test_sampling_is_seeded_and_spread_over_lines():
    lines = executable_lines(SOURCE, "x.py")
    first = [m.label for m in sample_mutants({"x.py": SOURCE}, {"x.py": lines}, 6, "a")]
    again = [m.label for m in sample_mutants({"x.py": SOURCE}, {"x.py": lines}, 6, "a")]
    assert first == again
    assert len({label.split(" ")[0] for label in first}) == len(first)  # one per line while lines last


def test_equivalent_and_broken_mutants_are_dropped():
    assert make_mutant("x.py", "def f():\n    return None\n", "ReturnNone", 0) is None


def test_warming_gives_the_same_sample():
    lines = executable_lines(SOURCE, "x.py")
    warmed = MutantSampler({"x.py": SOURCE}, "s")
    warmed.warm(50)
    cold = MutantSampler({"x.py": SOURCE}, "s")
    assert [m.label for m in warmed.sample({"x.py": lines}, 8)] == [
        m.label for m in cold.sample({"x.py": lines}, 8)
    ]
