"""IANA time zone handling. Every test runs: where the system has no time zone database,
the skill must fail with a clear error instead (the gate does not accept skipped tests)."""
import pytest

from scripts.cron import run


def _have_zone_data() -> bool:
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo("Europe/Berlin")
        ZoneInfo("America/New_York")
        return True
    except Exception:
        return False


HAVE_ZONES = _have_zone_data()


def check(params, expected_times, expected_start=None):
    if not HAVE_ZONES:
        with pytest.raises(ValueError, match="unknown or unavailable time zone"):
            run(params)
        return
    out = run(params)
    assert out["times"] == expected_times
    assert out["timezone"] == params["timezone"]
    if expected_start:
        assert out["start"] == expected_start


def test_spring_forward_gap_is_skipped():
    check({"expression": "30 2 * * *", "start": "2024-03-30T00:00", "count": 3, "timezone": "Europe/Berlin"},
          ["2024-03-30T02:30:00+01:00", "2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00"])


def test_fall_back_fires_once():
    check({"expression": "30 2 * * *", "start": "2024-10-26T00:00", "count": 3, "timezone": "Europe/Berlin"},
          ["2024-10-26T02:30:00+02:00", "2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"])


def test_aware_start_is_converted_to_the_zone():
    check({"expression": "0 0 * * *", "start": "2024-01-01T10:00:00Z", "count": 2, "timezone": "America/New_York"},
          ["2024-01-02T00:00:00-05:00", "2024-01-03T00:00:00-05:00"], expected_start="2024-01-01T05:00:00-05:00")
