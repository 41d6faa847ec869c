"""`nevermind serve`: an OpenAI-compatible endpoint for a model and its adapters."""

from __future__ import annotations

from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console, status_spinner
from nevermind.serve.runner import LOOPBACK


@app.command("serve")
def serve_command(
    model: Annotated[
        str, typer.Option("-m", "--model", help="Bundled name, hub id, local directory or .gguf file.")
    ],
    adapter: Annotated[
        list[str] | None, typer.Option("--adapter", help="Decode-time adapter spec (repeatable), e.g. rules.")
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="Model backend: auto (hf), hf, vllm, llamacpp: one that tokenizes locally."),
    ] = "auto",
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 exposes the model to the network.")
    ] = LOOPBACK,
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    served_name: Annotated[
        str | None, typer.Option(help="Model id reported by /v1/models (default: the -m name, +adapters).")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(help="Upper bound on tokens generated per request (and the chat default).", min=1)
    ] = 512,
    max_batch: Annotated[int, typer.Option(help="Most prompts run together in one model call.", min=1)] = 16,
    batch_window_ms: Annotated[
        float,
        typer.Option(
            help="How long to wait after a request for another to join its batch (5 windows at most; 0: no wait).",
            min=0,
        ),
    ] = 10.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
    ] = "auto",
) -> None:
    """Serve MODEL at http://HOST:PORT/v1: chat/completions and completions (text or token-id prompts,
    echo, logprobs, streaming), models, and /tokenize. Requests that arrive together run as one batch."""
    from nevermind.extras import require
    from nevermind.models import load_model, prepare_model

    uvicorn = require("serve", "uvicorn", purpose="nevermind serve")
    require("serve", "fastapi", purpose="nevermind serve")
    from nevermind.serve import Server, create_app

    with status_spinner(f"loading {model}") as say:
        prepare_model(model, backend, on_status=say)
        lm = load_model(model, backend=backend, device=device, dtype=dtype, on_status=say)
        built = []
        if adapter:
            from nevermind.adapters import build_adapter

            built = [build_adapter(spec, lm) for spec in adapter]
    name = served_name or "+".join([model, *(adapter or [])])
    server = Server(
        lm, model_id=name, adapters=built, max_tokens=max_tokens, max_batch=max_batch,
        batch_window=batch_window_ms / 1000,
    )  # fmt: skip
    if host != LOOPBACK:
        err_console.print(
            f"[yellow]warning: binding {host}: the model is reachable from other machines[/yellow]"
        )
    err_console.print(f"serving {name} at http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        uvicorn.run(create_app(server), host=host, port=port, log_level="warning")
    finally:
        server.close()
