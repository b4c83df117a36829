import pytest

from scripts.convert import resolve_unit, run, units_by_category


def conv(value, src, dst, **kw):
    return run({"value": value, "from": src, "to": dst, **kw})["result"]


@pytest.mark.parametrize(
    "value, src, dst, expected",
    [
        (1, "mi", "km", 1.609344),
        (1, "ft", "in", 12.0),
        (3, "feet", "yards", 1.0),
        (1, "nmi", "m", 1852.0),
        (2.5, "km", "cm", 250000.0),
        (1, "lb", "oz", 16.0),
        (1, "kg", "lb", 2.20462262185),
        (14, "lb", "st", 1.0),
        (1, "short ton", "lb", 2000.0),
        (1, "tonne", "kg", 1000.0),
        (1, "gal", "l", 3.785411784),
        (1, "gal", "qt", 4.0),
        (1, "cup", "tbsp", 16.0),
        (1, "tbsp", "tsp", 3.0),
        (1, "imp_gal", "l", 4.54609),
        (1, "ft3", "l", 28.316846592),
        (1, "m3", "ml", 1000000.0),
        (90, "min", "h", 1.5),
        (1, "wk", "s", 604800.0),
        (1, "yr", "d", 365.25),
        (1500, "ms", "s", 1.5),
        (5, "GiB", "GB", 5.36870912),
        (1, "MB", "kB", 1000.0),
        (1, "KiB", "B", 1024.0),
        (1, "B", "bit", 8.0),
        (100, "Mbit", "MB", 12.5),
        (1, "TiB", "GiB", 1024.0),
    ],
)
def test_factor_conversions(value, src, dst, expected):
    assert conv(value, src, dst) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize(
    "value, src, dst, expected",
    [
        (100, "C", "F", 212.0),
        (-40, "C", "F", -40.0),
        (98.6, "F", "C", 37.0),
        (0, "K", "C", -273.15),
        (0, "C", "K", 273.15),
        (491.67, "R", "F", 32.0),
        (300, "K", "R", 540.0),
        (32, "°F", "celsius", 0.0),
    ],
)
def test_temperature(value, src, dst, expected):
    assert conv(value, src, dst) == pytest.approx(expected, abs=1e-9)


def test_rounding_removes_float_noise():
    assert conv(0.1, "m", "cm") == 10.0
    assert conv(1, "m", "ft", significant_digits=3) == 3.28
    assert conv(0, "m", "ft") == 0.0


def test_output_shape_and_text():
    out = run({"value": 100, "from": "celsius", "to": "fahrenheit"})
    assert out == {
        "value": 100,
        "from": "C",
        "to": "F",
        "category": "temperature",
        "result": 212.0,
        "text": "100 C = 212 F",
    }


def test_alias_resolution_and_case():
    assert resolve_unit("Kilometres") == ("length", "km")
    assert resolve_unit("kb") == ("data", "kB")
    assert resolve_unit("KB") == ("data", "kB")
    assert resolve_unit("mbit") == ("data", "Mbit")
    assert resolve_unit("  fl   oz ") == ("volume", "fl_oz")
    assert resolve_unit("µm") == ("length", "um")
    assert resolve_unit("HOURS") == ("time", "h")


def test_every_listed_unit_resolves_to_itself():
    for category, units in units_by_category().items():
        for unit in units:
            assert resolve_unit(unit) == (category, unit)


def test_incompatible_units_error_lists_compatible_units():
    with pytest.raises(ValueError, match=r"cannot convert length \(m\) to mass \(kg\).*length units are: nm, um"):
        run({"value": 1, "from": "m", "to": "kg"})
    with pytest.raises(ValueError, match="incompatible"):
        run({"value": 1, "from": "C", "to": "s"})


def test_unknown_unit_suggests():
    with pytest.raises(ValueError, match="unknown unit 'kilometr'; did you mean 'kilometre'"):
        run({"value": 1, "from": "kilometr", "to": "m"})
    with pytest.raises(ValueError, match="unknown unit 'zzz'$"):
        run({"value": 1, "from": "m", "to": "zzz"})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"value": -1, "from": "K", "to": "C"}, "below absolute zero"),
        ({"value": -500, "from": "F", "to": "C"}, "below absolute zero"),
        ({"value": "1", "from": "m", "to": "cm"}, "finite number"),
        ({"value": True, "from": "m", "to": "cm"}, "finite number"),
        ({"value": float("inf"), "from": "m", "to": "cm"}, "finite number"),
        ({"value": 1, "from": "", "to": "cm"}, "non-empty"),
        ({"value": 1, "to": "cm"}, "non-empty"),
        ({"value": 1, "from": "m", "to": "cm", "significant_digits": 0}, "significant_digits"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
