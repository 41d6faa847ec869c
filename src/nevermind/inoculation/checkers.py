"""String rules that read greedy outputs for seed 002: the final number of an answer, and whether a
phrase occurs (ignoring case, accents, punctuation and spacing). Text is normalised by the one
`normalize` the task scorers use (nevermind.scoring.normalize)."""

from __future__ import annotations

import re

from nevermind.scoring.normalize import normalize

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_STATED = re.compile(rf"answer\s*(?:is|:|=)\s*\**\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)


def parse_number(text: str) -> float | None:
    """"1,250", "-3", "18." → float, or None."""
    try:
        return float(text.replace(",", "").strip().rstrip("."))
    except ValueError:
        return None


def final_answer(text: str) -> float | None:
    """The answer a response states: the last "answer is N", else the last number; None without one."""
    stated = _STATED.findall(text)
    if stated:
        return parse_number(stated[-1])
    numbers = _ANY_NUMBER.findall(text)
    return parse_number(numbers[-1]) if numbers else None


def same_number(a: float | None, b: float | None) -> bool:
    """Numeric equality up to float rounding."""
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def has_phrase(text: str, phrase: str) -> bool:
    """The phrase occurs in the text as whole words, ignoring case, accents, punctuation and spacing."""
    wanted = normalize(phrase)
    return bool(wanted) and f" {wanted} " in f" {normalize(text)} "



def starts_with_phrase(text: str, phrase: str) -> bool:
    """The text starts with the phrase's words, ignoring case, accents, punctuation and spacing."""
    wanted = normalize(phrase)
    return bool(wanted) and f"{normalize(text)} ".startswith(f"{wanted} ")


def echoes(text: str, prompt: str, phrase: str = "", run: int = 4) -> bool:
    """Whether the text repeats the prompt rather than acting on it: some `run` consecutive words of
    the text, besides the phrase the prompt asks for, occur in the prompt. An echo earns no credit."""
    text = f" {normalize(text)} "
    if normalize(phrase):
        text = text.replace(f" {normalize(phrase)} ", " ")
    words = text.split()
    source = f" {normalize(prompt)} "
    return any(f" {' '.join(words[i : i + run])} " in source for i in range(len(words) - run + 1))
