"""Static checks on a package's files, before anything is built or run.

The gate does not rely on them for its verdict: the skill's code runs only in the callee,
which can answer a test with plain data and nothing else (see runtime/gate.py). They
refuse, early and with a clear message, what no honest package needs:

- **shadowing**: a package file whose import name is also a module of the standard
  library, of the judge's or the runner's harness, or of the test tools and packages the
  runner image ships (a top-level `pytest.py` once made a whole test run vanish). Both
  containers also put the package last on sys.path, so a name that slipped through would
  still lose to the real module;
- **pytest machinery in tests**: hooks other than the few a suite legitimately defines,
  `pytest_plugins`, imports of pytest's or the harness's internals, process exits and
  signals. Test code runs in the judge's pass process; what it could do there is bounded by
  the judge's design (passes isolated from each other, the verdict held by the runner), and
  these checks keep the common forms out of the suite altogether;
- `conftest.py` outside `tests/`, and sitecustomize/usercustomize anywhere.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass

# Hooks a test suite may legitimately define. Everything else that starts with pytest_
# (makereport, report_teststatus, sessionfinish, collection_modifyitems, ...) can change
# what gets reported or which tests run.
ALLOWED_HOOKS = {"pytest_configure", "pytest_addoption", "pytest_generate_tests"}
EXIT_CALLS = {
    ("os", "_exit"),
    ("sys", "exit"),
    ("os", "abort"),
    ("os", "kill"),
    ("os", "killpg"),
    ("signal", "signal"),
    ("os", "fork"),
    ("os", "setsid"),
}
HARNESS_MODULES = {"skillyard_judge", "datacodec", "judge_runner", "call_runner", "supervisor"}
FORBIDDEN_MODULES = {"_pytest", "coverage", "pytest_cov", "pluggy"} | HARNESS_MODULES
# Top-level import names of what the runner image installs (images/runner/requirements.txt) and
# of the tools every Python environment has.
RUNNER_MODULES = {
    "pytest",
    "_pytest",
    "py",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "coverage",
    "yaml",
    "_yaml",
    "jsonschema",
    "jsonschema_specifications",
    "referencing",
    "rpds",
    "attr",
    "attrs",
    "typing_extensions",
    "pip",
    "setuptools",
    "pkg_resources",
    "_distutils_hack",
    "site",
    "sitecustomize",
    "usercustomize",
}
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
            found.append(
                Violation(
                    rel,
                    node.lineno,
                    f"imports {name}: test code may not touch pytest's or coverage's internals",
                )
            )
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
                found.append(
                    Violation(
                        rel, node.lineno, f"defines the pytest hook {node.name}, which can change the verdict"
                    )
                )
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "pytest_plugins":
                    found.append(
                        Violation(rel, node.lineno, "sets pytest_plugins; the gate loads no extra plugins")
                    )
        if is_test and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in EXIT_CALLS:
                found.append(
                    Violation(
                        rel,
                        node.lineno,
                        f"uses {node.value.id}.{node.attr}: tests may not end or signal processes",
                    )
                )
    return found


def reserved_names() -> set[str]:
    """Import names no package file may take."""
    import sys

    return set(sys.stdlib_module_names) | HARNESS_MODULES | RUNNER_MODULES


def import_names(rel: str) -> list[str]:
    """The top-level import names a package file defines: `lib/x.py` -> `lib`; `tests/helper.py` is
    imported by pytest as `helper` (or as `tests` when tests/ is a package)."""
    parts = rel.split("/")
    if not rel.endswith(".py"):
        return []
    names = [parts[0] if len(parts) > 1 else parts[0][:-3]]
    if parts[0] == "tests" and len(parts) >= 2:
        names.append(parts[-1][:-3] if parts[-1] != "__init__.py" else parts[-2])
    return names


def names_under_tests(files: dict[str, bytes]) -> set[str]:
    """Every name under tests/ a test could import as a top-level module: each file's stem and each
    folder's name (pytest puts the test folders themselves on sys.path)."""
    names = set()
    for rel in files:
        parts = rel.split("/")
        if parts[0] != "tests" or len(parts) < 2:
            continue
        names.update(parts[1:-1])
        if parts[-1].endswith(".py"):
            names.add(parts[-1][:-3])
    return names


def check_shadowing(files: dict[str, bytes]) -> list[Violation]:
    reserved = reserved_names()
    tests = names_under_tests(files)
    found = []
    for rel in sorted(files):
        for name in import_names(rel):
            if name in reserved:
                found.append(
                    Violation(
                        rel,
                        1,
                        f"its import name {name!r} is also a module of the standard library, "
                        "the test tools or skillyard's harness: rename it",
                    )
                )
        # In the judge every module of the code is a proxy, found before anything on sys.path: a code
        # module named like a module of the tests would answer the tests' own `import` (a cases.py
        # listing the wrong code's answers registered wrong code against frozen tests).
        if not rel.startswith("tests/") and rel.endswith(".py") and import_names(rel)[0] in tests:
            found.append(
                Violation(
                    rel,
                    1,
                    f"its import name {import_names(rel)[0]!r} is also a module or folder of the tests: "
                    "the tests would import the code instead: rename it",
                )
            )
    return found


def check_package(files: dict[str, bytes]) -> list[Violation]:
    """Policy violations in a package's files (tests strictly, code for imports and hooks)."""
    found: list[Violation] = check_shadowing(files)
    for rel in sorted(files):
        base = rel.split("/")[-1]
        if base in ("sitecustomize.py", "usercustomize.py"):
            found.append(
                Violation(rel, 1, "sitecustomize/usercustomize run at interpreter start-up; not allowed")
            )
        if base == "conftest.py" and not rel.startswith("tests/"):
            found.append(
                Violation(
                    rel,
                    1,
                    "conftest.py belongs in tests/: outside it, pytest would not load it the "
                    "same way, and the gate does not",
                )
            )
        if not rel.endswith(".py"):
            continue
        is_test = rel.startswith("tests/")
        found += check_file(rel, files[rel], is_test=is_test)
    return found
