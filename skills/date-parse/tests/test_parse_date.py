from datetime import datetime, timezone

import pytest

from scripts.parse_date import run

REF = "2024-03-15T12:00:00"  # a Friday


def iso(text, **kw):
    return run({"text": text, "reference": REF, **kw})["iso"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-01-05", "2024-01-05T00:00:00"),
        ("2024-01-05T10:30:00Z", "2024-01-05T10:30:00+00:00"),
        ("2024-01-05 10:00:00.250+05:30", "2024-01-05T10:00:00.250000+05:30"),
        ("20240105T1030", "2024-01-05T10:30:00"),
        ("2024-W01-3", "2024-01-03T00:00:00"),
        ("2024-036", "2024-02-05T00:00:00"),
        ("2024060", "2024-02-29T00:00:00"),
        ("2024-01", "2024-01-01T00:00:00"),
        ("Tue, 15 Nov 1994 08:12:31 GMT", "1994-11-15T08:12:31+00:00"),
        ("15 Nov 1994 08:12 +0200", "1994-11-15T08:12:00+02:00"),
        ("@1700000000", "2023-11-14T22:13:20+00:00"),
        ("@0.5", "1970-01-01T00:00:00.500000+00:00"),
        ("January 5th, 2024", "2024-01-05T00:00:00"),
        ("5 January 2024", "2024-01-05T00:00:00"),
        ("Jan. 5 2024 3:45 pm", "2024-01-05T15:45:00"),
        ("Friday, March 15, 2024 at 3:45 PM EST", "2024-03-15T15:45:00-05:00"),
        ("March 15 2024 9am PDT", "2024-03-15T09:00:00-07:00"),
        ("2024/03/15 18:05:09", "2024-03-15T18:05:09"),
        ("2024-03-15T18:05 UTC", "2024-03-15T18:05:00+00:00"),
        ("03/15/2024 10:00 -0800", "2024-03-15T10:00:00-08:00"),
        ("05.01.2024", "2024-01-05T00:00:00"),
        ("05.01.24 23:59:59", "2024-01-05T23:59:59"),
        ("Sept. 3", "2024-09-03T00:00:00"),
        ("Feb 29", "2024-02-29T00:00:00"),
        ("March 2024", "2024-03-01T00:00:00"),
        ("2023 dec 31", "2023-12-31T00:00:00"),
        ("14:30", "2024-03-15T14:30:00"),
        ("5pm", "2024-03-15T17:00:00"),
        ("5 p.m.", "2024-03-15T17:00:00"),
        ("noon", "2024-03-15T12:00:00"),
    ],
)
def test_absolute_formats(text, expected):
    assert iso(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("now", "2024-03-15T12:00:00"),
        ("today", "2024-03-15T00:00:00"),
        ("tomorrow at 5pm", "2024-03-16T17:00:00"),
        ("yesterday 08:15", "2024-03-14T08:15:00"),
        ("tonight at 9 pm", "2024-03-15T21:00:00"),
        ("today midnight", "2024-03-15T00:00:00"),
        ("3 days ago", "2024-03-12T12:00:00"),
        ("an hour ago", "2024-03-15T11:00:00"),
        ("2 hours 30 minutes ago", "2024-03-15T09:30:00"),
        ("1 day, 2 hours and 3 mins ago", "2024-03-14T09:57:00"),
        ("in 2 weeks", "2024-03-29T12:00:00"),
        ("10 seconds from now", "2024-03-15T12:00:10"),
        ("a fortnight later", "2024-03-29T12:00:00"),
        ("1 month ago", "2024-02-15T12:00:00"),
        ("2 years ago", "2022-03-15T12:00:00"),
        ("next week", "2024-03-22T12:00:00"),
        ("last month", "2024-02-15T12:00:00"),
        ("next year", "2025-03-15T12:00:00"),
        ("next monday", "2024-03-18T00:00:00"),
        ("next friday", "2024-03-22T00:00:00"),
        ("last friday", "2024-03-08T00:00:00"),
        ("last sunday", "2024-03-10T00:00:00"),
        ("friday", "2024-03-15T00:00:00"),
        ("this wed", "2024-03-20T00:00:00"),
        ("coming thursday at 10:00", "2024-03-21T10:00:00"),
    ],
)
def test_relative_phrases(text, expected):
    out = run({"text": text, "reference": REF})
    assert out["iso"] == expected
    assert out["relative"] is True


