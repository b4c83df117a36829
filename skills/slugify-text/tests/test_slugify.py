import pytest

from scripts.slugify import run, transliterate


def slug(text, **kw):
    return run({"text": text, **kw})["slug"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello-world"),
        ("  --Already--slugged--  ", "already-slugged"),
        ("Ça va? Très bien.", "ca-va-tres-bien"),
        ("Straße in München", "strasse-in-munchen"),
        ("Ærøskøbing Łódź Þór", "aeroskobing-lodz-thor"),
        ("Привет, мир", "privet-mir"),
        ("Щука и ёж", "shchuka-i-ezh"),
        ("Αθήνα 2004", "athina-2004"),
        ("ﬁne ½ Ⅻ", "fine-12-xii"),
        ("snake_case_name", "snake-case-name"),
        ("Don't stop believin’", "dont-stop-believin"),
        ("C++ & C#", "c-c"),
        ("日本語", ""),
        ("", ""),
    ],
)
def test_default_slugs(text, expected):
    assert slug(text) == expected


def test_separator_and_case():
    assert slug("Hello Big World", separator="_") == "hello_big_world"
    assert slug("Hello Big World", separator="") == "hellobigworld"
    assert slug("Hello Big World", separator="--") == "hello--big--world"
    assert slug("Hello Big World", lowercase=False) == "Hello-Big-World"
    assert slug("Щука", lowercase=False) == "Shchuka"


def test_unicode_mode():
    assert slug("日本語 テキスト!", allow_unicode=True) == "日本語-テキスト"
    assert slug("Crème Brûlée", allow_unicode=True) == "crème-brûlée"
    assert slug("ﬁne", allow_unicode=True) == "fine"


def test_max_length_at_word_boundary():
    out = run({"text": "The Quick Brown Fox Jumps", "max_length": 12})
    assert out == {"slug": "the-quick", "length": 9, "truncated": True, "words": 5}
    assert slug("The Quick Brown Fox", max_length=9) == "the-quick"  # exact fit keeps the word
    assert slug("The Quick Brown Fox", max_length=10) == "the-quick"  # no trailing separator
    assert slug("The Quick Brown Fox", max_length=12, word_boundary=False) == "the-quick-br"
    assert slug("Supercalifragilistic", max_length=5) == "super"
    assert slug("The Quick Brown", max_length=10, word_boundary=False) == "the-quick"
    assert slug("ab cd", max_length=100) == "ab-cd"
    assert run({"text": "ab cd", "max_length": 5})["truncated"] is False
    assert slug("aa bb cc", max_length=4, separator="") == "aabb"


def test_stopwords_and_replacements():
    assert slug("The Art of War", stopwords=["the", "OF"]) == "art-war"
    assert slug("Rock & Roll", replacements={"&": "and"}) == "rock-and-roll"
    assert slug("50% off", replacements={"%": "percent", "": "x"}) == "50-percent-off"


def test_transliterate_keeps_ascii():
    assert transliterate("plain ASCII 123") == "plain ASCII 123"
    assert transliterate("Ŋ ħ ẞ") == "NG h SS"


@pytest.mark.parametrize(
    "params, message",
    [
        ({"text": None}, "'text' must be a string"),
        ({"text": "x" * 100_001}, "too long"),
        ({"text": "x", "separator": "a"}, "separator"),
        ({"text": "x", "separator": "----"}, "separator"),
        ({"text": "x", "separator": " "}, "separator"),
        ({"text": "x", "max_length": 0}, "positive integer"),
        ({"text": "x", "max_length": True}, "positive integer"),
        ({"text": "x", "stopwords": "the"}, "list of strings"),
        ({"text": "x", "replacements": {"&": 1}}, "mapping strings"),
    ],
)
def test_errors(params, message):
    with pytest.raises(ValueError, match=message):
        run(params)
