"""What a task is: a data source that yields samples, a prompt for each, and a scorer.

Tasks register by name with `@register_task`; users add their own in a file of their own
(`nevermind eval --tasks my_tasks.py:name` loads it) or through the `nevermind.tasks`
entry-point group."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from nevermind.models.requests import GenerationConfig, Message


@dataclass
class Sample:
    """One prompt of a task, with what its scorer needs."""

    id: str
    """Stable within a task and config: a resumed run recognises finished samples by it."""
    messages: list[Message]
    """The chat the model answers (system / user turns)."""
    target: dict[str, Any] = field(default_factory=dict)
    """What the scorer checks against (expected strings, forbidden strings, ...)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Grid coordinates and other facts for reports (length, depth, template, ...)."""


@dataclass
class SampleScore:
    """A sample's score and why it scored so."""

    value: float
    """In [0, 1]; the task's metric averages it."""
    explanation: str
    """One human-readable line: which strings matched and which rule decided."""
    matches: dict[str, list[str]] = field(default_factory=dict)
    """Matched strings by kind, e.g. {"answer": ["paris"], "penalty": ["actually"]}."""
    extra: dict[str, float] = field(default_factory=dict)
    """Further per-sample metrics a task reports (e.g. jailbreak's rule_holds and obeyed_newest)."""


@runtime_checkable
class Task(Protocol):
    """A data source, a prompt builder and a scorer."""

    name: str
    generation: GenerationConfig
    """How to decode answers for this task."""

    def samples(self) -> Iterable[Sample]:
        """The task's samples, deterministic for a given configuration."""
        ...

    def score(self, sample: Sample, output: str) -> SampleScore:
        """Score one model output."""
        ...


TaskFactory = Callable[..., Task]
TASKS: dict[str, TaskFactory] = {}
"""Registered task factories by name."""


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator registering a task factory (a class or function returning a Task) under `name`."""

    def decorate(factory: TaskFactory) -> TaskFactory:
        TASKS[name] = factory
        return factory

    return decorate
