"""Report section for `nevermind perplexity` output directories: perplexity and its ratio to the
position-matched baseline against context length per RoPE alpha, with each cliff and the ratio's
standard error, and (when measured) the buffer: accuracy against distance from the cliff."""

from __future__ import annotations

import json
from pathlib import Path

from markupsafe import Markup

from nevermind.errors import NevermindError
from nevermind.perplexity.buffer import BufferPoint
from nevermind.perplexity.measure import PerplexityResult
from nevermind.perplexity.plot import buffer_figure, perplexity_figure
from nevermind.report.html import ReportContext, register_section, render
from nevermind.report.plots import figure_html

RESULT_FILE = "perplexity.json"
"""The file that marks a `nevermind perplexity` output directory."""
BUFFER_FILE = "buffer.json"
"""The buffer experiment's points, written by `nevermind perplexity --buffer`."""

_CLIFFS = """
<p>{{ r.config.model }}: {{ r.config.scaling }} rope scaling; trained on {{ r.trained_positions }} positions,
loaded with {{ r.declared_positions }}. Each length's last {{ r.config.window }} tokens are scored with their
full context and with only the {{ r.baseline_context }} tokens before them (the position-matched baseline);
ratio = perplexity ÷ baseline perplexity, geometric mean over {{ r.excerpt_starts | length }} excerpts
± standard error (of the mean log ratio). Cliff = first length whose ratio exceeds
{{ "%g" | format(r.config.cliff_ratio) }}.</p>
<table><tr><th>alpha</th><th>cliff</th>{% for n in r.config.lengths %}<th>{{ n }}</th>{% endfor %}</tr>
{% for c in r.curves %}<tr><td>{{ "%g" | format(c.alpha) }}</td><td>{{ c.cliff or "none" }}</td>
{% for i in range(r.config.lengths | length) %}<td class="num">{% if c.same_context[i] %}= baseline{% else %}
{{ "%.2f" | format(c.ratio[i]) }}{% if c.ratio_log_se[i] == c.ratio_log_se[i] %} ± {{ "%.2f" | format(c.ratio[i] * c.ratio_log_se[i]) }}{% endif %}{% endif %}
<br><span class="meta">{{ "%.1f" | format(c.perplexity[i]) }} / {{ "%.1f" | format(c.baseline[i]) }}</span></td>
{% endfor %}</tr>{% endfor %}
</table>
<p class="meta">Cells: ratio ± SE, then perplexity with the full context / with the baseline context.</p>
"""

_BUFFER = """
<p>Cliff: first length whose perplexity exceeds {{ "%g" | format(cliff_ratio) }}× its position-matched
baseline's.</p>
{{ plot }}
<table><thead><tr><th>task</th><th>alpha</th><th>length</th><th>cliff</th><th>distance</th>
<th>accuracy</th><th>s.e.</th><th>n</th></tr></thead><tbody>
{% for p in points %}<tr><td>{{ p.task }}</td><td>{{ "%g" | format(p.alpha) }}</td><td>{{ p.length }}</td>
<td>{{ p.cliff or "none" }}</td><td>{{ "%+.2f" | format(p.distance) }}</td><td>{{ "%.2f" | format(p.accuracy) }}</td>
<td>{% if p.stderr == p.stderr %}{{ "%.2f" | format(p.stderr) }}{% endif %}</td><td>{{ p.samples }}</td></tr>
{% endfor %}</tbody></table>
"""


def is_perplexity_dir(path: Path) -> bool:
    """Whether `path` is a `nevermind perplexity` output directory."""
    return (path / RESULT_FILE).is_file()


def _load(path: Path) -> tuple[PerplexityResult, list[BufferPoint]]:
    try:
        result = PerplexityResult.from_dict(json.loads((path / RESULT_FILE).read_text()))
        buffer_file = path / BUFFER_FILE
        points = [BufferPoint(**p) for p in json.loads(buffer_file.read_text())] if buffer_file.is_file() else []
    except (ValueError, KeyError, TypeError) as error:
        reason = str(error).splitlines()[0]
        raise NevermindError(f"{path / RESULT_FILE}: not a readable perplexity result ({reason})") from None
    return result, points


def buffer_section_html(points: list[BufferPoint], result: PerplexityResult) -> Markup:
    """The buffer experiment as HTML: the plot inline and the table of numbers (escaped)."""
    if not points:
        return Markup("<p>No buffer measurements.</p>")
    ordered = sorted(points, key=lambda p: (p.task, p.alpha, p.length))
    plot = figure_html(buffer_figure(points), "accuracy against distance from the perplexity cliff")
    return render(_BUFFER, points=ordered, plot=plot, cliff_ratio=result.config.cliff_ratio)


def context_scaling_section(context: ReportContext) -> Markup | None:
    """One block per perplexity directory: curves with cliffs, the table of numbers, the buffer."""
    if not context.perplexity_dirs:
        return None
    blocks = []
    for path in context.perplexity_dirs:
        result, points = _load(path)
        alt = f"perplexity and its ratio to the baseline against context length for {result.config.model}"
        block = figure_html(perplexity_figure(result), alt) + render(_CLIFFS, r=result)
        if points:
            block += Markup("<h3>Instruction following inside the cliff</h3>") + buffer_section_html(points, result)
        blocks.append(block)
    return Markup("").join(blocks)


register_section("context-scaling", "Context scaling: perplexity cliff and buffer", context_scaling_section,
                 before="samples")
