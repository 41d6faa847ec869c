"""`nevermind eval` (run the conflict suite on models, resumable) and `nevermind report` (one HTML file)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nevermind.cli.app import app
from nevermind.cli.console import err_console
from nevermind.runs.config import EvalConfig, split_list

_HELP = {name: field.description for name, field in EvalConfig.model_fields.items()}


class RichRunProgress:
    """A progress bar on stderr: samples done, tokens/s of generation, time left.

    Time left is this attempt's seconds per sample times the samples left (rich's own estimate
    looks only at the last 30 s, and a batch of long prompts on a CPU can take longer)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.tokens = 0
        self.samples = 0
        self.left = 0
        self.started = 0.0

    def begin(self, run_id: str, total: int, done: int) -> None:
        """Start the bar for a run; `done` samples come from earlier attempts."""
        description = f"{run_id}" + (f" (resumed: {done} done)" if done else "")
        self.tokens, self.samples, self.left, self.started = 0, 0, total - done, time.monotonic()
        self._ensure_task()
        self.progress.reset(self.task, total=total, completed=done, description=description, rate="", left="")

    def status(self, message: str) -> None:
        """Show a slow step on the bar's line."""
        self._ensure_task()
        self.progress.update(self.task, description=message)

    def advance(self, samples: int, tokens: int) -> None:
        """Move the bar and refresh the token rate."""
        self.tokens += tokens
        self.samples += samples
        self.left -= samples
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = timedelta(seconds=round(elapsed / self.samples * self.left))
        self.progress.update(self.task, advance=samples, rate=f"{self.tokens / elapsed:.1f} tok/s", left=f"{left} left")

    def end(self) -> None:
        """Leave the finished bar on screen and start a fresh one for the next run."""
        if self.task is not None:
            self.progress.stop_task(self.task)
        self.task = None

    def _ensure_task(self) -> None:
        if self.task is None:
            self.task = self.progress.add_task("starting", total=None, rate="", left="")


@app.command("eval")
def eval_command(
    model: Annotated[list[str] | None, typer.Option("-m", "--model", help=_HELP["models"] + " Repeatable.")] = None,
    tasks: Annotated[str | None, typer.Option(help=_HELP["tasks"] + " Comma-separated.")] = None,
    limit: Annotated[int | None, typer.Option(help=_HELP["limit"])] = None,
    lengths: Annotated[str | None, typer.Option(help=_HELP["lengths"] + " Comma-separated.")] = None,
    depths: Annotated[str | None, typer.Option(help=_HELP["depths"] + " Comma-separated.")] = None,
    out: Annotated[Path | None, typer.Option(help=_HELP["out"])] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with any of these options; flags override it.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help=_HELP["batch_size"])] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help=_HELP["max_new_tokens"])] = None,
    seed: Annotated[int | None, typer.Option(help=_HELP["seed"])] = None,
    device: Annotated[str | None, typer.Option(help=_HELP["device"])] = None,
    dtype: Annotated[str | None, typer.Option(help=_HELP["dtype"])] = None,
    adapters: Annotated[str | None, typer.Option(help=_HELP["adapters"] + " Comma-separated.")] = None,
) -> None:
    """Run tasks on one or more models; the same command again resumes where it stopped."""
    from nevermind.runs import resolve_config
    from nevermind.runs.runner import run_eval

    listed = {"tasks": tasks, "lengths": lengths, "depths": depths, "adapters": adapters}
    overrides: dict[str, Any] = {key: split_list(value) for key, value in listed.items() if value is not None}
    overrides.update(models=model or None, limit=limit, out=out, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, seed=seed, device=device, dtype=dtype)
    resolved = resolve_config(config, overrides)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its weight-loading bars would tear ours
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"))
    with Progress(*columns, console=err_console) as bar:
        results = run_eval(resolved, progress=RichRunProgress(bar))
    table = Table(title="scores (mean ± standard error)")
    for column in ("model", "task", "metric", "score", "n"):
        table.add_column(column)
    for result in results:
        for task, entry in result.summary["tasks"].items():
            for metric, stats in entry["metrics"].items():
                table.add_row(result.spec.model, task, metric, f"{stats['mean']:.3f} ± {stats['se']:.3f}",
                              str(stats["n"]))
    Console().print(table)
    for result in results:
        err_console.print(f"[dim]{result.spec.model}: {result.run.path} "
                          f"({result.generated} generated, {result.resumed} resumed)[/dim]")


@app.command("report")
def report_command(
    runs: Annotated[list[Path], typer.Argument(
        help="Run directories, output directories holding index.sqlite, or `nevermind perplexity` output directories."
    )],
    output: Annotated[Path, typer.Option("-o", "--output", help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Title of the report.")] = "nevermind report",
) -> None:
    """Write one self-contained HTML report: scores ± SE side by side, needle heatmaps, perplexity cliffs, every sample."""
    from nevermind.report import write_report

    path = write_report(runs, output, title=title)
    err_console.print(f"wrote {path}")
