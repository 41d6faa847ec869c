"""The SQLite index of every run under an output directory: find runs by model, task or status
without opening each run directory (which stays the source of truth: the index can always be
rebuilt from them)."""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError, NevermindWarning
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
    """The index file `index.sqlite` in an output directory.

    The run directories are the source of truth; the index only helps find them. So it never
    blocks a run or a report: a corrupt, truncated or foreign file is moved aside
    (`index.sqlite.unreadable-<time>`, never deleted) and rebuilt from the run directories, and an
    index that cannot be written (read-only file or directory, disk full) is bypassed. Each of
    these is said once, as a NevermindWarning."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out / INDEX_FILE
        self.usable = True
        problem = self._check()
        if problem is None:
            return
        if _is_unwritable(problem):
            self._bypass(problem)
            return
        self._rebuild(problem)

    # ------------------------------------------------------------------ health
    def _check(self) -> sqlite3.Error | OSError | str | None:
        """None when the index is ours and readable (created if absent), else what is wrong."""
        existed = self.path.exists()
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if existed and tables and "runs" not in tables:
                    return f"it holds other tables ({', '.join(sorted(tables))}), not nevermind's runs"
                if "runs" in tables:
                    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
                    if columns != _COLUMNS:
                        return "its runs table has other columns than nevermind's"
                    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                        return "it is damaged (quick_check failed)"
                    return None
                with db:
                    db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as error:
            return error
        return None

    def _rebuild(self, problem: sqlite3.Error | OSError | str) -> None:
        """Move the unreadable file aside and index the run directories afresh."""
        aside = self.path.with_name(f"{INDEX_FILE}.unreadable-{datetime.now(UTC):%Y%m%dT%H%M%S}")
        try:
            os.replace(self.path, aside)
            for suffix in ("-journal", "-wal", "-shm"):  # a stale journal must not be replayed into the new file
                stale = self.path.with_name(INDEX_FILE + suffix)
                if stale.exists():
                    os.replace(stale, aside.with_name(aside.name + suffix))
            with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                db.executescript(_SCHEMA)
            restored = self._reindex()
        except (sqlite3.Error, OSError) as error:
            self._bypass(error)
            return
        _warn(f"{self.path} was unreadable ({_reason(problem)}): moved to {aside.name} and rebuilt from "
              f"{restored} run directories")

    def _reindex(self) -> int:
        """Insert a row for every run directory under the output directory; returns how many."""
        from nevermind.runs.store import CONFIG_FILE, RunDir

        restored = 0
        for child in sorted(self.out.iterdir()):
            if not (child / CONFIG_FILE).is_file():
                continue
            try:
                run = RunDir.open(child)
                spec, meta, summary = run.spec(), run.meta(), run.summary()
                n_samples = len(run.records())
            except NevermindError:  # a damaged run directory is reported when it is used, not here
                continue
            self._execute(
                """INSERT OR REPLACE INTO runs (id, model, tasks, path, config, status, attempts, started,
                   finished, n_samples, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (spec.run_id, spec.display_model, json.dumps(spec.tasks), str(child.resolve()),
                 spec.model_dump_json(), str(meta.get("status", "unknown")), int(meta.get("attempts", 0)),
                 str(meta.get("started", "")), meta.get("finished"), n_samples,
                 json.dumps(summary) if summary is not None else None),
            )
            restored += 1
        return restored

    def _bypass(self, problem: sqlite3.Error | OSError | str) -> None:
        if self.usable:
            _warn(f"{self.path} cannot be updated ({_reason(problem)}); going on without it "
                  "(the run directories hold every result)")
        self.usable = False

    # ------------------------------------------------------------------ access
    def _execute(self, sql: str, parameters: tuple[Any, ...]) -> None:
        if not self.usable:
            return
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                db.execute(sql, parameters)
        except sqlite3.Error as error:
            self._bypass(error)

    def start(self, spec: RunSpec, path: Path, *, attempts: int, started: str, n_samples: int) -> None:
        """Record that an attempt of a run began (inserting the run on its first attempt)."""
        self._execute(
            """INSERT INTO runs (id, model, tasks, path, config, status, attempts, started, n_samples)
               VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET status='running', attempts=excluded.attempts,
                   started=excluded.started, finished=NULL, path=excluded.path,
                   config=excluded.config, n_samples=excluded.n_samples""",
            (spec.run_id, spec.display_model, json.dumps(spec.tasks), str(path.resolve()),
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
        """Runs in the index, oldest attempt first, optionally filtered by model, status and id
        (none when the index is bypassed: read the run directories then)."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM runs"
        clauses, parameters = [], []
        for column, value in (("model", model), ("status", status), ("id", id)):
            if value is not None:
                clauses.append(f"{column}=?")
                parameters.append(value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if not self.usable or not self.path.exists():
            return []
        try:
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                rows = db.execute(sql + " ORDER BY started", parameters).fetchall()
        except sqlite3.Error as error:
            self._bypass(error)
            return []
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


_COLUMNS = ["id", "model", "tasks", "path", "config", "status", "attempts", "started", "finished", "n_samples",
            "summary"]


def _is_unwritable(problem: sqlite3.Error | OSError | str) -> bool:
    """Whether the index is fine but cannot be written here (so rebuilding it would fail too)."""
    if isinstance(problem, OSError):
        return True
    text = str(problem).lower()
    return isinstance(problem, sqlite3.OperationalError) and any(
        mark in text for mark in ("readonly", "read-only", "unable to open", "locked", "disk i/o", "full")
    )


def _reason(problem: sqlite3.Error | OSError | str) -> str:
    return problem if isinstance(problem, str) else (str(problem) or type(problem).__name__)


def _warn(message: str) -> None:
    warnings.warn(NevermindWarning(message), stacklevel=3)
