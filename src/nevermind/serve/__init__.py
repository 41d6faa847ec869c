"""`nevermind serve`: one local model (plus adapters) behind an OpenAI-compatible HTTP API."""

from nevermind.serve.app import Server, create_app
from nevermind.serve.runner import LOOPBACK, serve_in_thread

__all__ = ["LOOPBACK", "Server", "create_app", "serve_in_thread"]
