"""Text normalization for substring scoring: case, accents, punctuation, whitespace and number words.

`normalize("The code is Forty-Two, OK?") == "the code is 42 ok"`, `normalize("7,481") == "7481"`; `compact()` further drops
every separator so that spelled-out forms ("p-a-s-s", "P A S S") read as the word they spell."""

from __future__ import annotations

import re
import unicodedata

_UNITS = {
    "zero": 0, "oh": None, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_UNITS.pop("oh")  # "oh" is too often a word to read as zero
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES)
_WORD = re.compile(r"[a-z0-9]+")
_THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u202f\u2009](?=\d{3}(?!\d))")
"""A thousands separator between digit groups ("7,481", "7\u202f481"): dropped, so 7,481 reads as 7481."""


def fold(text: str) -> str:
    """Lowercase and strip accents ("Bogotá" → "bogota"), keeping every other character."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _read_number(words: list[str]) -> tuple[int, int]:
    """Parse the longest number phrase at the start of `words`; returns (value, words used)."""
    total, current, used, last = 0, 0, 0, None  # last: kind of the previous word, to split "four two"
    for i, word in enumerate(words):
        if (
            word == "and"
            and used
            and i + 1 < len(words)
            and words[i + 1] in _NUMBER_WORDS
            and last == "scale"
        ):
            continue
        if word in _UNITS:
            value = _UNITS[word]
            if last in ("unit", "teen") or (last == "tens" and value >= 10):
                break  # "four two" is two numbers, "twenty twelve" too
            current += value
            last = "teen" if value >= 10 else "unit"
        elif word in _TENS:
            if last in ("unit", "teen", "tens"):
                break
            current += _TENS[word]
            last = "tens"
        elif word in _SCALES:
            if last is None:
                break
            scale = _SCALES[word]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
            last = "scale"
        else:
            break
        used = i + 1
    return total + current, used


def words_to_digits(text: str) -> str:
    """Replace English number words by digits in already-folded text ("forty two" → "42", "four two" → "4 2")."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in _NUMBER_WORDS:
            value, used = _read_number(words[i:])
            if used:
                out.append(str(value))
                i += used
                continue
        out.append(words[i])
        i += 1
    return " ".join(out)


def normalize(text: str) -> str:
    """Lowercase, strip accents, drop thousands separators ("7,481" → "7481"), turn punctuation into
    spaces, number words into digits, collapse whitespace."""
    return words_to_digits(" ".join(_WORD.findall(fold(_THOUSANDS.sub("", text)))))


def compact(text: str) -> str:
    """`normalize` with every separator removed: "P-A-S-S 4 2" → "pass42"; catches spelled-out leaks."""
    return normalize(text).replace(" ", "")
