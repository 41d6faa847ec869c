"""The cliff on the ratio to the position-matched baseline, and distances from it."""

import math

import pytest

from nevermind.errors import NevermindError
from nevermind.perplexity import cliff_distance, find_cliff, ratio_over_excerpts

LENGTHS = [512, 768, 1024, 2048, 4096]


def test_cliff_is_the_first_ratio_above_the_threshold():
    ratios = [1.0, 0.96, 1.12, 31.0, 80.0]
    assert find_cliff(LENGTHS, ratios) == 2048
    assert find_cliff(LENGTHS, ratios, threshold=1.1) == 1024
    assert find_cliff(LENGTHS, ratios, threshold=100.0) is None


def test_overflow_counts_as_past_the_cliff():
    assert find_cliff([1, 2, 3], [1.0, math.inf, 1.0]) == 2
    assert find_cliff([1, 2, 3], [1.0, math.nan, 1.0]) == 2
    assert ratio_over_excerpts([math.inf, 2.0], [1.0, 1.0]).ratio == math.inf
    with pytest.raises(NevermindError):
        find_cliff([1, 2], [3.0])
    with pytest.raises(NevermindError):
        ratio_over_excerpts([1.0], [])


def test_text_difficulty_cancels_in_the_ratio():
    """Windows whose raw perplexity differs 2× (different text) but that read as well with long
    context as with short have ratio 1: raw perplexity alone would call a cliff there."""
    baseline = [2.8, 3.5, 2.9, 3.4]  # NLL of four excerpts' windows after a short context
    full = [b - 0.02 for b in baseline]  # long context helps a little
    stats = ratio_over_excerpts(full, baseline)
    assert stats.ratio == pytest.approx(math.exp(-0.02)) and stats.log_se == pytest.approx(0.0, abs=1e-12)
    assert stats.low <= stats.ratio <= stats.high


def test_distance_from_the_cliff():
    assert cliff_distance(1024, 2048, 4096) == -0.5
    assert cliff_distance(4096, 2048, 4096) == 1.0
    assert cliff_distance(2048, None, 4096) == -0.5  # no cliff: measured from the last length
