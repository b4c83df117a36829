import pytest

from scripts.validate import run

PERSON = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


def test_valid_instance():
    out = run({"instance": {"name": "Ada", "age": 36}, "schema": PERSON})
    assert out == {"valid": True, "error_count": 0, "truncated": False, "draft": "2020-12", "errors": []}


def test_collects_all_errors_with_paths():
    out = run({"instance": {"age": -1, "tags": ["ok", 3], "extra": 1}, "schema": PERSON})
    assert out["valid"] is False
    assert out["error_count"] == 4
    by_keyword = {e["keyword"]: e for e in out["errors"]}
    assert by_keyword["required"]["path"] == ""
    assert by_keyword["required"]["message"] == "'name' is a required property"
    assert by_keyword["minimum"]["path"] == "/age"
    assert by_keyword["minimum"]["schema_path"] == "/properties/age/minimum"
    assert by_keyword["type"]["path"] == "/tags/1"
    assert by_keyword["type"]["path_parts"] == ["tags", 1]
    assert by_keyword["additionalProperties"]["message"].startswith("Additional properties are not allowed")
    # root errors first, then by path
    assert [e["path"] for e in out["errors"]] == ["", "", "/age", "/tags/1"]


def test_array_indices_sort_numerically():
    out = run({"instance": list(range(12)), "schema": {"items": {"type": "string"}}})
    assert [e["path_parts"][0] for e in out["errors"]] == list(range(12))


def test_pointer_escaping():
    out = run({"instance": {"a/b": {"c~d": "x"}}, "schema": {"properties": {"a/b": {"properties": {"c~d": {"type": "integer"}}}}}})
    assert out["errors"][0]["path"] == "/a~1b/c~0d"


def test_max_errors_truncates():
    out = run({"instance": [1, 2, 3, 4, 5], "schema": {"items": {"type": "string"}}, "max_errors": 2})
    assert out["valid"] is False
    assert out["error_count"] == 2 and out["truncated"] is True


def test_format_check_is_opt_in():
    schema = {"type": "string", "format": "ipv4"}
    assert run({"instance": "999.1.1.1", "schema": schema})["valid"] is True
    checked = run({"instance": "999.1.1.1", "schema": schema, "format_check": True})
    assert checked["valid"] is False and checked["errors"][0]["keyword"] == "format"


def test_draft_from_dollar_schema_and_explicit():
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "integer"}], "additionalItems": False}
    out = run({"instance": [1, 2], "schema": draft7})
    assert out["draft"] == "7"
    assert out["errors"][0]["keyword"] == "additionalItems"
    # draft 4: exclusiveMaximum is a boolean modifier
    d4 = {"maximum": 5, "exclusiveMaximum": True}
    assert run({"instance": 5, "schema": d4, "draft": "4"})["valid"] is False
    assert run({"instance": 4, "schema": d4, "draft": "4"})["draft"] == "4"
    # draft 3 is recognised from $schema even though it cannot be chosen explicitly
    d3 = {"$schema": "http://json-schema.org/draft-03/schema#", "type": "integer"}
    assert run({"instance": 1, "schema": d3})["draft"].startswith("http://json-schema.org/draft-03")


def test_local_refs_resolve():
    schema = {"$defs": {"pos": {"type": "integer", "minimum": 1}}, "type": "array", "items": {"$ref": "#/$defs/pos"}}
    out = run({"instance": [1, 0], "schema": schema})
    assert out["error_count"] == 1 and out["errors"][0]["path"] == "/1"


def test_boolean_schemas_and_null_instance():
    assert run({"instance": None, "schema": True})["valid"] is True
    out = run({"instance": None, "schema": False})
    assert out["valid"] is False and out["errors"][0]["keyword"] == "false"
    assert run({"instance": None, "schema": {"type": "null"}})["valid"] is True


@pytest.mark.parametrize(
    "params, message",
    [
        ({"instance": 1, "schema": {"type": "nope"}}, "invalid schema at /type"),
        ({"instance": 1, "schema": {"minimum": "x"}}, "invalid schema"),
        ({"instance": 1, "schema": {"$ref": "https://example.invalid/s.json"}}, "cannot resolve \\$ref"),
        ({"instance": 1, "schema": {"$ref": "#/$defs/missing"}}, "cannot resolve \\$ref"),
        ({"instance": 1, "schema": {"$schema": "https://example.com/my-dialect"}}, "unknown \\$schema"),
        ({"instance": 1, "schema": {}, "draft": "3"}, "unknown draft"),
        ({"instance": 1, "schema": []}, "JSON object or a boolean"),
        ({"schema": {}}, "required"),
        ({"instance": 1, "schema": {}, "max_errors": 0}, "positive integer"),
        ({"instance": 1, "schema": {}, "max_errors": True}, "positive integer"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
