"""Turn arbitrary text into a URL/file-name friendly slug."""
from __future__ import annotations

import re
import unicodedata

MAX_TEXT_LENGTH = 100_000
# Letters that Unicode decomposition does not reduce to ASCII.
_SPECIAL = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ł": "l", "Ł": "L",
    "ı": "i", "ħ": "h", "Ħ": "H", "ŋ": "ng", "Ŋ": "NG", "ĸ": "k", "ſ": "s",
}
_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґ",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t",
     "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "i", "yi", "ye", "g"],
))
_GREEK = dict(zip(
    "αβγδεζηθικλμνξοπρσςτυφχψω",
    ["a", "v", "g", "d", "e", "z", "i", "th", "i", "k", "l", "m", "n", "x", "o", "p", "r", "s", "s", "t",
     "y", "f", "ch", "ps", "o"],
))


def _transliterate_char(char: str) -> str:
    if char in _SPECIAL:
        return _SPECIAL[char]
    lower = char.lower()
    for table in (_CYRILLIC, _GREEK):
        if lower in table:
            out = table[lower]
            return out.capitalize() if char != lower else out
    return char


def transliterate(text: str) -> str:
    """Best-effort ASCII: strip accents, map a few special letters, Cyrillic and Greek."""
    text = "".join(_transliterate_char(c) for c in unicodedata.normalize("NFC", text))
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = "".join(_transliterate_char(c) for c in text)  # Greek accents were combining marks
    return text.encode("ascii", "ignore").decode("ascii")


def run(params: dict) -> dict:
    text = params.get("text")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"'text' is too long (at most {MAX_TEXT_LENGTH} characters)")
    separator = params.get("separator", "-")
    if not isinstance(separator, str) or len(separator) > 3 or any(c.isalnum() or c.isspace() for c in separator):
        raise ValueError("'separator' must be at most 3 punctuation characters, e.g. '-', '_' or '.'")
    max_length = params.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ValueError("'max_length' must be a positive integer")
    lowercase = params.get("lowercase", True)
    allow_unicode = params.get("allow_unicode", False)
    word_boundary = params.get("word_boundary", True)
    stopwords = params.get("stopwords") or []
    if not isinstance(stopwords, list) or not all(isinstance(w, str) for w in stopwords):
        raise ValueError("'stopwords' must be a list of strings")
    replacements = params.get("replacements") or {}
    if not isinstance(replacements, dict) or not all(isinstance(v, str) for v in replacements.values()):
        raise ValueError("'replacements' must be an object mapping strings to strings")

    for old, new in replacements.items():
        if old:
            text = text.replace(old, f" {new} ")
    text = re.sub(r"(?<=\w)['’](?=\w)", "", text)  # "don't" -> "dont", not "don-t"
    if allow_unicode:
        text = unicodedata.normalize("NFKC", text)
    else:
        text = transliterate(text)
    if lowercase:
        text = text.lower()

    words = re.findall(r"[^\W_]+", text)
    if stopwords:
        folded = {w.lower() for w in stopwords}
        words = [w for w in words if w.lower() not in folded]
    slug = separator.join(words)

    truncated = False
    if max_length is not None and len(slug) > max_length:
        truncated = True
        cut = slug[:max_length]
        if word_boundary and separator and slug[max_length:max_length + len(separator)] != separator:
            boundary = cut.rfind(separator)
            if boundary > 0:
                cut = cut[:boundary]
        while separator and cut.endswith(separator):
            cut = cut[: -len(separator)]
        slug = cut
    return {"slug": slug, "length": len(slug), "truncated": truncated, "words": len(words)}
