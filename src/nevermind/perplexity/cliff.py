"""The perplexity cliff: the context length at which a model stops reading text well."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nevermind.errors import NevermindError


def find_cliff(lengths: Sequence[int], perplexity: Sequence[float], multiple: float = 2.0) -> int | None:
    """First length whose perplexity exceeds `multiple` × the perplexity at the first length.

    A non-finite perplexity (overflow) counts as past the cliff. None when no length is."""
    if len(lengths) != len(perplexity):
        raise NevermindError(f"{len(lengths)} lengths but {len(perplexity)} perplexities")
    if not lengths:
        return None
    reference = perplexity[0]
    if not math.isfinite(reference):
        raise NevermindError(f"perplexity at the shortest length {lengths[0]} is not finite: no reference")
    for length, value in zip(lengths, perplexity):
        if not math.isfinite(value) or value > multiple * reference:
            return int(length)
    return None


def cliff_distance(length: int, cliff: int | None, last_length: int) -> float:
    """How far inside (negative) or past (≥ 0) its cliff a length is, as a fraction of the cliff.

    With no cliff found, the cliff is taken as lying beyond `last_length` (distance from
    there is a lower bound on how far inside it the length is)."""
    edge = cliff if cliff is not None else last_length
    return (length - edge) / edge
