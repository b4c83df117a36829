"""Mutants of a skill's code, for the gate's check that its tests can fail.

The operators are cosmic-ray's (flipped comparisons, off-by-one numbers, negated
conditions, swapped booleans and arithmetic, break/continue, loops that never run),
applied on cosmic-ray's parso trees, so a mutant differs from the original only at the
mutated token: line numbers and layout stay as they were. Two operators it lacks are
written here on its `Operator` interface: a `return` of None, and a deleted statement.

Why not mutmut: it writes every mutant into one "trampolined" copy of the source and picks
one by an environment variable at run time, in the tested process. In the gate that would
put all mutants, and the switch between them, inside the callee, where the skill's code
could read both; and it needs mutmut's runtime in the callee image. cosmic-ray produces
one plain source text per mutant on the host, which is what the callee needs.

Mutants are sampled over the lines the tests covered (a line no test runs cannot kill a
mutant), one line at a time in a seeded random order, so every covered line has the same
chance. Mutants whose bytecode equals the original's are dropped (they cannot be killed).
"""

from __future__ import annotations

import itertools
import marshal
import random
import threading
import types
from collections.abc import Iterable
from dataclasses import dataclass, field

import parso.python.tree as pytree
import structlog
from cosmic_ray.ast import ast_nodes, get_ast
from cosmic_ray.mutating import MutationVisitor
from cosmic_ray.operators import (
    binary_operator_replacement,
    boolean_replacer,
    break_continue,
    comparison_operator_replacement,
    number_replacer,
    unary_operator_replacement,
    zero_iteration_for_loop,
)
from cosmic_ray.operators.operator import Example, Operator

log = structlog.get_logger(__name__)

CO_OPTIMIZED = 0x0001  # functions, lambdas, comprehensions; not module or class bodies


class ReturnNone(Operator):
    """`return <value>` becomes `return None`: a wrong result, found only by checking results."""

    def mutation_positions(self, node):
        if (
            node.type == "return_stmt"
            and len(node.children) == 2
            and node.children[1].get_code().strip() != "None"
        ):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node, index):
        value = node.children[1]
        node.children[1] = pytree.Keyword("None", value.start_pos, prefix=" ")
        return node

    @classmethod
    def examples(cls):
        return (Example("def f():\n    return 1\n", "def f():\n    return None\n"),)


class DeleteStatement(Operator):
    """A simple statement (assignment, call, augmented assignment, raise) becomes `pass`."""

    KINDS = {"expr_stmt", "atom_expr", "power", "raise_stmt", "del_stmt"}

    def mutation_positions(self, node):
        if node.type in self.KINDS and node.parent is not None and node.parent.type == "simple_stmt":
            if node.parent.children[0] is node and not _is_docstring(node):
                yield (node.start_pos, node.end_pos)

    def mutate(self, node, index):
        return pytree.Keyword("pass", node.start_pos, prefix=node.get_first_leaf().prefix)

    @classmethod
    def examples(cls):
        return (Example("def f(x):\n    x.append(1)\n", "def f(x):\n    pass\n"),)


def _is_docstring(node) -> bool:
    return node.type == "string" or (node.type == "atom" and node.children[0].type == "string")


def _operators() -> dict[str, Operator]:
    comparison = {
        f"ReplaceComparisonOperator_{a}_{b}"
        for a, b in (
            ("Lt", "LtE"),
            ("LtE", "Lt"),
            ("Gt", "GtE"),
            ("GtE", "Gt"),
            ("Eq", "NotEq"),
            ("NotEq", "Eq"),
            ("Is", "IsNot"),
            ("IsNot", "Is"),
        )
    }
    binary = {
        f"ReplaceBinaryOperator_{a}_{b}"
        for a, b in (
            ("Add", "Sub"),
            ("Sub", "Add"),
            ("Mul", "Div"),
            ("Div", "Mul"),
            ("FloorDiv", "Mul"),
            ("Mod", "FloorDiv"),
        )
    }
    unary = {"ReplaceUnaryOperator_Delete_Not", "ReplaceUnaryOperator_USub_UAdd"}
    chosen: dict[str, Operator] = {}
    for cls in itertools.chain(
        comparison_operator_replacement.operators(),
        binary_operator_replacement.operators(),
        unary_operator_replacement.operators(),
    ):
        if cls.__name__ in comparison | binary | unary:
            chosen[cls.__name__] = cls()
    for cls in (
        boolean_replacer.AddNot,
        boolean_replacer.ReplaceTrueWithFalse,
        boolean_replacer.ReplaceFalseWithTrue,
        boolean_replacer.ReplaceAndWithOr,
        boolean_replacer.ReplaceOrWithAnd,
        break_continue.ReplaceBreakWithContinue,
        break_continue.ReplaceContinueWithBreak,
        number_replacer.NumberReplacer,
        zero_iteration_for_loop.ZeroIterationForLoop,
        ReturnNone,
        DeleteStatement,
    ):
        chosen[cls.__name__] = cls()
    return chosen


OPERATORS = _operators()


