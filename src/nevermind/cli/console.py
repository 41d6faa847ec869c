"""Shared console helpers for commands: status lines on stderr, so stdout stays clean output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

err_console = Console(stderr=True)


@contextmanager
def status_spinner(initial: str) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr; the yielded function changes its message.

    transformers' own progress bars are switched off meanwhile: they would tear the spinner line."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with err_console.status(initial) as status:
        yield lambda message: status.update(message)


class RichProgress:
    """`nevermind.progress.Progress` drawn on stderr: items done, tokens/s, time left.

    Time left is this attempt's seconds per sample times the samples left (rich's own estimate
    looks only at the last 30 s, and a batch of long prompts on a CPU can take longer)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.tokens = 0
        self.samples = 0
        self.left = 0
        self.started = 0.0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        """Start the bar for a job; `done` items come from earlier attempts."""
        description = f"{label}" + (f" (resumed: {done} done)" if done else "")
        self.tokens, self.samples, self.left, self.started = 0, 0, total - done, time.monotonic()
        self._ensure_task()
        self.progress.reset(self.task, total=total, completed=done, description=description, rate="", left="")

    def status(self, message: str) -> None:
        """Show a slow step on the bar's line."""
        self._ensure_task()
        self.progress.update(self.task, description=message)

    def advance(self, samples: int, tokens: int = 0) -> None:
        """Move the bar and refresh the token rate."""
        self.tokens += tokens
        self.samples += samples
        self.left -= samples
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = timedelta(seconds=round(elapsed / max(self.samples, 1) * self.left))
        rate = f"{self.tokens / elapsed:.1f} tok/s" if self.tokens else ""
        self.progress.update(self.task, advance=samples, rate=rate, left=f"{left} left")

    def end(self) -> None:
        """Leave the finished bar on screen and start a fresh one for the next run."""
        if self.task is not None:
            self.progress.stop_task(self.task)
        self.task = None

    def _ensure_task(self) -> None:
        if self.task is None:
            self.task = self.progress.add_task("starting", total=None, rate="", left="")


@contextmanager
def progress_bar() -> Iterator[RichProgress]:
    """A live progress bar on stderr for the duration of the block (library bars silenced)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its weight-loading bars would tear ours
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"))
    with Progress(*columns, console=err_console) as bar:
        yield RichProgress(bar)
