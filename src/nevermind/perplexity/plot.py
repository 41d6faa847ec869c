"""Plots of context scaling: perplexity and its ratio to the position-matched baseline against length
(one line per alpha, cliffs marked), and the buffer experiment's accuracy against distance from the cliff."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nevermind.perplexity.measure import PerplexityResult

if TYPE_CHECKING:
    from nevermind.perplexity.buffer import BufferPoint


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def perplexity_figure(result: PerplexityResult):
    """Left: perplexity with the full context (solid) and with the baseline context (dashed). Right:
    their ratio with ± SE over excerpts, the cliff threshold, and each cliff (X)."""
    plt = _pyplot()
    config = result.config
    lengths = list(config.lengths)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for curve in result.curves:
        (line,) = left.plot(lengths, curve.perplexity, marker="o", ms=3, label=f"alpha {curve.alpha:g}")
        left.plot(lengths, curve.baseline, ls="--", lw=1, color=line.get_color())
        low = [r - r * math.exp(-s) if math.isfinite(s) else 0 for r, s in zip(curve.ratio, curve.ratio_log_se)]
        high = [r * math.exp(s) - r if math.isfinite(s) else 0 for r, s in zip(curve.ratio, curve.ratio_log_se)]
        right.errorbar(lengths, curve.ratio, yerr=[low, high], marker="o", ms=3, capsize=2, color=line.get_color(),
                       label=f"alpha {curve.alpha:g}")
        if curve.cliff is not None:
            right.plot([curve.cliff], [curve.ratio[lengths.index(curve.cliff)]], marker="X", ms=10,
                       color=line.get_color(), zorder=5)
    for ax in (left, right):
        if result.trained_positions:
            ax.axvline(result.trained_positions, color="grey", ls="--", lw=1,
                       label=f"trained ({result.trained_positions})")
        if result.declared_positions and result.declared_positions != result.trained_positions:
            ax.axvline(result.declared_positions, color="grey", ls=":", lw=1,
                       label=f"declared ({result.declared_positions})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length (tokens)")
        ax.grid(True, which="both", alpha=0.3)
    right.axhline(config.cliff_ratio, color="red", lw=1, ls=":", label=f"cliff ratio {config.cliff_ratio:g}")
    left.set_ylabel(f"perplexity of the last {config.window} tokens")
    left.set_title("full context (solid), baseline context (dashed)", fontsize=9)
    right.set_ylabel("perplexity ÷ baseline (± SE over excerpts)")
    right.set_title(f"{config.model}: {config.scaling} rope, {len(result.excerpt_starts) or config.samples} "
                    f"excerpts, baseline = {result.baseline_context} tokens before", fontsize=9)
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_perplexity(result: PerplexityResult, path: str | Path) -> Path:
    """Draw `result` as a PNG at `path` and return the path."""
    plt = _pyplot()
    fig = perplexity_figure(result)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def buffer_figure(points: Sequence[BufferPoint]):
    """Accuracy against distance from the cliff, one panel per task, one colour per alpha."""
    plt = _pyplot()
    tasks = sorted({p.task for p in points})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), dpi=110, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for alpha in sorted({p.alpha for p in points}):
            mine = sorted((p for p in points if p.task == task and p.alpha == alpha), key=lambda p: p.distance)
            open_marker = bool(mine) and mine[0].cliff is None
            ax.errorbar([p.distance for p in mine], [p.accuracy for p in mine],
                        yerr=[0 if math.isnan(p.stderr) else p.stderr for p in mine], marker="o", capsize=2,
                        mfc="none" if open_marker else None,
                        label=f"alpha {alpha:g}" + (" (no cliff: last length)" if open_marker else ""))
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.set_title(task)
        ax.set_xlabel("(length − cliff) / cliff")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
