"""How the test gate runs a skill's commands besides the verdict pass.

The verdict pass runs a command exactly as production does (runtime/commands.py). Two
gate-only runs need the package's Python to be something else than its files:

- in a **mutant pass**, the mutated module's text must be what runs;
- in a **traced replay** (coverage, information only), the lines the command ran are wanted.

Both apply only to a Python program: a command whose resolved argv is `python[3] [FLAGS]
/skill/SCRIPT.py ARGS...` or `python[3] [FLAGS] -m MODULE ARGS...`. It then runs as
`python[3] [FLAGS] -c BOOTSTRAP ARGS...` (runtime/harness/command_boot.py), which installs
the mutant (the call runner's `install_sources`, and the same text for the file under any
import name) or a line tracer, and runs the script as `__main__` with the argv and
sys.path[0] `python SCRIPT` would give it. Its settings travel in a file outside the
working dir that the bootstrap removes before the skill's code runs. Any other program
(node, a shell script, pdftotext) runs unchanged: its mutants can only be the Python it
imports, and it has no coverage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .harness import command_boot_source

BOOT_FILE = "/tmp/.sy-boot.json"  # runtime/harness/command_boot.py reads and removes it
TRACE_FILE = "/tmp/.sy-trace.json"
PYTHON_RE = re.compile(r"python(3(\.\d+)?)?\Z")
FLAGS = {"-u", "-B", "-O", "-OO", "-s", "-E", "-I", "-b", "-bb", "-q", "-v", "-d", "-S", "-P"}
FLAGS_WITH_VALUE = {"-X", "-W"}


@dataclass
class PythonCommand:
    """A resolved argv read as `python FLAGS (SCRIPT | -m MODULE) ARGS`."""

    program: str
    flags: list[str]
    mode: str  # "path" or "module"
    target: str  # /skill/... script, or a module name
    args: list[str]


def python_command(argv: list[str], package_files: set[str]) -> PythonCommand | None:
    """`argv` as a Python command running the package's code, or None (any other program)."""
    if not argv or not PYTHON_RE.match(argv[0].rsplit("/", 1)[-1]):
        return None
    i, flags = 1, []
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-m", "-c", "-"):
        if argv[i] in FLAGS:
            flags.append(argv[i])
            i += 1
        elif argv[i] in FLAGS_WITH_VALUE and i + 1 < len(argv):
            flags += argv[i : i + 2]
            i += 2
        else:
            return None  # an option we do not know how to carry over
    if i >= len(argv):
        return None
    if argv[i] == "-m" and i + 1 < len(argv):
        module = argv[i + 1]
        if (
            module.replace(".", "/") + ".py" not in package_files
            and module.replace(".", "/") + ("/__main__.py") not in package_files
        ):
            return None
        return PythonCommand(argv[0], flags, "module", module, argv[i + 2 :])
    script = argv[i]
    if not script.startswith("/skill/") or script[len("/skill/") :] not in package_files:
        return None
    return PythonCommand(argv[0], flags, "path", script, argv[i + 1 :])


def bootstrap(
    command: PythonCommand, *, sources: dict[str, str] | None = None, trace: bool = False
) -> tuple[list[str], dict[str, bytes]]:
    """(argv, extra files) running `command` through the bootstrap with `sources` replacing
    package files and/or a line tracer writing TRACE_FILE."""
    settings = {
        "mode": command.mode,
        "target": command.target,
        "sources": sources or {},
        "trace_out": TRACE_FILE if trace else None,
    }
    argv = [command.program, *command.flags, "-c", command_boot_source(), *command.args]
    return argv, {BOOT_FILE: json.dumps(settings).encode()}
