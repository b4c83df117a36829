"""The in-container call runner: its JSON codec (CPython's _json, without the json module),
and real calls that carry awkward values through it, in production and from the gate."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from typing import Any

import pytest

from runtime.harness import call_runner_source
from tests.conftest import write_skill


def _runner_namespace() -> dict[str, Any]:
    source = call_runner_source().replace('if __name__ == "__main__":', "if False:")
    namespace: dict[str, Any] = {"__name__": "call_runner_under_test"}
    exec(compile(source, "call_runner.py", "exec"), namespace)
    return namespace


DOCS = [
    "{}",
    "[]",
    "  [1, 2, 3]\n",
    '"x"',
    "1e400",
    "-0.0",
    "123456789012345678901234567890",
    "NaN",
    "-Infinity",
    '{"a": {"b": [true, false, null]}}',
    '"\\ud83d\\ude00 \\u00e9 caf\u00e9"',
    '{"a": 1, "a": 2}',
    "0.1",
    "[1,]",
    "",
    "   ",
    "1 2",
    '{"a" 1}',
    "[",
    '"\\x"',
    "nul",
    "01",
]
VALUES = [
    {"a": [1, 2.5, "\u00e9\u4e2d\U0001f600", None]},
    {1: 2, None: 3, True: 4, 2.5: 5},  # noqa: F601 - True is 1: the dict json.dumps sees
    10**40,
    -0.0,
    "",
    [[[]]],
    {"nested": {"deep": [{"k": "v"}]}},
    1e-300,
    '\x00\x1f"\\/',
]
UNENCODABLE = [float("nan"), float("inf"), {1, 2}, object(), {(1, 2): 3}, b"bytes"]


def test_the_accelerator_is_used_and_decodes_like_json() -> None:
    loads, _ = _runner_namespace()["json_codec"]()
    assert loads is not json.loads  # the fast path, not the fallback
    for doc in DOCS:
        try:
            expected = ("ok", repr(json.loads(doc)))
        except ValueError:
            expected = ("error", None)
        try:
            got = ("ok", repr(loads(doc)))
        except ValueError:
            got = ("error", None)
        assert got == expected, doc


def test_the_accelerator_encodes_like_json_without_nan() -> None:
    _, dumps = _runner_namespace()["json_codec"]()
    for value in VALUES:
        assert dumps(value) == json.dumps(value, separators=(",", ":"), allow_nan=False)
    for value in UNENCODABLE:
        with pytest.raises((TypeError, ValueError)):
            dumps(value)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        dumps(loop)


def test_without_the_accelerator_the_json_module_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "_json", None)  # import _json now raises ImportError
    loads, dumps = _runner_namespace()["json_codec"]()
    assert loads is json.loads
    assert dumps({"a": 1}) == '{"a": 1}'
    with pytest.raises(ValueError):
        dumps(float("nan"))


ECHO = textwrap.dedent("""
    import math

    def run(params):
        mode = params.get("mode")
        if mode == "nan":
            return {"value": math.nan}
        if mode == "loop":
            loop = []
            loop.append(loop)
            return {"value": loop}
        if mode == "deep":
            value = []
            for _ in range(100000):
                value = [value]
            return {"value": value}
        return {"echo": params}
""")
ECHO_TESTS = textwrap.dedent("""
    import math
    import pytest
    from scripts.main import run

    def test_modes():
        assert run({"x": 1}) == {"echo": {"x": 1}}
        assert run({"x": 2}) != {"echo": {"x": 1}}
        assert math.isnan(run({"mode": "nan"})["value"])  # a NaN crosses to the judge as a NaN
        with pytest.raises(Exception, match="cannot be carried|nested deeper"):
            run({"mode": "loop"})
        with pytest.raises(Exception, match="nested deeper"):
            run({"mode": "deep"})
""")


@pytest.fixture
def echo(yard, tmp_path):
    folder = write_skill(
        tmp_path,
        "echo-values",
        script=ECHO,
        tests={"test_main.py": ECHO_TESTS},
        sidecar="entrypoint: scripts/main.py:run\n",
    )
    outcome = yard.add(folder)
    assert outcome.status == "registered", outcome.reasons
    return "echo-values"


def test_awkward_values_cross_a_real_call_exactly(yard, echo) -> None:
    params = {
        "text": 'caf\u00e9 \u4e2d \U0001f600 \x00 "q" \\',
        "big": 10**40,
        "neg0": -0.0,
        "tiny": 1e-300,
        "nested": {"a": [[], {}, [None, True, False]]},
        "empty": "",
    }
    result = yard.run(echo, params)
    assert result.ok, result.error
    assert result.output == {"echo": params}
    assert math.copysign(1.0, result.output["echo"]["neg0"]) == -1.0


@pytest.mark.parametrize("mode", ["nan", "loop", "deep"])
def test_unencodable_output_is_a_bad_output_error(yard, echo, mode) -> None:
    result = yard.run(echo, {"mode": mode})
    assert not result.ok
    assert result.error.kind == "bad_output", result.error
    assert (
        "JSON" in result.error.message
        or "carried" in result.error.message
        or "nested" in result.error.message
    )
