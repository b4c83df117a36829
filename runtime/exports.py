"""Skills in other agents' formats: tool definitions for OpenAI, Anthropic and MCP, and
Agent Skills folders (https://agentskills.io/specification).

**Portable schemas.** The vendors accept a tool's input schema only under rules of their
own, and one tool that breaks them fails the whole request (HTTP 400):

- OpenAI function calling: ``parameters`` must have ``"type": "object"`` at the root and no
  ``anyOf``/``oneOf``/``allOf``/``enum``/``not`` (nor ``const``) at the top level; names
  match ``^[a-zA-Z0-9_-]{1,64}$``.
- Anthropic tool use: ``input_schema`` must be an object schema and does not support
  ``oneOf``/``allOf``/``anyOf`` at the top level; names match ``^[a-zA-Z0-9_-]{1,64}$``.
- MCP: a tool's ``inputSchema`` (and ``outputSchema``, if any) is a JSON Schema with
  ``"type": "object"``; names are 1-128 characters of ``A-Za-z0-9_-.``.

`portable_schema` meets all three at once, and says what it did (`PortableSchema.mode`):
``as_is``; ``flattened`` (the root is an object, but it carries top-level combinators: their
properties are merged into the root, the constraint they expressed is stated in the tool's
description, and the server still checks the full schema when the skill is called); or
``wrapped`` (the root is not an object, e.g. an array: the tool takes ``{"input": <the
schema>}``, and `call_input` unwraps the arguments). ``$schema`` is dropped everywhere
(some providers reject the keyword).

**Instructions-only skills** are read, never called: the exports offer them through one
``load_skill`` tool (`load_skill_tool`) whose ``name`` parameter lists them. Its caller
answers it with the skill's SKILL.md (``GET /v1/skills/NAME/skill.md``,
``SkillyardClient.skill_md``); the MCP server answers it itself.

The public names (`openai_tool`, `openai_tools`, `anthropic_tool`, `anthropic_tools`,
`mcp_tool`, `mcp_tools`, `tool_definitions`, `portable_schema`, `call_input`,
`load_skill_tool`) are what the HTTP API serves: keep them stable.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidInput, SkillError
from .package import load_package, validate_name
from .records import INSTRUCTIONS

if TYPE_CHECKING:
    from .package import SkillPackage
    from .records import SkillRecord
    from .yard import Yard

OPENAI_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
OPENAI_DESCRIPTION_MAX = 1024
# Top-level keywords the vendors refuse in a tool's input schema (OpenAI's list, the widest).
TOP_LEVEL_FORBIDDEN = ("anyOf", "oneOf", "allOf", "enum", "not", "const")
WRAP_KEY = "input"
LOAD_SKILL = "load_skill"  # underscore: no skill can be named so
Vendor = Literal["openai", "openai-chat", "anthropic", "mcp"]
VENDORS: tuple[str, ...] = ("openai", "openai-chat", "anthropic", "mcp")
Mode = Literal["as_is", "flattened", "wrapped"]
# Keys a combinator's branch may hold for it to be merged into the root.
_MERGEABLE = {"type", "properties", "required", "description", "title", "additionalProperties"}


@dataclass(frozen=True)
class PortableSchema:
    """A tool input schema every vendor accepts, how it was made (`mode`), and `note`: what
    the tool's description must add so the model knows what the schema no longer says."""

    schema: dict[str, Any]
    mode: Mode
    note: str = ""


def portable_schema(input_schema: dict[str, Any]) -> PortableSchema:
    """`input_schema` as an object-rooted schema with no top-level combinators (see the module
    docstring). Never changes its argument."""
    schema = {k: copy.deepcopy(v) for k, v in input_schema.items() if k != "$schema"}
    root_type = schema.get("type")
    if root_type is None and "properties" in schema:
        root_type = schema["type"] = "object"
    if root_type != "object":
        return _wrapped(schema)
    forbidden = [k for k in TOP_LEVEL_FORBIDDEN if k in schema]
    if not forbidden:
        return PortableSchema(schema, "as_is")
    flat = _flattened(schema, forbidden)
    return flat if flat is not None else _wrapped(schema)


def _wrapped(schema: dict[str, Any]) -> PortableSchema:
    wrapped = {
        "type": "object",
        "properties": {WRAP_KEY: schema},
        "required": [WRAP_KEY],
        "additionalProperties": False,
    }
    return PortableSchema(wrapped, "wrapped", f'Pass the whole input as "{WRAP_KEY}".')


