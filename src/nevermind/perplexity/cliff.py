"""The perplexity cliff: the context length at which a model stops reading text well, found on the
ratio of each window's perplexity with its full context to the same window's position-matched
baseline (see measure.py), with the ratio's uncertainty over excerpts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nevermind.errors import NevermindError
from nevermind.scoring.stats import mean_and_se


@dataclass(frozen=True)
class Ratio:
    """perplexity(full context) / perplexity(baseline) over excerpts: the geometric mean of the
    per-excerpt ratios, and the standard error of the mean log ratio."""

    ratio: float
    """exp(mean over excerpts of (NLL with full context − NLL with the baseline context))."""
    log_se: float
    """Standard error of that mean log ratio over excerpts (NaN with one excerpt: unknown)."""
    n: int
    """Excerpts averaged."""

    @property
    def low(self) -> float:
        """exp(mean log ratio − SE)."""
        return self.ratio * math.exp(-self.log_se) if math.isfinite(self.log_se) else math.nan

    @property
    def high(self) -> float:
        """exp(mean log ratio + SE)."""
        return self.ratio * math.exp(self.log_se) if math.isfinite(self.log_se) else math.nan


def ratio_over_excerpts(full_nll: Sequence[float], baseline_nll: Sequence[float]) -> Ratio:
    """The ratio of perplexities from per-excerpt mean NLLs of the same target windows, paired by excerpt."""
    if len(full_nll) != len(baseline_nll) or not full_nll:
        raise NevermindError(f"{len(full_nll)} full-context values but {len(baseline_nll)} baseline values")
    logs = [f - b for f, b in zip(full_nll, baseline_nll)]
    if not all(math.isfinite(v) for v in logs):
        return Ratio(math.inf, math.nan, len(logs))
    mean, se = mean_and_se(logs)
    return Ratio(math.exp(mean), se if len(logs) > 1 else math.nan, len(logs))


def find_cliff(lengths: Sequence[int], ratios: Sequence[float], threshold: float = 1.5) -> int | None:
    """First length whose ratio to its position-matched baseline exceeds `threshold`.

    A non-finite ratio (overflow) counts as past the cliff. None when no length is."""
    if len(lengths) != len(ratios):
        raise NevermindError(f"{len(lengths)} lengths but {len(ratios)} ratios")
    for length, value in zip(lengths, ratios):
        if not math.isfinite(value) or value > threshold:
            return int(length)
    return None


def cliff_distance(length: int, cliff: int | None, last_length: int) -> float:
    """How far inside (negative) or past (≥ 0) its cliff a length is, as a fraction of the cliff.

    With no cliff found, the cliff is taken as lying beyond `last_length` (distance from
    there is a lower bound on how far inside it the length is)."""
    edge = cliff if cliff is not None else last_length
    return (length - edge) / edge
