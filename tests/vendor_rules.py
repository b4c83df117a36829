"""Each vendor's rules for a tool definition, written from its documentation and from the
400 errors its API answers with, independent of runtime/exports.py (which must meet them).

- OpenAI function calling: a function's ``parameters`` "must have type 'object' and not have
  'oneOf'/'anyOf'/'allOf'/'enum'/'not' at the top level" (newer answers add 'const'); names
  match ``^[a-zA-Z0-9_-]{1,64}$``.
- Anthropic tool use: "input_schema does not support oneOf, allOf, or anyOf at the top
  level"; the schema is an object schema; names match ``^[a-zA-Z0-9_-]{1,64}$``.
- MCP (specification, Tool): ``inputSchema`` is a JSON Schema object whose ``type`` is
  ``"object"``; an ``outputSchema``, when given, too; names are 1-128 characters of
  ``A-Za-z0-9_-.``; schemas follow JSON Schema 2020-12 when they name no dialect.

A tool list breaks a rule if any tool does, or if two tools share a name.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ANTHROPIC_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MCP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
OPENAI_TOP_FORBIDDEN = ("oneOf", "anyOf", "allOf", "enum", "not", "const")
ANTHROPIC_TOP_FORBIDDEN = ("oneOf", "allOf", "anyOf")


def _schema_problems(schema: Any, where: str, forbidden: tuple[str, ...]) -> list[str]:
    if not isinstance(schema, dict):
        return [f"{where} is not a JSON object"]
    problems = []
    if schema.get("type") != "object":
        problems.append(f"{where} must have type 'object', has {schema.get('type')!r}")
    problems += [f"{where} has {key!r} at the top level" for key in forbidden if key in schema]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        problems.append(f"{where} is not a valid JSON Schema: {exc.message}")
    try:
        json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where} is not JSON: {exc}")
    return problems


def openai_problems(tool: dict[str, Any]) -> list[str]:
    """A Responses API (flat) or Chat Completions (nested) function tool's problems."""
    if tool.get("type") != "function":
        return ["type must be 'function'"]
    fn = tool["function"] if "function" in tool else tool
    problems = []
    if not isinstance(fn.get("name"), str) or not OPENAI_NAME.match(fn["name"]):
        problems.append(f"name {fn.get('name')!r} does not match {OPENAI_NAME.pattern}")
    if not isinstance(fn.get("description", ""), str):
        problems.append("description must be a string")
    if "$schema" in (fn.get("parameters") or {}):
        problems.append("parameters carry '$schema' (some providers refuse it)")
    return problems + _schema_problems(fn.get("parameters"), "parameters", OPENAI_TOP_FORBIDDEN)


def anthropic_problems(tool: dict[str, Any]) -> list[str]:
    """A Messages API custom tool's problems."""
    problems = []
    extra = set(tool) - {"name", "description", "input_schema", "type", "cache_control"}
    if extra:
        problems.append(f"unknown keys {sorted(extra)}")
    if not isinstance(tool.get("name"), str) or not ANTHROPIC_NAME.match(tool["name"]):
        problems.append(f"name {tool.get('name')!r} does not match {ANTHROPIC_NAME.pattern}")
    return problems + _schema_problems(tool.get("input_schema"), "input_schema", ANTHROPIC_TOP_FORBIDDEN)


def mcp_problems(tool: dict[str, Any]) -> list[str]:
    """An MCP tool's problems (the SDK's snake_case field names)."""
    problems = []
    if not isinstance(tool.get("name"), str) or not MCP_NAME.match(tool["name"]):
        problems.append(f"name {tool.get('name')!r} does not match {MCP_NAME.pattern}")
    problems += _schema_problems(tool.get("input_schema"), "inputSchema", ())
    if "output_schema" in tool:
        problems += _schema_problems(tool["output_schema"], "outputSchema", ())
    return problems


RULES = {
    "openai": openai_problems,
    "openai-chat": openai_problems,
    "anthropic": anthropic_problems,
    "mcp": mcp_problems,
}


def tool_list_problems(vendor: str, tools: list[dict[str, Any]]) -> list[str]:
    """Every problem of a tool list for `vendor` (one bad tool fails the whole request)."""
    problems = []
    names = []
    for i, tool in enumerate(tools):
        name = (tool.get("function") or tool).get("name")
        names.append(name)
        problems += [f"tools[{i}] ({name}): {p}" for p in RULES[vendor](tool)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"tool names used twice: {dupes}")
    return problems
