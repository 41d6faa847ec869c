"""`nevermind eval` and `nevermind report` as a user runs them: real subprocesses, a tiny real model,
exit codes and one-line errors, and a real kill -9 in the middle of a run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

PROBE = str(Path(__file__).parents[1] / "runs" / "probe_tasks.py") + ":probe"


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_task(tmp_path, tiny_llama_dir):
    result = run_cli("eval", "-m", tiny_llama_dir, "--tasks", "needle,nedle", "--out", tmp_path)
    assert_one_line_error(result, "unknown task 'nedle'", "needle")
    assert not (tmp_path / "index.sqlite").exists()


def test_malformed_yaml_names_file_and_line(tmp_path):
    config = tmp_path / "suite.yaml"
    config.write_text("models: [smollm2-135m-instruct]\ntasks: needle\n  limit: 3\n")
    assert_one_line_error(run_cli("eval", "--config", config), f"{config}:3", "malformed YAML")


def test_non_numeric_length(tmp_path):
    result = run_cli("eval", "-m", "smollm2-135m-instruct", "--lengths", "100,2fifty", "--out", tmp_path)
    assert_one_line_error(result, "--lengths", "'2fifty'")


def test_unwritable_output_dir(tmp_path, tiny_llama_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be made below a file, even by root
    result = run_cli("eval", "-m", tiny_llama_dir, "--tasks", "needle", "--out", blocker / "runs")
    assert_one_line_error(result, "cannot write to output directory", str(blocker / "runs"))


def test_unknown_model(tmp_path):
    result = run_cli("eval", "-m", "not-a-model", "--tasks", "needle", "--out", tmp_path)
    assert_one_line_error(result, "unknown model 'not-a-model'", "smollm2-135m-instruct")
    assert list(tmp_path.iterdir()) == []


def test_report_of_missing_dir(tmp_path):
    assert_one_line_error(run_cli("report", tmp_path / "nope", "-o", tmp_path / "r.html"), "does not exist")


def test_suite_then_report_on_two_tiny_models(tmp_path, tiny_llama_dir, tiny_gemma_dir):
    """The real four tasks end to end on both tiny architectures, then one report of both."""
    out = tmp_path / "runs"
    args = ["eval", "-m", tiny_llama_dir, "-m", tiny_gemma_dir, "--tasks", "needle,override,moderation,jailbreak",
            "--limit", "3", "--lengths", "100", "--depths", "0,100", "--max-new-tokens", "6", "--out", out]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    for task in ("needle", "override", "moderation", "jailbreak"):
        assert task in result.stdout
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert {task: entry["n"] for task, entry in summary["tasks"].items()} == {
            "needle": 3, "override": 3, "moderation": 3, "jailbreak": 3}
        assert len((run_dir / "samples.jsonl").read_text().splitlines()) == 12

    again = run_cli(*args)  # the same command: everything resumes, nothing is generated
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("0 generated, 12 resumed") == 2

    report = tmp_path / "report.html"
    result = run_cli("report", out, "-o", report)
    assert result.returncode == 0, result.stderr
    html = report.read_text()
    assert "tiny-llama" in html and "tiny-gemma" in html and "needle heatmap" in html


def test_kill_9_then_resume(tmp_path, tiny_llama_dir):
    """Kill -9 a real run mid-way; the same command finishes it without losing or recomputing a sample."""
    out = tmp_path / "runs"
    total = 30
    args = ["eval", "-m", tiny_llama_dir, "--tasks", PROBE, "--limit", total, "--lengths", "100",
            "--depths", "0,50,100", "--batch-size", "2", "--max-new-tokens", "16", "--out", out]
    process = subprocess.Popen([sys.executable, "-m", "nevermind.cli", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    samples = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(out.glob("*/samples.jsonl"))
        if found and len(found[0].read_bytes().splitlines()) >= 4:
            samples = found[0]
            break
        time.sleep(0.02)
    assert samples is not None and process.poll() is None, "the run must still be going when it is killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    before = samples.read_bytes()
    finished_before = before[: before.rfind(b"\n") + 1]  # a torn tail is not a finished sample
    n_before = len(finished_before.splitlines())
    assert 4 <= n_before < total
    assert json.loads((samples.parent / "run.json").read_text())["status"] == "running"  # it never finished

    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert f"{total - n_before} generated, {n_before} resumed" in result.stderr
    after = samples.read_bytes()
    assert after.startswith(finished_before)  # nothing finished was lost or rewritten
    records = [json.loads(line) for line in after.splitlines()]
    assert len(records) == total and len({r["id"] for r in records}) == total
    assert [r["attempt"] for r in records] == [1] * n_before + [2] * (total - n_before)
    summary = json.loads((samples.parent / "summary.json").read_text())
    assert summary["tasks"]["probe"]["n"] == total


@pytest.mark.parametrize("flag", ["--limit", "--batch-size"])
def test_zero_is_rejected(tmp_path, flag):
    result = run_cli("eval", "-m", "smollm2-135m-instruct", flag, "0", "--out", tmp_path)
    assert_one_line_error(result, flag)
