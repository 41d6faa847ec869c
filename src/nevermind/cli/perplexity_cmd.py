"""`nevermind perplexity`: perplexity of long real text versus context length per RoPE alpha, and the cliff."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from nevermind.cli.app import app
from nevermind.cli.console import err_console, print_table, status_spinner
from nevermind.errors import NevermindError

if TYPE_CHECKING:
    from nevermind.perplexity import PerplexityResult


def parse_numbers(text: str, what: str, kind: type = float) -> tuple:
    """Parse a comma-separated list ("1,2,4") into numbers, or raise a one-line NevermindError."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise NevermindError(f"--{what} is empty: give a comma-separated list such as 1,2,4")
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise NevermindError(f"--{what} must be comma-separated {kind.__name__}s, got {text!r}") from None


@app.command("perplexity")
def perplexity_command(
    model: Annotated[str, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")],
    alphas: Annotated[str, typer.Option(help="RoPE scaling factors, comma-separated; 1 = the model as trained.")] = "1,2,4,8",
    lengths: Annotated[
        str, typer.Option(help="Context lengths in tokens, ascending; the first is the short-context reference.")
    ] = "512,1024,2048,4096",
    scaling: Annotated[str, typer.Option(help="ntk (static NTK base), dynamic (dynamic NTK) or linear.")] = "ntk",
    layers: Annotated[str, typer.Option(help="Gemma 3: scale all, global or local attention layers.")] = "all",
    max_positions: Annotated[
        int | None,
        typer.Option(help="Restrict the model to N positions: rope bases compressed so the slowest frequency "
                     "ends at N what it reached at the trained length (see docs/context-scaling.md)."),
    ] = None,
    window: Annotated[int, typer.Option(help="Tokens scored at the end of each length.")] = 256,
    samples: Annotated[int, typer.Option(help="Text excerpts averaged per point.")] = 1,
    cliff_multiple: Annotated[float, typer.Option(help="Cliff: perplexity above this multiple of the first length's.")] = 2.0,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Directory for JSON, CSV and PNG.")] = None,
    buffer: Annotated[
        bool, typer.Option("--buffer/--no-buffer", help="Also run needle and override at these lengths and alphas.")
    ] = False,
    buffer_samples: Annotated[int, typer.Option(help="Buffer: samples per task, length and alpha.", min=1)] = 2,
    buffer_lengths: Annotated[
        str | None, typer.Option(help="Buffer: a subset of the lengths (default: all).")
    ] = None,
    buffer_alphas: Annotated[str | None, typer.Option(help="Buffer: a subset of the alphas (default: all).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")] = "auto",
) -> None:
    """Perplexity of Paul Graham's essays versus context length for each RoPE alpha; find each cliff and plot it."""
    from nevermind.data.haystack import haystack_text
    from nevermind.perplexity import PerplexityConfig, plot_perplexity, run_perplexity

    config = PerplexityConfig(
        model=model,
        alphas=parse_numbers(alphas, "alphas"),
        lengths=parse_numbers(lengths, "lengths", int),
        scaling=scaling,
        layers=layers,  # type: ignore[arg-type]
        max_positions=max_positions,
        window=window,
        samples=samples,
        cliff_multiple=cliff_multiple,
        device=device,
        dtype=dtype,
    )
    out = output or Path("perplexity") / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(model).name)}-{scaling}"
    subset = (parse_numbers(buffer_lengths, "buffer-lengths", int) if buffer_lengths else None,
              parse_numbers(buffer_alphas, "buffer-alphas") if buffer_alphas else None)
    previous = _finished(out, config)
    if previous is not None:
        err_console.print(f"reusing the finished perplexity measurement in {out / 'perplexity.json'}")
        _print_table(previous)
        if buffer:
            _run_buffer(previous, out, buffer_samples, *subset)
        return
    text = haystack_text()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    per_alpha = 1 if scaling != "dynamic" else len(config.lengths)
    total = sum(config.samples * (1 if alpha == 1 else per_alpha) for alpha in config.alphas)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"loading {model}", total=total)
        started = [0]

        def on_pass(message: str) -> None:
            progress.update(task, completed=started[0], description=message)
            started[0] += 1

        finished = []

        def on_alpha_done(curve) -> None:
            progress.update(task, completed=started[0])
            finished.append(asdict(curve))  # kept on disk so a long run interrupted still leaves its curves
            out.mkdir(parents=True, exist_ok=True)
            (out / "partial.json").write_text(json.dumps({"config": asdict(config), "curves": finished}, indent=2))
            cliff = f"cliff at {curve.cliff}" if curve.cliff else "no cliff"
            err_console.print(f"alpha {curve.alpha:g}: {cliff}; perplexity "
                              + ", ".join(f"{p:.4g}" for p in curve.perplexity))

        result = run_perplexity(
            config,
            text,
            on_status=lambda m: progress.update(task, description=m),
            on_pass=on_pass,
            on_alpha_done=on_alpha_done,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "perplexity.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    rows = result.rows()
    with open(out / "perplexity.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot = plot_perplexity(result, out / "perplexity.png")
    (out / "partial.json").unlink(missing_ok=True)
    _print_table(result)
    err_console.print(f"wrote {out / 'perplexity.json'}, {out / 'perplexity.csv'}, {plot}")
    if buffer:
        _run_buffer(result, out, buffer_samples, *subset)


def _finished(out: Path, config) -> PerplexityResult | None:
    """The result already in `out` for exactly this config, if a finished run left one."""
    from nevermind.perplexity import PerplexityResult

    path = out / "perplexity.json"
    if not path.is_file():
        return None
    try:
        previous = PerplexityResult.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None
    return previous if previous.config == config else None


def _run_buffer(result, out: Path, per_length: int, lengths=None, alphas=None) -> None:
    """The buffer experiment after the perplexity sweep: JSON of points and a standalone HTML page."""
    import base64

    from markupsafe import escape

    from nevermind.perplexity.buffer import buffer_section_html, points_to_dicts, run_buffer

    with status_spinner("buffer experiment") as say:
        points = run_buffer(result, per_length=per_length, lengths=lengths, alphas=alphas, on_status=say)
    (out / "buffer.json").write_text(json.dumps(points_to_dicts(points), indent=2) + "\n")
    plot = base64.b64encode((out / "perplexity.png").read_bytes()).decode()
    page = (f"<!doctype html><meta charset='utf-8'><title>context scaling: {escape(result.config.model)}</title>"
            f"<h1>Context scaling: {escape(result.config.model)}</h1>"
            f"<img alt='perplexity against length' src='data:image/png;base64,{plot}'>"
            f"<h2>Instruction following inside the cliff</h2>{buffer_section_html(points, result)}")
    (out / "context-scaling.html").write_text(page)
    table = Table(title="buffer: accuracy by distance from the cliff")
    for column in ("task", "alpha", "length", "cliff", "distance", "accuracy", "n"):
        table.add_column(column, justify="right")
    for p in points:
        table.add_row(p.task, f"{p.alpha:g}", str(p.length), str(p.cliff or "none"), f"{p.distance:+.2f}",
                      f"{p.accuracy:.2f}", str(p.samples))
    print_table(table)
    err_console.print(f"wrote {out / 'buffer.json'}, {out / 'context-scaling.html'}")


def _print_table(result) -> None:
    table = Table(title=f"{result.config.model}: perplexity of the last {result.config.window} tokens "
                        f"(trained {result.trained_positions}, declared {result.declared_positions})")
    table.add_column("length", justify="right")
    for curve in result.curves:
        table.add_column(f"alpha {curve.alpha:g}", justify="right")
    for i, length in enumerate(result.config.lengths):
        cells = []
        for curve in result.curves:
            mark = " *" if curve.cliff is not None and length >= curve.cliff else ""
            cells.append(f"{curve.perplexity[i]:.4g}{mark}")
        table.add_row(str(length), *cells)
    table.add_row("cliff", *[str(c.cliff) if c.cliff else "none" for c in result.curves])
    print_table(table)