@dataclass
class Mutant:
    """One mutated copy of one file."""

    file: str
    line: int
    operator: str
    before: str
    after: str
    source: str = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.file}:{self.line} {self.before.strip()} -> {self.after.strip()}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "operator": self.operator,
            "before": self.before.strip(),
            "after": self.after.strip(),
        }


def executable_lines(source: str, filename: str) -> set[int]:
    """Lines of a file's functions, lambdas and comprehensions that can run.

    Module-level and class-level statements run on import whatever the tests do, so they
    are not counted: constants cannot pad coverage, and no mutant is placed there."""
    try:
        top = compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return set()
    lines: set[int] = set()
    stack = [top]
    while stack:
        code = stack.pop()
        if code.co_flags & CO_OPTIMIZED:
            lines.update(line for _, _, line in code.co_lines() if line is not None)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return lines


def _points(source: str) -> list[tuple[str, int, int]]:
    """Every (operator, occurrence, line) where a mutation can be made in `source`."""
    try:
        tree = get_ast(source)
    except Exception:  # noqa: BLE001 - parso failed: no mutants for this file
        return []
    nodes = list(ast_nodes(tree))
    found = []
    for name, operator in OPERATORS.items():
        occurrence = 0
        for node in nodes:
            for start, _ in operator.mutation_positions(node):
                found.append((name, occurrence, start[0]))
                occurrence += 1
    return found


def _bytecode(source: str, filename: str) -> bytes | None:
    try:
        return marshal.dumps(compile(source, filename, "exec", dont_inherit=True))
    except (SyntaxError, ValueError):
        return None


def make_mutant(file: str, source: str, operator: str, occurrence: int) -> Mutant | None:
    """The mutant, or None when the mutation is not possible, invalid or changes nothing."""
    try:
        mutated = MutationVisitor.mutate_code(source, OPERATORS[operator], occurrence)
    except Exception:  # noqa: BLE001 - an operator that fails on odd code: skip that mutant
        return None
    if mutated is None or mutated == source:
        return None
    code = _bytecode(mutated, file)
    if code is None or code == _bytecode(source, file):
        return None
    old_lines, new_lines = source.splitlines(), mutated.splitlines()
    for number, (old, new) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if old != new:
            return Mutant(file=file, line=number, operator=operator, before=old, after=new, source=mutated)
    return None  # only a trailing change: nothing to report or run


class MutantSampler:
    """Samples mutants over the lines the tests covered, one line at a time in a seeded order.

    `warm()` may run on a background thread while the tests run (making a mutant costs
    ~30 ms: a parse, the mutation and two compiles): it makes one mutant per line, in the
    order `sample()` will want them. `sample()` then takes those whose lines were covered,
    and makes whatever is still missing."""

    def __init__(self, sources: dict[str, str], seed: str) -> None:
        self.sources = sources
        self.rng = random.Random(seed)
        self.points: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for file in sorted(sources):
            for operator, occurrence, line in _points(sources[file]):
                self.points.setdefault((file, line), []).append((operator, occurrence))
        self.order = sorted(self.points)
        self.rng.shuffle(self.order)
        for options in self.points.values():
            self.rng.shuffle(options)
        self.made: dict[tuple[str, int], list[Mutant]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _next_for(self, key: tuple[str, int]) -> Mutant | None:
        options = self.points[key]
        while options:
            operator, occurrence = options.pop()
            mutant = make_mutant(key[0], self.sources[key[0]], operator, occurrence)
            if mutant is not None:
                return mutant
        return None

    def warm(self, count: int) -> None:
        """Make one mutant for each of the first `count` lines of the sampling order."""
        for key in self.order[:count]:
            if self._stop.is_set():
                return
            with self._lock:
                if key not in self.made:
                    mutant = self._next_for(key)
                    self.made[key] = [mutant] if mutant else []

    def sample(self, covered: dict[str, set[int]], count: int) -> list[Mutant]:
        self._stop.set()
        with self._lock:
            keys = [k for k in self.order if k[1] in covered.get(k[0], set())]
            chosen: list[Mutant] = []
            depth = 0
            while keys and len(chosen) < count:
                next_round = []
                for key in keys:
                    if len(chosen) >= count:
                        break
                    made = self.made.setdefault(key, [])
                    if len(made) <= depth:
                        mutant = self._next_for(key)
                        if mutant is not None:
                            made.append(mutant)
                    if len(made) > depth:
                        chosen.append(made[depth])
                        next_round.append(key)
                    elif self.points[key]:
                        next_round.append(key)
                keys = next_round
                depth += 1
            return chosen


def sample_mutants(
    sources: dict[str, str], covered: dict[str, set[int]], count: int, seed: str
) -> list[Mutant]:
    """Up to `count` distinct, valid mutants on covered lines, spread over those lines."""
    return MutantSampler(sources, seed).sample(covered, count)


def all_points(sources: dict[str, str]) -> Iterable[tuple[str, str, int, int]]:
    """(file, operator, occurrence, line) of every possible mutation, for reports and tests."""
    for file in sorted(sources):
        for operator, occurrence, line in _points(sources[file]):
            yield file, operator, occurrence, line


__all__ = [
    "OPERATORS",
    "Mutant",
    "MutantSampler",
    "all_points",
    "executable_lines",
    "make_mutant",
    "sample_mutants",
]
