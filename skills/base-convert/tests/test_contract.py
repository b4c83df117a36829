"""Contract tests: skillyard.yaml is well formed and run() honours its schemas."""
import importlib
import json
import pathlib
import re

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

from scripts.baseconv import run  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "skillyard.yaml").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator

# Extra successful inputs, beyond the examples in skillyard.yaml.
EXTRA_INPUTS = [
    {"value": "ff", "from_base": 16, "signed": True, "width": 8},
    {"value": 0, "to_bases": [36], "group": 2, "uppercase": True},
    {"value": "-0b1010", "width": 16},
]


def test_schemas_are_valid_draft_2020_12():
    VALIDATOR.check_schema(CONFIG["input_schema"])
    VALIDATOR.check_schema(CONFIG["output_schema"])


def test_entrypoint_points_at_run():
    path, func = CONFIG["entrypoint"].split(":")
    assert path == "scripts/baseconv.py"  # the code lives in the callee, not beside the tests
    module = importlib.import_module(path[:-3].replace("/", "."))
    assert getattr(module, func) is run


def test_skill_md_frontmatter():
    # (the folder is mounted as /skill in the sandbox, so the name is not compared with it here)
    text = (ROOT / "SKILL.md").read_text(encoding="utf-8")
    front = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", text, re.S).group(1))
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", front["name"]) and len(front["name"]) <= 64
    assert 1 <= len(front["description"]) <= 1024
    assert set(front) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}


@pytest.mark.parametrize("params", [ex["input"] for ex in CONFIG["examples"]] + EXTRA_INPUTS)
def test_output_matches_output_schema(params):
    VALIDATOR(CONFIG["input_schema"]).validate(params)
    result = run(json.loads(json.dumps(params)))
    VALIDATOR(CONFIG["output_schema"]).validate(result)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
