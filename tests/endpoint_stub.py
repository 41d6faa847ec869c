"""A real HTTP server on 127.0.0.1 (the standard library's, in a thread) that answers what a test
scripts: status, headers, body and delay per request, and records every request it gets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"choices": [{"message": {"content": "1"}, "text": "1"}]})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    """One request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class Stub:
    """Scripted replies in order; when they run out, `default` answers."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.default = Reply()
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def next_reply(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


@contextmanager
def endpoint_stub() -> Iterator[tuple[Stub, str]]:
    """Yield (stub, base URL ending in /v1); the server stops on exit."""
    stub = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            stub.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                  json.loads(raw) if raw else None, time.monotonic()))
            reply = stub.next_reply()
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
