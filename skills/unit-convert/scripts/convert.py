"""Convert a value between units of length, mass, temperature, volume, time and data size."""
from __future__ import annotations

import difflib
import math

# category -> canonical unit -> (factor to the category's base unit, aliases)
# Temperature is handled separately because it needs offsets, not only factors.
_TABLE = {
    "length": ("m", {
        "nm": (1e-9, ["nanometer", "nanometre", "nanometers", "nanometres"]),
        "um": (1e-6, ["µm", "μm", "micrometer", "micrometre", "micron", "microns", "micrometers"]),
        "mm": (1e-3, ["millimeter", "millimetre", "millimeters", "millimetres"]),
        "cm": (1e-2, ["centimeter", "centimetre", "centimeters", "centimetres"]),
        "m": (1.0, ["meter", "metre", "meters", "metres"]),
        "km": (1e3, ["kilometer", "kilometre", "kilometers", "kilometres"]),
        "in": (0.0254, ["inch", "inches", '"']),
        "ft": (0.3048, ["foot", "feet", "'"]),
        "yd": (0.9144, ["yard", "yards"]),
        "mi": (1609.344, ["mile", "miles"]),
        "nmi": (1852.0, ["nautical mile", "nautical miles", "nautical_mile"]),
    }),
    "mass": ("kg", {
        "ug": (1e-9, ["µg", "μg", "microgram", "micrograms", "mcg"]),
        "mg": (1e-6, ["milligram", "milligrams"]),
        "g": (1e-3, ["gram", "grams", "gramme", "grammes"]),
        "kg": (1.0, ["kilogram", "kilograms", "kilo", "kilos"]),
        "t": (1e3, ["tonne", "tonnes", "metric ton", "metric tons"]),
        "oz": (0.028349523125, ["ounce", "ounces"]),
        "lb": (0.45359237, ["lbs", "pound", "pounds"]),
        "st": (6.35029318, ["stone", "stones"]),
        "short_ton": (907.18474, ["short ton", "short tons", "us ton", "us tons"]),
        "long_ton": (1016.0469088, ["long ton", "long tons", "imperial ton", "imperial tons"]),
    }),
    "volume": ("l", {
        "ml": (1e-3, ["milliliter", "millilitre", "milliliters", "millilitres", "cm3", "cc", "cm³"]),
        "cl": (1e-2, ["centiliter", "centilitre", "centiliters", "centilitres"]),
        "dl": (1e-1, ["deciliter", "decilitre", "deciliters", "decilitres"]),
        "l": (1.0, ["liter", "litre", "liters", "litres", "dm3", "dm³"]),
        "m3": (1e3, ["m³", "cubic meter", "cubic metre", "cubic meters", "cubic metres"]),
        "tsp": (0.00492892159375, ["teaspoon", "teaspoons"]),
        "tbsp": (0.01478676478125, ["tablespoon", "tablespoons"]),
        "fl_oz": (0.0295735295625, ["fl oz", "fluid ounce", "fluid ounces", "floz"]),
        "cup": (0.2365882365, ["cups"]),
        "pt": (0.473176473, ["pint", "pints", "us pint"]),
        "qt": (0.946352946, ["quart", "quarts"]),
        "gal": (3.785411784, ["gallon", "gallons", "us gallon", "us gallons"]),
        "imp_gal": (4.54609, ["imperial gallon", "imperial gallons", "uk gallon", "uk gallons"]),
        "in3": (0.016387064, ["in³", "cubic inch", "cubic inches"]),
        "ft3": (28.316846592, ["ft³", "cubic foot", "cubic feet"]),
    }),
    "time": ("s", {
        "ns": (1e-9, ["nanosecond", "nanoseconds"]),
        "us": (1e-6, ["µs", "μs", "microsecond", "microseconds"]),
        "ms": (1e-3, ["millisecond", "milliseconds"]),
        "s": (1.0, ["sec", "secs", "second", "seconds"]),
        "min": (60.0, ["mins", "minute", "minutes"]),
        "h": (3600.0, ["hr", "hrs", "hour", "hours"]),
        "d": (86400.0, ["day", "days"]),
        "wk": (604800.0, ["week", "weeks"]),
        "yr": (31557600.0, ["year", "years", "julian year"]),  # Julian year, 365.25 days
    }),
    "data": ("B", {
        "bit": (0.125, ["bits"]),
        "B": (1.0, ["byte", "bytes"]),
        "kbit": (125.0, ["kilobit", "kilobits"]),
        "Mbit": (125e3, ["megabit", "megabits"]),
        "Gbit": (125e6, ["gigabit", "gigabits"]),
        "kB": (1e3, ["kilobyte", "kilobytes"]),
        "MB": (1e6, ["megabyte", "megabytes"]),
        "GB": (1e9, ["gigabyte", "gigabytes"]),
        "TB": (1e12, ["terabyte", "terabytes"]),
        "PB": (1e15, ["petabyte", "petabytes"]),
        "KiB": (1024.0, ["kibibyte", "kibibytes"]),
        "MiB": (1024.0 ** 2, ["mebibyte", "mebibytes"]),
        "GiB": (1024.0 ** 3, ["gibibyte", "gibibytes"]),
        "TiB": (1024.0 ** 4, ["tebibyte", "tebibytes"]),
        "PiB": (1024.0 ** 5, ["pebibyte", "pebibytes"]),
    }),
}
# temperature: canonical -> (scale, offset) such that kelvin = value * scale + offset
_TEMPERATURE = {
    "C": (1.0, 273.15, ["°C", "celsius", "centigrade", "degc"]),
    "F": (5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0, ["°F", "fahrenheit", "degf"]),
    "K": (1.0, 0.0, ["kelvin", "kelvins"]),
    "R": (5.0 / 9.0, 0.0, ["°R", "rankine", "degr"]),
}


