"""sandbox/pyboot.py: a program handed over as bytecode runs as its source would, and a Python
whose bytecode differs from ours (another magic number) compiles the source instead."""

from __future__ import annotations

import json
import subprocess
import sys

from sandbox.pyboot import boot_args, python_argv, without_docstrings

PROGRAM = '''"""A module docstring the boot strips."""
import json
import sys


def answer():
    """A function docstring."""
    # a comment
    return {"argv": sys.argv, "name": __name__, "doc": answer.__doc__, "booted": "_sy_boot" in globals()}


if __name__ == "__main__":
    print(json.dumps(answer()))
'''


def run(args: list[str]) -> dict:
    argv = [sys.executable if a == "python3" else a for a in args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_the_program_sees_the_argv_it_would_have_had():
    got = run(python_argv(PROGRAM, "<test>", flags=("-I", "-S"), args=("one", "--two")))
    assert got["argv"] == ["-c", "one", "--two"]
    assert got["name"] == "__main__" and got["booted"]
    assert got["doc"] is None  # docstrings are not shipped


def test_another_magic_number_compiles_the_source():
    """The same argv with the bytecode swapped for garbage and the magic number changed: the boot
    must not touch the bytecode and must run the shipped source."""
    dash_c, boot, magic, code, source, name = boot_args(PROGRAM, "<test>")
    other = ("00" if magic[:2] != "00" else "01") + magic[2:]
    argv = ["python3", "-I", "-S", dash_c, boot, other, "bm90IGJ5dGVjb2Rl", source, name, "x"]
    got = run(argv)
    assert got["argv"] == ["-c", "x"] and got["name"] == "__main__"


def test_without_line_numbers_still_runs():
    got = run(python_argv(PROGRAM, "<test>", line_numbers=False))
    assert got["argv"] == ["-c"]


def test_stripping_keeps_the_code():
    stripped = without_docstrings(PROGRAM)
    assert "docstring" not in stripped and "comment" not in stripped
    assert "def answer" in stripped and "json.dumps(answer())" in stripped
