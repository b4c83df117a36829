"""Skills in other agents' formats: OpenAI function-calling tool definitions, and Agent
Skills folders (https://agentskills.io/specification).

``openai_tools`` gives the Responses API shape by default (``{"type": "function", "name",
"description", "parameters", "strict": false}``) and the Chat Completions shape (the same
inside ``"function"``) with ``style="chat"``. ``parameters`` is the skill's input_schema
without its top-level ``$schema`` (some providers reject the keyword); ``strict`` is false
because strict mode demands schema features (every property required, no additional
properties) that skill schemas need not have.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .package import load_package, validate_name

if TYPE_CHECKING:
    from .package import SkillPackage
    from .yard import Yard

OPENAI_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
OPENAI_DESCRIPTION_MAX = 1024


def _callable_packages(yard: Yard, names: list[str] | None) -> list[SkillPackage]:
    from .errors import SkillError

    if names is None:
        recs = [r for r in yard.list("registered") if r.current]
    else:
        recs = []
        for name in names:
            validate_name(name)
            rec = yard.resolve(name)  # a name a merge retired stands for the skill that absorbed it
            if rec.status != "registered":
                raise SkillError(
                    f"{name} v{rec.version} is {rec.status}: only registered skills become tools"
                )
            recs.append(rec)
    pkgs = []
    for rec in recs:
        pkg = yard.package(rec.name, rec.version)
        if pkg.config.entrypoint:
            pkgs.append(pkg)
        elif names is not None:
            raise SkillError(f"{rec.name} has no entrypoint in skillyard.yaml: it cannot be called as a tool")
    return pkgs


def openai_tool(pkg: SkillPackage, style: Literal["responses", "chat"] = "responses") -> dict[str, Any]:
    """One package as an OpenAI function-calling tool (`style`: responses or chat)."""
    if not OPENAI_NAME_RE.fullmatch(pkg.name):  # skill names always fit; a guard against future name rules
        raise ValueError(f"{pkg.name!r} is not a valid OpenAI function name")
    # "$schema" names the dialect for validators; function-calling APIs do not want it (some reject it).
    params = {k: v for k, v in pkg.config.input_schema.items() if k != "$schema"}
    fn = {
        "name": pkg.name,
        "description": pkg.description[:OPENAI_DESCRIPTION_MAX],
        "parameters": params,
        "strict": False,
    }
    return {"type": "function", **fn} if style == "responses" else {"type": "function", "function": fn}


def openai_tools(
    yard: Yard, names: list[str] | None = None, style: Literal["responses", "chat"] = "responses"
) -> list[dict[str, Any]]:
    """OpenAI function-calling definitions for registered skills (all current ones, or `names`)."""
    return [openai_tool(pkg, style) for pkg in _callable_packages(yard, names)]


def export_agent_skill(yard: Yard, name: str, dest: str | Path, version: int | None = None) -> Path:
    """Write the skill as an Agent Skills folder DEST/NAME (SKILL.md with only spec frontmatter,
    scripts/, tests/, skillyard.yaml beside them) and check that it loads back as a valid package."""
    validate_name(name)
    target = yard.export(name, dest, version)
    load_package(target, yard.settings)  # raises PackageError if what we wrote is not a valid package
    return target
