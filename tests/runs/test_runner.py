"""The runner on a tiny real model: records, summary, index, and resuming without recomputation."""

import json
from pathlib import Path

import pytest

from nevermind.errors import NevermindError
from nevermind.runs.config import EvalConfig, RunSpec
from nevermind.runs.index import RunIndex
from nevermind.runs.runner import run_eval, run_model
from nevermind.runs.store import RunDir
from nevermind.scoring.stats import mean_and_se
from nevermind.tasks import load_task_file

PROBE = str(Path(__file__).with_name("probe_tasks.py")) + ":probe"


@pytest.fixture(scope="module", autouse=True)
def probe_task():
    load_task_file(PROBE.rpartition(":")[0])


class Recorder:
    def __init__(self):
        self.events = []

    def begin(self, run_id, total, done):
        self.events.append(("begin", total, done))

    def status(self, message):
        pass

    def advance(self, samples, tokens):
        self.events.append(("advance", samples, tokens))

    def end(self):
        self.events.append(("end",))


def spec(**changes):
    options = {"model": "tiny", "tasks": ["probe"], "limit": 7, "lengths": [20, 40], "depths": [0, 100],
               "batch_size": 3, "max_new_tokens": 4}
    return RunSpec(**{**options, **changes})


def test_run_writes_records_summary_and_index(tmp_path, tiny_llama):
    progress = Recorder()
    result = run_model(spec(), tmp_path, model=tiny_llama, progress=progress)
    records = result.run.records()
    assert len(records) == 7 and len({r.id for r in records}) == 7
    assert all(r.output_tokens <= 4 and r.prompt_tokens > 20 for r in records)
    assert all(r.messages[0]["role"] == "system" and r.metadata["length"] in (20, 40) for r in records)
    # Batches of 3: 3 + 3 + 1 samples, one progress step each.
    assert [e[1] for e in progress.events if e[0] == "advance"] == [3, 3, 1]
    assert progress.events[0] == ("begin", 7, 0)

    summary = json.loads((result.run.path / "summary.json").read_text())
    assert summary == result.summary
    mean, se = mean_and_se([r.value for r in records])
    assert summary["tasks"]["probe"]["metrics"]["value"] == {"mean": mean, "se": se, "n": 7}
    assert set(summary["tasks"]["probe"]["metrics"]) == {"value", "empty"}

    row = RunIndex(tmp_path).get(spec().run_id)
    assert row.status == "finished" and row.n_samples == 7 and row.summary == summary
    assert result.run.meta()["status"] == "finished"


def test_resume_generates_only_missing_samples(tmp_path, tiny_llama):
    first = run_model(spec(), tmp_path, model=tiny_llama)
    lines = first.run.samples_path.read_bytes().splitlines(keepends=True)
    # Keep 4 finished samples and a torn fifth, as a kill in the middle of a write would.
    first.run.samples_path.write_bytes(b"".join(lines[:4]) + lines[4][:25])
    progress = Recorder()
    second = run_model(spec(), tmp_path, model=tiny_llama, progress=progress)
    assert (second.generated, second.resumed) == (3, 4)
    assert progress.events[0] == ("begin", 7, 4)
    records = second.run.records()
    assert second.run.samples_path.read_bytes().startswith(b"".join(lines[:4]))
    assert [r.attempt for r in records] == [1] * 4 + [2] * 3
    assert sorted(r.id for r in records) == sorted(r.id for r in first.run.records())
    # Greedy decoding: the recomputed samples say what they said the first time.
    assert {r.id: r.output for r in records} == {r.id: r.output for r in first.run.records()}

    third = run_model(spec(), tmp_path, model=tiny_llama)
    assert (third.generated, third.resumed) == (0, 7)
    assert RunIndex(tmp_path).get(spec().run_id).attempts == 3


def test_failure_marks_run_failed(tmp_path, tiny_llama):
    class Broken:
        name = "broken"
        tokenizer = tiny_llama.tokenizer

        def generate(self, *args, **kwargs):
            raise RuntimeError("device lost")

    with pytest.raises(RuntimeError):
        run_model(spec(), tmp_path, model=Broken())
    assert RunIndex(tmp_path).get(spec().run_id).status == "failed"
    assert RunDir(tmp_path / spec().run_id).meta()["status"] == "failed"


def never_load(*args, **kwargs):
    raise AssertionError("the model must not be loaded for bad input")


def test_run_eval_checks_tasks_before_loading(tmp_path):
    config = EvalConfig(models=["tiny"], tasks=["probe", "nedle"], out=tmp_path)
    with pytest.raises(NevermindError, match="unknown task 'nedle'; known tasks: .*needle"):
        run_eval(config, load=never_load)


def test_run_eval_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NevermindError, match="cannot write to output directory"):
        run_eval(EvalConfig(models=["tiny"], tasks=["probe"], out=blocker / "runs"), load=never_load)


def test_run_eval_unknown_model_makes_no_run(tmp_path):
    with pytest.raises(NevermindError, match="unknown model 'tiny'"):
        run_eval(EvalConfig(models=["tiny"], tasks=["probe"], out=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()
