"""Perplexity of long text versus context length under RoPE scaling, and the cliff where it breaks."""

from nevermind.perplexity.cliff import cliff_distance, find_cliff
from nevermind.perplexity.measure import (
    AlphaCurve,
    PerplexityConfig,
    PerplexityResult,
    run_perplexity,
    token_nll,
)
from nevermind.perplexity.plot import plot_perplexity

__all__ = [
    "AlphaCurve",
    "PerplexityConfig",
    "PerplexityResult",
    "cliff_distance",
    "find_cliff",
    "plot_perplexity",
    "run_perplexity",
    "token_nll",
]
