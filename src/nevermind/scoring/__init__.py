"""Scoring: text normalization, substring matching with penalties, echo detection, leak forms,
claims (asserted / negated mentions), and aggregates with standard errors."""

from nevermind.scoring.echo import ECHO_MIN_SENTENCE_WORDS, ECHO_MIN_WORDS, EchoReport, find_echo
from nevermind.scoring.leaks import components, leak_forms, strip_list_markup
from nevermind.scoring.matching import Match, find_phrases, find_spelled, match_with_penalties
from nevermind.scoring.normalize import compact, normalize, words_to_digits
from nevermind.scoring.stats import mean_and_se

__all__ = [
    "ECHO_MIN_SENTENCE_WORDS",
    "ECHO_MIN_WORDS",
    "EchoReport",
    "Match",
    "compact",
    "components",
    "find_echo",
    "find_phrases",
    "find_spelled",
    "leak_forms",
    "match_with_penalties",
    "mean_and_se",
    "normalize",
    "strip_list_markup",
    "words_to_digits",
]
