"""`nevermind serve`: one local model (plus adapters) behind an OpenAI-compatible HTTP API.

Imported lazily: `nevermind.serve.runner` (LOOPBACK) needs nothing optional; the app needs fastapi
(`pip install 'nevermind[serve]'`), imported only when `Server` or `create_app` is first used."""

from __future__ import annotations

from typing import Any

from nevermind.serve.runner import LOOPBACK, serve_in_thread

__all__ = ["LOOPBACK", "Server", "create_app", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name in ("Server", "create_app"):
        from nevermind.extras import require

        require("serve", "fastapi", purpose="the OpenAI-compatible server")
        from nevermind.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'nevermind.serve' has no attribute {name!r}")
