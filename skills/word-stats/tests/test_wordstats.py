import pytest

from scripts.wordstats import _reading_level, count_syllables, run, stopwords

TEXT = (
    "The cat sat on the mat. Dr. Smith didn't agree! Was it 3.5 meters long?\n"
    "\n"
    "A new paragraph begins here. The cat, again, is the star of the story."
)


def test_counts_on_known_text():
    out = run({"text": TEXT})
    assert out["characters"] == len(TEXT) == 143
    assert out["characters_no_spaces"] == 114
    assert out["words"] == 29
    assert out["unique_words"] == 24
    assert out["sentences"] == 5
    assert out["paragraphs"] == 2
    assert out["longest_word"] == "paragraph"
    assert out["average_sentence_length"] == 5.8
    assert out["top_words"][0] == {"word": "cat", "count": 2}


def test_flesch_scores_follow_the_formulas():
    out = run({"text": "The cat sat on the mat. The cat was happy.", "top_k": 2})
    assert (out["words"], out["sentences"], out["syllables"]) == (10, 2, 11)
    assert out["flesch_reading_ease"] == round(206.835 - 1.015 * 5 - 84.6 * 1.1, 2) == 108.7
    assert out["flesch_kincaid_grade"] == round(0.39 * 5 + 11.8 * 1.1 - 15.59, 2) == -0.66
    assert out["reading_level"] == "very easy"
    assert out["top_words"] == [{"word": "cat", "count": 2}, {"word": "happy", "count": 1}]


def test_harder_text_scores_lower():
    easy = run({"text": "We go to the park. We play ball. It is fun."})
    hard = run({"text": "Institutional considerations notwithstanding, the administration's "
                        "comprehensive reorganization necessitated unprecedented interdepartmental collaboration."})
    assert easy["flesch_reading_ease"] > 90 > 0 > hard["flesch_reading_ease"]
    assert hard["reading_level"] == "very difficult"
    assert hard["flesch_kincaid_grade"] > 20


@pytest.mark.parametrize(
    "word, expected",
    [
        ("the", 1), ("cat", 1), ("table", 2), ("make", 1), ("makes", 1), ("jumped", 1), ("wanted", 2),
        ("boxes", 2), ("hello", 2), ("beautiful", 3), ("nation", 2), ("delicious", 3), ("piano", 3),
        ("idea", 3), ("being", 2), ("readability", 5), ("education", 4), ("university", 5),
        ("previous", 3), ("Don't", 1), ("", 0), ("123", 0),
    ],
)
def test_syllables(word, expected):
    assert count_syllables(word) == expected


def test_sentence_splitting_rules():
    text = "Heading without punctuation\n\nSecond para has a sentence. And \"another one.\" Really...  yes"
    assert run({"text": text})["sentences"] == 5
    assert run({"text": "Mr. and Mrs. Smith met Dr. Jones, e.g. at 3.30 p.m. on Monday."})["sentences"] == 1
    assert run({"text": "Wait?! Yes!!"})["sentences"] == 2


def test_words_numbers_and_apostrophes():
    out = run({"text": "I came 3rd in 2024 and won 3.5 points, 1,000 fans cheered. It’s fine.", "top_k": 20})
    assert out["words"] == 14
    words = [w["word"] for w in out["top_words"]]
    assert "3rd" in words and "2024" not in words and "3.5" not in words
    assert "it's" not in words  # curly apostrophe normalised, then treated as a stopword
    with_numbers = run({"text": "2024 2024 year", "include_numbers": True})
    assert with_numbers["top_words"][0] == {"word": "2024", "count": 2}


def test_stopword_options():
    text = "the the the data data model"
    assert run({"text": text})["top_words"] == [{"word": "data", "count": 2}, {"word": "model", "count": 1}]
    assert run({"text": text, "exclude_stopwords": False})["top_words"][0] == {"word": "the", "count": 3}
    assert run({"text": text, "extra_stopwords": ["DATA"]})["top_words"] == [{"word": "model", "count": 1}]
    assert run({"text": text, "min_word_length": 5})["top_words"] == [{"word": "model", "count": 1}]
    assert run({"text": text, "top_k": 0})["top_words"] == []


def test_stopword_resource_is_loaded():
    words = stopwords()
    assert {"the", "and", "don't", "yourselves"} <= words
    assert not any(w.startswith("#") for w in words)
    assert len(words) > 150


def test_empty_and_whitespace_text():
    out = run({"text": "   \n\n  "})
    assert out["words"] == out["sentences"] == out["paragraphs"] == 0
    assert out["flesch_reading_ease"] is None and out["reading_level"] is None
    assert out["average_word_length"] == 0.0 and out["longest_word"] is None
    numbers_only = run({"text": "42 17"})
    assert numbers_only["words"] == 2 and numbers_only["flesch_reading_ease"] is None


@pytest.mark.parametrize(
    "score, label",
    [(95, "very easy"), (85, "easy"), (75, "fairly easy"), (65, "standard"), (55, "fairly difficult"),
     (40, "difficult"), (10, "very difficult")],
)
def test_reading_levels(score, label):
    assert _reading_level(score) == label


@pytest.mark.parametrize(
    "params, message",
    [
        ({"text": 1}, "'text' must be a string"),
        ({"text": "x" * 2_000_001}, "too long"),
        ({"text": "x", "top_k": -1}, "top_k"),
        ({"text": "x", "top_k": True}, "top_k"),
        ({"text": "x", "min_word_length": 0}, "min_word_length"),
        ({"text": "x", "extra_stopwords": "a"}, "extra_stopwords"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
