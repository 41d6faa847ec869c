"""`nevermind experiment FILE`: seed 001's implicit-instruction-tuning comparison from one YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console, status_spinner


@app.command("experiment")
def experiment_command(
    file: Annotated[Path, typer.Argument(help="Experiment YAML (see configs/experiment-mini.yaml).")],
    out_dir: Annotated[
        str | None, typer.Option("-o", "--out-dir", help="Override the file's out_dir.")
    ] = None,
) -> None:
    """Train the variants, generate, judge against the reference, rank; resumes a killed run."""
    from rich.console import Console
    from rich.table import Table

    from nevermind.cli.winrate_cmd import warn_position_bias
    from nevermind.evals.experiment import load_experiment, run_experiment
    from nevermind.extras import require

    for module in ("trl", "peft", "datasets"):  # it trains its variants: say so before any work
        require("train", module, purpose="nevermind experiment")

    config = load_experiment(file)
    if out_dir:
        config = config.model_copy(update={"out_dir": out_dir})
    with status_spinner(f"experiment {file}") as say:
        summary = run_experiment(config, on_status=say)
    table = Table(title=f"implicit instruction tuning on {summary['base']} (judge {summary['judge']})")
    for column in ("model", "win rate vs ref", "LC win rate", "soft win rate", "W/T/L", "judge picks first",
                   "response ranking"):
        table.add_column(column)
    first_rates = []
    for row in summary["rows"]:
        rate, rank = row["winrate"], row["rank"]
        if rate:
            first_rates.append(rate["first_position_rate"])
        table.add_row(
            row["model"],
            f"{rate['win_rate']:.1%} ± {rate['se']:.1%}" if rate else "(reference)",
            f"{rate['lc_win_rate']:.1%} ± {rate['lc_se']:.1%}" if rate else "",
            f"{rate['soft_win_rate']:.1%} ± {rate['soft_se']:.1%}" if rate else "",
            f"{rate['wins']}/{rate['ties']}/{rate['losses']}" if rate else "",
            f"{rate['first_position_rate']:.0%}" if rate else "",
            f"{rank['accuracy']:.1%} ± {rank['se']:.1%}" if rank else "–",
        )
    Console().print(table)
    if first_rates:
        warn_position_bias(sum(first_rates) / len(first_rates))
    err_console.print(f"report: {Path(config.out_dir) / 'report.html'} ({summary['seconds']['total']:.0f} s)")
