"""The HTML report: one self-contained file built from run directories, section by section.

Every section is a function `render(context) -> Markup | None` in SECTIONS; other parts of
nevermind add theirs with `register_section`. Model output and data are untrusted text: the
templates escape everything (Jinja2 autoescape), and a Content-Security-Policy forbids scripts
and every external resource as a second line of defence."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

from nevermind.errors import NevermindError
from nevermind.report.plots import figure_html, grid_heatmaps, score_bars
from nevermind.runs.config import RunSpec, model_slug
from nevermind.runs.index import INDEX_FILE, RunIndex
from nevermind.runs.store import CONFIG_FILE, RunDir, SampleRecord
from nevermind.runs.summary import aggregate

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass
class ReportRun:
    """One run as the report sees it: its config, every finished sample, and their aggregates."""

    run: RunDir
    spec: RunSpec
    label: str
    """How the report names this run: the model's short name, else its run id, else its directory."""
    records: list[SampleRecord]
    meta: dict[str, Any]
    metrics: dict[str, Any] = field(init=False)
    """Per task: n and mean ± SE of every metric (as in summary.json, recomputed from the samples)."""

    def __post_init__(self) -> None:
        self.metrics = aggregate(self.records)


@dataclass
class ReportContext:
    """What every section renderer receives."""

    runs: list[ReportRun]
    title: str
    perplexity_dirs: list[Path] = field(default_factory=list)
    """`nevermind perplexity` output directories to show (the context-scaling section)."""


Section = Callable[[ReportContext], "Markup | None"]


@dataclass
class SectionEntry:
    """A named section of the report."""

    name: str
    """Anchor id (letters, digits, dashes)."""
    title: str
    render: Section


SECTIONS: list[SectionEntry] = []
"""The report's sections, in page order."""


def register_section(name: str, title: str, render: Section, *, before: str | None = None) -> Section:
    """Add (or replace) a section; it renders Markup (escape untrusted text!) or None to be left out."""
    entry = SectionEntry(name, title, render)
    names = [s.name for s in SECTIONS]
    if name in names:
        SECTIONS[names.index(name)] = entry
    elif before in names:
        SECTIONS.insert(names.index(before), entry)
    else:
        SECTIONS.append(entry)
    return render


def render(template: str, **values: Any) -> Markup:
    """Render a Jinja2 template string with autoescape on: values are escaped unless they are Markup."""
    return Markup(_ENV.from_string(template).render(**values))


# ---------------------------------------------------------------------------- loading


def load_runs(paths: Sequence[Path]) -> list[ReportRun]:
    """Runs from run directories, or from output directories (every run in their index.sqlite)."""
    directories: list[Path] = []
    for path in paths:
        if (path / CONFIG_FILE).is_file():
            directories.append(path)
        elif (path / INDEX_FILE).is_file():
            # The run directories are the output directory's children; the index orders them by start.
            started = {run.id: run.started for run in RunIndex(path).runs()}
            found = [child for child in path.iterdir() if (child / CONFIG_FILE).is_file()]
            if not found:
                raise NevermindError(f"{path} holds no run directory")
            directories += sorted(found, key=lambda child: (started.get(child.name, "~"), child.name))
        elif not path.exists():
            raise NevermindError(f"{path} does not exist")
        else:
            raise NevermindError(f"{path} is neither a run directory ({CONFIG_FILE}) nor an output directory "
                                 f"({INDEX_FILE})")
    unique = list(dict.fromkeys(p.resolve() for p in directories))
    runs = [RunDir.open(p) for p in unique]
    specs = [run.spec() for run in runs]
    labels = _unique([model_slug(spec.model) for spec in specs], [spec.run_id for spec in specs],
                     [f"{run.path.parent.name}/{run.path.name}" for run in runs], [str(run.path) for run in runs])
    return [ReportRun(run, spec, label, run.records(), run.meta()) for run, spec, label in zip(runs, specs, labels)]


def _unique(*candidates: list[str]) -> list[str]:
    """Per run, the first candidate label that no other run shares (short names first)."""
    labels = []
    for i in range(len(candidates[0])):
        options = [names[i] for names in candidates if names.count(names[i]) == 1]
        labels.append(options[0] if options else candidates[-1][i])
    return labels


# ---------------------------------------------------------------------------- sections

_RUNS = """
<table>
<tr><th>label</th><th>model</th><th>run id</th><th>tasks</th><th>status</th><th>attempts</th><th>samples</th>
<th>started</th><th>finished</th><th>directory</th></tr>
{% for r in runs %}
<tr><td>{{ r.label }}</td><td>{{ r.spec.model }}</td><td><code>{{ r.spec.run_id }}</code></td>
<td>{{ r.spec.tasks | join(", ") }}</td>
<td>{{ r.meta.get("status", "unknown") }}</td><td>{{ r.meta.get("attempts", "") }}</td>
<td>{{ r.records | length }}</td><td>{{ r.meta.get("started") or "" }}</td><td>{{ r.meta.get("finished") or "" }}</td>
<td><code>{{ r.run.path }}</code></td></tr>
{% endfor %}
</table>
"""


