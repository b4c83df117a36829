from datetime import datetime, timezone

import pytest

from scripts.cron import parse_expression, parse_field, run


def times(expression, start, count=5, **kw):
    return run({"expression": expression, "start": start, "count": count, **kw})["times"]


def test_steps_ranges_and_weekday_names():
    assert times("*/15 9-17 * * MON-FRI", "2024-03-15T16:50:00", 6) == [
        "2024-03-15T17:00:00", "2024-03-15T17:15:00", "2024-03-15T17:30:00", "2024-03-15T17:45:00",
        "2024-03-18T09:00:00", "2024-03-18T09:15:00",
    ]


def test_every_minute_is_strictly_after_start():
    assert times("* * * * *", "2024-01-01T00:00:30", 2) == ["2024-01-01T00:01:00", "2024-01-01T00:02:00"]
    assert times("* * * * *", "2024-01-01T00:00:00", 1) == ["2024-01-01T00:01:00"]


def test_inclusive_start():
    assert times("0 * * * *", "2024-01-01T05:00:00", 1, inclusive=True) == ["2024-01-01T05:00:00"]
    assert times("0 * * * *", "2024-01-01T05:00:01", 1, inclusive=True) == ["2024-01-01T06:00:00"]


def test_lists_month_names_and_year_rollover():
    assert times("0 8 1 JAN,jul *", "2024-08-01T00:00", 3) == [
        "2025-01-01T08:00:00", "2025-07-01T08:00:00", "2026-01-01T08:00:00",
    ]
    assert times("59 23 31 12 *", "2024-12-31T23:59:00", 1) == ["2025-12-31T23:59:00"]


def test_leap_day_and_short_months():
    assert times("0 0 29 2 *", "2024-03-01T00:00", 2) == ["2028-02-29T00:00:00", "2032-02-29T00:00:00"]
    assert times("0 0 31 * *", "2024-04-01T00:00", 3) == [
        "2024-05-31T00:00:00", "2024-07-31T00:00:00", "2024-08-31T00:00:00",
    ]


def test_vixie_day_of_month_or_day_of_week():
    out = run({"expression": "0 12 1,15 * FRI", "start": "2024-03-01T00:00", "count": 5})
    assert out["day_match"] == "or"
    assert out["times"] == [
        "2024-03-01T12:00:00", "2024-03-08T12:00:00", "2024-03-15T12:00:00",
        "2024-03-22T12:00:00", "2024-03-29T12:00:00",
    ]
    # a '*'-prefixed field (even with a step) makes both fields required
    both = run({"expression": "0 0 */2 * MON", "start": "2024-03-01T00:00", "count": 2})
    assert both["day_match"] == "and"
    assert both["times"] == ["2024-03-11T00:00:00", "2024-03-25T00:00:00"]


def test_sunday_as_0_7_and_name_and_wrapping_range_end():
    expected = ["2024-03-17T00:00:00", "2024-03-24T00:00:00"]
    for dow in ("0", "7", "SUN", "sun"):
        assert times(f"0 0 * * {dow}", "2024-03-15T00:00", 2) == expected
    assert times("0 0 * * FRI-SUN", "2024-03-14T00:00", 4) == [
        "2024-03-15T00:00:00", "2024-03-16T00:00:00", "2024-03-17T00:00:00", "2024-03-22T00:00:00",
    ]


def test_macros_and_fixed_offset():
    out = run({"expression": "@monthly", "start": "2024-01-31T10:00:00+02:00", "count": 2})
    assert out["expression"] == "0 0 1 * *"
    assert out["times"] == ["2024-02-01T00:00:00+02:00", "2024-03-01T00:00:00+02:00"]
    assert out["timezone"] == "UTC+02:00"
    assert times("@hourly", "2024-01-01T00:30-03:30", 1) == ["2024-01-01T01:00:00-03:30"]
    assert run({"expression": "@Weekly", "start": "2024-03-15T00:00"})["times"][0] == "2024-03-17T00:00:00"
    assert run({"expression": "@yearly", "start": "2024-03-15T00:00"})["timezone"] is None


def test_fields_are_expanded():
    out = run({"expression": "5,10-20/5 */6 1-3 FEB-APR/2 1-5/2", "start": "2024-01-01T00:00"})
    assert out["fields"] == {
        "minute": [5, 10, 15, 20],
        "hour": [0, 6, 12, 18],
        "day_of_month": [1, 2, 3],
        "month": [2, 4],
        "day_of_week": [1, 3, 5],
    }
    assert parse_field("50/5", "minute", 0, 59, {}) == {50, 55}
    assert parse_field("?", "day_of_month", 1, 31, {}) == set(range(1, 32))


def test_default_start_is_now():
    before = datetime.now(timezone.utc)
    out = run({"expression": "* * * * *", "count": 1})
    first = datetime.fromisoformat(out["times"][0])
    assert first > before and (first - before).total_seconds() <= 61
    assert out["timezone"] == "UTC+00:00"


def test_end_of_calendar_is_exhausted():
    out = run({"expression": "0 0 1 1 *", "start": "9998-06-01T00:00", "count": 3})
    assert out["times"] == ["9999-01-01T00:00:00"] and out["exhausted"] is True and out["count"] == 1
    last = run({"expression": "59 23 31 12 *", "start": "9999-12-31T23:58", "count": 2})
    assert last["times"] == ["9999-12-31T23:59:00"] and last["exhausted"] is True


def test_many_rare_occurrences_are_fast_enough():
    out = run({"expression": "0 0 29 2 *", "start": "2000-01-01T00:00", "count": 100})
    assert out["count"] == 100 and out["times"][-1] == "2408-02-29T00:00:00"  # 2100, 2200, 2300 are not leap years


def test_parse_expression_flags():
    normalized, sets, dom_star, dow_star = parse_expression("  0   0 * * 1 ")
    assert normalized == "0 0 * * 1" and dom_star and not dow_star


@pytest.mark.parametrize(
    "expression, message",
    [
        ("", "non-empty"),
        ("* * * *", "expected 5 fields"),
        ("0 * * * * *", "seconds and year"),
        ("@reboot", "unknown macro"),
        ("60 * * * *", "out of range 0-59"),
        ("* 24 * * *", "out of range 0-23"),
        ("* * 0 * *", "out of range 1-31"),
        ("* * * 13 *", "out of range 1-12"),
        ("* * * * 8", "out of range 0-7"),
        ("*/0 * * * *", "invalid step"),
        ("*/x * * * *", "invalid step"),
        ("5-1 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty list item"),
        ("? * * * *", "only allowed in the day"),
        ("* * L * *", "extensions are not supported"),
        ("* * 15W * *", "extensions are not supported"),
        ("* * * * 5#3", "extensions are not supported"),
        ("* * * * FOO", "invalid value 'FOO'"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_expression_errors(expression, message):
    with pytest.raises(ValueError, match=message):
        run({"expression": expression, "start": "2024-01-01T00:00"})


@pytest.mark.parametrize(
    "params, message",
    [
        ({"expression": "* * * * *", "count": 0}, "'count'"),
        ({"expression": "* * * * *", "count": 1001}, "'count'"),
        ({"expression": "* * * * *", "count": True}, "'count'"),
        ({"expression": "* * * * *", "start": "next tuesday"}, "not an ISO 8601"),
        ({"expression": "* * * * *", "timezone": "Mars/Olympus_Mons"}, "unknown or unavailable time zone"),
        ({"expression": "* * * * *", "timezone": ""}, "IANA time zone name"),
        ({"expression": "* * * * *", "timezone": "../etc"}, "unknown or unavailable time zone"),
    ],
)
def test_parameter_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
