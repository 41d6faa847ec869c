"""The run directories are the source of truth, as a user meets it: a damaged or read-only
index.sqlite never blocks `eval` or `report`, a duplicated sample line counts once, and new
weights at the same path start a new run instead of reusing the old model's samples."""

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from nevermind.models.tiny import build_tiny_model
from nevermind.scoring.stats import mean_and_se
from tests.cli_runner import run_cli

PROBE = str(Path(__file__).parents[1] / "runs" / "probe_tasks.py") + ":probe"


def eval_args(model, out, limit=3):
    return ["eval", "-m", model, "--tasks", PROBE, "--limit", limit, "--lengths", 40, "--depths", "0,100",
            "--max-new-tokens", 2, "--out", out]


def warnings_in(stderr):
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


@pytest.fixture(scope="module")
def finished_out(tiny_llama_dir, tmp_path_factory):
    """An output directory holding one finished run and its index."""
    out = tmp_path_factory.mktemp("finished") / "runs"
    result = run_cli(*eval_args(tiny_llama_dir, out))
    assert result.returncode == 0, result.stderr
    return out


def damage(index, how):
    if how == "garbage":
        index.write_bytes(b"this is not a database\n" * 100)
    elif how == "truncated":
        index.write_bytes(index.read_bytes()[:1500])
    elif how == "foreign":  # someone else's SQLite file under the same name
        index.unlink()
        with sqlite3.connect(index) as db:
            db.execute("CREATE TABLE notes (body TEXT)")
            db.execute("INSERT INTO notes VALUES ('keep me')")
    elif how == "foreign-runs":
        index.unlink()
        with sqlite3.connect(index) as db:
            db.execute("CREATE TABLE runs (id TEXT, when_run TEXT)")


@pytest.mark.parametrize("how", ["garbage", "truncated", "foreign", "foreign-runs"])
def test_damaged_index_does_not_block_eval(finished_out, tiny_llama_dir, tmp_path, how):
    out = tmp_path / "runs"
    shutil.copytree(finished_out, out)
    index = out / "index.sqlite"
    damage(index, how)
    damaged = index.read_bytes()
    result = run_cli(*eval_args(tiny_llama_dir, out))  # resumes: the run directory is the truth
    assert result.returncode == 0, result.stderr
    [warning] = warnings_in(result.stderr)
    assert "index.sqlite" in warning and "rebuilt from 1 run directories" in warning
    assert "0 generated, 3 resumed" in result.stderr
    [aside] = out.glob("index.sqlite.unreadable-*")
    assert aside.read_bytes() == damaged  # moved aside, never destroyed
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT status, n_samples FROM runs").fetchall() == [("finished", 3)]


def test_damaged_index_does_not_block_report(finished_out, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(finished_out, out)
    damage(out / "index.sqlite", "garbage")
    report = run_cli("report", out, "-o", tmp_path / "report.html")
    assert report.returncode == 0, report.stderr
    assert "Traceback" not in report.stderr and len(warnings_in(report.stderr)) == 1
    assert "probe" in (tmp_path / "report.html").read_text()


def make_immutable(path):
    """Make `path` unwritable even for root (chattr +i), or skip where that is impossible."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file read-only here: {done.stderr.decode().strip()}")


def test_read_only_index_is_bypassed_and_the_run_still_finishes(finished_out, tiny_llama_dir, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(finished_out, out)
    index = out / "index.sqlite"
    before = index.read_bytes()
    make_immutable(index)
    try:
        result = run_cli(*eval_args(tiny_llama_dir, out, limit=4))  # a new run: must write
        report = run_cli("report", out, "-o", tmp_path / "report.html")
    finally:
        subprocess.run(["chattr", "-i", str(index)], check=False)
    assert result.returncode == 0, result.stderr
    [warning] = warnings_in(result.stderr)
    assert "cannot be updated" in warning and "readonly" in warning
    assert "4 generated, 0 resumed" in result.stderr
    statuses = {json.loads(p.read_text())["status"] for p in out.glob("*/run.json")}
    assert statuses == {"finished"}  # never left saying "running"
    assert index.read_bytes() == before
    assert report.returncode == 0, report.stderr


def test_duplicated_sample_line_counts_once(tiny_llama_dir, tmp_path):
    out = tmp_path / "runs"
    args = eval_args(tiny_llama_dir, out, limit=12)
    assert run_cli(*args).returncode == 0
    [samples] = out.glob("*/samples.jsonl")
    lines = samples.read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    changed = dict(records[0], value=1.0 - records[0]["value"])  # a repeat that would move the mean
    with open(samples, "a") as handle:
        handle.write(json.dumps(changed) + "\n" + lines[1])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "0 generated, 12 resumed" in result.stderr
    summary = json.loads((samples.parent / "summary.json").read_text())["tasks"]["probe"]
    mean, _ = mean_and_se([r["value"] for r in records])
    assert summary["n"] == 12 and summary["metrics"]["value"]["mean"] == pytest.approx(mean)
    assert "probe" in result.stdout and "│ 12 │" in result.stdout


def test_retrained_weights_at_the_same_path_start_a_new_run(tmp_path):
    model = build_tiny_model("llama", tmp_path / "checkpoint")
    out = tmp_path / "runs"
    first = run_cli(*eval_args(model, out))
    assert first.returncode == 0, first.stderr
    again = run_cli(*eval_args(model, out))
    assert "0 generated, 3 resumed, reused" in again.stderr  # same weights: reused, said so

    shutil.rmtree(model)
    build_tiny_model("llama", model, seed=1)  # "retrained": new weights, same directory
    retrained = run_cli(*eval_args(model, out))
    assert retrained.returncode == 0, retrained.stderr
    assert "3 generated, 0 resumed" in retrained.stderr
    assert any("weights" in line and "changed" in line for line in warnings_in(retrained.stderr))
    assert len([p for p in out.iterdir() if p.is_dir()]) == 2  # the old run is kept beside the new one
