"""`nevermind perplexity`: perplexity of long real text versus context length per RoPE alpha, against a
position-matched baseline, the cliff, and the buffer experiment. The work is nevermind.perplexity's;
this module parses flags, draws progress and prints tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import RichProgress, err_console, print_table, progress_bar, status_spinner
from nevermind.errors import NevermindError


@contextmanager
def _bar() -> Iterator[RichProgress]:
    """The progress bar, hidden when a one-line error ends the job (the error is all the user needs)."""
    with progress_bar() as bar:
        try:
            yield bar
        except NevermindError:
            for task in bar.progress.task_ids:
                bar.progress.update(task, visible=False)
            raise


def parse_numbers(text: str | None, what: str, kind: type = float) -> list | None:
    """Parse a comma-separated list ("1,2,4") into numbers (None stays None), or raise a one-line error."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise NevermindError(f"--{what} is empty: give a comma-separated list such as 1,2,4")
    try:
        return [kind(item) for item in items]
    except ValueError:
        raise NevermindError(f"--{what} must be comma-separated {kind.__name__}s, got {text!r}") from None


@app.command("perplexity")
def perplexity_command(
    model: Annotated[
        str | None, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML file of perplexity options (flags override it).")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Model backend; it must give sequence log-probabilities (default auto).")
    ] = None,
    alphas: Annotated[
        str | None, typer.Option(help="RoPE scaling factors, comma-separated; 1 = as trained (default 1,2,4,8).")
    ] = None,
    lengths: Annotated[
        str | None, typer.Option(help="Context lengths in tokens, ascending (default 512,1024,2048,4096).")
    ] = None,
    scaling: Annotated[str | None, typer.Option(help="ntk (static NTK base; default), dynamic or linear.")] = None,
    layers: Annotated[
        str | None, typer.Option(help="Gemma 3: auto (= global layers; default), all, global or local.")
    ] = None,
    max_positions: Annotated[
        int | None,
        typer.Option(help="Restrict the model to N positions: rope bases compressed so the slowest frequency "
                     "ends at N what it reached at the trained length (see docs/context-scaling.md)."),
    ] = None,
    window: Annotated[int | None, typer.Option(help="Tokens scored at the end of each length (default 256).")] = None,
    baseline_context: Annotated[
        int | None, typer.Option(help="Tokens of context before each window in the position-matched baseline "
                                 "(default 512, lowered to fit the model's positions).")
    ] = None,
    samples: Annotated[
        int | None, typer.Option(help="Text excerpts the ratio is averaged over (default 4).")
    ] = None,
    cliff_ratio: Annotated[
        float | None, typer.Option(help="Cliff: perplexity above this multiple of its baseline's (default 1.5).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Directory for records, JSON, CSV and PNG (a rerun resumes).")
    ] = None,
    buffer: Annotated[
        bool, typer.Option("--buffer/--no-buffer", help="Also run needle and override at these lengths and alphas.")
    ] = False,
    buffer_samples: Annotated[int, typer.Option(help="Buffer: samples per task, length and alpha.", min=1)] = 2,
    buffer_lengths: Annotated[
        str | None, typer.Option(help="Buffer: a subset of the lengths (default: all).")
    ] = None,
    buffer_alphas: Annotated[str | None, typer.Option(help="Buffer: a subset of the alphas (default: all).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")] = None,
) -> None:
    """Perplexity of Paul Graham's essays versus context length for each RoPE alpha, as a ratio to the
    same windows read with a short context; find each cliff and plot it."""
    from nevermind.config import load_config
    from nevermind.models import prepare_model
    from nevermind.perplexity import PerplexityConfig, buffer_to_dir, default_output, measure_to_dir

    config = load_config(
        PerplexityConfig,
        config_file,
        {
            "model": model, "backend": backend, "alphas": parse_numbers(alphas, "alphas"),
            "lengths": parse_numbers(lengths, "lengths", int), "scaling": scaling, "layers": layers,
            "max_positions": max_positions, "window": window, "baseline_context": baseline_context,
            "samples": samples, "cliff_ratio": cliff_ratio, "device": device, "dtype": dtype,
        },
        what="perplexity config",
    )
    subset_lengths = parse_numbers(buffer_lengths, "buffer-lengths", int)
    subset_alphas = parse_numbers(buffer_alphas, "buffer-alphas")
    out = output or default_output(config)
    with status_spinner(f"checking {config.model}") as say:
        prepare_model(config.model, config.backend, on_status=say)  # a bad name fails before any file is written
    with _bar() as bar:
        result, reused = measure_to_dir(config, out, progress=bar)
    if reused:
        err_console.print(f"reusing {reused} finished measurement(s) from {out}")
    _print_table(result)
    err_console.print(f"wrote {out / 'perplexity.json'}, {out / 'perplexity.csv'}, {out / 'perplexity.png'}")
    if buffer:
        with _bar() as bar:
            points = buffer_to_dir(result, out, per_length=buffer_samples, lengths=subset_lengths,
                                   alphas=subset_alphas, progress=bar)  # fmt: skip
        _print_buffer(points)
        err_console.print(f"wrote {out / 'buffer.json'}, {out / 'context-scaling.html'}")


def _print_table(result) -> None:
    import math

    from rich.table import Table

    config = result.config
    table = Table(title=f"{config.model}: perplexity of the last {config.window} tokens ÷ the same tokens after only "
                        f"{result.baseline_context} tokens (trained {result.trained_positions}, "
                        f"declared {result.declared_positions}; ratio ± SE over {config.samples} excerpts)")
    table.add_column("length", justify="right")
    for curve in result.curves:
        table.add_column(f"alpha {curve.alpha:g}", justify="right")
    for i, length in enumerate(config.lengths):
        cells = []
        for curve in result.curves:
            mark = " *" if curve.cliff is not None and length >= curve.cliff else ""
            se = curve.ratio_log_se[i]
            spread = f" ± {curve.ratio[i] * se:.2f}" if math.isfinite(se) else ""
            ratio = "= baseline" if curve.same_context[i] else f"{curve.ratio[i]:.2f}{spread}"
            cells.append(f"{ratio}{mark}  ({curve.perplexity[i]:.4g})")
        table.add_row(str(length), *cells)
    table.add_row("cliff", *[str(c.cliff) if c.cliff else "none" for c in result.curves])
    print_table(table)


def _print_buffer(points) -> None:
    from rich.table import Table

    table = Table(title="buffer: accuracy by distance from the cliff")
    for column in ("task", "alpha", "length", "cliff", "distance", "accuracy", "n"):
        table.add_column(column, justify="right")
    for p in points:
        table.add_row(p.task, f"{p.alpha:g}", str(p.length), str(p.cliff or "none"), f"{p.distance:+.2f}",
                      f"{p.accuracy:.2f}", str(p.samples))
    print_table(table)
