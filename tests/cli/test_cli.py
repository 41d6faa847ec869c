"""The CLI as a user runs it: a real subprocess, exit codes, one-line errors."""

import json

import pytest

from tests.cli_runner import run_cli


def test_models_table():
    result = run_cli("models")
    assert result.returncode == 0
    assert "gemma-3-270m" in result.stdout and "smollm2" in result.stdout


def test_unknown_model_is_one_line_exit_2():
    result = run_cli("generate", "-m", "not-a-model", "hi")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr and "smollm2-135m-instruct" in result.stderr


def test_corrupt_gguf_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    result = run_cli("generate", "-m", str(bad), "hi")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "corrupt" in result.stderr


def test_generate_json_with_local_model(tiny_llama_dir):
    result = run_cli("generate", "-m", str(tiny_llama_dir), "--max-new-tokens", "4", "--json", "hello", "bye")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in records] == ["hello", "bye"]
    assert all(r["finish_reason"] in {"length", "eos"} and r["tokens"] <= 4 for r in records)


@pytest.mark.slow
def test_generate_answers_paris():
    result = run_cli("generate", "-m", "smollm2-135m-instruct", "What is the capital of France?")
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
