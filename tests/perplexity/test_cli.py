"""`nevermind perplexity` as a user runs it: files written, bad input is one line and exit code 2."""

import csv
import json
import subprocess
import sys

import pytest

from tests.cli_runner import run_cli as run_cli_base


def run_cli(*args: str):
    return run_cli_base("perplexity", *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--alphas", "1,x"], "--alphas must be comma-separated"),
        (["--alphas", "0.5"], "--alphas: rope alpha must be a finite number"),
        (["--cliff-ratio", "0.9"], "--cliff-ratio: the cliff ratio must be"),
        (["--backend", "nope"], "unknown backend"),
        (["--lengths", "128,64"], "distinct and ascending"),
        (["--lengths", ","], "--lengths is empty"),
        (["--scaling", "yarn"], "unknown"),
        (["--lengths", "64,100000000"], "fewer than the longest length"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_llama_dir, args, message, tmp_path):
    result = run_cli_base("perplexity", "-m", str(tiny_llama_dir), *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "perplexity").exists()  # nothing measured, nothing left behind
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert message in result.stderr


def test_unknown_model_is_one_line_exit_2(tmp_path):
    result = run_cli_base("perplexity", "-m", "not-a-model", "--lengths", "64,128", cwd=tmp_path)
    assert result.returncode == 2 and "unknown model" in result.stderr
    assert "Traceback" not in result.stderr


def test_writes_json_csv_png_and_reuses_them(tiny_llama_dir, tmp_path):
    args = ["-m", str(tiny_llama_dir), "--alphas", "1,4", "--lengths", "32,64", "--window", "16",
            "--baseline-context", "16", "--samples", "2", "-o", str(tmp_path)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "perplexity.json").read_text())
    assert [c["alpha"] for c in data["curves"]] == [1.0, 4.0]
    with open(tmp_path / "perplexity.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and float(rows[0]["perplexity"]) > 1 and float(rows[1]["ratio"]) > 0
    assert (tmp_path / "perplexity.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "perplexity.records.jsonl").read_text().splitlines()) == 4
    again = run_cli(*args)
    assert again.returncode == 0 and "reusing 4 finished measurement(s)" in again.stderr


def test_yaml_config_and_flags(tiny_llama_dir, tmp_path):
    config = tmp_path / "ppl.yaml"
    config.write_text(f"model: {tiny_llama_dir}\nalphas: [1]\nlengths: [32, 64]\nwindow: 8\nsamples: 1\n")
    result = run_cli("--config", config, "--window", "16", "--baseline-context", "8", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out" / "perplexity.json").read_text())
    assert data["config"]["window"] == 16 and data["config"]["samples"] == 1
    config.write_text("model: x\nwindow: zero\n")
    bad = run_cli("--config", config)
    assert bad.returncode == 2 and f"{config}:2: window" in bad.stderr


def test_generate_takes_a_rope_option(tiny_llama_dir):
    base = [sys.executable, "-m", "nevermind.cli", "generate", "-m", str(tiny_llama_dir), "--max-new-tokens", "2"]
    bad = subprocess.run([*base, "--rope", "ntk:x", "hi"], capture_output=True, text=True, timeout=600, check=False)
    assert bad.returncode == 2 and "bad rope option" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run([*base, "--rope", "dynamic:2", "--json", "hi"], capture_output=True, text=True, timeout=600, check=False)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["tokens"] <= 2
