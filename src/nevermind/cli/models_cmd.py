"""`nevermind models` and `nevermind generate`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from nevermind.cli.app import app
from nevermind.cli.console import err_console, status_spinner
from nevermind.errors import NevermindError


@app.command("models")
def models_command() -> None:
    """List the bundled models: kind, size, whether the weights package is installed and cached.

    Names are never cut: a terminal too narrow for the table, or a pipe, gets one tab-separated
    line per model (so `nevermind models | grep NAME` and `cut -f1` work)."""
    from rich.console import Console

    from nevermind.models import BUNDLED, cache_root

    header = ("name", "kind", "parameters", "carrier installed", "cached", "install")
    rows = [
        (m.name, m.kind, m.parameters, "yes" if m.carrier_installed else "no", "yes" if m.cached else "no", m.install)
        for m in BUNDLED.values()
    ]
    title = f"bundled models (cache: {cache_root()})"
    console = Console()
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    if console.is_terminal and console.width >= sum(widths) + 3 * len(widths) + 1:
        table = Table(title=title)
        for column in header:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    err_console.print(f"[dim]{title}[/dim]")
    for line in (header, *rows):
        sys.stdout.write("\t".join(line) + "\n")


@app.command("generate")
def generate_command(
    prompt: Annotated[list[str], typer.Argument(help="Prompt text; several prompts are generated as one batch.")],
    model: Annotated[str, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")],
    chat: Annotated[
        bool | None, typer.Option("--chat/--no-chat", help="Format the prompt as a user turn with the chat template (default; the plain <|user|> template for a model without one). --no-chat continues raw text.")
    ] = True,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum tokens to generate.", min=1)] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy; above 0 samples.", min=0.0)] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.", min=0.0, max=1.0)] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    backend: Annotated[
        str, typer.Option(help="Model backend: auto (openai for an http URL, else hf), hf, vllm, llamacpp, openai.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per prompt.")] = False,
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            help="Decode-time adapter NAME or NAME:key=value,... (repeatable): rules, keywords, inhibition.",
        ),
    ] = None,
    rope: Annotated[
        str | None,
        typer.Option(help="RoPE scaling KIND:ALPHA[:LAYERS]: ntk:4, dynamic:2, linear:4:global (Gemma 3 groups)."),
    ] = None,
) -> None:
    """Generate a response to each prompt and print it."""
    from nevermind.adapters import adapter_config, build_adapter, generate_with_adapters, parse_spec
    from nevermind.credentials import redact_url
    from nevermind.models import GenerateRequest, GenerationConfig, RopeScaling, load_model
    from nevermind.runs.config import check_device

    for spec in adapter or ():  # a bad spec fails before the model loads
        adapter_config(*parse_spec(spec))
    if not chat:
        empty = [number for number, text in enumerate(prompt, 1) if not text]
        if empty:
            raise NevermindError(f"prompt {empty[0]} is empty: --no-chat continues the text given, so give some")
    if stop is not None and any(not text for text in stop):
        raise NevermindError("--stop: an empty stop string would end generation before its first token")
    try:
        check_device(device)
    except ValueError as error:
        raise NevermindError(f"--device {device}: {error}") from None
    scaling = RopeScaling.parse(rope) if rope else None
    try:
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=tuple(stop or ())
        )
    except ValueError as error:
        raise NevermindError(str(error)) from None
    shown = redact_url(model)
    with status_spinner(f"loading {shown}") as say:
        lm = load_model(model, backend=backend, device=device, dtype=dtype, on_status=say, rope=scaling)
        adapters = [build_adapter(spec, lm) for spec in adapter or ()]
        say(f"generating with {shown}" + "".join(f" + {spec}" for spec in adapter or ()))
        outputs = generate_with_adapters(lm, [GenerateRequest(p, chat=chat) for p in prompt], config, adapters)
    for text, output in zip(prompt, outputs):
        if as_json:
            record = {"prompt": text, "text": output.text, "finish_reason": output.finish_reason,
                      "tokens": len(output.token_ids)}
            sys.stdout.write(json.dumps(record) + "\n")
        else:
            sys.stdout.write(output.text.strip() + "\n")
            err_console.print(f"[dim]({shown}: {len(output.token_ids)} tokens, finish: {output.finish_reason})[/dim]")
