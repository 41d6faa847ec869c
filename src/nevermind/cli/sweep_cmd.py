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
    backend: Annotated[
        str | None,
        typer.Option(help="Backend of the measurements (default: the file's, else auto); training always uses transformers."),
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Only rebuild the report from the stored points.")
    ] = False,
) -> None:
    """Step 0 (base model, follow stage if needed), then per (share of bad-prompt → good-action data, seed):
    mixture stage, inoculation arm and control arm, each measured; writes report.html and summary.json."""
    from nevermind.cli.console import progress_bar
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
    if backend is not None:
        from nevermind.models.backends import resolve_backend

        resolve_backend(sweep.model, backend)  # an unknown backend is one line before any work
        sweep = sweep.model_copy(update={"backend": backend})
    out_dir = out or Path("runs") / "sweep" / config.stem
    started = time.time()
    if report_only:
        store = SweepStore(out_dir)
        if not (out_dir / "config.json").is_file():
            raise NevermindError(f"{out_dir} holds no sweep (no config.json)")
    else:
        grid = points(sweep)
        err_console.print(
            f"sweep: step 0 + {len(grid)} points ({len(sweep.shares)} shares × {len(sweep.seeds)} seeds) → {out_dir}"
        )

        def on_point(result: dict) -> None:
            if result["point"] == "base":
                follow = result["follow"]
                err_console.print(f"step 0: {'follow stage ran' if follow['ran'] else 'no follow stage'} "
                                  f"({follow['reason']}) [{_times(result)}]")  # fmt: skip
                return
            control = result["changes"]["positive_control"]
            effect = result["changes"]["inoculation_effect"]
            err_console.print(
                f"{result['point']}: positive control {control['mean']:+.3f} ({control['z']:.1f} SE), "
                f"inoculation effect {effect['mean']:+.3f} ± {effect['se']:.3f} [{_times(result)}]"
            )

        with progress_bar() as progress:
            store = run_sweep(sweep, out_dir, workers=workers, use_ray=ray, progress=progress, on_point=on_point)
    paths = write_report(store)
    wall = time.time() - started
    err_console.print(f"wall time: {wall:.0f} s ({wall / 60:.1f} min) for this invocation")
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def _times(result: dict) -> str:
    seconds = result["seconds"]
    return f"{seconds['wall']:.0f} s wall, {seconds['cpu']:.0f} s CPU"
