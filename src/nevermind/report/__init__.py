"""The HTML report over run directories: scores ± SE side by side, heatmaps, per-sample drill-down.

Add a section (e.g. perplexity curves) with `register_section(name, title, render)`, where
`render(context)` returns Markup built with `render(template, ...)` (autoescaped) and plots
embedded with `figure_html(matplotlib_figure, alt)`."""

from nevermind.report import context_scaling  # noqa: F401  (registers its section)
from nevermind.report.html import (
    SECTIONS,
    ReportContext,
    ReportRun,
    Section,
    build_report,
    load_runs,
    register_section,
    render,
    write_report,
)
from nevermind.report.plots import figure_html, grid_heatmaps, score_bars

__all__ = [
    "SECTIONS",
    "ReportContext",
    "ReportRun",
    "Section",
    "build_report",
    "figure_html",
    "grid_heatmaps",
    "load_runs",
    "register_section",
    "render",
    "score_bars",
    "write_report",
]
