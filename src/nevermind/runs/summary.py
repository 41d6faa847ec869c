"""A run's summary: per task, the number of samples and mean ± standard error of every metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nevermind.runs.config import RunSpec
from nevermind.runs.store import RunDir, SampleRecord, utc_now
from nevermind.scoring.stats import mean_and_se


def summarize(run: RunDir, spec: RunSpec) -> dict[str, Any]:
    """The run's summary: per task, n and mean ± standard error of the score and of every extra metric."""
    return {"run_id": spec.run_id, "model": spec.display_model, "tasks": aggregate(run.records()), "written": utc_now()}


def aggregate(records: Sequence[SampleRecord]) -> dict[str, Any]:
    """Per task: {"n": samples, "metrics": {metric: {"mean", "se", "n"}}}; "value" is the task's score."""
    by_task: dict[str, list[SampleRecord]] = {}
    for record in records:
        by_task.setdefault(record.task, []).append(record)
    tasks: dict[str, Any] = {}
    for name, task_records in by_task.items():
        metrics: dict[str, list[float]] = {"value": [r.value for r in task_records]}
        for record in task_records:
            for key, value in record.extra.items():
                metrics.setdefault(key, []).append(value)
        tasks[name] = {"n": len(task_records), "metrics": {}}
        for key, values in metrics.items():
            mean, se = mean_and_se(values)
            tasks[name]["metrics"][key] = {"mean": mean, "se": se, "n": len(values)}
    return tasks
