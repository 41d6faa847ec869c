"""A run directory on disk: resolved config, per-sample records appended as they finish, a summary.

    <out>/<run id>/config.yaml      the RunSpec that produced it (the run id hashes it)
    <out>/<run id>/samples.jsonl    one SampleRecord per line, appended + fsynced per batch
    <out>/<run id>/summary.json     per task: n and mean ± SE of every metric
    <out>/<run id>/run.json         status, attempts, timestamps

A process killed mid-write can leave a torn last line in samples.jsonl; opening the run cuts
it off (that sample was not finished), so no finished sample is lost or recomputed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from nevermind.errors import NevermindError
from nevermind.runs.config import RunSpec
from nevermind.runs.files import file_lock, read_text, write_atomic
from nevermind.runs.records import RecordFile

CONFIG_FILE = "config.yaml"
SAMPLES_FILE = "samples.jsonl"
SUMMARY_FILE = "summary.json"
META_FILE = "run.json"
LOCK_FILE = ".lock"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class SampleRecord:
    """One finished sample: what was asked, what the model said, and how it scored and why."""

    task: str
    """Task name."""
    id: str
    """Sample id, unique within the task."""
    messages: list[dict[str, str]]
    """The chat the model answered."""
    output: str
    """The model's answer (untrusted text)."""
    value: float
    """Score in [0, 1]."""
    explanation: str
    """Why it scored so, in one line."""
    matches: dict[str, list[str]] = field(default_factory=dict)
    """Matched strings by kind."""
    extra: dict[str, float] = field(default_factory=dict)
    """Further per-sample metrics of the task."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The sample's grid coordinates and facts (length, depth, template, ...)."""
    target: dict[str, Any] = field(default_factory=dict)
    """What the scorer checked against."""
    finish_reason: str = ""
    """"stop", "eos" or "length"."""
    prompt_tokens: int = 0
    """Prompt length in tokens after formatting."""
    output_tokens: int = 0
    """Generated tokens."""
    attempt: int = 1
    """Which attempt of the run (1 = first, 2 = first resume, ...) produced this record."""

    @property
    def key(self) -> tuple[str, str]:
        """(task, id): what a resumed run uses to recognise a finished sample."""
        return self.task, self.id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRecord:
        """Rebuild a record from its JSON form (unknown keys are ignored, for newer writers)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class RunDir:
    """One model's run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def samples_path(self) -> Path:
        """The JSONL file of finished samples."""
        return self.path / SAMPLES_FILE

    @classmethod
    def create(cls, out: Path, spec: RunSpec) -> RunDir:
        """Create (or reopen, to resume) the run directory of `spec` under `out`."""
        run = cls(out / spec.run_id)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
            config_path = run.path / CONFIG_FILE
            if config_path.exists():
                existing = run.spec()
                if existing.run_id != spec.run_id:
                    raise NevermindError(f"{config_path} belongs to another run ({existing.run_id}); move it away")
            # Batch size and device may change between attempts: keep the latest.
            write_atomic(config_path, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        except OSError as error:
            raise NevermindError(f"cannot write run directory {run.path}: {error.strerror or error}") from None
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run directory (as written by `create`)."""
        run = cls(path)
        if not (run.path / CONFIG_FILE).is_file():
            raise NevermindError(f"{run.path} is not a run directory (no {CONFIG_FILE})")
        return run

    def spec(self) -> RunSpec:
        """The run's resolved config."""
        path = self.path / CONFIG_FILE
        text = read_text(path, "run config")
        try:
            return RunSpec(**yaml.safe_load(text))
        except (yaml.YAMLError, TypeError, ValueError) as error:
            raise NevermindError(f"{path}: not a valid run config ({str(error).splitlines()[0]})") from None

    # ------------------------------------------------------------------ samples
    @property
    def sample_file(self) -> RecordFile:
        """samples.jsonl as a record file keyed by (task, id)."""
        return RecordFile(self.samples_path, ("task", "id"), what="sample record")

    def records(self) -> list[SampleRecord]:
        """Finished samples, in the order first written: a torn last line is ignored and a repeated
        (task, id) counts once."""
        out = []
        for number, data in _numbered(self.sample_file):
            try:
                out.append(SampleRecord.from_dict(data))
            except (TypeError, ValueError) as error:
                raise NevermindError(f"{self.samples_path}:{number}: corrupt sample record ({error})") from None
        return out

    def repair(self) -> int:
        """Cut a torn last line left by a killed writer; returns the bytes removed."""
        return self.sample_file.repair()

    def append(self, records: Iterable[SampleRecord]) -> None:
        """Append finished samples durably: one write, flushed and fsynced before returning."""
        self.sample_file.append(asdict(r) for r in records)

    # ------------------------------------------------------------------ summary and status
    def write_summary(self, summary: dict[str, Any]) -> None:
        """Replace summary.json atomically."""
        write_atomic(self.path / SUMMARY_FILE, json.dumps(summary, indent=2))

    def summary(self) -> dict[str, Any] | None:
        """The summary written when the run last finished, if any."""
        path = self.path / SUMMARY_FILE
        return _read_object(path, "run summary") if path.exists() else None

    def meta(self) -> dict[str, Any]:
        """Status, attempt count and timestamps (empty before the first attempt)."""
        path = self.path / META_FILE
        return _read_object(path, "run status file") if path.exists() else {}

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into run.json atomically and return the result."""
        meta = {**self.meta(), **changes}
        write_atomic(self.path / META_FILE, json.dumps(meta, indent=2))
        return meta

    def lock(self) -> AbstractContextManager[None]:
        """An exclusive lock: two processes must not append to one run at once (released even by kill -9)."""
        return file_lock(
            self.path / LOCK_FILE, wait=False, busy_message=f"run {self.path} is in use by another nevermind process"
        )


def _read_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object file nevermind wrote; damage (not JSON, not an object, not UTF-8) is one line."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except ValueError as error:
        raise NevermindError(f"{path}:{getattr(error, 'lineno', 1)}: corrupt {what} (not JSON: {error}); "
                             "move it away to start this run's status afresh") from None
    if not isinstance(data, dict):
        raise NevermindError(f"{path}:1: corrupt {what} (a JSON {type(data).__name__}, not an object)")
    return data


def _numbered(records: RecordFile) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) for the first record of every key."""
    seen: set[Any] = set()
    for number, data in records.lines():
        key = records.key_of(data)
        if key not in seen:
            seen.add(key)
            yield number, data
