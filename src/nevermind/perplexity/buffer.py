"""Seed 000's "buffer" claim, measured: needle and override accuracy at the lengths and alphas of
a perplexity run, against each length's distance from that alpha's perplexity cliff.

The override task has no haystack of its own; here its prompt is preceded by haystack
prose so that the instruction sits at the end of a context of the given length. Models are
reached through the model interface only (`load_model`, `generate`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from nevermind.errors import NevermindError
from nevermind.perplexity.cliff import cliff_distance
from nevermind.perplexity.measure import PerplexityResult, load_for_alpha
from nevermind.progress import Progress, SilentProgress
from nevermind.scoring.stats import mean_and_se

BUFFER_TASKS = ("needle", "override")
"""Tasks the buffer experiment runs."""
BufferKey = tuple[str, float, int, str]
"""(task, alpha, length, sample id): what one buffer record is stored under."""


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
    """Standard error of the mean score (NaN with one sample: unknown)."""
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


def _per_cell(task: str, per_length: int, depths: Sequence[float]) -> int:
    """Samples of `task` at one (alpha, length): needle has at most NEEDLES_PER_CELL per depth."""
    if task == "needle":
        from nevermind.tasks.needle import NEEDLES_PER_CELL

        return min(per_length, NEEDLES_PER_CELL) * len(depths)
    return per_length


def _check(result: PerplexityResult, tasks: Sequence[str], per_length: int, lengths, alphas) -> None:
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


def run_buffer(
    result: PerplexityResult,
    *,
    tasks: Sequence[str] = BUFFER_TASKS,
    per_length: int = 2,
    depths: Sequence[float] = (50.0,),
    lengths: Sequence[int] | None = None,
    alphas: Sequence[float] | None = None,
    done: Mapping[BufferKey, Mapping[str, Any]] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
) -> list[BufferPoint]:
    """Run `tasks` with `per_length` samples at the lengths and alphas of `result` (or a subset of
    them; needle has at most NEEDLES_PER_CELL needles per length and depth); samples in `done` (records of an earlier attempt) are not generated again, and each new
    record goes to `on_record` as soon as its length is finished."""
    from nevermind.data.haystack import haystack_text
    from nevermind.models.requests import GenerateRequest
    from nevermind.tasks import TaskOptions, build_task

    _check(result, tasks, per_length, lengths, alphas)
    config = result.config
    progress = progress or SilentProgress()
    lengths = sorted(lengths or config.lengths)
    chosen = [c for c in result.curves if alphas is None or c.alpha in alphas]
    scores: dict[BufferKey, float] = {k: float(r["score"]) for k, r in (done or {}).items()}
    cells = {name: _per_cell(name, per_length, depths) for name in tasks}
    total = len(chosen) * len(lengths) * sum(cells.values())
    progress.begin("buffer", total, min(len(scores), total))
    prose = haystack_text()
    for curve in chosen:
        model = None
        for name in tasks:
            stored = sum(1 for (t, a, n, _) in scores if (t, a) == (name, curve.alpha) and n in lengths)
            if stored >= cells[name] * len(lengths):
                continue  # finished by an earlier attempt
            if model is None:
                progress.status(f"buffer: loading {config.model} (alpha {curve.alpha:g})")
                model = load_for_alpha(config, curve.alpha, on_status=progress.status)
            options = TaskOptions(lengths=lengths, depths=list(depths), limit=per_length * len(lengths) * len(depths))
            task = build_task(name, options, model.tokenizer)
            samples = list(task.samples())
            for n in lengths:
                if name == "needle":
                    jobs = [(s, s.messages) for s in samples if s.metadata["length"] == n]
                else:  # the same override questions at every length, after prose of that length
                    jobs = [(s, _padded(s.messages, model.tokenizer, prose, n)) for s in samples[:per_length]]
                todo = [(s, m) for s, m in jobs if (name, curve.alpha, n, s.id) not in scores]
                if not todo:
                    continue
                progress.status(f"buffer: alpha {curve.alpha:g}, {name} at {n} tokens")
                # one length per call: dynamic NTK's base follows the pass length
                outputs = model.generate([GenerateRequest(m) for _, m in todo], task.generation,
                                         batch_size=len(todo))  # fmt: skip
                for (sample, _), output in zip(todo, outputs):
                    value = task.score(sample, output.text).value
                    scores[(name, curve.alpha, n, sample.id)] = value
                    if on_record:
                        on_record({"task": name, "alpha": curve.alpha, "length": n, "id": sample.id,
                                   "score": value, "output": output.text})  # fmt: skip
                progress.advance(len(todo), sum(len(o.token_ids) for o in outputs))
        del model
    progress.end()
    return buffer_points(result, scores, tasks=tasks, lengths=lengths, alphas=[c.alpha for c in chosen])


def buffer_points(
    result: PerplexityResult,
    scores: Mapping[BufferKey, float],
    *,
    tasks: Sequence[str],
    lengths: Sequence[int],
    alphas: Sequence[float],
) -> list[BufferPoint]:
    """Mean ± SE of the sample scores per (task, alpha, length), placed against that alpha's cliff."""
    cliffs = {c.alpha: c.cliff for c in result.curves}
    points = []
    for name in tasks:
        for alpha in alphas:
            for n in lengths:
                values = [v for (t, a, m, _), v in scores.items() if (t, a, m) == (name, alpha, n)]
                if not values:
                    continue
                mean, se = mean_and_se(values)
                points.append(BufferPoint(
                    task=name, alpha=alpha, length=n, accuracy=mean, stderr=se if len(values) > 1 else math.nan,
                    samples=len(values), cliff=cliffs[alpha],
                    distance=cliff_distance(n, cliffs[alpha], result.config.lengths[-1]),
                ))  # fmt: skip
    return points


def points_to_dicts(points: Sequence[BufferPoint]) -> list[dict[str, Any]]:
    """JSON-ready records."""
    return [asdict(p) for p in points]
