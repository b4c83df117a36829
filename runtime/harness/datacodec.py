"""The values that cross the sandbox boundary: plain data, never objects (stdlib only).

One small format, used by the host, the judge (the test process) and the callee (the
skill's process), so that a value means the same on every side of the boundary:

- JSON's own values (null, booleans, integers, finite floats, strings, lists, objects
  with string keys) travel as they are;
- a few more Python types travel as a tagged object `{"$sy": TAG, "v": ...}`:
  tuple, bytes (base64), set, frozenset, complex, the non-finite floats, and dicts
  whose keys are not all strings (or that hold the key "$sy" themselves);
- anything else cannot cross: `encode` raises `Uncarriable` naming the type.

Invariants (the gate's threat model relies on them):
- `decode` builds only builtin values: None, bool, int, float, complex, str, bytes,
  list, tuple, dict, set, frozenset. No class of the sender is ever instantiated, and
  nothing is unpickled, so a callee cannot hand the judge an object whose `__eq__` is
  always true, or code of any kind.
- Subclasses of builtin types are sent as their base type's data, read through the
  base type's own slots, so an overridden `__iter__`/`__str__` changes nothing.
- Depth and size are bounded by the caller (json's own recursion limit ends deep input
  with RecursionError, which callers turn into a clear error).

Must stay standard-library only and importable without side effects: the call runner
concatenates this file in front of its own source.
"""

# binascii, not base64: base64 imports re and enum (~5 ms of a fresh call process's start).
import binascii as _binascii

TAG = "$sy"
MAX_DEPTH = 200


class Uncarriable(TypeError):
    """A value of a type that cannot cross the sandbox boundary."""


def encode(value, _depth=0):
    """The wire form of `value` (a JSON-serialisable structure)."""
    if _depth > MAX_DEPTH:
        raise Uncarriable(f"value is nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is float:
        return _float(value)
    if kind is list:
        return [encode(item, _depth + 1) for item in value]
    if kind is dict:
        return _dict(value, _depth)
    if kind is tuple:
        return {TAG: "tuple", "v": [encode(item, _depth + 1) for item in value]}
    # Subclasses and the other carried types: read through the base type's slots.
    if isinstance(value, bool):
        return bool.__bool__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {TAG: "bytes", "v": _binascii.b2a_base64(bytes(value), newline=False).decode("ascii")}
    if isinstance(value, complex):
        return {
            TAG: "complex",
            "v": [
                _float(complex.__getattribute__(value, "real")),
                _float(complex.__getattribute__(value, "imag")),
            ],
        }
    if isinstance(value, frozenset):
        return {TAG: "frozenset", "v": [encode(item, _depth + 1) for item in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {TAG: "set", "v": [encode(item, _depth + 1) for item in set.__iter__(value)]}
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [encode(item, _depth + 1) for item in tuple.__iter__(value)]}
    if isinstance(value, list):
        return [encode(item, _depth + 1) for item in list.__iter__(value)]
    if isinstance(value, dict):
        return _dict(dict(dict.items(value)), _depth)
    raise Uncarriable(
        f"a value of type {type(value).__name__} cannot cross the sandbox boundary (only plain data can: "
        "None, bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)"
    )


def _float(value):
    if value != value:
        return {TAG: "float", "v": "nan"}
    if value in (float("inf"), float("-inf")):
        return {TAG: "float", "v": "inf" if value > 0 else "-inf"}
    return value


def _dict(value, depth):
    plain = True
    for key in dict.keys(value):
        if type(key) is not str or key == TAG:
            plain = False
            break
    if plain:
        return {key: encode(item, depth + 1) for key, item in dict.items(value)}
    return {
        TAG: "dict",
        "v": [[encode(key, depth + 1), encode(item, depth + 1)] for key, item in dict.items(value)],
    }


def decode(data, _depth=0):
    """The builtin value a wire form stands for. Raises ValueError on anything malformed."""
    if _depth > MAX_DEPTH:
        raise ValueError(f"value is nested deeper than {MAX_DEPTH} levels")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is str:
        return data
    if kind is float:
        return data
    if kind is list:
        return [decode(item, _depth + 1) for item in data]
    if kind is not dict:
        raise ValueError(f"not a wire value: {kind.__name__}")
    if TAG not in data:
        return {key: decode(item, _depth + 1) for key, item in data.items()}
    tag, body = data.get(TAG), data.get("v")
    if len(data) != 2 or "v" not in data:
        raise ValueError("malformed tagged value")
    if tag == "tuple" and type(body) is list:
        return tuple(decode(item, _depth + 1) for item in body)
    if tag == "bytes" and type(body) is str:
        return _binascii.a2b_base64(body.encode("ascii"), strict_mode=True)
    if tag == "set" and type(body) is list:
        return set(_hashable(decode(item, _depth + 1)) for item in body)
    if tag == "frozenset" and type(body) is list:
        return frozenset(_hashable(decode(item, _depth + 1)) for item in body)
    if tag == "float" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        real, imag = (decode(part, _depth + 1) for part in body)
        if (
            type(real) is not float
            and type(real) is not int
            or type(imag) is not float
            and type(imag) is not int
        ):
            raise ValueError("malformed complex value")
        return complex(real, imag)
    if tag == "dict" and type(body) is list:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("malformed dict entry")
            out[_hashable(decode(pair[0], _depth + 1))] = decode(pair[1], _depth + 1)
        return out
    raise ValueError(f"unknown or malformed tagged value {tag!r}")


def _hashable(value):
    try:
        hash(value)
    except TypeError:
        raise ValueError(f"unhashable {type(value).__name__} used as a set member or dict key") from None
    return value
