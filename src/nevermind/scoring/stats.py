"""Aggregates with their uncertainty: every score nevermind reports carries a standard error."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with n-1, divided by sqrt(n)).

    For 0/1 values this is the binomial SE sqrt(p(1-p)/(n-1)) up to the n-1 correction.
    One value has no spread to estimate: its SE is 0.0. An empty sequence gives (nan, nan)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)
