import pytest

from scripts.baseconv import run, to_base


def digits(out, base):
    return next(c for c in out["conversions"] if c["base"] == base)


def test_hex_prefix_default_targets():
    out = run({"value": "0xff"})
    assert out["decimal"] == "255" and out["from_base"] == 16 and out["bit_length"] == 8
    assert out["conversions"] == [
        {"base": 2, "digits": "11111111", "prefixed": "0b11111111"},
        {"base": 8, "digits": "377", "prefixed": "0o377"},
        {"base": 10, "digits": "255", "prefixed": "255"},
        {"base": 16, "digits": "ff", "prefixed": "0xff"},
    ]


@pytest.mark.parametrize(
    "value, base, expected",
    [
        ("0b1010", None, "10"),
        ("0o777", None, "511"),
        ("  1_000 000 ", None, "1000000"),
        ("-0x1A", None, "-26"),
        ("+42", None, "42"),
        ("zz", 36, "1295"),
        ("ZZ", 36, "1295"),
        ("0b12", 16, str(0xB12)),
        ("0x10", 16, "16"),
        ("777", 8, "511"),
        (123456789, None, "123456789"),
        (-5, 10, "-5"),
        ("0", None, "0"),
    ],
)
def test_parsing(value, base, expected):
    params = {"value": value}
    if base:
        params["from_base"] = base
    assert run(params)["decimal"] == expected


def test_big_numbers_are_exact():
    big = 2**200 + 1
    out = run({"value": hex(big), "to_bases": [10, 36]})
    assert out["decimal"] == str(big)
    assert int(digits(out, 36)["digits"], 36) == big
    assert out["bit_length"] == 201


def test_negative_output_and_grouping_and_case():
    out = run({"value": -3054, "to_bases": [16, 2], "group": 4, "uppercase": True})
    assert digits(out, 16) == {"base": 16, "digits": "-BEE", "prefixed": "-0xBEE"}
    assert digits(out, 2)["digits"] == "-1011_1110_1110"
    assert out["negative"] is True
    assert run({"value": 1234567, "to_bases": [10], "group": 3})["conversions"][0]["digits"] == "1_234_567"
    assert to_base(0, 2) == "0" and to_base(-35, 36) == "-z"


def test_twos_complement_encoding():
    out = run({"value": -1, "width": 8})
    assert out["twos_complement"] == {"width": 8, "unsigned": "255", "signed": "-1", "binary": "11111111", "hex": "ff"}
    pos = run({"value": 5, "width": 12, "group": 4})
    assert pos["twos_complement"]["binary"] == "0000_0000_0101"
    assert pos["twos_complement"]["hex"] == "005"
    assert run({"value": -128, "width": 8})["twos_complement"]["hex"] == "80"
    assert run({"value": 200, "width": 8})["twos_complement"]["signed"] == "-56"


def test_signed_decoding():
    out = run({"value": "ff", "from_base": 16, "signed": True, "width": 8})
    assert out["decimal"] == "-1" and out["negative"] is True
    assert run({"value": "0x7f", "signed": True, "width": 8})["decimal"] == "127"
    assert run({"value": "0x8000", "signed": True, "width": 16})["decimal"] == "-32768"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"value": True}, "integer or a string"),
        ({"value": 1.5}, "integer or a string"),
        ({"value": "12", "from_base": 1}, "from_base"),
        ({"value": "12", "from_base": True}, "from_base"),
        ({"value": "12", "to_bases": []}, "to_bases"),
        ({"value": "12", "to_bases": [37]}, "to_bases"),
        ({"value": "12", "width": 0}, "width"),
        ({"value": "12", "group": -1}, "group"),
        ({"value": 12, "from_base": 16}, "always decimal"),
        ({"value": "1" * 4097}, "too long"),
        ({"value": ""}, "no digits"),
        ({"value": "0x"}, "no digits"),
        ({"value": "12g", "from_base": 16}, "invalid digit\\(s\\) 'g' for base 16"),
        ({"value": "0x10", "from_base": 10}, "invalid digit\\(s\\) 'x' for base 10"),
        ({"value": "102", "from_base": 2}, "invalid digit"),
        ({"value": "ff", "from_base": 16, "signed": True}, "needs 'width'"),
        ({"value": "1ff", "from_base": 16, "signed": True, "width": 8}, "does not fit in 8 unsigned bits"),
        ({"value": 256, "width": 8}, "does not fit in 8 bits"),
        ({"value": -129, "width": 8}, "does not fit in 8 bits"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
