"""`nevermind eval` (run the conflict suite on models, resumable) and `nevermind report` (one HTML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nevermind.cli.app import app
from nevermind.cli.console import err_console, progress_bar
from nevermind.runs.config import EvalConfig, split_list

_HELP = {name: field.description for name, field in EvalConfig.model_fields.items()}


@app.command("eval")
def eval_command(
    model: Annotated[list[str] | None, typer.Option("-m", "--model", help=_HELP["models"] + " Repeatable.")] = None,
    tasks: Annotated[str | None, typer.Option(help=_HELP["tasks"] + " Comma-separated.")] = None,
    limit: Annotated[int | None, typer.Option(help=_HELP["limit"])] = None,
    lengths: Annotated[str | None, typer.Option(help=_HELP["lengths"] + " Comma-separated.")] = None,
    depths: Annotated[str | None, typer.Option(help=_HELP["depths"] + " Comma-separated.")] = None,
    out: Annotated[str | None, typer.Option(help=_HELP["out"])] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with any of these options; flags override it.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help=_HELP["batch_size"])] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help=_HELP["max_new_tokens"])] = None,
    seed: Annotated[int | None, typer.Option(help=_HELP["seed"])] = None,
    backend: Annotated[str | None, typer.Option(help=_HELP["backend"])] = None,
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
                     max_new_tokens=max_new_tokens, seed=seed, backend=backend, device=device, dtype=dtype)
    resolved = resolve_config(config, overrides)
    with progress_bar() as progress:
        results = run_eval(resolved, progress=progress)
    table = Table(title="scores (mean ± standard error)")
    for column in ("model", "task", "metric", "score", "n"):
        table.add_column(column)
    for result in results:
        for task, entry in result.summary["tasks"].items():
            for metric, stats in entry["metrics"].items():
                table.add_row(result.spec.display_model, task, metric, f"{stats['mean']:.3f} ± {stats['se']:.3f}",
                              str(stats["n"]))
    Console().print(table)
    for result in results:
        reused = ""
        if result.resumed:
            same = "options and weights fingerprint" if result.spec.weights else "model name and options"
            reused = f", reused from earlier attempts with the same {same}"
        err_console.print(f"[dim]{result.spec.display_model}: {result.run.path} "
                          f"({result.generated} generated, {result.resumed} resumed{reused})[/dim]", soft_wrap=True)


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
