"""Programs that run inside containers (standard library only), and how the host reads them.

The files here are never imported by the host to run skill code: they are sent into
containers as text. `datacodec` is the exception: the host imports it too, so that a
value means the same on both sides of the sandbox boundary.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.lru_cache(maxsize=16)
def harness_source(name: str) -> str:
    """One harness file's text."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def call_runner_source() -> str:
    """The call runner as one `python3 -c` program: the value codec, the sandbox's fork-server
    loop, then the runner."""
    fork_server = resources.files("sandbox").joinpath("forkserver.py").read_text(encoding="utf-8")
    return "\n\n".join([harness_source("datacodec.py"), fork_server, harness_source("call_runner.py")])


@functools.lru_cache(maxsize=1)
def command_boot_source() -> str:
    """The gate's bootstrap for Python commands (command_boot.py) as one `python3 -c` program,
    after the call runner's own `install_sources` (the same source override a mutant call
    gets), taken from call_runner.py's text."""
    import ast

    runner = harness_source("call_runner.py")
    tree = ast.parse(runner)
    install = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "install_sources"
    )
    segment = ast.get_source_segment(runner, install)
    header = 'import os\nimport sys\n\nSKILL_ROOT = "/skill"\n'
    return "\n\n".join([header, segment or "", harness_source("command_boot.py")])
