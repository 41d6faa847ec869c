"""The run directory: durable appends, a torn last line after a crash, corrupt lines named."""

import json

import pytest

from nevermind.errors import NevermindError
from nevermind.runs.config import RunSpec
from nevermind.runs.store import RunDir, SampleRecord


def record(i, task="probe"):
    return SampleRecord(task=task, id=f"s{i}", messages=[{"role": "user", "content": f"q{i}"}],
                        output=f"a{i}", value=i % 2, explanation="because")


def test_create_writes_resolved_config(tmp_path):
    spec = RunSpec(model="m", tasks=["probe"], lengths=[10])
    run = RunDir.create(tmp_path, spec)
    assert run.path == tmp_path / spec.run_id
    assert RunDir.open(run.path).spec() == spec


def test_append_and_read_back(tmp_path):
    run = RunDir.create(tmp_path, RunSpec(model="m", tasks=["probe"]))
    run.append([record(0), record(1)])
    run.append([record(2)])
    assert [r.id for r in run.records()] == ["s0", "s1", "s2"]
    assert run.records()[1].value == 1


def test_torn_last_line_is_cut(tmp_path):
    run = RunDir.create(tmp_path, RunSpec(model="m", tasks=["probe"]))
    run.append([record(0), record(1)])
    whole = run.samples_path.read_bytes()
    with open(run.samples_path, "ab") as handle:  # what a kill -9 in the middle of a write leaves
        handle.write(json.dumps({"task": "probe", "id": "s2"}).encode()[:17])
    assert [r.id for r in run.records()] == ["s0", "s1"]
    assert run.repair() == 17
    assert run.samples_path.read_bytes() == whole
    run.append([record(2)])
    assert [r.id for r in run.records()] == ["s0", "s1", "s2"]


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    run = RunDir.create(tmp_path, RunSpec(model="m", tasks=["probe"]))
    run.append([record(0)])
    with open(run.samples_path, "a") as handle:
        handle.write("{not json\n")
    run.append([record(1)])
    with pytest.raises(NevermindError, match=r"samples\.jsonl:2: corrupt sample record"):
        run.records()


def test_lock_is_exclusive(tmp_path):
    run = RunDir.create(tmp_path, RunSpec(model="m", tasks=["probe"]))
    with run.lock(), pytest.raises(NevermindError, match="in use by another"), RunDir(run.path).lock():
        pass
    with run.lock():  # released
        pass


def test_open_rejects_other_directories(tmp_path):
    with pytest.raises(NevermindError, match="not a run directory"):
        RunDir.open(tmp_path)
