"""Substring matching with penalties, the scoring rule shared by the conflict-suite tasks.

Formula (docs/tasks.md):  value = hit × (1 − w × penalised)
  hit        1 when any expected string occurs in the output (after `normalize`), else 0
  penalised  1 when any penalty string occurs in the output, else 0
  w          the task's penalty weight in [0, 1] (override uses 0.5)
Strings match on whole normalized words: "paris" matches "Paris." but not "Parisian"."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from nevermind.scoring.normalize import compact, fold, normalize


@lru_cache(maxsize=8192)
def _phrase_key(phrase: str) -> str:
    return normalize(phrase)  # phrases recur (club names, answers): normalize each once


def find_phrases(output: str, phrases: Iterable[str]) -> list[str]:
    """The phrases (as given) whose normalized form occurs in the normalized output on word boundaries."""
    haystack = f" {normalize(output)} "
    found = []
    for phrase in phrases:
        key = _phrase_key(phrase)
        if key and f" {key} " in haystack and phrase not in found:
            found.append(phrase)
    return found


def find_spelled(output: str, words: Iterable[str]) -> list[str]:
    """The words (as given) that `output` spells out letter by letter: "b-a-n-a-n-a", "B A N A N A"."""
    found = []
    for word in words:
        letters = compact(word)
        if len(letters) < 2:
            continue
        pattern = r"(?<![^\W_])" + r"[\W_]+".join(map(re.escape, letters)) + r"(?![^\W_])"
        if re.search(pattern, fold(output)) and word not in found:
            found.append(word)
    return found


@dataclass
class Match:
    """The outcome of matching one output: its value and every string that decided it."""

    value: float
    """hit × (1 − w × penalised), in [0, 1]."""
    hits: list[str] = field(default_factory=list)
    """Expected strings found in the output."""
    penalties: list[str] = field(default_factory=list)
    """Penalty strings found in the output."""

    def explain(self, what: str = "answer") -> str:
        """One line saying which strings matched and what that made the value."""
        parts = [f"{what} found: {', '.join(map(repr, self.hits))}" if self.hits else f"no {what} found"]
        if self.penalties:
            parts.append(f"penalty: {', '.join(map(repr, self.penalties))}")
        return f"{'; '.join(parts)} → {self.value:g}"


def match_with_penalties(
    output: str, expected: Sequence[str], penalties: Sequence[str] = (), penalty_weight: float = 1.0
) -> Match:
    """Score `output`: 1 when an expected string appears, reduced by `penalty_weight` when a penalty does."""
    if not 0.0 <= penalty_weight <= 1.0:
        raise ValueError(f"penalty_weight must be in [0, 1], got {penalty_weight}")
    hits = find_phrases(output, expected)
    found_penalties = find_phrases(output, penalties)
    value = float(bool(hits)) * (1.0 - penalty_weight * float(bool(found_penalties)))
    return Match(value=value, hits=hits, penalties=found_penalties)