def _flattened(schema: dict[str, Any], forbidden: list[str]) -> PortableSchema | None:
    """The object schema with its top-level combinators merged in and stated as text, or
    None when a branch is more than properties and required fields (then it is wrapped)."""
    root = {k: v for k, v in schema.items() if k not in forbidden}
    properties: dict[str, Any] = dict(root.get("properties") or {})
    required: list[str] = list(root.get("required") or [])
    rules: list[str] = []
    for key in forbidden:
        value = schema[key]
        if key in ("anyOf", "oneOf", "allOf"):
            if not isinstance(value, list) or not all(
                isinstance(b, dict) and set(b) <= _MERGEABLE and b.get("type", "object") == "object"
                for b in value
            ):
                return None
            for branch in value:
                for prop, sub in (branch.get("properties") or {}).items():
                    if prop in properties and properties[prop] != sub:
                        return None
                    properties[prop] = sub
            alternatives = [sorted(b.get("required") or []) for b in value]
            if key == "allOf":
                required += [r for alt in alternatives for r in alt if r not in required]
            elif any(alternatives):
                word = "exactly one" if key == "oneOf" else "at least one"
                choices = " or ".join("+".join(alt) if alt else "(none)" for alt in alternatives)
                rules.append(f"give {word} of: {choices}")
        else:
            rules.append(
                f"the input must also satisfy {key}: {json.dumps(value, separators=(',', ':'))[:200]}"
            )
    root["properties"] = properties
    if required:
        root["required"] = required
    note = f"Input rule: {'; '.join(rules)} (checked when the skill is called)." if rules else ""
    return PortableSchema(root, "flattened", note)


def call_input(input_schema: dict[str, Any], arguments: Any) -> Any:
    """A tool call's arguments as the skill's input: unwrapped from ``{"input": ...}`` when
    the tool's schema was wrapped; InvalidInput if they were not wrapped as it says."""
    if portable_schema(input_schema).mode != "wrapped":
        return arguments
    if not isinstance(arguments, dict) or set(arguments) != {WRAP_KEY}:
        raise InvalidInput(f'this tool takes its input as {{"{WRAP_KEY}": ...}}')
    return arguments[WRAP_KEY]


def tool_description(description: str, note: str, limit: int = OPENAI_DESCRIPTION_MAX) -> str:
    """The skill's description with `note` after it, cut to `limit` so the note survives."""
    if not note:
        return description[:limit]
    room = limit - len(note) - 1
    head = description if len(description) <= room else description[: max(room - 3, 0)] + "..."
    return f"{head} {note}"[:limit]


def _checked_name(name: str) -> str:
    if not OPENAI_NAME_RE.fullmatch(name):  # skill names always fit; a guard against future name rules
        raise ValueError(f"{name!r} is not a valid tool name for OpenAI, Anthropic and MCP")
    return name


# -- one package as a tool --------------------------------------------------------------------
def openai_tool(pkg: SkillPackage, style: Literal["responses", "chat"] = "responses") -> dict[str, Any]:
    """One package as an OpenAI function-calling tool (`style`: responses or chat)."""
    portable = portable_schema(pkg.config.input_schema)
    fn = {
        "name": _checked_name(pkg.name),
        "description": tool_description(pkg.description, portable.note),
        "parameters": portable.schema,
        # strict mode demands what skill schemas need not have (every property required, ...).
        "strict": False,
    }
    return {"type": "function", **fn} if style == "responses" else {"type": "function", "function": fn}


def anthropic_tool(pkg: SkillPackage) -> dict[str, Any]:
    """One package as an Anthropic Messages API tool."""
    portable = portable_schema(pkg.config.input_schema)
    return {
        "name": _checked_name(pkg.name),
        "description": tool_description(pkg.description, portable.note),
        "input_schema": portable.schema,
    }


def mcp_tool(pkg: SkillPackage, description: str | None = None) -> dict[str, Any]:
    """One package as an MCP tool (the SDK's field names: input_schema, output_schema). An
    output schema is given only when its root is an object, as MCP requires."""
    portable = portable_schema(pkg.config.input_schema)
    tool: dict[str, Any] = {
        "name": _checked_name(pkg.name),
        "description": tool_description(description or pkg.description, portable.note),
        "input_schema": portable.schema,
    }
    out = {k: v for k, v in pkg.config.output_schema.items() if k != "$schema"}
    if out.get("type") == "object" and not any(k in out for k in TOP_LEVEL_FORBIDDEN):
        tool["output_schema"] = out
    return tool


