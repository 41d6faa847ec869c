"""Options every task understands, and building a task by name: built-in, a user's file, or a plugin.

A name is a registered task (`needle`), a file of the user's and a task it registers
(`my_tasks.py:capitals_quiz`), or an entry point of the `nevermind.tasks` group."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha1
from importlib.metadata import entry_points
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from nevermind.errors import NevermindError
from nevermind.tasks.base import TASKS, Task

ENTRY_POINT_GROUP = "nevermind.tasks"
"""Entry-point group through which installed packages contribute task factories."""

DEFAULT_LENGTHS = [100, 250, 500, 1000, 2000, 4096]
DEFAULT_DEPTHS = [0.0, 25.0, 50.0, 75.0, 100.0]

T = TypeVar("T")


@dataclass
class TaskOptions:
    """What a run asks of every task: how many samples, which seed, which needle grid."""

    limit: int | None = None
    """At most this many samples per task (a deterministic subset spread over the task's grid); None = all."""
    seed: int = 0
    """Seed for every random choice a task makes (generated secrets, picked templates, false capitals)."""
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    """Needle haystack lengths in tokens of the model's tokenizer."""
    depths: list[float] = field(default_factory=lambda: list(DEFAULT_DEPTHS))
    """Needle depths in percent of the haystack (0 = start, 100 = end), moved to a sentence boundary."""
    data: dict[str, Path] = field(default_factory=dict)
    """The user's own samples (JSONL) by task name: a built-in task with a file here uses it instead
    of its own data (schemas in tasks/userdata.py and docs/tasks.md)."""

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise NevermindError(f"limit must be at least 1, got {self.limit}")
        self.lengths = [_number(n, int, "length") for n in self.lengths]
        self.depths = [_number(d, float, "depth") for d in self.depths]
        if not self.lengths or any(n < 1 for n in self.lengths):
            raise NevermindError(f"lengths must be positive token counts, got {self.lengths}")
        if not self.depths or any(not 0 <= d <= 100 for d in self.depths):
            raise NevermindError(f"depths must be percentages between 0 and 100, got {self.depths}")
        self.data = {task: Path(path) for task, path in (self.data or {}).items()}


def _number(value: Any, kind: type, what: str) -> Any:
    try:
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError
        return number
    except (TypeError, ValueError):
        raise NevermindError(
            f"{what} must be a number{'' if kind is float else ' of tokens'}, got {value!r}"
        ) from None


def take(samples: Iterable[T], limit: int | None) -> list[T]:
    """The first `limit` samples (all when None); tasks order samples so that a prefix spans their grid."""
    return list(samples if limit is None else islice(samples, limit))


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin over groups (first of each group, then second of each, ...), so prefixes are balanced."""
    out: list[T] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def _plugin_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_tasks() -> list[str]:
    """Names of the registered tasks and of the tasks installed packages offer as plugins."""
    return sorted(set(TASKS) | set(_plugin_entry_points()))


def load_task_file(path: str | Path) -> list[str]:
    """Import a user's Python file so that its `@register_task` decorators run; returns the names it added."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NevermindError(f"task file {str(path)!r} does not exist")
    module_name = "nevermind_user_tasks_" + sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise NevermindError(f"task file {str(path)!r} is not a Python file")
    before = set(TASKS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's code: report it in one line
        del sys.modules[module_name]
        raise NevermindError(
            f"task file {str(path)!r} failed to load: {type(error).__name__}: {error}"
        ) from error
    return sorted(set(TASKS) - before)


def _resolve_factory(name: str) -> Any:
    if ":" in name and name.rpartition(":")[0].endswith(".py"):
        file, _, task_name = name.rpartition(":")
        added = load_task_file(file)
        if task_name not in TASKS:
            raise NevermindError(
                f"task file {file!r} registers no task {task_name!r}; it registers: {', '.join(added) or 'none'}"
            )
        return TASKS[task_name]
    if name in TASKS:
        return TASKS[name]
    plugins = _plugin_entry_points()
    if name in plugins:
        try:
            factory = plugins[name].load()
        except Exception as error:
            raise NevermindError(f"task plugin {name!r} failed to load: {error}") from error
        TASKS[name] = factory
        return factory
    raise NevermindError(
        f"unknown task {name!r}; known tasks: {', '.join(available_tasks())} (or path/to/file.py:name)"
    )


def build_task(name: str, options: TaskOptions | None = None, tokenizer: Any = None) -> Task:
    """Build the task called `name` for these options; `tokenizer` measures lengths in tokens (needle).

    A factory receives `options` and/or `tokenizer` when its signature names them."""
    factory = _resolve_factory(name.strip())
    options = options or TaskOptions()
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs = {
        key: value
        for key, value in (("options", options), ("tokenizer", tokenizer))
        if takes_all or key in parameters
    }
    task = factory(**kwargs)
    if not isinstance(task, Task):
        raise NevermindError(
            f"task {name!r} does not build a Task (needs name, generation, samples(), score())"
        )
    return task


def count_tokens(tokenizer: Any, text: str) -> int:
    """Number of tokens of `text` without special tokens, for a Hugging Face tokenizer or a model wrapping one."""
    return len(token_ids(tokenizer, text))


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` without special tokens (accepts a tokenizer or an object with `.tokenizer`)."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    if tokenizer is None:
        raise NevermindError("this task measures text in tokens and needs the model's tokenizer")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
