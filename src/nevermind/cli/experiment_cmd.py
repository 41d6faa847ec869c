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

    from nevermind.cli.winrate_cmd import pct, warn_calibration, warn_position_bias
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
    for column in ("model", "preference vs ref", "controlled", "alpaca_eval LC", "W/T/L", "picks 1st/2nd",
                   "judge calibration", "response ranking"):
        table.add_column(column)
    for row in summary["rows"]:
        rate, rank = row["winrate"], row["rank"]
        table.add_row(
            row["model"],
            pct(rate["preference"], rate["preference_se"]) if rate else "(reference)",
            pct(rate["controlled"], rate["controlled_se"]) if rate else "",
            pct(rate["alpaca_eval_lc"], rate["alpaca_eval_lc_se"]) if rate else "",
            f"{rate['wins']}/{rate['ties']}/{rate['losses']}" if rate else "",
            f"{rate['first_position_rate']:.0%}/{rate['second_position_rate']:.0%}" if rate else "",
            pct(rate["calibration_accuracy"], rate["calibration_se"]) if rate else "",
            pct(rank["accuracy"], rank["se"]) if rank else "–",
        )
    Console().print(table)
    for row in summary["rows"]:
        if row["winrate"]:
            rate = row["winrate"]
            warn_position_bias(rate["first_position_rate"], rate["second_position_rate"])
            warn_calibration(row["model"], rate["calibration_accuracy"], rate["calibration_se"])
            break  # one judge for every row: its warnings once
    err_console.print(f"report: {Path(config.out_dir) / 'report.html'} ({summary['seconds']['total']:.0f} s)")
