import math

import pytest

from nevermind.scoring.stats import mean_and_se


def test_binary_values_give_the_binomial_standard_error():
    values = [1, 0, 1, 1]
    mean, se = mean_and_se(values)
    assert mean == 0.75
    assert se == pytest.approx(math.sqrt(0.75 * 0.25 / 3))


def test_known_values():
    assert mean_and_se([2.0, 4.0, 6.0]) == (4.0, pytest.approx(2 / math.sqrt(3)))
    assert mean_and_se([0.5, 0.5]) == (0.5, 0.0)


def test_single_and_empty():
    assert mean_and_se([0.3]) == (0.3, 0.0)
    mean, se = mean_and_se([])
    assert math.isnan(mean) and math.isnan(se)
