"""The values that cross the sandbox boundary: plain data in, the same plain data out, nothing else."""

from __future__ import annotations

import json
import math

import pytest

from runtime.harness.datacodec import TAG, Uncarriable, decode, encode

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    10**40,
    1.5,
    -0.0,
    1e-300,
    "",
    "caf\u00e9 \U0001f600 \x00",
    [],
    {},
    (1, 2),
    ((1, (2, 3)), []),
    b"\x00\xffbytes",
    bytearray(b"ab"),
    {1, 2},
    frozenset({"a"}),
    1 + 2j,
    {1: "one", None: 0, (1, 2): "pair", 2.5: [1]},
    {TAG: "looks like a tag", "v": 1},
    {"nested": [{"t": (1, {"s": {3}})}]},
    [float("inf"), float("-inf")],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_round_trip_through_json(value):
    wire = json.loads(json.dumps(encode(value), allow_nan=False))
    back = decode(wire)
    expected = bytes(value) if isinstance(value, bytearray) else value
    assert back == expected and type(back) is type(expected)


def test_nan_crosses_as_nan():
    assert math.isnan(decode(json.loads(json.dumps(encode(float("nan"))))))


def test_plain_json_travels_as_it_is():
    doc = {"a": [1, 2.5, "x", None, True], "b": {"c": {}}}
    assert encode(doc) == doc and decode(doc) == doc


class Always:
    def __eq__(self, other):
        return True


class SneakyStr(str):
    def __eq__(self, other):
        return True

    def __str__(self):
        return "forged"

    def __iter__(self):
        return iter("forged")


class SneakyList(list):
    def __iter__(self):
        return iter([1, 2, 3])


def test_objects_cannot_cross():
    with pytest.raises(Uncarriable, match="Always"):
        encode(Always())
    with pytest.raises(Uncarriable):
        encode({"x": [object()]})
    with pytest.raises(Uncarriable):
        encode(lambda: 1)


def test_subclasses_cross_as_their_base_data():
    value = decode(json.loads(json.dumps(encode(SneakyStr("real")))))
    assert type(value) is str and value == "real" and value != "anything else"
    assert decode(encode(SneakyList([7]))) == [7]


def test_circular_and_deep_values_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(Uncarriable, match="deeper"):
        encode(loop)
    deep: list = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(Uncarriable, match="deeper"):
        encode(deep)


@pytest.mark.parametrize(
    "wire",
    [
        {TAG: "tuple"},
        {TAG: "tuple", "v": 1},
        {TAG: "evil", "v": []},
        {TAG: "bytes", "v": "%%%"},
        {TAG: "set", "v": [[1]]},
        {TAG: "dict", "v": [[1]]},
        {TAG: "float", "v": "1e999"},
        {TAG: "tuple", "v": [], "x": 1},
        {TAG: "complex", "v": ["a", 1]},
    ],
)
def test_malformed_wire_values_are_refused(wire):
    with pytest.raises(ValueError):
        decode(wire)


def test_decoding_builds_only_builtin_types():
    wire = encode({"a": (1, b"x", {2}, frozenset(), 1j, {3: 4})})
    allowed = {type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset}
    stack = [decode(wire)]
    while stack:
        item = stack.pop()
        assert type(item) in allowed
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
