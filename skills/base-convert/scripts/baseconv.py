"""Convert integers between bases 2-36, with two's complement for fixed bit widths."""
from __future__ import annotations

import string

DIGITS = string.digits + string.ascii_lowercase
PREFIXES = {"0x": 16, "0o": 8, "0b": 2}
PREFIX_OF = {16: "0x", 8: "0o", 2: "0b"}
MAX_DIGITS = 4096


def to_base(number: int, base: int) -> str:
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    number = abs(number)
    out = []
    while number:
        number, digit = divmod(number, base)
        out.append(DIGITS[digit])
    return sign + "".join(reversed(out))


def _group(digits: str, size: int) -> str:
    sign = "-" if digits.startswith("-") else ""
    digits = digits.lstrip("-")
    head = len(digits) % size or size
    parts = [digits[:head]] + [digits[i:i + size] for i in range(head, len(digits), size)]
    return sign + "_".join(parts)


def _parse(value, base):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("'value' must be an integer or a string of digits")
    if isinstance(value, int):
        if base not in (None, 10):
            raise ValueError("a JSON number is always decimal; pass digits in another base as a string")
        return value, 10
    text = "".join(value.split()).replace("_", "").lower()
    if len(text) > MAX_DIGITS:
        raise ValueError(f"'value' is too long (at most {MAX_DIGITS} digits)")
    sign = -1 if text.startswith("-") else 1
    if text[:1] in ("+", "-"):
        text = text[1:]
    prefix = text[:2]
    if prefix in PREFIXES and base in (None, PREFIXES[prefix]):  # with base 16, "0b12" is just hex digits
        base, text = PREFIXES[prefix], text[2:]
    base = base or 10
    if not text:
        raise ValueError("'value' has no digits")
    bad = sorted({c for c in text if c not in DIGITS[:base]})
    if bad:
        raise ValueError(f"invalid digit(s) {''.join(bad)!r} for base {base}")
    return sign * int(text, base), base


def run(params: dict) -> dict:
    from_base = params.get("from_base")
    if from_base is not None and (isinstance(from_base, bool) or not isinstance(from_base, int)
                                  or not 2 <= from_base <= 36):
        raise ValueError("'from_base' must be an integer from 2 to 36")
    to_bases = params.get("to_bases", [2, 8, 10, 16])
    if not isinstance(to_bases, list) or not to_bases or any(
        isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= 36 for b in to_bases
    ):
        raise ValueError("'to_bases' must be a non-empty list of integers from 2 to 36")
    width = params.get("width")
    if width is not None and (isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= 4096):
        raise ValueError("'width' must be a number of bits from 1 to 4096")
    group = params.get("group", 0)
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group <= 64:
        raise ValueError("'group' must be an integer from 0 (no grouping) to 64")
    uppercase = bool(params.get("uppercase", False))

    number, used_base = _parse(params.get("value"), from_base)
    if params.get("signed"):
        if width is None:
            raise ValueError("'signed' needs 'width' (the number of bits)")
        if not 0 <= number < 2 ** width:
            raise ValueError(f"{number} does not fit in {width} unsigned bits")
        if number >= 2 ** (width - 1):
            number -= 2 ** width

    def show(digits: str) -> str:
        digits = digits.upper() if uppercase else digits
        return _group(digits, group) if group else digits

    conversions = []
    for base in to_bases:
        digits = show(to_base(number, base))
        prefix = PREFIX_OF.get(base, "")
        prefixed = ("-" + prefix + digits[1:]) if digits.startswith("-") else prefix + digits
        conversions.append({"base": base, "digits": digits, "prefixed": prefixed})

    result = {
        "decimal": str(number),
        "from_base": used_base,
        "negative": number < 0,
        "bit_length": number.bit_length(),
        "conversions": conversions,
    }
    if width is not None:
        if not -(2 ** (width - 1)) <= number < 2 ** width:
            raise ValueError(f"{number} does not fit in {width} bits")
        pattern = number & (2 ** width - 1)
        result["twos_complement"] = {
            "width": width,
            "unsigned": str(pattern),
            "signed": str(pattern - 2 ** width if pattern >= 2 ** (width - 1) else pattern),
            "binary": show(format(pattern, f"0{width}b")),
            "hex": show(format(pattern, f"0{(width + 3) // 4}x")),
        }
    return result
