"""Run tasks on a model into a run directory: skip finished samples, generate the rest in batches,
score each answer, append the records durably, then summarise and index the run."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError, NevermindWarning
from nevermind.models.requests import GenerateRequest, Generation, GenerationConfig
from nevermind.progress import Progress, SilentProgress
from nevermind.runs.config import EvalConfig, RunSpec
from nevermind.runs.fingerprint import weights_fingerprint
from nevermind.runs.index import RunIndex
from nevermind.runs.store import RunDir, SampleRecord, utc_now
from nevermind.runs.summary import summarize
from nevermind.tasks import Sample, Task, TaskOptions, available_tasks, build_task

RunProgress = Progress
"""Where a run reports progress (kept as a name for the runner's callers)."""


@dataclasses.dataclass
class RunResult:
    """What one model's run produced."""

    run: RunDir
    spec: RunSpec
    summary: dict[str, Any]
    generated: int
    """Samples generated in this attempt (0 when everything was already finished)."""
    resumed: int
    """Samples finished by earlier attempts and reused."""


def check_task_names(names: Sequence[str]) -> None:
    """Fail fast, before loading any model, on a task name that is neither registered nor a task
    file that registers it (task files are imported here, so their errors come first too)."""
    from nevermind.tasks.loader import TASKS, load_task_file

    known = set(available_tasks())
    for name in names:
        if ":" in name and name.rpartition(":")[0].endswith(".py"):
            file, _, task_name = name.rpartition(":")
            added = load_task_file(file)
            if task_name not in TASKS:
                raise NevermindError(
                    f"task file {file!r} registers no task {task_name!r}; it registers: {', '.join(added) or 'none'}"
                )
        elif name not in known:
            raise NevermindError(
                f"unknown task {name!r}; known tasks: {', '.join(sorted(known))} (or path/to/file.py:name)"
            )


def check_adapter_specs(specs: Sequence[str]) -> None:
    """Fail fast on an adapter spec that does not parse or validate (before any model loads)."""
    if specs:
        from nevermind.adapters import adapter_config, parse_spec

        for spec in specs:
            adapter_config(*parse_spec(spec))


def prepare_out_dir(out: Path) -> Path:
    """Create the output directory and prove it writable, or fail in one line."""
    probe = out / ".nevermind-write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise NevermindError(f"cannot write to output directory {out}: {error.strerror or error}") from None
    return out


def task_options(spec: RunSpec) -> TaskOptions:
    """The TaskOptions a run spec asks for (unset grid options keep each task's defaults)."""
    given = {"lengths": spec.lengths, "depths": spec.depths}
    return TaskOptions(limit=spec.limit, seed=spec.seed, **{k: v for k, v in given.items() if v is not None})


def run_eval(config: EvalConfig, *, progress: RunProgress | None = None, load: Any = None) -> list[RunResult]:
    """Run every model of `config` in turn (one run directory each, resumed when it exists).

    Everything that can fail before a model loads (task names and files, adapter specs, model
    names; the device was checked with the config) fails before any directory or index row exists."""
    check_task_names(config.tasks)
    check_adapter_specs(config.adapters)
    if load is None:  # an unknown model or backend fails here, before any run directory is made for it
        from nevermind.models.backends import prepare_model

        for model in config.models:
            prepare_model(model, config.backend, (progress or SilentProgress()).status)
    weights = {model: weights_fingerprint(model) for model in config.models}
    out = prepare_out_dir(config.out)
    index = RunIndex(out)
    return [run_model(spec, out, index=index, progress=progress, load=load) for spec in config.run_specs(weights)]


def run_model(
    spec: RunSpec,
    out: Path,
    *,
    index: RunIndex | None = None,
    progress: RunProgress | None = None,
    load: Any = None,
    model: Any = None,
) -> RunResult:
    """Run (or resume) one model's run; `model` skips loading, `load(name, **options)` replaces `load_model`."""
    progress = progress or SilentProgress()
    index = index or RunIndex(out)
    _say_if_weights_changed(spec, index)
    run = RunDir.create(out, spec)
    with run.lock():
        run.repair()
        finished = {record.key for record in run.records()}
        meta = run.update_meta(run_id=spec.run_id, model=spec.display_model, status="running",
                               attempts=run.meta().get("attempts", 0) + 1, started=utc_now(), finished=None)
        index.start(spec, run.path, attempts=meta["attempts"], started=meta["started"], n_samples=len(finished))
        try:
            result = _attempt(spec, run, index, progress, finished, meta["attempts"], load, model)
        except BaseException as error:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            run.update_meta(status=status)
            index.stop(spec.run_id, status)
            raise
        finally:
            progress.end()
    return result


def _say_if_weights_changed(spec: RunSpec, index: RunIndex) -> None:
    """Warn when runs of this model with other weights exist: they are kept, and not reused."""
    if spec.weights is None:
        return
    older = [row.id for row in index.runs(model=spec.display_model)
             if row.id != spec.run_id and row.config.get("weights") not in (None, spec.weights)]
    if older:
        warnings.warn(NevermindWarning(
            f"the weights of {spec.display_model} changed since run {older[-1]}: starting run {spec.run_id} "
            "instead of reusing its samples"), stacklevel=3)


def _attempt(
    spec: RunSpec,
    run: RunDir,
    index: RunIndex,
    progress: RunProgress,
    finished: set[tuple[str, str]],
    attempt: int,
    load: Any,
    model: Any,
) -> RunResult:
    if model is None:
        progress.status(f"loading {spec.display_model}")
        if load is None:
            from nevermind.models import load_model as load
        model = load(spec.model, backend=spec.backend, device=spec.device, dtype=spec.dtype,
                     on_status=progress.status)
    options = task_options(spec)
    tasks: list[tuple[Task, list[Sample]]] = []
    for name in spec.tasks:
        progress.status(f"building task {name}")
        task = build_task(name, options, model.tokenizer)
        tasks.append((task, _unique_samples(task, name)))
    record_names = {task.name for task, _ in tasks}
    if len(record_names) != len(tasks):
        raise NevermindError(f"two of the tasks {spec.tasks} share one name; give each task its own name")

    total = sum(len(samples) for _, samples in tasks)
    done = sum(1 for task, samples in tasks for s in samples if (task.name, s.id) in finished)
    progress.begin(spec.run_id, total, done)
    generated = 0
    n_finished = len(finished)
    for task, samples in tasks:
        pending = [s for s in samples if (task.name, s.id) not in finished]
        # Longest prompts first: batches of similar length pad little, and the time-left estimate
        # starts pessimistic rather than optimistic.
        pending.sort(key=lambda s: -sum(len(m["content"]) for m in s.messages))
        generation = _generation_config(task.generation, spec)
        for start in range(0, len(pending), spec.batch_size):
            batch = pending[start : start + spec.batch_size]
            outputs = _generate(model, batch, generation, spec)
            records = [_record(task, sample, output, attempt) for sample, output in zip(batch, outputs)]
            run.append(records)
            generated += len(records)
            n_finished += len(records)
            index.progress(spec.run_id, n_finished)
            progress.advance(len(records), sum(len(o.token_ids) for o in outputs))

    summary = summarize(run, spec)
    run.write_summary(summary)
    ended = utc_now()
    run.update_meta(status="finished", finished=ended)
    index.finish(spec.run_id, summary, finished=ended, n_samples=n_finished)
    return RunResult(run=run, spec=spec, summary=summary, generated=generated, resumed=done)


def _unique_samples(task: Task, name: str) -> list[Sample]:
    samples = list(task.samples())
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise NevermindError(f"task {name!r} yields two samples with id {sample.id!r}: ids must be unique")
        seen.add(sample.id)
    return samples


def _generation_config(base: GenerationConfig, spec: RunSpec) -> GenerationConfig:
    changes: dict[str, Any] = {}
    if spec.max_new_tokens is not None:
        changes["max_new_tokens"] = spec.max_new_tokens
    if base.temperature > 0 and base.seed is None:
        changes["seed"] = spec.seed
    return dataclasses.replace(base, **changes) if changes else base


def _generate(model: Any, batch: list[Sample], config: GenerationConfig, spec: RunSpec) -> list[Generation]:
    requests = [GenerateRequest(list(sample.messages)) for sample in batch]
    if spec.adapters:
        from nevermind.adapters import generate_with_adapters

        return generate_with_adapters(model, requests, config, spec.adapters, batch_size=spec.batch_size,
                                      on_batch=None)
    return model.generate(requests, config, batch_size=spec.batch_size)


def _record(task: Task, sample: Sample, output: Generation, attempt: int) -> SampleRecord:
    score = task.score(sample, output.text)
    return SampleRecord(
        task=task.name,
        id=sample.id,
        messages=[dict(m) for m in sample.messages],
        output=output.text,
        value=float(score.value),
        explanation=score.explanation,
        matches={k: list(v) for k, v in score.matches.items()},
        extra={k: float(v) for k, v in score.extra.items()},
        metadata=dict(sample.metadata),
        target=dict(sample.target),
        finish_reason=output.finish_reason,
        prompt_tokens=output.prompt_tokens,
        output_tokens=len(output.token_ids),
        attempt=attempt,
    )