def load_skill_tool(
    records: list[SkillRecord], vendor: Vendor = "openai", *, catalog_chars: int = 4000
) -> dict[str, Any]:
    """The one tool through which instructions-only skills (`records`) are offered: it takes
    a skill `name` (one of theirs) and is answered with that skill's SKILL.md."""
    names = sorted(r.name for r in records)
    catalog, used = [], 0
    for rec in sorted(records, key=lambda r: r.name):
        line = f"{rec.name}: {rec.description}"
        if used + len(line) > catalog_chars:
            catalog.append(f"... and {len(names) - len(catalog)} more (search_skills finds them)")
            break
        catalog.append(line)
        used += len(line) + 1
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": names, "description": "\n".join(catalog)},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    description = (
        "Load the instructions of a skill (its SKILL.md) before doing a task it covers. These "
        "skills have no code: read them and follow them."
    )
    if vendor == "anthropic":
        return {"name": LOAD_SKILL, "description": description, "input_schema": schema}
    if vendor == "mcp":
        return {"name": LOAD_SKILL, "description": description, "input_schema": schema}
    fn = {"name": LOAD_SKILL, "description": description, "parameters": schema, "strict": False}
    return {"type": "function", "function": fn} if vendor == "openai-chat" else {"type": "function", **fn}


# -- a yard's skills as tools -----------------------------------------------------------------
def _tool_records(yard: Yard, names: list[str] | None) -> tuple[list[SkillPackage], list[SkillRecord]]:
    """(packages that become callable tools, instructions-only records for load_skill)."""
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
    callable_pkgs, readable = [], []
    for rec in recs:
        if rec.tier == INSTRUCTIONS:
            readable.append(rec)
            continue
        pkg = yard.package(rec.name, rec.version)
        if pkg.config.entrypoint:
            callable_pkgs.append(pkg)
        elif names is not None:
            raise SkillError(f"{rec.name} has no entrypoint in skillyard.yaml: it cannot be called as a tool")
    return callable_pkgs, readable


def tool_definitions(
    yard: Yard, vendor: Vendor = "openai", names: list[str] | None = None
) -> list[dict[str, Any]]:
    """The registered skills (all current ones, or `names`) as `vendor`'s tool definitions:
    one tool per callable skill, and one `load_skill` tool for the instructions-only ones."""
    if vendor not in VENDORS:
        raise ValueError(f"vendor must be one of {VENDORS}, not {vendor!r}")
    pkgs, readable = _tool_records(yard, names)
    if vendor == "anthropic":
        tools = [anthropic_tool(p) for p in pkgs]
    elif vendor == "mcp":
        tools = [mcp_tool(p) for p in pkgs]
    else:
        tools = [openai_tool(p, "chat" if vendor == "openai-chat" else "responses") for p in pkgs]
    if readable:
        tools.append(load_skill_tool(readable, vendor))
    return tools


def openai_tools(
    yard: Yard, names: list[str] | None = None, style: Literal["responses", "chat"] = "responses"
) -> list[dict[str, Any]]:
    """OpenAI function-calling definitions for registered skills (all current ones, or `names`)."""
    return tool_definitions(yard, "openai-chat" if style == "chat" else "openai", names)


def anthropic_tools(yard: Yard, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Anthropic tool definitions for registered skills (all current ones, or `names`)."""
    return tool_definitions(yard, "anthropic", names)


def mcp_tools(yard: Yard, names: list[str] | None = None) -> list[dict[str, Any]]:
    """MCP tool definitions for registered skills (all current ones, or `names`)."""
    return tool_definitions(yard, "mcp", names)


def export_agent_skill(yard: Yard, name: str, dest: str | Path, version: int | None = None) -> Path:
    """Write the skill as an Agent Skills folder DEST/NAME (SKILL.md with only spec frontmatter,
    scripts/, tests/, skillyard.yaml beside them) and check that it loads back as a valid package."""
    validate_name(name)
    target = yard.export(name, dest, version)
    load_package(target, yard.settings)  # raises PackageError if what we wrote is not a valid package
    return target


# -- one package in any agent's shape (GET /v1/tools) -----------------------------------------------------
ToolFormat = Vendor
TOOL_FORMATS = VENDORS


def tool_definition(pkg: SkillPackage, fmt: ToolFormat) -> dict[str, Any]:
    """One package as a tool in `fmt`: openai (Responses), openai-chat, anthropic or mcp."""
    if fmt == "openai":
        return openai_tool(pkg, "responses")
    if fmt == "openai-chat":
        return openai_tool(pkg, "chat")
    if fmt == "anthropic":
        return anthropic_tool(pkg)
    if fmt == "mcp":  # as tools/list puts it on the wire: camelCase
        tool = mcp_tool(pkg)
        renamed = {"input_schema": "inputSchema", "output_schema": "outputSchema"}
        return {renamed.get(k, k): v for k, v in tool.items()}
    raise ValueError(f"unknown tool format {fmt!r}: use one of {', '.join(TOOL_FORMATS)}")