def runs_section(context: ReportContext) -> Markup:
    """Which runs the report covers and their state."""
    return render(_RUNS, runs=context.runs)


ECHO_METRIC = "echo"
"""The extra metric every built-in task records: 1 when the output copied its prompt back."""

_SCORES = """
<p>Mean score ± standard error of the mean over samples (n = samples). "value" is each task's
score; other rows are the task's extra metrics. <b>echo</b> is the share of outputs that copy the
prompt back (docs/tasks.md): an echo never earns credit for what it copies, so a low score with a
high echo rate means the model parrots rather than answers.</p>
<table class="scores">
<tr><th>task</th><th>metric</th>{% for r in runs %}<th>{{ r.label }}</th><th class="echo">{{ r.label }}: echo</th>{% endfor %}</tr>
{% for task, metrics in tasks %}
{% for metric in metrics %}
<tr><td>{{ task }}</td><td>{{ metric }}</td>
{% for r in runs %}{% set s = r.metrics.get(task, {}).get("metrics", {}).get(metric) %}
<td class="num">{% if s %}{{ "%.3f" | format(s.mean) }} ± {{ "%.3f" | format(s.se) }}
<span class="n">(n={{ s.n }})</span>{% else %}–{% endif %}</td>
{% if metric == metrics[0] %}{% set e = r.metrics.get(task, {}).get("metrics", {}).get(echo) %}
<td class="num echo" rowspan="{{ metrics | length }}">{% if e %}{{ "%.3f" | format(e.mean) }} ± {{ "%.3f" | format(e.se) }}{% else %}–{% endif %}</td>
{% endif %}
{% endfor %}</tr>
{% endfor %}
{% endfor %}
</table>
{{ chart }}
"""


def scores_section(context: ReportContext) -> Markup | None:
    """Per-task scores ± SE with the models side by side, each beside its echo rate: a table and a
    bar chart with error bars (echo rates as hatched bars)."""
    tasks: dict[str, list[str]] = {}
    for run in context.runs:
        for task, entry in run.metrics.items():
            metrics = tasks.setdefault(task, [])
            metrics += [m for m in entry["metrics"] if m != ECHO_METRIC and m not in metrics]
    if not tasks:
        return None
    rows = [(task, metric) for task, metrics in tasks.items() for metric in metrics]
    echo_rows = [(task, ECHO_METRIC) for task in tasks
                 if any(ECHO_METRIC in r.metrics.get(task, {}).get("metrics", {}) for r in context.runs)]  # fmt: skip
    series: dict[str, list[tuple[float, float]]] = {}
    for run in context.runs:
        points = []
        for task, metric in rows + echo_rows:
            stats = run.metrics.get(task, {}).get("metrics", {}).get(metric)
            points.append((stats["mean"], stats["se"]) if stats else (math.nan, math.nan))
        series[run.label] = points
    groups = [task if metric == "value" else f"{task}: {metric}" for task, metric in rows + echo_rows]
    hatched = set(range(len(rows), len(rows) + len(echo_rows)))
    chart = figure_html(score_bars(groups, series, "scores by task (± SE); hatched: echo rate", hatched=hatched),
                        "bar chart of scores and echo rates by task and model")  # fmt: skip
    return render(_SCORES, runs=context.runs, tasks=list(tasks.items()), echo=ECHO_METRIC, chart=chart)


def heatmaps_section(context: ReportContext) -> Markup | None:
    """Score over context length × needle depth, one heatmap per model, for tasks whose samples have both."""
    tasks: list[str] = []
    for run in context.runs:
        for record in run.records:
            if _grid_point(record) and record.task not in tasks:
                tasks.append(record.task)
    images = []
    for task in tasks:
        panels = {}
        for run in context.runs:
            points = [(*_grid_point(r), r.value) for r in run.records if r.task == task and _grid_point(r)]
            if points:
                panels[run.label] = points
        images.append(figure_html(grid_heatmaps(panels, f"{task}: score by length × depth"),
                                  f"{task} heatmap of score by context length and depth"))
    return Markup("\n").join(images) if images else None


def _grid_point(record: SampleRecord) -> tuple[float, float] | None:
    length, depth = record.metadata.get("length"), record.metadata.get("depth")
    if isinstance(length, (int, float)) and isinstance(depth, (int, float)):
        return float(length), float(depth)
    return None


