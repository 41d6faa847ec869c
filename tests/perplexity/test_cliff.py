"""Cliff detection on perplexities measured with SmolLM2-135M (restricted to 512 positions, static NTK)."""

import math

import pytest

from nevermind.errors import NevermindError
from nevermind.perplexity import cliff_distance, find_cliff

LENGTHS = [256, 512, 768, 1024, 1536, 2048, 3072, 4096]
# `nevermind perplexity -m smollm2-135m-instruct --max-positions 512 --alphas 1,2 --lengths 256,...,4096`
ALPHA_1 = [37.02, 23.77, 48.54, 34.32, 49.05, 933.2, 6764, 4086]
ALPHA_2 = [34.69, 21.27, 42.43, 29.02, 43.63, 24.84, 972.3, 2038]


def test_cliff_on_measured_curves():
    assert find_cliff(LENGTHS, ALPHA_1) == 2048
    assert find_cliff(LENGTHS, ALPHA_2) == 3072  # a larger alpha moves the cliff later


def test_multiple_sets_the_threshold():
    # 48.54 at 768 is 1.31× the 256-token value: a cliff only for a multiple below that
    assert find_cliff(LENGTHS, ALPHA_1, multiple=1.3) == 768
    assert find_cliff(LENGTHS, ALPHA_1, multiple=200.0) is None


def test_overflow_counts_as_past_the_cliff():
    assert find_cliff([1, 2, 3], [10.0, math.inf, 11.0]) == 2
    assert find_cliff([1, 2, 3], [10.0, math.nan, 11.0]) == 2
    with pytest.raises(NevermindError):
        find_cliff([1, 2], [math.inf, 3.0])
    with pytest.raises(NevermindError):
        find_cliff([1, 2], [3.0])


def test_distance_from_the_cliff():
    assert cliff_distance(1024, 2048, 4096) == -0.5
    assert cliff_distance(4096, 2048, 4096) == 1.0
    assert cliff_distance(2048, None, 4096) == -0.5  # no cliff: measured from the last length
