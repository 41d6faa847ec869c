"""The SQLite index of every run under an output directory: find runs by model, task or status
without opening each run directory (which stays the source of truth)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.runs.config import RunSpec

INDEX_FILE = "index.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id        TEXT PRIMARY KEY,
    model     TEXT NOT NULL,
    tasks     TEXT NOT NULL,      -- JSON list of task names
    path      TEXT NOT NULL,      -- the run directory
    config    TEXT NOT NULL,      -- JSON of the run's RunSpec
    status    TEXT NOT NULL,      -- running, finished, failed, interrupted
    attempts  INTEGER NOT NULL DEFAULT 1,
    started   TEXT NOT NULL,      -- start of the latest attempt (UTC, ISO 8601)
    finished  TEXT,
    n_samples INTEGER NOT NULL DEFAULT 0,
    summary   TEXT                -- JSON of summary.json once finished
);
"""


@dataclass
class IndexedRun:
    """One row of the index."""

    id: str
    model: str
    tasks: list[str]
    path: Path
    config: dict[str, Any]
    status: str
    attempts: int
    started: str
    finished: str | None
    n_samples: int
    summary: dict[str, Any] | None


class RunIndex:
    """The index file `index.sqlite` in an output directory."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / INDEX_FILE
        with closing(self._connect()) as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as error:
            raise NevermindError(f"cannot open run index {self.path}: {error}") from None
        return db

    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> None:
        with closing(self._connect()) as db, db:
            db.execute(sql, parameters)

    def start(self, spec: RunSpec, path: Path, *, attempts: int, started: str, n_samples: int) -> None:
        """Record that an attempt of a run began (inserting the run on its first attempt)."""
        self._execute(
            """INSERT INTO runs (id, model, tasks, path, config, status, attempts, started, n_samples)
               VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET status='running', attempts=excluded.attempts,
                   started=excluded.started, finished=NULL, path=excluded.path,
                   config=excluded.config, n_samples=excluded.n_samples""",
            (spec.run_id, spec.model, json.dumps(spec.tasks), str(path.resolve()),
             spec.model_dump_json(), attempts, started, n_samples),
        )

    def progress(self, run_id: str, n_samples: int) -> None:
        """Update the count of finished samples."""
        self._execute("UPDATE runs SET n_samples=? WHERE id=?", (n_samples, run_id))

    def finish(self, run_id: str, summary: dict[str, Any], *, finished: str, n_samples: int) -> None:
        """Mark a run finished with its summary."""
        self._execute(
            "UPDATE runs SET status='finished', finished=?, n_samples=?, summary=? WHERE id=?",
            (finished, n_samples, json.dumps(summary), run_id),
        )

    def stop(self, run_id: str, status: str) -> None:
        """Mark a run failed or interrupted."""
        self._execute("UPDATE runs SET status=? WHERE id=?", (status, run_id))

    def runs(self, *, model: str | None = None, status: str | None = None, id: str | None = None) -> list[IndexedRun]:
        """Runs in the index, oldest attempt first, optionally filtered by model, status and id."""
        sql = "SELECT id, model, tasks, path, config, status, attempts, started, finished, n_samples, summary FROM runs"
        clauses, parameters = [], []
        for column, value in (("model", model), ("status", status), ("id", id)):
            if value is not None:
                clauses.append(f"{column}=?")
                parameters.append(value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with closing(self._connect()) as db:
            rows = db.execute(sql + " ORDER BY started", parameters).fetchall()
        return [
            IndexedRun(
                id=row[0], model=row[1], tasks=json.loads(row[2]), path=Path(row[3]), config=json.loads(row[4]),
                status=row[5], attempts=row[6], started=row[7], finished=row[8], n_samples=row[9],
                summary=json.loads(row[10]) if row[10] else None,
            )
            for row in rows
        ]

    def get(self, run_id: str) -> IndexedRun | None:
        """One run by id, or None."""
        return next(iter(self.runs(id=run_id)), None)
