"""`nevermind generate-outputs` and `nevermind winrate`: a model's answers to evaluation
instructions, and their head-to-head win rate against a reference model's answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console, print_table, status_spinner
from nevermind.errors import NevermindError

POSITION_BIAS_WARNING = 0.75
"""A judge preferring one position in more than this share of judgments (either way) gets a warning."""


def warn_position_bias(first_position_rate: float, second_position_rate: float) -> None:
    """Say so when the judge mostly picks by position: its thresholded win rates are then mostly ties."""
    which, rate = max(("first", first_position_rate), ("second", second_position_rate), key=lambda x: x[1])
    if rate > POSITION_BIAS_WARNING:
        err_console.print(
            f"[yellow]warning:[/yellow] the judge preferred the {which} answer in {rate:.0%} of judgments; "
            "its verdicts follow position more than content, so the thresholded win rate is mostly ties — "
            "read the order-averaged preference and the controlled estimate"
        )


def warn_calibration(name: str, accuracy: float | None, se: float | None) -> None:
    """Say so when the judge cannot tell real responses from another instruction's (within 2 SE of ½)."""
    if accuracy is None or se is None:
        err_console.print(f"[yellow]warning:[/yellow] {name}: the judge was not calibrated (no known-answer pairs)")
    elif abs(accuracy - 0.5) <= 2 * se:
        err_console.print(
            f"[yellow]warning:[/yellow] {name}: the judge picked the real response over another instruction's "
            f"in {accuracy:.1%} ± {se:.1%} of known-answer judgments — within 2 SE of chance, so its win "
            "rates say nothing; use a stronger judge"
        )


def describe_reuse(judged: int, reused: int, out_dir: Path) -> str:
    """One line on what was judged now and what was reused from the judgments file."""
    if not reused:
        return f"{judged} judgments made"
    return (
        f"{judged} judgments made, {reused} reused from {out_dir / 'judgments.jsonl'} "
        "(same judge, instruction and texts)"
    )


def pct(value: float | None, se: float | None = None) -> str:
    """`61.2 ± 0.5 %`, or `–` when there is no value."""
    if value is None:
        return "–"
    return f"{100 * value:.1f} %" if se is None else f"{100 * value:.1f} ± {100 * se:.1f} %"


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
    backend: Annotated[
        str,
        typer.Option(help="Backend of a local: judge: auto, hf, vllm, llamacpp (one that gives next-token log-probabilities)."),
    ] = "auto",
    calibration: Annotated[
        int | None,
        typer.Option(
            help="Known-answer pairs used to calibrate the judge: the first N instructions (default: all; 0: none).",
            min=0,
        ),
    ] = None,
) -> None:
    """Win rate of OUTPUTS against REFERENCE: order-averaged preference ± SE, position- and
    length-controlled estimate, alpaca_eval's LC win rate, the judge's calibration accuracy."""
    from rich.table import Table

    from nevermind.credentials import redact_url
    from nevermind.evals.judges import make_judge
    from nevermind.evals.outputs import load_outputs
    from nevermind.evals.winrate import win_rate

    answers, references = load_outputs(outputs), load_outputs(reference)
    shown = redact_url(judge)  # URL credentials stay out of the directory name and the screen
    out_dir = out_dir or Path("runs") / "winrate" / f"{outputs.stem}-vs-{reference.stem}-{_slug(shown)}"
    with status_spinner(f"loading judge {shown}") as say:
        judge_ = make_judge(judge, api_key_env=api_key_env, timeout=timeout, max_retries=retries, backend=backend)
        result = win_rate(
            answers,
            references,
            judge_,
            out_dir,
            limit=limit,
            calibration=calibration,
            tie_margin=tie_margin,
            on_progress=lambda done, total: say(f"judging {done}/{total}"),
        )
    table = Table(
        title=f"win rate vs {result.reference} ({result.instructions} instructions, judge {result.judge})"
    )
    columns = ("model", "preference", "controlled", "alpaca_eval LC", "soft (prob.)", "thresholded",
               "W/T/L", "picks 1st/2nd", "judge calibration", "mean chars A/B")
    for column in columns:
        table.add_column(column)
    table.add_row(
        result.model,
        pct(result.preference, result.preference_se),
        pct(result.controlled, result.controlled_se),
        pct(result.alpaca_eval_lc, result.alpaca_eval_lc_se),
        pct(result.soft_win_rate, result.soft_se),
        pct(result.win_rate, result.se),
        f"{result.wins}/{result.ties}/{result.losses}",
        f"{result.first_position_rate:.0%}/{result.second_position_rate:.0%}",
        pct(result.calibration_accuracy, result.calibration_se),
        f"{result.mean_length_a:.0f}/{result.mean_length_b:.0f}",
    )
    print_table(table)
    warn_position_bias(result.first_position_rate, result.second_position_rate)
    warn_calibration(result.judge, result.calibration_accuracy, result.calibration_se)
    err_console.print(f"[dim]{describe_reuse(result.judged, result.reused, out_dir)}; summary in {out_dir}[/dim]")
