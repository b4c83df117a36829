import time

import pytest

from scripts import extract
from scripts.extract import run


def test_named_groups_and_positions():
    out = run({"pattern": r"(?P<user>[\w.]+)@(?P<domain>[\w.]+)", "text": "ada@math.org, bob@cs.edu", "group": "domain"})
    assert out["match_count"] == 2 and out["truncated"] is False
    assert out["group_count"] == 2 and out["group_names"] == ["user", "domain"]
    assert out["values"] == ["math.org", "cs.edu"]
    first = out["matches"][0]
    assert first == {"match": "ada@math.org", "start": 0, "end": 12, "groups": ["ada", "math.org"],
                     "named": {"user": "ada", "domain": "math.org"}}
    assert out["matches"][1]["start"] == 14


def test_default_values_are_whole_matches_and_optional_groups_are_null():
    out = run({"pattern": r"(\d+)(px)?", "text": "10px 20 30px"})
    assert out["values"] == ["10px", "20", "30px"]
    assert out["matches"][1]["groups"] == ["20", None]
    assert run({"pattern": r"(\d+)(px)?", "text": "10px 20", "group": 2})["values"] == ["px", None]


def test_flags():
    text = "Total: 3\ntotal: 42\n"
    assert run({"pattern": r"^total: (\d+)$", "text": text})["match_count"] == 0
    out = run({"pattern": r"^total: (\d+)$", "text": text, "flags": ["MULTILINE", "IGNORECASE"], "group": 1})
    assert out["values"] == ["3", "42"]
    assert run({"pattern": "a.b", "text": "a\nb", "flags": ["s"]})["match_count"] == 1
    assert run({"pattern": r"\w+", "text": "héllo", "flags": ["a"]})["values"] == ["h", "llo"]
    verbose = run({"pattern": "\\d+  # digits\n - \\d+", "text": "12-34", "flags": ["verbose"]})
    assert verbose["values"] == ["12-34"]


def test_max_matches_and_truncation():
    out = run({"pattern": r"\d", "text": "1234567", "max_matches": 3})
    assert out["values"] == ["1", "2", "3"] and out["truncated"] is True
    exact = run({"pattern": r"\d", "text": "123", "max_matches": 3})
    assert exact["match_count"] == 3 and exact["truncated"] is False


def test_unique():
    out = run({"pattern": r"[a-z]+", "text": "b a b c a", "unique": True})
    assert out["values"] == ["b", "a", "c"]
    capped = run({"pattern": r"[a-z]+", "text": "b a b c a d", "unique": True, "max_matches": 3})
    assert capped["values"] == ["b", "a", "c"] and capped["truncated"] is True


def test_zero_width_matches_and_no_matches():
    assert run({"pattern": r"\b", "text": "ab cd"})["match_count"] == 4
    none = run({"pattern": "zzz", "text": "abc"})
    assert none["matches"] == [] and none["values"] == [] and none["truncated"] is False


def test_catastrophic_backtracking_is_stopped():
    # The skill runs in its own process: its time budget (2 s) stops the runaway match there.
    started = time.monotonic()
    with pytest.raises(ValueError, match="catastrophic backtracking"):
        run({"pattern": r"(a+)+$", "text": "a" * 40 + "b"})
    assert time.monotonic() - started < 8


def test_the_budget_leaves_normal_matches_alone():
    assert extract.TIME_BUDGET_SECONDS == 2.0
    assert run({"pattern": "a", "text": "aaa"})["match_count"] == 3


@pytest.mark.parametrize(
    "params, message",
    [
        ({"pattern": "", "text": "x"}, "non-empty"),
        ({"pattern": "a" * 501, "text": "x"}, "too long"),
        ({"pattern": "a", "text": "x" * 1_000_001}, "'text' is too long"),
        ({"pattern": "a", "text": None}, "'text' must be a string"),
        ({"pattern": "(", "text": "x"}, "invalid regular expression"),
        ({"pattern": "a", "text": "x", "flags": ["Z"]}, "unknown flag"),
        ({"pattern": "a", "text": "x", "flags": "i"}, "list of flag names"),
        ({"pattern": "a", "text": "x", "max_matches": 0}, "max_matches"),
        ({"pattern": "a", "text": "x", "max_matches": 10_001}, "max_matches"),
        ({"pattern": "(a)", "text": "x", "group": 2}, "group 2 does not exist"),
        ({"pattern": "(?P<n>a)", "text": "x", "group": "m"}, "no group named 'm'"),
        ({"pattern": "a", "text": "x", "group": True}, "group number or name"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