_SAMPLES = """
<p>Every sample, worst score first: the prompt, what the model answered, its score and why.</p>
{% for r in runs %}
{% for task, records in r.by_task %}
<details class="task">
<summary>{{ r.label }} — {{ task }}: {{ records | length }} samples,
mean {{ "%.3f" | format(r.metrics[task].metrics.value.mean) }}</summary>
<table class="samples">
<tr><th>sample</th><th>score</th><th>why</th><th>output</th><th>prompt</th></tr>
{% for s in records %}
<tr class="{{ 'pass' if s.value >= 0.5 else 'fail' }}">
<td><code>{{ s.id }}</code>{% for k, v in s.metadata.items() %}<br><span class="meta">{{ k }}={{ v }}</span>{% endfor %}</td>
<td class="num">{{ "%.2f" | format(s.value) }}{% if s.extra.get("echo") %}<br><span class="badge">echo</span>{% endif %}{% for k, v in s.extra.items() %}<br><span class="meta">{{ k }}={{ "%.2f" | format(v) }}</span>{% endfor %}</td>
<td>{{ s.explanation }}{% for kind, found in s.matches.items() if found %}<br><span class="meta">{{ kind }}: {{ found | join(", ") }}</span>{% endfor %}</td>
<td><pre class="output">{{ s.output }}</pre><span class="meta">{{ s.output_tokens }} tokens, {{ s.finish_reason }}</span></td>
<td><details><summary>{{ s.prompt_tokens }} tokens</summary>
{% for m in s.messages %}<div class="role">{{ m.role }}</div><pre class="prompt">{{ m.content }}</pre>{% endfor %}
</details></td>
</tr>
{% endfor %}
</table>
</details>
{% endfor %}
{% endfor %}
"""


def samples_section(context: ReportContext) -> Markup | None:
    """Per-sample drill-down, one collapsible table per model and task."""
    views = []
    for run in context.runs:
        by_task: dict[str, list[SampleRecord]] = {}
        for record in run.records:
            by_task.setdefault(record.task, []).append(record)
        ordered = [(task, sorted(records, key=lambda r: (r.value, r.id))) for task, records in by_task.items()]
        views.append({"label": run.label, "metrics": run.metrics, "by_task": ordered})
    if not any(view["by_task"] for view in views):
        return None
    return render(_SAMPLES, runs=views)


register_section("runs", "Runs", runs_section)
register_section("scores", "Scores by task", scores_section)
register_section("heatmaps", "Needle heatmaps", heatmaps_section)
register_section("samples", "Samples", samples_section)

# ---------------------------------------------------------------------------- page

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
nav a { margin-right: 1em; } .generated, .meta, .n { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.6em 0; } th, td { border: 1px solid #ddd; padding: 4px 7px; vertical-align: top; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; white-space: nowrap; }
table.samples { width: 100%; table-layout: fixed; } table.samples td { overflow-wrap: anywhere; }
table.samples th:nth-child(1) { width: 14%; } table.samples th:nth-child(2) { width: 7%; }
table.samples th:nth-child(3) { width: 24%; } table.samples th:nth-child(5) { width: 22%; }
tr.pass td:nth-child(2) { background: #e6f4e6; } tr.fail td:nth-child(2) { background: #f8e3e3; }
td.echo, th.echo { background: #fff8e1; } .badge { background: #f0c36d; border-radius: 3px; padding: 0 4px; font-size: 0.8em; }
pre { white-space: pre-wrap; margin: 0; font-size: 0.9em; }
pre.prompt { max-height: 22em; overflow: auto; background: #fafafa; border: 1px solid #eee; padding: 4px; }
.role { font-weight: bold; margin-top: 0.4em; } details.task { margin: 0.4em 0; }
details.task > summary { cursor: pointer; font-weight: bold; } img.plot { max-width: 100%; display: block; margin: 0.8em 0; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="generated">generated {{ generated }} from {{ runs | length }} run(s)</p>
<nav>{% for s in sections %}<a href="#{{ s.name }}">{{ s.title }}</a>{% endfor %}</nav>
{% for s in sections %}
<section id="{{ s.name }}">
<h2>{{ s.title }}</h2>
{{ s.body }}
</section>
{% endfor %}
</body>
</html>
"""


def build_report(
    runs: Sequence[ReportRun], *, title: str = "nevermind report", perplexity_dirs: Sequence[Path] = ()
) -> str:
    """The whole report as one HTML string (inline CSS and images, no script, no external URL)."""
    context = ReportContext(list(runs), title, list(perplexity_dirs))
    sections = []
    for entry in SECTIONS:
        body = entry.render(context)
        if body is not None:
            # A renderer that returns a plain str gets it escaped: only Markup passes as HTML.
            sections.append({"name": entry.name, "title": entry.title, "body": escape(body)})
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return _ENV.from_string(_PAGE).render(title=title, generated=generated, runs=runs, sections=sections)


def write_report(paths: Sequence[Path], output: Path, *, title: str = "nevermind report") -> Path:
    """Load the runs (and `nevermind perplexity` directories) at `paths` and write the report to `output`."""
    from nevermind.report.context_scaling import is_perplexity_dir

    perplexity_dirs = [p for p in paths if is_perplexity_dir(p)]
    run_paths = [p for p in paths if not is_perplexity_dir(p)]
    html = build_report(load_runs(run_paths), title=title, perplexity_dirs=perplexity_dirs)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(html, encoding="utf-8")
    except OSError as error:
        raise NevermindError(f"cannot write report {output}: {error.strerror or error}") from None
    return output
