"""Model outputs for evaluation instructions: generated once into a resumable JSONL file that
`winrate` compares. Each line is {"instruction", "output", "generator", ...}."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError


@dataclass(frozen=True)
class OutputRecord:
    """One model output for one instruction."""

    instruction: str
    """The instruction the model answered."""
    output: str
    """The model's response."""
    generator: str
    """Name of the model (and adapters) that produced it."""
    finish_reason: str = ""
    """Why generation ended: stop, eos or length."""
    tokens: int = 0
    """Number of generated tokens."""


def read_jsonl(path: str | Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line; bad lines raise one clear error."""
    path = Path(path)
    if not path.is_file():
        raise NevermindError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise NevermindError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise NevermindError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            for name in required:
                if not isinstance(record.get(name), str):
                    raise NevermindError(f"{path}:{number}: missing string field {name!r}")
            yield number, record


def append_jsonl(handle: Any, record: dict[str, Any]) -> None:
    """Append one record and push it to disk, so a killed run loses nothing already written."""
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def read_finished(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """Records already written to a resumable JSONL file, by `key`; a torn last line is dropped."""
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line a kill interrupted; its work is redone
        if isinstance(record, dict) and key in record:
            done[record[key]] = record
            kept.append(line if line.endswith("\n") else line + "\n")
    if len(kept) != len(lines) or (lines and not lines[-1].endswith("\n")):
        path.write_text("".join(kept), encoding="utf-8")
    return done


def load_instruction_source(source: str, limit: int | None = None) -> list[str]:
    """Instructions from "alpaca-eval" (the 805) or a JSONL file with an "instruction" field."""
    if source == "alpaca-eval":
        from nevermind.data.alpaca_eval import load_instructions

        return [item.instruction for item in load_instructions(limit)]
    instructions = [record["instruction"] for _, record in read_jsonl(source, ["instruction"])]
    if not instructions:
        raise NevermindError(f"{source}: no instructions")
    return instructions if limit is None else instructions[:limit]


def load_outputs(path: str | Path) -> dict[str, OutputRecord]:
    """Outputs of one model by instruction (the format `generate_outputs` writes)."""
    outputs: dict[str, OutputRecord] = {}
    for number, record in read_jsonl(path, ["instruction", "output"]):
        if record["instruction"] in outputs:
            raise NevermindError(f"{path}:{number}: instruction repeated: {record['instruction'][:60]!r}")
        outputs[record["instruction"]] = OutputRecord(
            record["instruction"], record["output"], str(record.get("generator", Path(path).stem))
        )
    if not outputs:
        raise NevermindError(f"{path}: no outputs")
    return outputs


def generate_outputs(
    model: Any,
    instructions: Sequence[str],
    out_path: str | Path,
    *,
    config: Any = None,
    adapters: Sequence[str] = (),
    generator: str | None = None,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[OutputRecord]:
    """Answer every instruction (chat-formatted), appending each batch to `out_path` as it ends.

    A rerun skips instructions already in the file, so a killed run resumes where it stopped.
    With `adapters`, decoding goes through `nevermind.adapters.generate_with_adapters`."""
    from nevermind.models.requests import GenerateRequest, GenerationConfig

    config = config or GenerationConfig(max_new_tokens=256)
    generator = generator or "+".join([model.name, *adapters])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if len(set(instructions)) != len(instructions):
        raise NevermindError("instructions must be unique: outputs are matched by instruction text")
    done = read_finished(out_path, "instruction")
    todo = [i for i in instructions if i not in done]
    built: list[Any] = []
    if adapters and todo:
        from nevermind.adapters import build_adapter, generate_with_adapters

        built = [build_adapter(spec, model) for spec in adapters]
    if on_progress:
        on_progress(len(instructions) - len(todo), len(instructions))
    with out_path.open("a", encoding="utf-8") as handle:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            requests = [GenerateRequest(i, chat=True) for i in batch]
            if built:
                generations = generate_with_adapters(
                    model, requests, config, built, batch_size=batch_size, on_batch=None
                )
            else:
                generations = model.generate(requests, config, batch_size=batch_size)
            for instruction, generation in zip(batch, generations):
                record = OutputRecord(
                    instruction,
                    generation.text.strip(),
                    generator,
                    generation.finish_reason,
                    len(generation.token_ids),
                )
                done[instruction] = asdict(record)
                append_jsonl(handle, asdict(record))
            if on_progress:
                on_progress(len(instructions) - len(todo) + start + len(batch), len(instructions))
    return [
        OutputRecord(**{k: done[i][k] for k in OutputRecord.__dataclass_fields__ if k in done[i]})
        for i in instructions
    ]
