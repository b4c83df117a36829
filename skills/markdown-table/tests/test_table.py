import pytest

from scripts.table import parse, render, run


def test_render_dicts_with_auto_alignment():
    out = run({"rows": [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}], "align": "auto"})
    assert out["markdown"] == (
        "| name | age |\n"
        "| :--- | --: |\n"
        "| Ada  |  36 |\n"
        "| Alan |  41 |\n"
    )
    assert (out["columns"], out["rows"], out["align"]) == (2, 2, ["left", "right"])


def test_render_union_of_keys_and_missing_values():
    out = render({"rows": [{"a": 1}, {"b": None, "a": True}, {"c": "x"}]})
    assert out["markdown"] == (
        "| a    | b   | c   |\n"
        "| ---- | --- | --- |\n"
        "| 1    |     |     |\n"
        "| true |     |     |\n"
        "|      |     | x   |\n"
    )


def test_render_headers_select_keys():
    out = render({"rows": [{"a": 1, "b": 2, "c": 3}], "headers": ["c", "a"]})
    assert out["markdown"].splitlines()[0] == "| c   | a   |"
    assert out["markdown"].splitlines()[2] == "| 3   | 1   |"


def test_render_lists_first_row_is_header_and_padding():
    out = render({"rows": [["x", "y", "z"], [1, 2, 3], [4]], "align": ["right", "center"]})
    assert out["markdown"] == (
        "|   x |  y  | z   |\n"
        "| --: | :-: | --- |\n"
        "|   1 |  2  | 3   |\n"
        "|   4 |     |     |\n"
    )
    assert out["align"] == ["right", "center", "none"]


def test_render_lists_with_headers_and_alignment_by_name():
    out = render({"rows": [["apple", 1.5], ["kiwi", 10]], "headers": ["fruit", "price"], "align": {"price": "right"}})
    assert out["markdown"] == (
        "| fruit | price |\n"
        "| ----- | ----: |\n"
        "| apple |   1.5 |\n"
        "| kiwi  |    10 |\n"
    )


def test_render_escapes_pipes_and_newlines_and_wide_chars():
    out = render({"rows": [{"k": "a|b", "v": "line1\nline2"}, {"k": "日本", "v": ""}]})
    lines = out["markdown"].splitlines()
    assert lines[2] == "| a\\|b | line1<br>line2 |"
    assert lines[3] == "| 日本 |                |"


def test_table_ends_at_heading():
    assert parse({"markdown": "|a|\n|-|\n|1|\n# Next\n|2|\n"})["rows"] == [["1"]]


def test_combining_marks_take_no_width():
    out = render({"rows": [["cafe\u0301", "x"], ["ab", "y"]]})
    assert out["markdown"].splitlines()[2] == "| ab   | y   |"
    assert out["markdown"].splitlines()[0] == "| cafe\u0301 | x   |"


def test_auto_alignment_text_and_empty_columns():
    out = render({"rows": [["n", "t", "e"], ["1,000", "x", None], ["-2.5%", "7", None]], "align": "auto"})
    assert out["align"] == ["right", "left", "left"]


def test_render_empty_table_with_headers():
    out = render({"rows": [], "headers": ["a", "bb"]})
    assert out["markdown"] == "| a   | bb  |\n| --- | --- |\n"
    assert out["rows"] == 0


def test_parse_round_trip():
    rows = [{"name": "Ada", "note": "x|y", "n": "1"}, {"name": "Bob", "note": "two\nlines", "n": "2"}]
    md = render({"rows": rows, "align": ["left", "center", "right"]})["markdown"]
    back = parse({"markdown": md})
    assert back["headers"] == ["name", "note", "n"]
    assert back["records"] == rows
    assert back["align"] == ["left", "center", "right"]


def test_parse_embedded_table_without_outer_pipes_and_ragged_rows():
    text = "Intro text | not a table\n\nName | Qty\n--- | :---\nnut | 3 | extra\nbolt\n\nAfter | x"
    out = run({"markdown": text})
    assert out["headers"] == ["Name", "Qty"]
    assert out["rows"] == [["nut", "3"], ["bolt", ""]]
    assert out["align"] == ["none", "left"]


def test_parse_typed_and_duplicate_headers():
    out = parse({"markdown": "| a | a | b |\n|---|---|---|\n| 1 | -2.5 | x |\n| 1e3 | .5 | 07 |\n", "typed": True})
    assert out["rows"] == [[1, -2.5, "x"], [1000.0, 0.5, 7]]
    assert out["records"][0] == {"a": 1, "a_2": -2.5, "b": "x"}


def test_parse_skips_mismatched_delimiter_rows():
    text = "a | b\n---\n\n| c | d |\n|---|---|\n| 1 | 2 |\n"
    assert parse({"markdown": text})["headers"] == ["c", "d"]


def test_mode_inference_and_explicit_mode():
    assert "markdown" in run({"rows": [["h"], ["v"]]})
    assert run({"mode": "parse", "markdown": "|h|\n|-|\n|v|\n"})["rows"] == [["v"]]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"mode": "other"}, "'mode' must be"),
        ({"rows": "nope"}, "list of objects"),
        ({"rows": [{"a": 1}, [1]]}, "all objects or all lists"),
        ({"rows": []}, "needs 'headers'"),
        ({"rows": [["a"], [1, 2]]}, "only 1 headers"),
        ({"rows": [["a"]], "headers": []}, "non-empty list"),
        ({"rows": [["a"]], "align": "diagonal"}, "unknown alignment"),
        ({"rows": [["a"]], "align": ["left", "right"]}, "2 entries"),
        ({"rows": [["a"]], "align": {"zz": "left"}}, "unknown columns: zz"),
        ({"rows": [["a"]], "align": 3}, "string, a list or an object"),
        ({"mode": "parse"}, "'markdown' must be a string"),
        ({"markdown": "no table here\n---\n"}, "no markdown table"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
