"""Training recipes of seed 001: data → chat conversations whose final assistant turn carries the loss.

- instruction: ShareGPT single-turn pairs (LIMA-like filter), user turn = instruction;
- response: the same responses after an empty user turn (response tuning);
- single-task:gsm8k / mbpp / poems: one narrow task from a bundled carrier;
- single-task:NAME with `data`: any task the user supplies (recipes, chess, ...) as JSONL or a
  `datasets` folder (format in nevermind.data.userdata).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from nevermind.errors import NevermindError
from nevermind.models.requests import Message

if TYPE_CHECKING:
    from nevermind.training.config import TrainConfig

Conversation = list[Message]
BASE_RECIPES = ("instruction", "response")
BUILTIN_TASKS = ("gsm8k", "mbpp", "poems")
"""Single tasks with bundled data; other task names need `data`."""


def check_recipe_name(recipe: str) -> str:
    """Return `recipe` if it names a recipe, else raise ValueError listing the choices."""
    if recipe in BASE_RECIPES:
        return recipe
    kind, _, task = recipe.partition(":")
    if kind == "single-task" and task and task.replace("-", "_").isidentifier():
        return recipe
    raise ValueError(
        f"unknown recipe {recipe!r}: use instruction, response, or single-task:NAME "
        f"({', '.join(BUILTIN_TASKS)} built in; other names need --data)"
    )


def exchange(instruction: str, response: str) -> Conversation:
    """A one-turn conversation: user instruction, assistant response."""
    return [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]


def without_instruction(conversation: Conversation) -> Conversation:
    """Response tuning: keep only the final assistant turn, after an empty user turn."""
    return exchange("", conversation[-1]["content"])


def _sample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or limit >= len(items):
        return list(items)
    return random.Random(seed).sample(items, limit)


def _gsm8k() -> list[Conversation]:
    from nevermind.data.olmo_tasks import load_gsm8k

    return [exchange(p.question, p.response) for p in load_gsm8k()]


def _mbpp() -> list[Conversation]:
    from nevermind.data.olmo_tasks import load_mbpp

    return [exchange(p.instruction, p.response) for p in load_mbpp()]


def _poems(source: str | None) -> list[Conversation]:
    from nevermind.data.poems import load_poems

    return [exchange(p.instruction, p.text) for p in load_poems(source)]


TASK_LOADERS: dict[str, Callable[[], list[Conversation]]] = {"gsm8k": _gsm8k, "mbpp": _mbpp}


def build_examples(config: TrainConfig) -> list[Conversation]:
    """The conversations a config's recipe trains on (`limit` of them, drawn with `seed`)."""
    from nevermind.data.userdata import load_conversations

    recipe = config.recipe
    if recipe in BASE_RECIPES:
        if config.data:
            conversations = _sample(load_conversations(config.data), config.limit, config.seed)
        else:
            from nevermind.data.sharegpt import load_pairs

            pairs = load_pairs(limit=config.limit, seed=config.seed)
            conversations = [exchange(p.instruction, p.response) for p in pairs]
        if recipe == "response":
            conversations = [without_instruction(c) for c in conversations]
        return conversations
    task = recipe.partition(":")[2]
    if task == "poems":
        return _sample(_poems(config.data), config.limit, config.seed)
    if config.data:
        return _sample(load_conversations(config.data), config.limit, config.seed)
    if task not in TASK_LOADERS:
        raise NevermindError(
            f"recipe {recipe!r} has no bundled data: pass --data FILE.jsonl "
            '(one {"instruction": ..., "response": ...} object per line)'
        )
    return _sample(TASK_LOADERS[task](), config.limit, config.seed)
