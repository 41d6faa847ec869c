"""One progress convention for every long job (eval runs, ranking, judging, perplexity, sweeps):
the library reports through a `Progress`, the CLI draws it (cli/console.py), tests may record it.

`advance(items, tokens)` has the shape of the model layer's `on_batch(requests, tokens)` callback,
so a model call reports straight into a bar: `model.score(requests, on_batch=progress.advance)`."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where a job reports how far it got."""

    def begin(self, label: str, total: int, done: int = 0) -> None:
        """A job of `total` items starts; `done` of them were finished by an earlier attempt."""

    def status(self, message: str) -> None:
        """A slow step that is not item work (loading a model, building a task)."""

    def advance(self, items: int, tokens: int = 0) -> None:
        """`items` more items finished, processing `tokens` tokens."""

    def end(self) -> None:
        """The job finished (or stopped)."""


class SilentProgress:
    """Progress that goes nowhere."""

    def begin(self, label: str, total: int, done: int = 0) -> None:
        """Ignore."""

    def status(self, message: str) -> None:
        """Ignore."""

    def advance(self, items: int, tokens: int = 0) -> None:
        """Ignore."""

    def end(self) -> None:
        """Ignore."""


class RecordedProgress:
    """Progress kept in memory, for tests and for callers that want the counts afterwards."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple]] = []
        self.items = 0
        self.tokens = 0

    def begin(self, label: str, total: int, done: int = 0) -> None:
        """Record the start."""
        self.events.append(("begin", (label, total, done)))

    def status(self, message: str) -> None:
        """Record a status line."""
        self.events.append(("status", (message,)))

    def advance(self, items: int, tokens: int = 0) -> None:
        """Count finished items and tokens."""
        self.items += items
        self.tokens += tokens
        self.events.append(("advance", (items, tokens)))

    def end(self) -> None:
        """Record the end."""
        self.events.append(("end", ()))
