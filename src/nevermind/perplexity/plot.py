"""The perplexity-versus-length plot: one line per alpha, the trained length and each cliff marked."""

from __future__ import annotations

from pathlib import Path

from nevermind.perplexity.measure import PerplexityResult


def perplexity_figure(result: PerplexityResult):
    """`result` as a matplotlib figure (log-log axes, one line per alpha, cliffs marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = result.config
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for curve in result.curves:
        (line,) = ax.plot(config.lengths, curve.perplexity, marker="o", ms=3, label=f"alpha {curve.alpha:g}")
        if curve.cliff is not None:
            y = curve.perplexity[list(config.lengths).index(curve.cliff)]
            ax.plot([curve.cliff], [y], marker="X", ms=10, color=line.get_color(), zorder=5)
    ax.axvline(result.trained_positions, color="grey", ls="--", lw=1, label=f"trained ({result.trained_positions})")
    if result.declared_positions != result.trained_positions:
        ax.axvline(result.declared_positions, color="grey", ls=":", lw=1,
                   label=f"declared ({result.declared_positions})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel(f"perplexity of the last {config.window} tokens")
    ax.set_title(f"{config.model}: {config.scaling} rope scaling (X = cliff, > {config.cliff_multiple:g}× short)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_perplexity(result: PerplexityResult, path: str | Path) -> Path:
    """Draw `result` as a PNG at `path` and return the path."""
    import matplotlib.pyplot as plt

    fig = perplexity_figure(result)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
