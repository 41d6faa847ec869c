"""`nevermind serve`: one local model (plus adapters) behind an OpenAI-compatible HTTP API.

The API needs the `serve` extra (fastapi, uvicorn): its names are imported on first use, so
importing this package (the CLI does) works on the base install."""

from typing import Any

__all__ = ["LOOPBACK", "Server", "create_app", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in ("LOOPBACK", "serve_in_thread"):
        from nevermind.serve import runner

        return getattr(runner, name)
    if name in ("Server", "create_app"):
        from nevermind.extras import require

        require("serve", "fastapi", purpose="the OpenAI-compatible server")
        from nevermind.serve import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
