"""`nevermind rank`: response ranking of one model (seed 001)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console, status_spinner


@app.command("rank")
def rank_command(
    model: Annotated[
        str, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")
    ],
    pairs: Annotated[
        str, typer.Option(help='"sharegpt", "alpaca-eval" or a JSONL file with "instruction" and "response".')
    ] = "sharegpt",
    limit: Annotated[int, typer.Option(help="Number of instructions.", min=2)] = 200,
    negatives: Annotated[int, typer.Option(help="Random other responses per instruction.", min=1)] = 5,
    seed: Annotated[int, typer.Option(help="Seed for choosing pairs and negatives.")] = 0,
    max_total_tokens: Annotated[
        int, typer.Option(help="Prompt + response are cut to this many tokens (the reference: 1024).", min=2)
    ] = 1024,
    max_response_tokens: Annotated[
        int | None,
        typer.Option(help="Cut every response to its first N tokens (default: whole responses).", min=1),
    ] = None,
    score_end: Annotated[
        bool, typer.Option(help="Score the end-of-turn token after a whole response (as the reference does).")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Scoring batch size.", min=1)] = 16,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write the JSON result here (per-instruction scores go to OUTPUT.records.jsonl; a rerun resumes).",
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="Model backend: auto (openai for an http URL, else hf), hf, vllm, llamacpp, openai.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
    ] = "auto",
) -> None:
    """Fraction of (real, random) responses where the model prefers the real one, ± SE."""
    from rich.console import Console
    from rich.table import Table

    from nevermind.evals.rank import load_rank_pairs, response_rank
    from nevermind.models import load_model

    data = load_rank_pairs(pairs, limit=limit, seed=seed)
    total = len(data) * (negatives + 1)
    with status_spinner(f"loading {model}") as say:
        lm = load_model(model, backend=backend, device=device, dtype=dtype, on_status=say)
        done = 0

        def progress(requests: int, _tokens: int) -> None:
            nonlocal done
            done += requests
            say(f"scoring responses {done}/{total}")

        result = response_rank(
            lm,
            data,
            negatives=negatives,
            seed=seed,
            max_total_tokens=max_total_tokens,
            max_response_tokens=max_response_tokens,
            score_end=score_end,
            batch_size=batch_size,
            on_batch=progress,
            records_path=output.with_suffix(".records.jsonl") if output else None,
        )
    scope = (
        f"first {max_response_tokens} tokens" if max_response_tokens else "whole responses"
    ) + (" + end token" if score_end else "") + f", ≤ {max_total_tokens} tokens in all"
    table = Table(
        title=f"response ranking ({pairs}, {result.instructions} instructions × {negatives} random; {scope})"
    )
    for column in ("model", "P(real > random)", "SE", "instructions"):
        table.add_column(column)
    table.add_row(result.model, f"{result.accuracy:.1%}", f"{result.se:.1%}", str(result.instructions))
    Console().print(table)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps({**result.to_json(), "pairs": pairs}, indent=1, ensure_ascii=False))
        err_console.print(f"[dim]wrote {output}[/dim]")
