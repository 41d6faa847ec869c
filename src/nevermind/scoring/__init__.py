"""Scoring: text normalization, substring matching with penalties, and aggregates with standard errors."""

from nevermind.scoring.matching import Match, find_leaks, find_phrases, match_with_penalties
from nevermind.scoring.normalize import compact, normalize, words_to_digits
from nevermind.scoring.stats import mean_and_se

__all__ = [
    "Match",
    "compact",
    "find_leaks",
    "find_phrases",
    "match_with_penalties",
    "mean_and_se",
    "normalize",
    "words_to_digits",
]
