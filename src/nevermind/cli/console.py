"""Shared console helpers for commands: status lines on stderr, so stdout stays clean output."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console

err_console = Console(stderr=True)


@contextmanager
def status_spinner(initial: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr; the yielded function changes its message.

    transformers' own progress bars are switched off meanwhile: they would tear the spinner line."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with err_console.status(initial) as status:
        yield lambda message: status.update(message)
