"""Static checks on a skill's test code, before it runs.

The gate's verdict comes from pytest's exit status, its JUnit report, an independent
record of each test's raw outcome and coverage's report. Test code runs in the same
process as pytest, so it could in principle rewrite pytest's reporting; this policy
refuses the ways to do that which need no obfuscation, and the runtime cross-checks
catch the rest we know of (see docs/SECURITY.md).
"""
from __future__ import annotations

import ast
import threading
from dataclasses import dataclass

# Hooks a test suite may legitimately define. Everything else that starts with pytest_
# (makereport, report_teststatus, sessionfinish, collection_modifyitems, ...) can change
# what gets reported or which tests run.
ALLOWED_HOOKS = {"pytest_configure", "pytest_addoption", "pytest_generate_tests"}
EXIT_CALLS = {("os", "_exit"), ("sys", "exit"), ("os", "abort"), ("os", "kill"), ("os", "killpg"),
              ("signal", "signal"), ("os", "fork"), ("os", "setsid")}
FORBIDDEN_MODULES = {"_pytest", "coverage", "skillyard_gate_plugin", "pytest_cov"}
# CPython before 3.11.8/3.12.1 keeps the AST constructor's recursion depth per interpreter,
# not per thread (gh-106905): when a garbage collection inside one ast.parse hands the GIL to
# another thread that parses too (add_many gates on worker threads; 3.11's traceback module
# parses to draw carets), one of them raises "SystemError: AST constructor recursion depth
# mismatch". The counter is reset at each parse's start, so a retry is sound; the lock keeps
# our own parses from colliding at all.
_PARSE_LOCK = threading.Lock()
_PARSE_ATTEMPTS = 5


def _parse(source: bytes, rel: str) -> ast.AST:
    for _ in range(_PARSE_ATTEMPTS - 1):
        try:
            with _PARSE_LOCK:
                return ast.parse(source, filename=rel)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    with _PARSE_LOCK:  # the last attempt: whatever it raises goes to the caller
        return ast.parse(source, filename=rel)


@dataclass
class Violation:
    file: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.problem}"


def _check_imports(node: ast.AST, rel: str) -> list[Violation]:
    found = []
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module]
    for name in names:
        root = name.split(".")[0]
        if root in FORBIDDEN_MODULES:
            found.append(Violation(rel, node.lineno, f"imports {name}: test code may not touch pytest's or coverage's internals"))
    return found


def check_file(rel: str, source: bytes, *, is_test: bool) -> list[Violation]:
    try:
        tree = _parse(source, rel)
    except SyntaxError:
        return []  # a syntax error fails the tests on its own, with pytest's message
    found: list[Violation] = []
    for node in ast.walk(tree):
        found += _check_imports(node, rel)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("pytest_"):
            if node.name not in ALLOWED_HOOKS:
                found.append(Violation(rel, node.lineno, f"defines the pytest hook {node.name}, which can change the verdict"))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "pytest_plugins":
                    found.append(Violation(rel, node.lineno, "sets pytest_plugins; the gate loads no extra plugins"))
        if is_test and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in EXIT_CALLS:
                found.append(Violation(rel, node.lineno,
                                       f"uses {node.value.id}.{node.attr}: tests may not end or signal processes"))
    return found


def check_package(files: dict[str, bytes]) -> list[Violation]:
    """Policy violations in a package's Python files (tests strictly, scripts for hooks/imports)."""
    found: list[Violation] = []
    for rel in sorted(files):
        if not rel.endswith(".py"):
            continue
        is_test = rel.startswith("tests/") or rel.endswith("conftest.py")
        found += check_file(rel, files[rel], is_test=is_test)
    for rel in files:
        if rel.split("/")[-1] in ("pytest.ini", "conftest.pyc", "sitecustomize.py", "usercustomize.py"):
            if rel.endswith("customize.py"):
                found.append(Violation(rel, 1, "sitecustomize/usercustomize run at interpreter start-up; not allowed"))
    return found
