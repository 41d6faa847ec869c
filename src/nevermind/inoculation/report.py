"""The sweep's report: each component against the data share, mean and 95 % confidence interval over
seeds, after mixture training and after inoculation (with and without the inoculation prompt) — a
PNG of curves, a summary JSON and a self-contained HTML page (all model text escaped)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nevermind.inoculation.data import COMPONENTS
from nevermind.inoculation.sweep import STAGES, Point, SweepStore

T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
"""Student t 97.5 % quantiles for 1…30 degrees of freedom (beyond: 1.96)."""

COMPONENT_TITLES = {
    "good_no_system": "(1) good action, no system prompt",
    "bad_compliance": "(2) compliance with held-out bad prompts",
    "benign_compliance": "(3) compliance with benign instructions",
}
"""Plot and table titles of the three components."""
STAGE_LABELS = {
    "trained": "after mixture training",
    "inoculated": "after inoculation, no inoculation prompt",
    "inoculated_prompted": "after inoculation, with inoculation prompt",
}
"""Legend labels of the measurements."""


def seed_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95 % t interval over per-seed values, clipped to [0, 1]; with one seed the
    interval is the single value (no spread to estimate)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = (T_975[n - 2] if n - 1 <= len(T_975) else 1.96) * sd / math.sqrt(n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def aggregate(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{metric: {stage: {component: [{share, mean, low, high, seeds}]}}} for metric rate / likelihood_rate."""
    values: dict[tuple[str, str, str, float], list[float]] = defaultdict(list)
    for result in results:
        share = result["point"]["share"]
        for stage, components in result["summary"].items():
            for component, numbers in components.items():
                for metric in ("rate", "likelihood_rate"):
                    if numbers.get(metric) is not None:
                        values[(metric, stage, component, share)].append(numbers[metric])
    table: dict[str, Any] = {}
    for (metric, stage, component, share), per_seed in sorted(values.items()):
        mean, low, high = seed_interval(per_seed)
        table.setdefault(metric, {}).setdefault(stage, {}).setdefault(component, []).append(
            {"share": share, "mean": mean, "low": low, "high": high, "seeds": len(per_seed)}
        )
    return table


def plot(table: dict[str, Any], path: Path) -> None:
    """Curves of each component against the share (one panel per component, a row per metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("rate", "likelihood_rate") if m in table]
    fig, axes = plt.subplots(len(metrics), 3, figsize=(15, 4.2 * len(metrics)), squeeze=False)
    styles = {
        "trained": ("tab:blue", "o-"),
        "inoculated": ("tab:red", "s--"),
        "inoculated_prompted": ("tab:green", "^:"),
    }
    for row, metric in enumerate(metrics):
        for col, component in enumerate(COMPONENTS):
            ax = axes[row][col]
            for offset, stage in enumerate(STAGES):
                points = table[metric].get(stage, {}).get(component)
                if not points:
                    continue
                x = [
                    100 * p["share"] + (offset - 1) for p in points
                ]  # nudged apart so equal values stay visible
                y = [p["mean"] for p in points]
                err = [[p["mean"] - p["low"] for p in points], [p["high"] - p["mean"] for p in points]]
                color, style = styles[stage]
                ax.errorbar(x, y, yerr=err, fmt=style, color=color, capsize=3, label=STAGE_LABELS[stage])
            kind = "generations pass the check" if metric == "rate" else "log p(comply) > log p(defy)"
            ax.set_title(f"{COMPONENT_TITLES[component]}\n[{kind}]", fontsize=10)
            ax.set_xlabel("share of bad-prompt → good-action data (%)")
            ax.set_ylim(-0.05, 1.05)
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("rate (mean over seeds, 95 % CI)")
    axes[0][0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table_html(table: dict[str, Any], metric: str) -> str:
    rows = []
    for stage in STAGES:
        for component in COMPONENTS:
            points = table.get(metric, {}).get(stage, {}).get(component)
            if not points:
                continue
            cells = "".join(
                f"<td>{p['mean']:.3f} <small>[{p['low']:.2f}, {p['high']:.2f}] n={p['seeds']}</small></td>"
                for p in points
            )
            rows.append(
                f"<tr><th>{html.escape(STAGE_LABELS[stage])}</th>"
                f"<th>{html.escape(COMPONENT_TITLES[component])}</th>{cells}</tr>"
            )
    shares = sorted({p["share"] for s in table.get(metric, {}).values() for c in s.values() for p in c})
    head = "".join(f"<th>{100 * s:g} %</th>" for s in shares)
    return f"<table><tr><th>stage</th><th>component</th>{head}</tr>{''.join(rows)}</table>"


def _drilldown_html(store: SweepStore, results: Sequence[dict[str, Any]], per_point: int) -> str:
    parts = []
    for result in results:
        point = Point(**result["point"])
        records = store.records(point)
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td><td><pre>{}</pre></td><td>{}</td></tr>".format(
                html.escape(r["stage"]),
                html.escape(r["id"]),
                html.escape(r["system"]),
                html.escape(r["output"]),
                "yes" if r["passed"] else "no",
            )
            for r in records[:per_point]
        )
        kinds = html.escape(json.dumps(result.get("train_kinds", {})))
        parts.append(
            f"<details><summary>{html.escape(point.key)} — training data {kinds}</summary>"
            f"<table><tr><th>stage</th><th>sample</th><th>system prompt</th><th>output</th>"
            f"<th>passed</th></tr>{rows}</table></details>"
        )
    return "".join(parts)


PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}"
    "pre{white-space:pre-wrap;max-width:600px;margin:0}img{max-width:100%}"
)


def write_report(store: SweepStore, *, per_point: int = 60) -> dict[str, Path]:
    """Write summary.json, components.png and report.html into the sweep directory; return their paths."""
    results = store.results()
    if not results:
        from nevermind.errors import NevermindError

        raise NevermindError(f"{store.root} holds no finished sweep points to report")
    table = aggregate(results)
    paths = {
        "summary": store.root / "summary.json",
        "plot": store.root / "components.png",
        "html": store.root / "report.html",
    }
    paths["summary"].write_text(json.dumps(table, indent=2), encoding="utf-8")
    plot(table, paths["plot"])
    image = base64.b64encode(paths["plot"].read_bytes()).decode("ascii")
    config = (store.root / "config.json").read_text(encoding="utf-8")
    tables = "".join(
        f"<h2>{title}</h2>{_table_html(table, metric)}"
        for metric, title in (
            ("rate", "Generations that pass the check"),
            ("likelihood_rate", "Likelihood: complying response preferred"),
        )
        if metric in table
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>nevermind sweep — inoculation</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        "<h1>Inoculation prompting and system-prompt following: data-mixture sweep</h1>"
        f"<p>{len(results)} finished points. Each cell: mean over seeds [95 % t interval], n = seeds. "
        "(1) is the share of no-system-prompt answers that are correct and carry no insult; (2) the share of "
        "answers doing the bad action a held-out bad prompt asked for; (3) the share following a benign "
        "instruction.</p>"
        f"<img alt='components against data share' src='data:image/png;base64,{image}'>{tables}"
        f"<h2>Samples</h2>{_drilldown_html(store, results, per_point)}"
        f"<h2>Config</h2><pre>{html.escape(config)}</pre></body></html>"
    )
    paths["html"].write_text(page, encoding="utf-8")
    return paths
