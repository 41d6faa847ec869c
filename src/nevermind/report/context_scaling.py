"""Report section for `nevermind perplexity` output directories: perplexity against context length
per RoPE alpha with each cliff, and (when measured) the buffer: accuracy against distance from the cliff."""

from __future__ import annotations

import json
from pathlib import Path

from markupsafe import Markup

from nevermind.errors import NevermindError
from nevermind.perplexity.buffer import BufferPoint, buffer_section_html
from nevermind.perplexity.measure import PerplexityResult
from nevermind.perplexity.plot import perplexity_figure
from nevermind.report.html import ReportContext, register_section, render
from nevermind.report.plots import figure_html

RESULT_FILE = "perplexity.json"
"""The file that marks a `nevermind perplexity` output directory."""
BUFFER_FILE = "buffer.json"
"""The buffer experiment's points, written by `nevermind perplexity --buffer`."""

_CLIFFS = """
<p>{{ r.config.model }}: {{ r.config.scaling }} rope scaling; trained on {{ r.trained_positions }} positions,
loaded with {{ r.declared_positions }}. Cliff = first length whose perplexity exceeds
{{ "%g" | format(r.config.cliff_multiple) }}× the shortest length's.</p>
<table><tr><th>alpha</th><th>cliff</th>{% for n in r.config.lengths %}<th>{{ n }}</th>{% endfor %}</tr>
{% for c in r.curves %}<tr><td>{{ "%g" | format(c.alpha) }}</td><td>{{ c.cliff or "none" }}</td>
{% for p in c.perplexity %}<td>{{ "%.1f" | format(p) }}</td>{% endfor %}</tr>{% endfor %}
</table>
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
        raise NevermindError(f"{path / RESULT_FILE}: not a readable perplexity result ({error})") from None
    return result, points


def context_scaling_section(context: ReportContext) -> Markup | None:
    """One block per perplexity directory: curves with cliffs, the table of numbers, the buffer."""
    if not context.perplexity_dirs:
        return None
    blocks = []
    for path in context.perplexity_dirs:
        result, points = _load(path)
        alt = f"perplexity against context length for {result.config.model}"
        block = figure_html(perplexity_figure(result), alt) + render(_CLIFFS, r=result)
        if points:
            block += Markup("<h3>Instruction following inside the cliff</h3>") + buffer_section_html(points, result)
        blocks.append(block)
    return Markup("").join(blocks)


register_section("context-scaling", "Context scaling: perplexity cliff and buffer", context_scaling_section,
                 before="samples")
