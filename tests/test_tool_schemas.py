"""Every bundled skill's tool definition is valid by each vendor's rules (tests/vendor_rules.py,
written from the vendors' documentation), not only by the SDKs' types: one bad tool fails a
whole request with an HTTP 400. Schemas the vendors refuse are flattened or wrapped, and the
description says which; a wrapped call's arguments are unwrapped on the way in."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from runtime.errors import InvalidInput
from runtime.exports import (
    LOAD_SKILL,
    VENDORS,
    anthropic_tool,
    call_input,
    mcp_tool,
    openai_tool,
    portable_schema,
    tool_definitions,
)
from runtime.package import load_package, package_from_files
from runtime.testing import PrebuiltImages, register
from runtime.yard import Yard
from sandbox import Sandbox
from sandbox.testing import ScriptedBackend
from tests.vendor_rules import anthropic_problems, mcp_problems, openai_problems, tool_list_problems

SKILLS = Path(__file__).resolve().parent.parent / "skills"
BUNDLED = sorted(p.name for p in SKILLS.iterdir() if (p / "SKILL.md").is_file())


@pytest.fixture(scope="module")
def yard(tmp_path_factory):
    """Every bundled skill in the store: the code ones as if their gates had passed, the
    instructions-only ones as `add` registers them (no build, no gate)."""
    from runtime.config import Settings

    settings = Settings(home=tmp_path_factory.mktemp("schemas") / "home")
    y = Yard(settings, sandbox=Sandbox(ScriptedBackend()), images=PrebuiltImages(), pool=False)
    for name in BUNDLED:
        pkg = load_package(SKILLS / name, settings)
        if pkg.has_code:
            register(y, pkg.files)
        else:
            assert y.add(SKILLS / name).tier == "instructions"
    yield y
    y.close()


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_bundled_skill_exports_valid_by_the_vendors_rules(yard, vendor):
    tools = tool_definitions(yard, vendor)
    assert tool_list_problems(vendor, tools) == []
    names = [(t.get("function") or t)["name"] for t in tools]
    callable_names = {n for n in BUNDLED if load_package(SKILLS / n).config.entrypoint}
    callable_names.discard("broken-median")  # registered here as if it passed: it is callable too
    assert callable_names <= set(names)
    assert LOAD_SKILL in names  # the instructions-only skills are offered to read


def test_the_sdk_types_accept_them_too(yard):
    import mcp.types as types
    from openai.types.chat import ChatCompletionFunctionToolParam
    from openai.types.responses import FunctionToolParam
    from pydantic import TypeAdapter

    for tool in tool_definitions(yard, "openai"):
        TypeAdapter(FunctionToolParam).validate_python(tool)
    for tool in tool_definitions(yard, "openai-chat"):
        TypeAdapter(ChatCompletionFunctionToolParam).validate_python(tool)
    for tool in tool_definitions(yard, "mcp"):
        types.Tool(**tool)


def test_markdown_table_is_flattened_and_says_so(yard):
    pkg = load_package(SKILLS / "markdown-table")
    assert "anyOf" in pkg.config.input_schema  # the skill's own schema keeps its rule
    tool = openai_tool(pkg)
    assert openai_problems(tool) == [] and anthropic_problems(anthropic_tool(pkg)) == []
    assert "anyOf" not in tool["parameters"] and "$schema" not in tool["parameters"]
    assert "give at least one of: rows or markdown" in tool["description"]
    assert set(tool["parameters"]["properties"]) == set(pkg.config.input_schema["properties"])
    # The flattened schema takes every input the original takes: nothing valid is refused.
    for good in ({"rows": [{"a": 1}]}, {"markdown": "|a|\n|-|\n|1|", "mode": "parse"}):
        jsonschema.validate(good, pkg.config.input_schema)
        jsonschema.validate(good, tool["parameters"])


def sidecar_package(schema: dict, name: str = "shape") -> object:
    files = {
        "SKILL.md": f"---\nname: {name}\ndescription: A skill of some shape.\n---\n# {name}\n".encode(),
        "skillyard.yaml": yaml.safe_dump(
            {"entrypoint": "scripts/main.py:run", "input_schema": schema}
        ).encode(),
        "scripts/main.py": b"def run(params):\n    return params\n",
    }
    return package_from_files(name, files)


SHAPES = {
    "array-root": ({"type": "array", "items": {"type": "number"}}, "wrapped"),
    "string-root": ({"type": "string", "maxLength": 10}, "wrapped"),
    "no-type-anyof": ({"anyOf": [{"type": "string"}, {"type": "number"}]}, "wrapped"),
    "object-oneof-required": (
        {
            "type": "object",
            "properties": {"url": {"type": "string"}, "path": {"type": "string"}},
            "oneOf": [{"required": ["url"]}, {"required": ["path"]}],
        },
        "flattened",
    ),
    "object-allof-branches": (
        {
            "type": "object",
            "allOf": [
                {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer"}}},
            ],
        },
        "flattened",
    ),
    "object-enum": ({"type": "object", "enum": [{"a": 1}]}, "flattened"),
    "object-conflicting-branches": (
        {
            "type": "object",
            "anyOf": [
                {"properties": {"a": {"type": "integer"}}},
                {"properties": {"a": {"type": "string"}}},
            ],
        },
        "wrapped",
    ),
    "properties-without-type": ({"properties": {"x": {"type": "integer"}}}, "as_is"),
    "plain-object": ({"type": "object", "properties": {"x": {"type": "integer"}}}, "as_is"),
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_each_shape_becomes_portable(shape):
    schema, mode = SHAPES[shape]
    pkg = sidecar_package(schema)
    portable = portable_schema(pkg.config.input_schema)
    assert portable.mode == mode
    assert openai_problems(openai_tool(pkg)) == []
    assert openai_problems(openai_tool(pkg, "chat")) == []
    assert anthropic_problems(anthropic_tool(pkg)) == []
    assert mcp_problems(mcp_tool(pkg)) == []
    if mode == "wrapped":
        assert 'Pass the whole input as "input"' in openai_tool(pkg)["description"]
        assert call_input(pkg.config.input_schema, {"input": [1, 2]}) == [1, 2]
        with pytest.raises(InvalidInput, match='"input"'):
            call_input(pkg.config.input_schema, [1, 2])
    else:
        assert call_input(pkg.config.input_schema, {"x": 1}) == {"x": 1}


def test_the_rules_catch_what_the_vendors_refuse():
    """The checker can fail: the raw shapes the issue reported are refused by it."""
    array_root = {"type": "function", "name": "t", "parameters": {"type": "array"}}
    top_anyof = {"type": "function", "name": "t", "parameters": {"type": "object", "anyOf": [{}]}}
    assert openai_problems(array_root) and openai_problems(top_anyof)
    assert anthropic_problems({"name": "t", "input_schema": {"type": "object", "oneOf": [{}]}})
    assert anthropic_problems({"name": "bad name", "input_schema": {"type": "object"}})
    assert mcp_problems({"name": "t", "input_schema": {"type": "array"}})
    assert mcp_problems({"name": "t", "input_schema": {"type": "object"}, "output_schema": {"oneOf": []}})
    ok = {"type": "function", "name": "t", "parameters": {"type": "object"}}
    assert tool_list_problems("openai", [ok, ok]) == ["tool names used twice: ['t']"]


def test_a_long_description_keeps_its_note():
    pkg = sidecar_package({"type": "array"})
    pkg.meta = pkg.meta.model_copy(update={"description": "d" * 1024})
    description = openai_tool(pkg)["description"]
    assert len(description) <= 1024 and description.endswith('Pass the whole input as "input".')
