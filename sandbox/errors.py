"""The root of skillyard's one exception tree, and the sandbox's branch of it.

Every error skillyard raises on purpose is a :class:`SkillyardError`. Its ``kind`` is a
short, stable name (``sandbox``, ``not_found``, ``package``, ...) that each surface maps
once, in one place: the CLI to an exit code and one line on stderr, the HTTP API to a
status and a JSON body, the MCP server to an error result, the audit trail to its
``error`` field. The message says what went wrong and what to do next; it is written for
the person who can act on it and never carries a traceback.

The root lives here, at the bottom of the import graph, so that the sandbox's errors are
part of the same tree while imports still run one way (runtime -> sandbox). The runtime's
branches are in ``runtime/errors.py``.
"""

from __future__ import annotations

from typing import ClassVar


class SkillyardError(Exception):
    """An error skillyard raised on purpose; anything else reaching a surface is a bug.

    Invariant: ``kind`` is a class attribute, never derived from the message, so the
    surfaces and the audit trail can name an error without quoting it (messages may
    quote inputs)."""

    kind: ClassVar[str] = "internal"


class SandboxError(SkillyardError):
    """The sandbox itself failed (engine unreachable, image missing): not the program's fault.

    The message says what to do next."""

    kind = "sandbox"


class ImageMissing(SandboxError):
    """The image to run is not on the engine (never built, or removed since)."""


class WheelMissing(SkillyardError):
    """A requirement has no wheel to install: not in the wheelhouse, and the package index
    could not supply one (unreachable, no such package or version, no Linux CPython 3.11
    wheel). Names the package; nothing was built. Not an engine failure: the operator adds
    the wheel (`skillyard wheelhouse add REQ`) or the skill changes its requirements."""

    kind = "dependency"

    def __init__(self, package: str, message: str) -> None:
        super().__init__(message)
        self.package = package


class ClusterUnavailable(SandboxError):
    """The cluster cannot take work now: its head is unreachable, or no node offers the
    ``skillyard`` resource. The message names the address, since when, and what to do;
    work resumes by itself once the cluster is back."""
