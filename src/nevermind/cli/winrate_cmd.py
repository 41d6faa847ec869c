"""`nevermind generate-outputs` and `nevermind winrate`: a model's answers to evaluation
instructions, and their head-to-head win rate against a reference model's answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console, status_spinner
from nevermind.errors import NevermindError

POSITION_BIAS_WARNING = 0.75
"""A judge preferring one position in more than this share of judgments (either way) gets a warning."""


def warn_position_bias(first_position_rate: float) -> None:
    """Say so when the judge mostly picks by position: its hard win rates are then mostly ties."""
    if max(first_position_rate, 1 - first_position_rate) > POSITION_BIAS_WARNING:
        which = "first" if first_position_rate > 0.5 else "second"
        err_console.print(
            f"[yellow]warning:[/yellow] the judge preferred the {which} answer in "
            f"{max(first_position_rate, 1 - first_position_rate):.0%} of judgments; its verdicts follow "
            "position more than content, so most instructions are ties — read the soft win rate, or use "
            "a stronger judge"
        )


@app.command("generate-outputs")
def generate_outputs_command(
    model: Annotated[
        str, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="JSONL file of outputs (resumed if it exists).")
    ],
    instructions: Annotated[
        str,
        typer.Option(
            help='"alpaca-eval" (its 805 instructions) or a JSONL file with an "instruction" field.'
        ),
    ] = "alpaca-eval",
    limit: Annotated[int | None, typer.Option(help="Only the first N instructions.", min=1)] = None,
    adapter: Annotated[
        list[str] | None, typer.Option("--adapter", help="Decode-time adapter spec (repeatable).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum tokens per output.", min=1)] = 256,
    temperature: Annotated[float, typer.Option(help="0 = greedy; above 0 samples.", min=0.0)] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    batch_size: Annotated[int, typer.Option(help="Generation batch size.", min=1)] = 8,
    backend: Annotated[
        str, typer.Option(help="Model backend: auto (openai for an http URL, else hf), hf, vllm, llamacpp, openai.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
    ] = "auto",
) -> None:
    """Answer evaluation instructions with MODEL into a resumable JSONL file."""
    from nevermind.evals.outputs import check_outputs_file, generate_outputs, load_instruction_source
    from nevermind.models import GenerationConfig, load_model

    try:
        config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    except ValueError as error:
        raise NevermindError(str(error)) from None
    prompts = load_instruction_source(instructions, limit)
    check_outputs_file(output)  # a file nevermind did not write is refused before the model loads
    with status_spinner(f"loading {model}") as say:
        lm = load_model(model, backend=backend, device=device, dtype=dtype, on_status=say)
        records = generate_outputs(
            lm,
            prompts,
            output,
            config=config,
            adapters=adapter or (),
            batch_size=batch_size,
            on_progress=lambda done, total: say(f"generating outputs {done}/{total}"),
        )
    err_console.print(f"wrote {len(records)} outputs to {output}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "judge"


@app.command("winrate")
def winrate_command(
    outputs: Annotated[Path, typer.Option("--outputs", help="JSONL outputs of the model under test.")],
    reference: Annotated[Path, typer.Option("--reference", help="JSONL outputs of the reference model.")],
    judge: Annotated[str, typer.Option(help="openai:URL#model (key from --api-key-env) or local:MODEL.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("-o", "--out-dir", help="Run directory (default runs/winrate/A-vs-B-judge)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Judge only the first N shared instructions.", min=1)
    ] = None,
    tie_margin: Annotated[
        float, typer.Option(help="|P(A better) − ½| at most this is a tie.", min=0.0, max=0.5)
    ] = 0.05,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable with the judge's API key.")
    ] = "OPENAI_API_KEY",
    timeout: Annotated[
        float, typer.Option(help="Seconds before one judge request is abandoned.", min=0.1)
    ] = 60.0,
    retries: Annotated[int, typer.Option(help="Retries for timeouts, 429 and 5xx.", min=0)] = 3,
) -> None:
    """Win rate of OUTPUTS against REFERENCE (both orders, ties, ± SE, length-controlled)."""
    from rich.console import Console
    from rich.table import Table

    from nevermind.credentials import redact_url
    from nevermind.evals.judges import make_judge
    from nevermind.evals.outputs import load_outputs
    from nevermind.evals.winrate import win_rate

    answers, references = load_outputs(outputs), load_outputs(reference)
    shown = redact_url(judge)  # URL credentials stay out of the directory name and the screen
    out_dir = out_dir or Path("runs") / "winrate" / f"{outputs.stem}-vs-{reference.stem}-{_slug(shown)}"
    with status_spinner(f"loading judge {shown}") as say:
        judge_ = make_judge(judge, api_key_env=api_key_env, timeout=timeout, max_retries=retries)
        result = win_rate(
            answers,
            references,
            judge_,
            out_dir,
            limit=limit,
            tie_margin=tie_margin,
            on_progress=lambda done, total: say(f"judging {done}/{total}"),
        )
    table = Table(
        title=f"win rate vs {result.reference} ({result.instructions} instructions, judge {result.judge})"
    )
    columns = ("model", "win rate", "SE", "LC win rate", "LC SE", "soft win rate", "wins/ties/losses",
               "judge picks first", "mean chars A/B")
    for column in columns:
        table.add_column(column)
    table.add_row(
        result.model,
        f"{result.win_rate:.1%}",
        f"{result.se:.1%}",
        f"{result.lc_win_rate:.1%}",
        f"{result.lc_se:.1%}",
        f"{result.soft_win_rate:.1%} ± {result.soft_se:.1%}",
        f"{result.wins}/{result.ties}/{result.losses}",
        f"{result.first_position_rate:.0%}",
        f"{result.mean_length_a:.0f}/{result.mean_length_b:.0f}",
    )
    Console().print(table)
    warn_position_bias(result.first_position_rate)
    err_console.print(f"[dim]judgments and summary in {out_dir}[/dim]")