def test_month_arithmetic_clamps_to_month_end():
    assert run({"text": "in 1 month", "reference": "2024-01-31T08:00:00"})["iso"] == "2024-02-29T08:00:00"
    assert run({"text": "1 year ago", "reference": "2024-02-29"})["date"] == "2023-02-28"


def test_components_and_weekday():
    out = run({"text": "2024-12-30T07:08:09.5+02:00", "reference": REF})
    assert (out["year"], out["month"], out["day"]) == (2024, 12, 30)
    assert (out["hour"], out["minute"], out["second"], out["microsecond"]) == (7, 8, 9, 500000)
    assert out["weekday"] == "Monday" and out["iso_weekday"] == 1
    assert (out["iso_year"], out["iso_week"]) == (2025, 1)
    assert out["day_of_year"] == 365
    assert out["utc_offset"] == "+02:00"
    assert out["timestamp"] == datetime(2024, 12, 30, 5, 8, 9, 500000, tzinfo=timezone.utc).timestamp()
    assert out["date"] == "2024-12-30" and out["time"] == "07:08:09.500000"
    assert out["format"] == "iso8601" and out["relative"] is False


def test_negative_offset_text_and_naive_timestamp():
    assert run({"text": "2024-01-01T00:00-03:30"})["utc_offset"] == "-03:30"
    naive = run({"text": "2024-01-01", "reference": REF})
    assert naive["utc_offset"] is None and naive["timestamp"] is None


def test_day_month_order_and_ambiguity():
    us = run({"text": "01/05/2024", "reference": REF})
    assert us["date"] == "2024-01-05" and us["ambiguous"] is True and us["format"] == "%m/%d/%Y"
    eu = run({"text": "01/05/2024", "reference": REF, "dayfirst": True})
    assert eu["date"] == "2024-05-01" and eu["ambiguous"] is True
    clear = run({"text": "13/05/2024", "reference": REF})
    assert clear["date"] == "2024-05-13" and clear["ambiguous"] is False
    same = run({"text": "05/05/2024", "reference": REF})
    assert same["ambiguous"] is False
    assert run({"text": "01-05-2024", "reference": REF})["utc_offset"] is None  # "-2024" is not an offset


def test_default_reference_is_now_utc():
    before = datetime.now(timezone.utc).date()
    out = run({"text": "today"})
    after = datetime.now(timezone.utc).date()
    assert out["date"] in {before.isoformat(), after.isoformat()}
    assert out["utc_offset"] == "+00:00"
    assert out["reference"].endswith("+00:00")


def test_aware_reference_propagates():
    out = run({"text": "in 90 minutes", "reference": "2024-03-15T23:00:00+01:00"})
    assert out["iso"] == "2024-03-16T00:30:00+01:00"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"text": ""}, "non-empty"),
        ({"text": "   "}, "non-empty"),
        ({"text": 5}, "non-empty"),
        ({"text": "x" * 201}, "too long"),
        ({"text": "the day after the party"}, "could not parse"),
        ({"text": "tomorrow at 25:00", "reference": REF}, "could not parse"),
        ({"text": "10:00 XYZ", "reference": REF}, "could not parse"),
        ({"text": "2024-13-45"}, "could not parse"),
        ({"text": "32 Foo 2024 10:00"}, "could not parse"),
        ({"text": "3 parsecs ago", "reference": REF}, "could not parse"),
        ({"text": "@abc"}, "invalid unix timestamp"),
        ({"text": "@1e20"}, "invalid unix timestamp"),
        ({"text": "2023-366"}, "day of year out of range"),
        ({"text": "10:00 +2500", "reference": REF}, "invalid UTC offset"),
        ({"text": "today", "reference": "yesterday"}, "not ISO 8601"),
        ({"text": "today", "reference": 5}, "ISO 8601"),
        ({"text": "9000 years from now", "reference": REF}, "out of range"),
        ({"text": "5000000 days ago", "reference": REF}, "out of range"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
