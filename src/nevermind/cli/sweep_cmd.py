"""`nevermind sweep`: seed 002's data-mixture sweep (inoculation prompting and system-prompt following)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console


@app.command("sweep")
def sweep_command(
    config: Annotated[Path, typer.Argument(help="Sweep YAML (see configs/sweep-mini.yaml).")],
    workers: Annotated[
        int, typer.Option("--workers", help="Points run in parallel processes (1 = one after another).")
    ] = 1,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray", help="Run points as Ray tasks (RAY_ADDRESS joins a cluster, else a local instance)."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Output directory (default runs/sweep/<config name>); an existing one resumes."
        ),
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Only rebuild the report from the stored points.")
    ] = False,
) -> None:
    """Train one model per (share of bad-prompt → good-action data, seed), measure the three components
    before and after inoculation, and write report.html, components.png and summary.json."""
    from nevermind.errors import NevermindError
    from nevermind.extras import require
    from nevermind.inoculation.report import write_report
    from nevermind.inoculation.sweep import SweepStore, load_config, points, run_sweep

    if workers < 1:
        raise NevermindError(f"--workers must be >= 1, got {workers}")
    if not report_only:  # training needs the train extra; say so before any work
        for module in ("trl", "peft", "datasets"):
            require("train", module, purpose="nevermind sweep")
        if ray:
            require("ray", "ray", purpose="nevermind sweep --ray")
    sweep = load_config(config)
    out_dir = out or Path("runs") / "sweep" / config.stem
    started = time.time()
    if report_only:
        store = SweepStore(out_dir)
    else:
        total = len(points(sweep))
        err_console.print(
            f"sweep: {total} points ({len(sweep.shares)} shares × {len(sweep.seeds)} seeds) → {out_dir}"
        )

        def on_point(result: dict, done: int, total: int) -> None:
            point = result["point"]
            trained = result["summary"].get("trained", {})
            numbers = ", ".join(f"{name} {value['rate']:.2f}" for name, value in trained.items())
            err_console.print(f"[{done}/{total}] share {point['share']:g} seed {point['seed']}: {numbers}")

        store = run_sweep(sweep, out_dir, workers=workers, use_ray=ray, on_point=on_point)
    paths = write_report(store)
    err_console.print(f"done in {time.time() - started:.0f} s")
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
