"""Skills as OpenAI function-calling tools and as Agent Skills folders. Real LanceDB; no
engine: exports read the store, and the skills are registered as their gates would decide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jsonschema
import pytest

from runtime.config import Settings
from runtime.errors import SkillError, UnknownSkill
from runtime.exports import export_agent_skill, openai_tools
from runtime.package import Frontmatter, load_package, parse_skill_md
from runtime.records import GateSummary
from runtime.testing import PrebuiltImages, register
from runtime.yard import Yard
from sandbox import Sandbox
from sandbox.testing import ScriptedBackend
from tests.conftest import ROOT, WHEELHOUSE, write_skill

INPUT_SCHEMA = {
    "type": "object",
    "properties": {"numbers": {"type": "array", "items": {"type": "number"}, "minItems": 1}},
    "required": ["numbers"],
}
SCRIPT = textwrap.dedent("""
    def run(params):
        nums = params["numbers"]
        return {"sum": sum(nums), "mean": sum(nums) / len(nums)}
""")
TESTS = textwrap.dedent("""
    from scripts.main import run

    def test_run():
        assert run({"numbers": [1, 2, 3]}) == {"sum": 6, "mean": 2.0}
""")


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """num-sum (its test passes) and num-broken (its test is wrong)."""
    root = tmp_path_factory.mktemp("exports-src")
    write_skill(
        root,
        "num-sum",
        script=SCRIPT,
        tests={"test_main.py": TESTS},
        sidecar="entrypoint: scripts/main.py:run\ninput_schema: " + json.dumps(INPUT_SCHEMA) + "\n",
        description="Sum and mean of a list of numbers. Use for quick arithmetic on lists.",
    )
    write_skill(
        root,
        "num-broken",
        script=SCRIPT,
        tests={"test_main.py": TESTS.replace("6", "7")},
        description="Always blocked because its test is wrong.",
    )
    return root


@pytest.fixture(scope="module")
def yard(tmp_path_factory, src):
    """The two skills in a store, as their gates decided (exports read the store; nothing runs)."""
    home = tmp_path_factory.mktemp("exports") / "home"
    y = Yard(
        Settings(home=home, wheelhouse=WHEELHOUSE),
        sandbox=Sandbox(ScriptedBackend()),
        images=PrebuiltImages(),
    )
    register(y, load_package(src / "num-sum").files)
    register(
        y,
        load_package(src / "num-broken").files,
        gate=GateSummary(False, 1, 1, 0, 0, 100.0, 0.1, ["1 failed"]),
    )
    yield y
    y.close()


def test_openai_tool_definitions_validate(yard):
    from openai.types.chat import ChatCompletionFunctionToolParam
    from openai.types.responses import FunctionToolParam
    from pydantic import TypeAdapter

    tools = openai_tools(yard)
    assert [t["name"] for t in tools] == ["num-sum"]  # the blocked skill is not offered
    tool = tools[0]
    assert tool == {
        "type": "function",
        "name": "num-sum",
        "strict": False,
        "parameters": INPUT_SCHEMA,
        "description": "Sum and mean of a list of numbers. Use for quick arithmetic on lists.",
    }
    TypeAdapter(FunctionToolParam).validate_python(tool)
    assert set(tool) <= set(FunctionToolParam.__annotations__)
    jsonschema.Draft202012Validator.check_schema(tool["parameters"])
    jsonschema.validate({"numbers": [1.5, 2]}, tool["parameters"])
    assert json.loads(json.dumps(tools)) == tools

    chat = openai_tools(yard, ["num-sum"], style="chat")
    TypeAdapter(ChatCompletionFunctionToolParam).validate_python(chat[0])
    assert chat[0]["type"] == "function" and chat[0]["function"]["parameters"] == INPUT_SCHEMA
    assert chat[0]["function"]["strict"] is False


def test_openai_tools_refuse_what_cannot_be_called(yard):
    with pytest.raises(SkillError, match="blocked"):
        openai_tools(yard, ["num-broken"])
    with pytest.raises(UnknownSkill, match="no skill"):
        openai_tools(yard, ["num-missing"])
    with pytest.raises(ValueError, match="invalid skill name"):
        openai_tools(yard, ["../num-sum"])


def test_exported_folder_is_a_valid_agent_skill(yard, src, tmp_path):
    target = export_agent_skill(yard, "num-sum", tmp_path / "out")
    assert target == tmp_path / "out" / "num-sum" and (target / "SKILL.md").is_file()
    exported = load_package(target)
    original = load_package(src / "num-sum")
    assert exported.content_hash == original.content_hash and exported.files == original.files
    front, body = parse_skill_md((target / "SKILL.md").read_text())
    Frontmatter.model_validate(front)  # only the spec's keys (extra keys are an error)
    assert set(front) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    assert front["name"] == target.name and body.strip()
    with pytest.raises(SkillError, match="not empty"):
        export_agent_skill(yard, "num-sum", tmp_path / "out")


def test_tools_command_prints_the_definitions(yard):
    env = {
        **os.environ,
        "SKILLYARD_HOME": str(yard.settings.home),
        "SKILLYARD_WHEELHOUSE": str(WHEELHOUSE),
    }
    out = subprocess.run(
        [sys.executable, "-m", "runtime", "tools", "--format", "openai"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == openai_tools(yard)
    out = subprocess.run(
        [sys.executable, "-m", "runtime", "tools", "num-broken"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode != 0 and "blocked" in out.stderr and "Traceback" not in out.stderr


def test_openai_parameters_drop_the_schema_keyword():
    """Some providers reject "$schema" in a function's parameters: the export leaves it out (and
    leaves the skill's own schema untouched)."""
    from openai.types.responses import FunctionToolParam
    from pydantic import TypeAdapter

    from runtime.exports import openai_tool
    from runtime.package import package_from_files

    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **INPUT_SCHEMA}
    pkg = package_from_files(
        "num-schema",
        {
            "SKILL.md": b"---\nname: num-schema\ndescription: Sum numbers.\n---\n# num-schema\n",
            "scripts/main.py": SCRIPT.encode(),
            "skillyard.yaml": (
                "entrypoint: scripts/main.py:run\ninput_schema: " + json.dumps(schema) + "\n"
            ).encode(),
        },
    )
    for style in ("responses", "chat"):
        tool = openai_tool(pkg, style)  # type: ignore[arg-type]
        params = tool["parameters"] if style == "responses" else tool["function"]["parameters"]
        assert "$schema" not in params and params == INPUT_SCHEMA
    TypeAdapter(FunctionToolParam).validate_python(openai_tool(pkg))
    assert pkg.config.input_schema == schema
