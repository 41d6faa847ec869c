"""The conflict suite's tasks (needle, override, moderation, jailbreak) and the registry that builds them.

`build_task("needle", TaskOptions(lengths=[100]), model.tokenizer)` gives a Task: iterate
`task.samples()`, generate with `task.generation`, then `task.score(sample, output)`."""

# The built-in tasks register themselves on import.
from nevermind.tasks import jailbreak, moderation, needle, override  # noqa: F401
from nevermind.tasks.base import TASKS, Sample, SampleScore, Task, register_task
from nevermind.tasks.loader import (
    DEFAULT_DEPTHS,
    DEFAULT_LENGTHS,
    ENTRY_POINT_GROUP,
    TaskOptions,
    available_tasks,
    build_task,
    load_task_file,
)

__all__ = [
    "DEFAULT_DEPTHS",
    "DEFAULT_LENGTHS",
    "ENTRY_POINT_GROUP",
    "TASKS",
    "Sample",
    "SampleScore",
    "Task",
    "TaskOptions",
    "available_tasks",
    "build_task",
    "load_task_file",
    "register_task",
]
