import difflib

import pytest

from scripts.diff import CHAR_RATIO_LIMIT, run

A = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"
B = "one\n2\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n"


def test_simple_change():
    out = run({"a": "one\ntwo\nthree\n", "b": "one\n2\nthree\nfour\n"})
    assert out["unified_diff"] == "--- a\n+++ b\n@@ -1,3 +1,4 @@\n one\n-two\n+2\n three\n+four\n"
    assert (out["added"], out["removed"], out["hunks"]) == (2, 1, 1)
    assert out["identical"] is False and out["equivalent"] is False
    assert (out["lines_a"], out["lines_b"]) == (3, 4)
    assert out["similarity_basis"] == "chars"
    expected = difflib.SequenceMatcher(None, "one\ntwo\nthree\n", "one\n2\nthree\nfour\n", autojunk=False).ratio()
    assert out["similarity"] == round(expected, 6)
    assert out["line_similarity"] == round(4 / 7, 6)


@pytest.mark.parametrize("context", [0, 1, 3, 10])
def test_matches_difflib_unified_diff(context):
    out = run({"a": A, "b": B, "from_name": "old.txt", "to_name": "new.txt", "context": context})
    expected = difflib.unified_diff(A.splitlines(), B.splitlines(), "old.txt", "new.txt", n=context, lineterm="")
    assert out["unified_diff"] == "\n".join(expected) + "\n"


def test_context_controls_hunks():
    assert run({"a": A, "b": B, "context": 1})["hunks"] == 2
    assert run({"a": A, "b": B, "context": 10})["hunks"] == 1


def test_identical_texts():
    out = run({"a": A, "b": A})
    assert out["identical"] and out["equivalent"]
    assert out["unified_diff"] == ""
    assert (out["added"], out["removed"], out["hunks"]) == (0, 0, 0)
    assert out["similarity"] == 1.0 and out["line_similarity"] == 1.0


def test_empty_inputs():
    both = run({"a": "", "b": ""})
    assert both["identical"] and both["similarity"] == 1.0
    grow = run({"a": "", "b": "x\ny\n"})
    assert grow["unified_diff"] == "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n"
    assert (grow["added"], grow["removed"]) == (2, 0)
    assert grow["similarity"] == 0.0
    shrink = run({"a": "x\n", "b": ""})
    assert shrink["unified_diff"] == "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n"


def test_ignore_case_and_whitespace_print_original_lines():
    a, b = "Hello  World\nsame\n", "hello world\nsame\nnew\n"
    plain = run({"a": a, "b": b})
    assert (plain["added"], plain["removed"]) == (2, 1)
    loose = run({"a": a, "b": b, "ignore_case": True, "ignore_whitespace": True})
    assert (loose["added"], loose["removed"]) == (1, 0)
    assert loose["unified_diff"] == "--- a\n+++ b\n@@ -1,2 +1,3 @@\n Hello  World\n same\n+new\n"
    only_ws = run({"a": "a  b\n", "b": " a b \n", "ignore_whitespace": True})
    assert only_ws["equivalent"] and not only_ws["identical"] and only_ws["similarity"] == 1.0
    only_case = run({"a": "ABC", "b": "abc", "ignore_case": True})
    assert only_case["equivalent"] and only_case["similarity"] == 1.0


def test_trailing_newline_only_difference():
    out = run({"a": "x\n", "b": "x"})
    assert out["identical"] is False and out["equivalent"] is True and out["unified_diff"] == ""


def test_large_inputs_use_line_similarity():
    a = "".join(f"line {i}\n" for i in range(2000))
    b = a.replace("line 1000\n", "changed\n")
    assert len(a) > CHAR_RATIO_LIMIT
    out = run({"a": a, "b": b})
    assert out["similarity_basis"] == "lines"
    assert out["similarity"] == out["line_similarity"] == round(3998 / 4000, 6)
    assert (out["added"], out["removed"]) == (1, 1)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"a": "x"}, "'b' must be a string"),
        ({"a": None, "b": "x"}, "'a' must be a string"),
        ({"a": "x" * 500_001, "b": ""}, "too large"),
        ({"a": "", "b": "", "context": -1}, "context"),
        ({"a": "", "b": "", "context": True}, "context"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
