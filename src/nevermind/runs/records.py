"""Append-only JSONL record files: the one resumable store every pipeline writes to.

Each line is one finished record (a JSON object). Appends are flushed and fsynced before they
return, so a killed process loses at most the line it was writing; that torn last line (no
newline) is cut off on the next open. Records are keyed (e.g. by task and id): reading keeps the
first record of every key, so a duplicated line is never counted twice. A complete line that is
not a JSON object, or lacks a key field, is an error naming file:line — never silently dropped."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.runs.files import decode_utf8

KeyFunction = Callable[[dict[str, Any]], Hashable]


class RecordFile:
    """A JSONL file of records keyed by `key` (field names, or a function of the record)."""

    def __init__(self, path: str | Path, key: Sequence[str] | KeyFunction, *, what: str = "record") -> None:
        self.path = Path(path)
        self.what = what
        if callable(key):
            self._key: KeyFunction = key
            self.key_fields: tuple[str, ...] = ()
        else:
            fields = tuple(key)
            self.key_fields = fields
            self._key = lambda record: tuple(record[name] for name in fields)

    def key_of(self, record: dict[str, Any]) -> Hashable:
        """The key a record is stored under."""
        return self._key(record)

    def repair(self) -> int:
        """Cut a torn last line left by a killed writer; returns the bytes removed.

        Only a file of records can be repaired: a last line that is not the start of a JSON object
        means the file is something else, and it is left alone with an error rather than cut."""
        if not self.path.exists():
            return 0
        with open(self.path, "r+b") as handle:
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            if keep == len(data):
                return 0
            if not data[keep:].lstrip().startswith(b"{"):
                raise NevermindError(
                    f"{self.path}: does not end like a {self.what} file (its last line is not a JSON object); "
                    "not touching it"
                )
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
            return len(data) - keep

    def lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, record) for every complete line, duplicates included; bad lines raise."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        text = decode_utf8(data, self.path)
        lines = text.split("\n")
        # Everything after the last newline is a torn write (or empty): not a finished record.
        for number, line in enumerate(lines[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise NevermindError(f"{self.path}:{number}: corrupt {self.what} (not JSON: {error})") from None
            if not isinstance(record, dict):
                raise NevermindError(
                    f"{self.path}:{number}: corrupt {self.what} (a JSON {type(record).__name__}, not an object)"
                )
            missing = [name for name in self.key_fields if name not in record]
            if missing:
                raise NevermindError(f"{self.path}:{number}: {self.what} without {', '.join(missing)}")
            try:
                hash(self._key(record))
            except (KeyError, TypeError) as error:
                raise NevermindError(f"{self.path}:{number}: {self.what} has an unusable key ({error})") from None
            yield number, record

    def read(self) -> dict[Hashable, dict[str, Any]]:
        """Finished records by key, in the order first written; a repeated key keeps the first."""
        records: dict[Hashable, dict[str, Any]] = {}
        for _, record in self.lines():
            records.setdefault(self._key(record), record)
        return records

    def duplicates(self) -> int:
        """How many complete lines repeat a key already written (ignored by `read`)."""
        seen: set[Hashable] = set()
        repeated = 0
        for _, record in self.lines():
            key = self._key(record)
            repeated += key in seen
            seen.add(key)
        return repeated

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records durably: one write, flushed and fsynced before returning."""
        payload = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        if not payload:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
