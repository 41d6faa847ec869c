"""Plots for the report, drawn with matplotlib and embedded as inline base64 PNG images."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Collection, Sequence
from typing import Any

from markupsafe import Markup

from nevermind.scoring.stats import mean_and_se


def figure_html(figure: Any, alt: str) -> Markup:
    """An <img> holding `figure` as an inline PNG (no external file); closes the figure."""
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Markup('<img class="plot" alt="{}" src="data:image/png;base64,{}">').format(alt, data)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def _plain_text() -> Any:
    """Labels are model and task names, not mathtext: a stray "$" must not be parsed."""
    return _pyplot().rc_context({"text.parse_math": False})


def score_bars(
    groups: Sequence[str], series: dict[str, list[tuple[float, float]]], title: str, hatched: Collection[int] = ()
) -> Any:
    """Grouped bar chart: one group per metric, one bar per model, standard errors as error bars.

    `series` maps a model label to (mean, se) per group (nan where the model lacks the metric);
    groups whose index is in `hatched` are drawn hatched (rates that are not scores, e.g. echo)."""
    with _plain_text():
        return _score_bars(groups, series, title, hatched)


def _score_bars(
    groups: Sequence[str], series: dict[str, list[tuple[float, float]]], title: str, hatched: Collection[int]
) -> Any:
    plt = _pyplot()
    width = 0.8 / max(len(series), 1)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) * max(len(series), 1) * 0.6 + 2), 3.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, points) in enumerate(series.items()):
        xs = [g + (k - (len(series) - 1) / 2) * width for g in range(len(groups))]
        means = [0.0 if math.isnan(m) else m for m, _ in points]
        errors = [0.0 if math.isnan(s) else s for _, s in points]
        bars = axes.bar(xs, means, width * 0.95, yerr=errors, capsize=3, label=label, color=colors[k % len(colors)])
        for g, bar in enumerate(bars):
            if g in hatched:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=20, ha="right")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("mean score (± SE)")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def grid_heatmaps(panels: dict[str, list[tuple[float, float, float]]], title: str) -> Any:
    """One heatmap per model side by side: mean score by context length (x) and depth (y).

    `panels` maps a model label to (length, depth, value) triples, one per sample."""
    with _plain_text():
        return _grid_heatmaps(panels, title)


def _grid_heatmaps(panels: dict[str, list[tuple[float, float, float]]], title: str) -> Any:
    plt = _pyplot()
    figure, axes_list = plt.subplots(
        1, len(panels), figsize=(max(4.5, 4.2 * len(panels)), 3.8), squeeze=False, constrained_layout=True
    )
    image = None
    for axes, (label, points) in zip(axes_list[0], panels.items()):
        lengths = sorted({p[0] for p in points})
        depths = sorted({p[1] for p in points})
        cells: dict[tuple[float, float], list[float]] = {}
        for length, depth, value in points:
            cells.setdefault((length, depth), []).append(value)
        grid = [[math.nan] * len(lengths) for _ in depths]
        for (length, depth), values in cells.items():
            grid[depths.index(depth)][lengths.index(length)] = mean_and_se(values)[0]
        image = axes.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="upper")
        for (length, depth), values in cells.items():
            mean = mean_and_se(values)[0]
            axes.text(lengths.index(length), depths.index(depth), f"{mean:.2f}\nn={len(values)}",
                      ha="center", va="center", fontsize=8)
        axes.set_xticks(range(len(lengths)), [f"{x:g}" for x in lengths])
        axes.set_yticks(range(len(depths)), [f"{y:g}%" for y in depths])
        axes.set_xlabel("context length (tokens)")
        axes.set_ylabel("needle depth")
        axes.set_title(label, fontsize=9)
    if image is not None:
        figure.colorbar(image, ax=list(axes_list[0]), shrink=0.8, label="mean score")
    figure.suptitle(title)
    return figure


