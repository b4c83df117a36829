"""Word, sentence and paragraph statistics, top words and Flesch readability for English text."""
from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
MAX_TEXT_LENGTH = 2_000_000
WORDS_PER_MINUTE = 238  # average silent reading speed for adults (Brysbaert, 2019)
_WORD = re.compile(r"\d+(?:[.,]\d+)*(?![^\W_])|[^\W_]+(?:['’][^\W_]+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_ABBREVIATIONS = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|vs|etc|Inc|Ltd|Co|No|Fig|approx|e\.g|i\.e|a\.m|p\.m|U\.S)\.", re.I
)
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


@lru_cache(maxsize=1)
def stopwords() -> frozenset:
    lines = (RESOURCES / "stopwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def count_syllables(word: str) -> int:
    """Heuristic English syllable count (about 9 in 10 common words exact); at least 1 for a word."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 0
    if len(w) <= 3:
        return 1
    n = len(re.findall(r"[aeiouy]+", w))
    if re.search(r"[^aeiouy]e$", w) and not re.search(r"[^aeiouy]le$", w):
        n -= 1  # silent final e: make, but ta-ble
    elif re.search(r"(?:[^aeiouytd]ed|[^aeiouysxzcgh]es)$", w):
        n -= 1  # silent -ed / -es: jumped, makes, but want-ed, box-es
    n += len(re.findall(r"(?:ia|io|iu|(?<!p)eo|(?<![gq])ua|uo|ea$|[aeiouy]ing$)", w))  # pi-a-no, vi-de-o, be-ing
    n -= len(re.findall(r"(?:[ct]ia[ln]|[cgst]io[nu]|[cts]ious|[ct]iu)", w))  # except na-tion, spe-cial
    n += bool(re.search(r"^(?:pre|re|de)[aeiou]", w) and not re.search(r"^(?:rea[dl]|deal)", w))
    return max(1, n)


def _sentences(text: str) -> list[str]:
    protected = _ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), text)
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(protected):
        pieces.append(protected[start:match.end()])
        start = match.end()
    pieces.append(protected[start:])
    result = []
    for piece in pieces:  # paragraph breaks end a sentence even without punctuation
        result += [p for p in re.split(r"\n\s*\n", piece) if _WORD.search(p)]
    return result


def _reading_level(score: float) -> str:
    for bound, label in ((90, "very easy"), (80, "easy"), (70, "fairly easy"), (60, "standard"),
                         (50, "fairly difficult"), (30, "difficult")):
        if score >= bound:
            return label
    return "very difficult"


def run(params: dict) -> dict:
    text = params.get("text")
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"'text' is too long (at most {MAX_TEXT_LENGTH} characters)")
    top_k = params.get("top_k", 10)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= 1000:
        raise ValueError("'top_k' must be an integer from 0 to 1000")
    min_length = params.get("min_word_length", 1)
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
        raise ValueError("'min_word_length' must be a positive integer")
    extra = params.get("extra_stopwords") or []
    if not isinstance(extra, list) or not all(isinstance(w, str) for w in extra):
        raise ValueError("'extra_stopwords' must be a list of strings")
    exclude = params.get("exclude_stopwords", True)
    include_numbers = params.get("include_numbers", False)

    words = [w.replace("’", "'") for w in _WORD.findall(text)]
    lowered = [w.lower() for w in words]
    sentences = _sentences(text)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    alphabetic = [w for w in words if not _NUMBER.fullmatch(w)]
    syllables = sum(count_syllables(w) for w in alphabetic)

    blocked = (stopwords() if exclude else frozenset()) | {w.lower() for w in extra}
    counted = Counter(
        w for w in lowered
        if w not in blocked and len(w) >= min_length and (include_numbers or not _NUMBER.fullmatch(w))
    )
    top = sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]

    n_words, n_sentences = len(words), len(sentences)
    flesch = grade = None
    if alphabetic and n_sentences:
        words_per_sentence = n_words / n_sentences
        syllables_per_word = syllables / len(alphabetic)
        flesch = round(206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word, 2)
        grade = round(0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59, 2)

    return {
        "characters": len(text),
        "characters_no_spaces": sum(1 for c in text if not c.isspace()),
        "words": n_words,
        "unique_words": len(set(lowered)),
        "sentences": n_sentences,
        "paragraphs": len(paragraphs),
        "syllables": syllables,
        "average_word_length": round(sum(len(w) for w in words) / n_words, 2) if n_words else 0.0,
        "average_sentence_length": round(n_words / n_sentences, 2) if n_sentences else 0.0,
        "longest_word": max(words, key=len) if words else None,
        "flesch_reading_ease": flesch,
        "flesch_kincaid_grade": grade,
        "reading_level": _reading_level(flesch) if flesch is not None else None,
        "reading_time_minutes": round(n_words / WORDS_PER_MINUTE, 2),
        "top_words": [{"word": w, "count": c} for w, c in top],
    }
