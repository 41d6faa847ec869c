"""The SQLite index: a real database file that other tools can query."""

import sqlite3

from nevermind.runs.config import RunSpec
from nevermind.runs.index import INDEX_FILE, RunIndex


def test_index_lifecycle(tmp_path):
    index = RunIndex(tmp_path)
    spec = RunSpec(model="smollm2-135m-instruct", tasks=["needle", "override"])
    index.start(spec, tmp_path / spec.run_id, attempts=1, started="2026-01-01T00:00:00+00:00", n_samples=0)
    index.progress(spec.run_id, 7)
    assert index.get(spec.run_id).status == "running" and index.get(spec.run_id).n_samples == 7
    index.stop(spec.run_id, "interrupted")
    index.start(spec, tmp_path / spec.run_id, attempts=2, started="2026-01-01T01:00:00+00:00", n_samples=7)
    summary = {"tasks": {"needle": {"n": 9, "metrics": {"value": {"mean": 0.5, "se": 0.1, "n": 9}}}}}
    index.finish(spec.run_id, summary, finished="2026-01-01T02:00:00+00:00", n_samples=9)

    row = RunIndex(tmp_path).get(spec.run_id)  # a fresh connection reads what was committed
    assert (row.status, row.attempts, row.n_samples, row.summary) == ("finished", 2, 9, summary)
    assert row.tasks == ["needle", "override"] and row.config["model"] == spec.model
    with sqlite3.connect(tmp_path / INDEX_FILE) as db:  # plain SQL works on the file
        assert db.execute("SELECT model, status FROM runs").fetchall() == [(spec.model, "finished")]
    assert RunIndex(tmp_path).runs(status="running") == []
    assert [r.id for r in RunIndex(tmp_path).runs(model=spec.model)] == [spec.run_id]
