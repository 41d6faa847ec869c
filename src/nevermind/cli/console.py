"""Shared console helpers for commands: status lines on stderr, so stdout stays clean output."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console

err_console = Console(stderr=True)


@contextmanager
def status_spinner(initial: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr; the yielded function changes its message."""
    with err_console.status(initial) as status:
        yield lambda message: status.update(message)
