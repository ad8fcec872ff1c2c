"""Words as moment search compares them: numbers as digits, light stems, and tolerance for the
errors speech recognition and OCR make.

A person remembers "ninety grams" where the recogniser wrote "90 grams", "popper" where it heard
"pop them", "Stir more" where Tesseract read "Stlr more". Both sides of every comparison go
through the same normalisation, so the index's text columns and a query always agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import TypeVar

from rapidfuzz import fuzz, process  # ships with jiwer (pinned in pyproject.toml): C speed

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_TOKEN = re.compile(r"[a-z0-9]+")
# Symbols said as words: "75%" on a slide is "75 percent" in a query, "$18" is "18 dollars".
_SYMBOLS = str.maketrans(
    {"%": " percent ", "$": " dollars ", "€": " euros ", "£": " pounds ", "°": " degrees ",
     "&": " and ", "+": " plus "}
)  # fmt: skip
# Words too common to say anything about where a phrase was said or shown.
STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "for", "from", "had",
        "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my",
        "no", "not", "of", "on", "or", "our", "she", "so", "that", "the", "their", "them",
        "then", "there", "they", "this", "to", "too", "us", "was", "we", "were", "what", "when",
        "where", "which", "who", "will", "with", "you", "your",
    }
)  # fmt: skip
# A term this close to a word of the text (rapidfuzz ratio, 0..1) counts as a misheard or misread
# form of it, for a share of the credit; shorter terms must match exactly.
FUZZY_MIN = 0.8
FUZZY_MIN_LENGTH = 4
GLUED = 0.75


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _numbers(tokens: Sequence[str]) -> list[str]:
    """Spelled cardinals as digits ("two hundred and five" -> "205", "ninety" -> "90"); ordinals
    stay words ("first crack" is a name, not a count), and "two three" stays two numbers."""
    # Which kinds of number word may follow which inside one number ("twenty five", "two
    # hundred", "five thousand"); anything else ends the number being read.
    may_follow = {
        "unit": {None, "tens", "scale"},
        "teen": {None, "scale"},
        "tens": {None, "scale"},
        "scale": {"unit", "teen", "tens", "scale"},
    }
    out: list[str] = []
    total = current = 0
    last: str | None = None

    def flush() -> None:
        nonlocal total, current, last
        if last is not None:
            out.append(str(total + current))
        total = current = 0
        last = None

    for i, token in enumerate(tokens):
        kind = (
            "unit" if token in _UNITS
            else "teen" if token in _TEENS
            else "tens" if token in _TENS
            else "scale" if token in _SCALES
            else None
        )  # fmt: skip
        if kind is None:
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            if token == "and" and last == "scale" and (following in _UNITS or following in _TEENS
                                                      or following in _TENS):  # fmt: skip
                continue  # "two hundred and five"
            flush()
            out.append(token)
            continue
        if last not in may_follow[kind]:
            flush()
        if kind == "scale":
            if last is None:  # "hundred" alone is a word, not a number
                out.append(token)
                continue
            if _SCALES[token] == 100:
                current = current * 100
            else:
                total, current = total + current * _SCALES[token], 0
        else:
            current += _UNITS.get(token, 0) + _TEENS.get(token, 0) + _TENS.get(token, 0)
        last = kind
    flush()
    return out


def normalize(text: str) -> str:
    """Lower case, accents folded, punctuation dropped, spelled numbers as digits: the form the
    index's search columns hold and queries are compared in."""
    return " ".join(_numbers(_TOKEN.findall(_fold(text.translate(_SYMBOLS)).replace(",", ""))))


_T = TypeVar("_T")
_MISSING = object()


def _memo(size: int) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """Results of a function of one string kept until ``size`` of them are (then forgotten at
    once): a query compares the same words and texts of hundreds of buckets, and the next query
    many of them again. A plain dict: its strings, and the tuples of strings that the first
    collection to see them stops tracking, are not walked by the garbage collector (an
    ``lru_cache``'s links are, and full collections already show in a query's p95)."""

    def decorate(function: Callable[[str], _T]) -> Callable[[str], _T]:
        kept: dict[str, _T] = {}

        @wraps(function)
        def memo(text: str) -> _T:
            found = kept.get(text, _MISSING)
            if found is _MISSING:
                if len(kept) >= size:
                    kept.clear()
                found = kept[text] = function(text)
            return found  # type: ignore[return-value]

        return memo

    return decorate


@_memo(200_000)
def stem(word: str) -> str:
    """A light English stem, enough to meet plural, tense and agent forms half way
    ("poppers"/"popping"/"pop", "releasing"/"release", "beans"/"bean"): a plural ending, then a
    tense or agent ending, then a doubled last consonant and a final e."""
    for endings in (
        (("ies", "y"), ("sses", "ss"), ("es", ""), ("s", "")),
        (("ing", ""), ("ed", ""), ("er", ""), ("ly", "")),
    ):
        for suffix, keep in endings:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
                word = word[: -len(suffix)] + keep
                break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]  # "popp" -> "pop"
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The stems of ``text``'s content words, in order."""
    return [stem(t) for t in normalize(text).split() if t not in STOPWORDS]


def term_coverage(query: Sequence[str], text: Iterable[str]) -> float:
    """How much of ``query`` (stems) occurs in ``text`` (stems), averaged over the terms: a term
    counts 1 when present; when only a near form is (a misheard or misread word), its similarity;
    when it is glued inside a longer word ("pinch of salt" heard as "chunsalt"), ``GLUED``."""
    if not query:
        return 0.0
    present = set(text)
    total = 0.0
    for term in query:
        if term in present:
            total += 1.0
        elif len(term) >= FUZZY_MIN_LENGTH and present:
            near = process.extractOne(term, present, scorer=fuzz.ratio)[1] / 100
            glued = GLUED if any(term in word for word in present) else 0.0
            total += max(near if near >= FUZZY_MIN else 0.0, glued)
    return total / len(query)


def on_screen_similarity(query: str, text: str) -> float:
    """How well ``text`` (read off a frame) contains ``query`` (remembered), 0..1, tolerant of
    misread characters: the best character alignment of the query inside the text, or the share
    of the query's words found there (in any order), whichever is higher."""
    wanted, words = _screen_form(query)
    shown, present = _screen_form(text)
    if not wanted or not shown:
        return 0.0
    # A text shorter than the query cannot contain it: compare the whole of both.
    aligned = (
        fuzz.partial_ratio(wanted, shown)
        if len(shown) >= len(wanted)
        else fuzz.ratio(wanted, shown)
    )
    return max(aligned / 100, term_coverage(words, present))


@_memo(50_000)
def _screen_form(text: str) -> tuple[str, tuple[str, ...]]:
    """A text on screen (or asked for) normalised, and its words' stems."""
    normal = normalize(text)
    return normal, tuple(stem(w) for w in normal.split())
