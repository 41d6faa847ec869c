"""`nevermind serve`: an OpenAI-compatible endpoint for a local model and its adapters."""

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
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but 127.0.0.1 exposes the model to the network.")
    ] = LOOPBACK,
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    served_name: Annotated[
        str | None, typer.Option(help="Model id reported by /v1/models (default: the -m name).")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option(help="Upper bound on tokens generated per request.", min=1)
    ] = 512,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    dtype: Annotated[
        str, typer.Option(help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16.")
    ] = "auto",
) -> None:
    """Serve MODEL at http://HOST:PORT/v1 (chat/completions, completions with logprobs, models)."""
    from nevermind.extras import require

    uvicorn = require("serve", "uvicorn", purpose="nevermind serve")
    require("serve", "fastapi", purpose="nevermind serve")
    from nevermind.models import load_model
    from nevermind.serve import Server, create_app

    with status_spinner(f"loading {model}") as say:
        lm = load_model(model, device=device, dtype=dtype, on_status=say)
        built = []
        if adapter:
            from nevermind.adapters import build_adapter

            built = [build_adapter(spec, lm) for spec in adapter]
    name = served_name or "+".join([model, *(adapter or [])])
    if host != LOOPBACK:
        err_console.print(
            f"[yellow]warning: binding {host}: the model is reachable from other machines[/yellow]"
        )
    err_console.print(f"serving {name} at http://{host}:{port}/v1 (Ctrl-C stops)")
    server = Server(lm, model_id=name, adapters=built, max_tokens=max_tokens)
    uvicorn.run(create_app(server), host=host, port=port, log_level="warning")