def _build_index():
    exact: dict[str, tuple[str, str]] = {}
    for category, (_, units) in _TABLE.items():
        for unit, (_, aliases) in units.items():
            for name in [unit, *aliases]:
                exact[name] = (category, unit)
    for unit, (_, _, aliases) in _TEMPERATURE.items():
        for name in [unit, *aliases]:
            exact[name] = ("temperature", unit)
    folded: dict[str, set] = {}
    for name, target in exact.items():
        folded.setdefault(name.lower(), set()).add(target)
    # a case-insensitive spelling is usable only if it is unambiguous
    insensitive = {k: next(iter(v)) for k, v in folded.items() if len(v) == 1}
    return exact, insensitive


_EXACT, _INSENSITIVE = _build_index()


def resolve_unit(name: str) -> tuple[str, str]:
    """Return (category, canonical unit) for a unit name or alias."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("unit names must be non-empty strings")
    key = " ".join(name.strip().split())
    if key in _EXACT:
        return _EXACT[key]
    if key.lower() in _INSENSITIVE:
        return _INSENSITIVE[key.lower()]
    hints = difflib.get_close_matches(key, list(_EXACT), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise ValueError(f"unknown unit {name!r}{hint}")


def units_by_category() -> dict[str, list[str]]:
    listing = {category: list(units) for category, (_, units) in _TABLE.items()}
    listing["temperature"] = list(_TEMPERATURE)
    return listing


def _round(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return float(f"{value:.{digits}g}")


def run(params: dict) -> dict:
    value = params.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("'value' must be a finite number")
    digits = params.get("significant_digits", 12)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ValueError("'significant_digits' must be an integer from 1 to 17")
    src_category, src = resolve_unit(params.get("from"))
    dst_category, dst = resolve_unit(params.get("to"))
    if src_category != dst_category:
        compatible = ", ".join(units_by_category()[src_category])
        raise ValueError(
            f"cannot convert {src_category} ({src}) to {dst_category} ({dst}): the units are incompatible; "
            f"{src_category} units are: {compatible}"
        )

    if src_category == "temperature":
        scale, offset, _ = _TEMPERATURE[src]
        kelvin = value * scale + offset
        if kelvin < -1e-9:
            raise ValueError(f"{value} {src} is below absolute zero")
        dscale, doffset, _ = _TEMPERATURE[dst]
        result = (kelvin - doffset) / dscale
    else:
        units = _TABLE[src_category][1]
        result = value * units[src][0] / units[dst][0]

    result = _round(result, digits)
    return {
        "value": value,
        "from": src,
        "to": dst,
        "category": src_category,
        "result": result,
        "text": f"{value:.15g} {src} = {result:.{digits}g} {dst}",
    }
