"""Seed 000's "buffer" claim, measured: needle and override accuracy at the lengths and alphas of
a perplexity run, against each length's distance from that alpha's perplexity cliff.

The override task has no haystack of its own; here its prompt is preceded by haystack
prose so that the instruction sits at the end of a context of the given length."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from markupsafe import Markup, escape

from nevermind.errors import NevermindError
from nevermind.perplexity.cliff import cliff_distance
from nevermind.perplexity.measure import PerplexityResult
from nevermind.scoring.stats import mean_and_se

BUFFER_TASKS = ("needle", "override")
"""Tasks the buffer experiment runs."""


@dataclass
class BufferPoint:
    """Mean score of one task at one (alpha, length)."""

    task: str
    """needle or override."""
    alpha: float
    """The rope scaling factor."""
    length: int
    """Context length in tokens."""
    accuracy: float
    """Mean sample score in [0, 1]."""
    stderr: float
    """Standard error of the mean score."""
    samples: int
    """Samples scored."""
    cliff: int | None
    """That alpha's perplexity cliff (None: none within the measured lengths)."""
    distance: float
    """(length − cliff) / cliff: negative inside the cliff (the buffer), ≥ 0 past it."""


def _padded(messages: list[dict], tokenizer: Any, prose: str, length: int) -> list[dict]:
    """Put haystack prose before the last user turn so the prompt is about `length` tokens long."""
    last = messages[-1]["content"]
    need = length - len(tokenizer(last, add_special_tokens=False).input_ids) - 8
    if need <= 0:
        return messages
    ids = tokenizer(prose[: need * 8], add_special_tokens=False).input_ids[:need]
    filler = tokenizer.decode(ids)
    return [*messages[:-1], {"role": "user", "content": f"{filler}\n\n{last}"}]


def _mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and SE; with one sample the SE is unknown (NaN: drawn without an error bar)."""
    mean, stderr = mean_and_se(values)
    return mean, stderr if len(values) > 1 else float("nan")


def run_buffer(
    result: PerplexityResult,
    *,
    tasks: Sequence[str] = BUFFER_TASKS,
    per_length: int = 2,
    depths: Sequence[float] = (50.0,),
    lengths: Sequence[int] | None = None,
    alphas: Sequence[float] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> list[BufferPoint]:
    """Run `tasks` with `per_length` samples at the lengths and alphas of `result` (or a subset of them)."""
    from nevermind.data.haystack import haystack_text
    from nevermind.models.hf import HFModel
    from nevermind.models.requests import GenerateRequest
    from nevermind.models.rope import reset_rope_state
    from nevermind.tasks import TaskOptions, build_task

    unknown = [t for t in tasks if t not in BUFFER_TASKS]
    if unknown:
        raise NevermindError(f"buffer tasks are needle and override, not {', '.join(unknown)}")
    if per_length < 1:
        raise NevermindError(f"samples per length must be at least 1, got {per_length}")
    config = result.config
    for name, chosen, measured in (("lengths", lengths, config.lengths), ("alphas", alphas, config.alphas)):
        missing = sorted(set(chosen or ()) - set(measured))
        if missing:
            raise NevermindError(f"buffer {name} {missing} were not measured for perplexity ({list(measured)})")
    lengths = sorted(lengths or config.lengths)
    prose = haystack_text()
    points: list[BufferPoint] = []
    for curve in result.curves:
        if alphas is not None and curve.alpha not in alphas:
            continue
        rope = config.rope(curve.alpha)
        lm = HFModel.load(config.model, device=config.device, dtype=config.dtype, on_status=on_status,
                          rope=rope, max_positions=config.max_positions)
        for name in tasks:
            options = TaskOptions(lengths=lengths, depths=list(depths), limit=per_length * len(lengths) * len(depths))
            task = build_task(name, options, lm.tokenizer)
            if name == "needle":
                jobs = [(s, s.metadata["length"], s.messages) for s in task.samples()]
            else:  # the same override questions at every length, after prose of that length
                base = list(task.samples())[:per_length]
                jobs = [(s, n, _padded(s.messages, lm.tokenizer, prose, n)) for n in lengths for s in base]
            scores: dict[int, list[float]] = {n: [] for n in lengths}
            for i, (sample, length, messages) in enumerate(jobs):
                if on_status:
                    on_status(f"buffer: alpha {curve.alpha:g}, {name} {i + 1}/{len(jobs)} ({length} tokens)")
                reset_rope_state(lm.model)  # one sample per call: dynamic NTK must not carry over
                output = lm.generate([GenerateRequest(messages)], task.generation, batch_size=1)[0]
                scores[length].append(task.score(sample, output.text).value)
            for length in lengths:
                if scores[length]:
                    mean, stderr = _mean_stderr(scores[length])
                    points.append(BufferPoint(
                        task=name, alpha=curve.alpha, length=length, accuracy=mean, stderr=stderr,
                        samples=len(scores[length]), cliff=curve.cliff,
                        distance=cliff_distance(length, curve.cliff, config.lengths[-1]),
                    ))  # fmt: skip
        del lm
    return points


def buffer_plot_png(points: Sequence[BufferPoint]) -> bytes:
    """Accuracy against distance from the cliff, one panel per task, one colour per alpha (PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({p.task for p in points})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), dpi=110, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for alpha in sorted({p.alpha for p in points}):
            mine = sorted((p for p in points if p.task == task and p.alpha == alpha), key=lambda p: p.distance)
            open_marker = mine and mine[0].cliff is None
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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def buffer_section_html(points: Sequence[BufferPoint], perplexity: PerplexityResult | None = None) -> Markup:
    """An HTML section (plot inline, table of numbers) for the report: the buffer before each cliff."""
    if not points:
        return Markup("<p>No buffer measurements.</p>")
    image = base64.b64encode(buffer_plot_png(points)).decode()
    rows = "".join(
        f"<tr><td>{escape(p.task)}</td><td>{p.alpha:g}</td><td>{p.length}</td>"
        f"<td>{escape(str(p.cliff) if p.cliff else 'none')}</td><td>{p.distance:+.2f}</td>"
        f"<td>{p.accuracy:.2f}</td><td>{'' if math.isnan(p.stderr) else f'{p.stderr:.2f}'}</td>"
        f"<td>{p.samples}</td></tr>"
        for p in sorted(points, key=lambda p: (p.task, p.alpha, p.length))
    )
    intro = ""
    if perplexity is not None:
        cfg = perplexity.config
        intro = (f"<p>{escape(cfg.model)}, {escape(cfg.scaling)} rope scaling, trained on "
                 f"{perplexity.trained_positions} positions, declared {perplexity.declared_positions}. "
                 f"Cliff: first length whose perplexity exceeds {cfg.cliff_multiple:g}× the shortest's.</p>")
    return Markup(
        f"{intro}<img alt='accuracy against distance from the perplexity cliff' src='data:image/png;base64,{image}'>"
        "<table><thead><tr><th>task</th><th>alpha</th><th>length</th><th>cliff</th><th>distance</th>"
        f"<th>accuracy</th><th>s.e.</th><th>n</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def points_to_dicts(points: Sequence[BufferPoint]) -> list[dict[str, Any]]:
    """JSON-ready records."""
    return [asdict(p) for p in points]
