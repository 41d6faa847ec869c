"""The conflict suite's tasks (needle, override, moderation, jailbreak) and the registry that builds them.

    from nevermind.tasks import TaskOptions, build_task
    task = build_task("needle", TaskOptions(lengths=[100], depths=[0, 50, 100]), model.tokenizer)
    for sample in task.samples(): ...; task.score(sample, output)
"""

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

# The built-in tasks register themselves on import.
from nevermind.tasks import jailbreak, moderation, needle, override  # noqa: E402,F401

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
