"""Training conversations from the user's own files: JSONL, or a Hugging Face `datasets` folder on disk.

Each record (one JSON object per line, or one row of the data set) is one of:

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}
    {"prompt": "...", "completion": "...", "system": "..."}          # "system" optional
    {"instruction": "...", "response": "...", "system": "..."}       # "system" optional

The last turn must be the assistant's: it is what training puts its loss on. An empty
instruction ("") is allowed (response tuning). Recipes and chess games for seed 001's
single-task runs come in this format, e.g. {"instruction": "Play a game of chess.",
"response": "1. e4 e5 2. Nf3 Nc6 ..."}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.models.requests import Message

ROLES = ("system", "user", "assistant")


class DataFormatError(NevermindError):
    """A user's data file that cannot be read as training conversations."""


def to_conversation(record: Any) -> list[Message]:
    """One record in any of the accepted shapes → a chat conversation; ValueError says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise ValueError('"messages" must be a non-empty list')
        conversation: list[Message] = []
        for turn in messages:
            if (
                not isinstance(turn, dict)
                or turn.get("role") not in ROLES
                or not isinstance(turn.get("content"), str)
            ):
                raise ValueError(
                    f'each message needs "role" in {list(ROLES)} and a string "content": {turn!r:.80}'
                )
            conversation.append({"role": turn["role"], "content": turn["content"]})
    else:
        for prompt_key, answer_key in (("prompt", "completion"), ("instruction", "response")):
            if prompt_key in record or answer_key in record:
                break
        else:
            raise ValueError('needs "messages", "prompt"/"completion" or "instruction"/"response"')
        prompt, answer = record.get(prompt_key), record.get(answer_key)
        if not isinstance(prompt, str) or not isinstance(answer, str):
            raise ValueError(f'"{prompt_key}" and "{answer_key}" must both be strings')
        conversation = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        system = record.get("system")
        if system is not None:
            if not isinstance(system, str):
                raise ValueError('"system" must be a string')
            conversation.insert(0, {"role": "system", "content": system})
    if conversation[-1]["role"] != "assistant" or not conversation[-1]["content"].strip():
        raise ValueError("the last message must be a non-empty assistant turn")
    return conversation


def load_jsonl(path: str | Path) -> list[list[Message]]:
    """Conversations from a JSONL file; a bad line raises DataFormatError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    conversations = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                conversations.append(to_conversation(json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataFormatError(f"{path}:{number}: invalid JSON ({error.msg})") from None
            except ValueError as error:
                raise DataFormatError(f"{path}:{number}: {error}") from None
    if not conversations:
        raise DataFormatError(f"{path}: no records")
    return conversations


def load_dataset_dir(path: str | Path, split: str = "train") -> list[list[Message]]:
    """Conversations from a `datasets` folder written by `save_to_disk` (a Dataset or a DatasetDict split)."""
    from datasets import DatasetDict, load_from_disk

    path = Path(path)
    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise DataFormatError(
            f"{path}: not a saved `datasets` folder ({str(error).splitlines()[0]})"
        ) from None
    if isinstance(dataset, DatasetDict):
        if split not in dataset:
            raise DataFormatError(f"{path}: no split {split!r} (has {', '.join(dataset)})")
        dataset = dataset[split]
    conversations = []
    for row, record in enumerate(dataset):
        try:
            conversations.append(to_conversation(record))
        except ValueError as error:
            raise DataFormatError(f"{path}: row {row}: {error}") from None
    if not conversations:
        raise DataFormatError(f"{path}: no records")
    return conversations


def load_conversations(path: str | Path) -> list[list[Message]]:
    """Conversations from a JSONL file or a `datasets` folder, chosen by what `path` is."""
    path = Path(path).expanduser()
    if path.is_dir():
        return load_dataset_dir(path)
    return load_jsonl(path)
