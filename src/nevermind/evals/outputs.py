"""Model outputs for evaluation instructions: generated once into a resumable JSONL file that
`winrate` compares. Each line is {"instruction", "output", "generator", ...}: a
`nevermind.runs.records.RecordFile` keyed by instruction (fsynced appends, a torn last line cut
off, a bad complete line an error naming file:line). A file that is not such a file is refused,
never rewritten."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.runs.files import read_text
from nevermind.runs.records import RecordFile

OUTPUT_WHAT = "output record"


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
    """Yield (line number, object) for every non-blank line of a user's JSONL file (its last line
    needs no newline); bad lines, non-UTF-8 bytes and missing string fields raise one clear error."""
    path = Path(path)
    if not path.is_file():
        raise NevermindError(f"{path}: no such file")
    for number, line in enumerate(read_text(path, "JSONL file").splitlines(), 1):
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
    """Records already written to a resumable JSONL file (a `RecordFile` keyed by `key`), by key;
    a repeated key keeps its latest record. A torn last line (a killed writer) is cut off so the
    next append starts on a fresh line; a complete line that is not a record is an error naming
    file:line, and a file that is not a record file at all is refused, never rewritten."""
    try:
        records = _record_file(Path(path), (key,), "record")
        rows = list(records.lines())
    except NevermindError as error:
        raise NevermindError(f"{error}; not touching a file nevermind did not write: name another file") from None
    done = {record[key]: record for _, record in rows}
    records.repair()
    return done


def _record_file(path: Path, key: Sequence[str], what: str) -> RecordFile:
    """A RecordFile at `path`, after proving that an existing file is one (so repairing it cannot
    cut away someone else's text): its complete lines parse as records, and a torn tail starts
    like one."""
    records = RecordFile(path, key, what=what)
    if path.is_dir():
        raise NevermindError(f"{path} is a directory, not a JSONL file of {what}s")
    if not path.exists():
        return records
    data = path.read_bytes()
    tail = data[data.rfind(b"\n") + 1 :]
    if tail.strip() and not tail.lstrip().startswith(b"{"):
        raise NevermindError(f"{path}: its last line is text, not a JSONL {what}")
    for _ in records.lines():  # raises file:line on the first bad complete line
        pass
    return records


def check_outputs_file(path: str | Path, generator: str | None = None) -> int:
    """Prove that `path` is absent, empty, or an outputs file of `generator` (any generator when
    None) before anything is generated into it; returns the outputs already there.

    A file nevermind did not write (another JSONL, a text file) or another model's outputs are
    refused with one line: `generate-outputs` appends to and repairs this file, which must never
    cost the user data."""
    path = Path(path)
    if not path.exists():
        return 0
    try:
        records = _record_file(path, ("instruction",), OUTPUT_WHAT)
        rows = list(records.lines())
    except NevermindError as error:
        raise NevermindError(f"{error} — not an outputs file of generate-outputs; refusing to touch it: "
                             "name another -o file") from None
    for number, record in rows:
        missing = [name for name in ("instruction", "output", "generator") if not isinstance(record.get(name), str)]
        if missing:
            raise NevermindError(
                f"{path}:{number}: not an output record (no string {', '.join(missing)}); refusing to touch a "
                "file generate-outputs did not write: name another -o file"
            )
        if generator is not None and record["generator"] != generator:
            raise NevermindError(
                f"{path}:{number}: holds outputs of {record['generator']!r}, not {generator!r}: name another -o file"
            )
    return len({record["instruction"] for _, record in rows})


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
    if len(set(instructions)) != len(instructions):
        raise NevermindError("instructions must be unique: outputs are matched by instruction text")
    check_outputs_file(out_path, generator)
    records = RecordFile(out_path, ("instruction",), what=OUTPUT_WHAT)
    records.repair()
    done = {record["instruction"]: record for record in records.read().values()}
    todo = [i for i in instructions if i not in done]
    built: list[Any] = []
    if adapters and todo:
        from nevermind.adapters import build_adapter, generate_with_adapters

        built = [build_adapter(spec, model) for spec in adapters]
    if on_progress:
        on_progress(len(instructions) - len(todo), len(instructions))
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        requests = [GenerateRequest(i, chat=True) for i in batch]
        if built:
            generations = generate_with_adapters(model, requests, config, built, batch_size=batch_size, on_batch=None)
        else:
            generations = model.generate(requests, config, batch_size=batch_size)
        finished = [
            asdict(OutputRecord(instruction, generation.text.strip(), generator, generation.finish_reason,
                                len(generation.token_ids)))
            for instruction, generation in zip(batch, generations)
        ]
        records.append(finished)
        done.update((record["instruction"], record) for record in finished)
        if on_progress:
            on_progress(len(instructions) - len(todo) + start + len(batch), len(instructions))
    return [
        OutputRecord(**{k: done[i][k] for k in OutputRecord.__dataclass_fields__ if k in done[i]})
        for i in instructions
    ]
