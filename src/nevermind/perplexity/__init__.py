"""Perplexity of long text versus context length under RoPE scaling, against a position-matched
baseline; the cliff where the ratio breaks; and the buffer experiment (instruction following
inside the cliff)."""

from nevermind.perplexity.buffer import BufferPoint, run_buffer
from nevermind.perplexity.cliff import Ratio, cliff_distance, find_cliff, ratio_over_excerpts
from nevermind.perplexity.experiment import buffer_to_dir, default_output, measure_to_dir, write_result
from nevermind.perplexity.measure import (
    AlphaCurve,
    PerplexityConfig,
    PerplexityResult,
    run_perplexity,
)
from nevermind.perplexity.plot import buffer_figure, perplexity_figure, plot_perplexity

__all__ = [
    "AlphaCurve",
    "BufferPoint",
    "PerplexityConfig",
    "PerplexityResult",
    "Ratio",
    "buffer_figure",
    "buffer_to_dir",
    "cliff_distance",
    "default_output",
    "find_cliff",
    "measure_to_dir",
    "perplexity_figure",
    "plot_perplexity",
    "ratio_over_excerpts",
    "run_buffer",
    "run_perplexity",
    "write_result",
]
