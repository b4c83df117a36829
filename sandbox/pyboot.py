"""Python programs handed to a container as text, started without compiling them there.

The supervisor (~39 KB of source) and the call runner (~29 KB) are passed with
`python3 -c`, so every container start and every fresh call process compiled them (~5 ms
of CPU each here), and the engine carried their whole text in the container's command,
which makes `docker start` slower by ~0.15 ms per KB (measured 2026-12-06). `boot_args`
compiles the program here and passes its bytecode (marshal, zlib, base64) beside its
source without docstrings and comments (zlib, base64): a small boot program in the
container loads the bytecode when its Python's bytecode magic number is the one the host
compiled for (every image built from images/ is Debian's 3.11, as the host is), and
compiles the source otherwise, so any other Python still runs it. The supervisor's command
goes from 39 KB to 27 KB, and its start skips the compile.

Invariants: the program runs as `python3 FLAGS -c BOOT MAGIC CODE SOURCE NAME ARGS...`
and sees `sys.argv == ["-c", *ARGS]`, as it would have with `python3 FLAGS -c SOURCE
ARGS...`; its globals are those of `__main__`, plus the one name `_sy_boot`. The bytecode
is compiled from exactly the source that goes beside it. Nothing here decodes untrusted
data: both come from the host.
"""

from __future__ import annotations

import ast
import base64
import functools
import importlib.util
import marshal
import types
import zlib

# Builtin modules only (they import in microseconds): sys, binascii and marshal always are;
# zlib is in Debian's python3 and in CPython's usual builds.
BOOT = """\
def _sy_boot():
    import sys, binascii, marshal, zlib
    argv = sys.argv
    magic, code, source, name = argv[1:5]
    del argv[1:5]
    unpack = lambda text: zlib.decompress(binascii.a2b_base64(text))
    if sys.modules["_frozen_importlib_external"].MAGIC_NUMBER.hex() == magic:
        return marshal.loads(unpack(code))
    return compile(unpack(source), name, "exec")
exec(_sy_boot())
"""


def without_docstrings(source: str) -> str:
    """The program's source without its docstrings and comments (ast.unparse): the same code."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _without_line_numbers(code: types.CodeType) -> types.CodeType:
    consts = tuple(_without_line_numbers(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_linetable=b"", co_consts=consts)


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


@functools.lru_cache(maxsize=16)
def boot_args(source: str, name: str, *, line_numbers: bool = True) -> tuple[str, ...]:
    """`-c BOOT MAGIC CODE SOURCE NAME`: what follows `python3 FLAGS` to run `source`.
    Without `line_numbers` the bytecode carries no line table (~45% smaller here): for a
    program whose tracebacks nobody reads (the supervisor reports its errors as text)."""
    text = without_docstrings(source)
    code = compile(text, name, "exec", dont_inherit=True)
    if not line_numbers:
        code = _without_line_numbers(code)
    magic = importlib.util.MAGIC_NUMBER.hex()
    return ("-c", BOOT, magic, _pack(marshal.dumps(code)), _pack(text.encode("utf-8")), name)


def python_argv(
    source: str,
    name: str,
    *,
    flags: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
    line_numbers: bool = True,
) -> list[str]:
    """The argv that runs `source` (a whole program) with the image's `python3`, `flags`
    before `-c` and `args` after it, as `python3 FLAGS -c SOURCE ARGS` would."""
    return ["python3", *flags, *boot_args(source, name, line_numbers=line_numbers), *args]
