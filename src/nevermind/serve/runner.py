"""Running the API with uvicorn: in the foreground (the CLI) or in a background thread (tests,
notebooks, an experiment that judges through HTTP)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOOPBACK = "127.0.0.1"
"""The default bind address: reachable from this machine only."""


@contextmanager
def serve_in_thread(
    app: Any, host: str = LOOPBACK, port: int = 0, *, startup_timeout: float = 30.0
) -> Iterator[str]:
    """Serve `app` in a daemon thread; yield its base URL (http://host:port/v1); stop on exit.

    Port 0 picks a free port."""
    from nevermind.extras import require

    uvicorn = require("serve", "uvicorn", purpose="serving the API")

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
