"""`generate-outputs -o FILE` never destroys data it did not write: any file that is not an outputs
file of the same generator is refused in one line and left byte for byte as it was."""

import json

import pytest

from nevermind.errors import NevermindError
from nevermind.evals.outputs import read_finished
from tests.cli_runner import run_cli


@pytest.fixture
def instructions(tmp_path):
    path = tmp_path / "instructions.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"Name a colour ({i})."}) + "\n" for i in range(3)))
    return path


def assert_refused(result, path, before, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert path.read_bytes() == before


SAMPLES = "".join(json.dumps({"task": "needle", "id": f"s{i}", "output": "Paris", "value": 1.0}) + "\n"
                  for i in range(48))


@pytest.mark.parametrize("content, fragment", [
    (SAMPLES, ":1: output record without instruction"),  # a run's samples.jsonl
    ("my notes\nmore notes\n", ":1: corrupt output record"),
    ("notes without a final newline", "its last line is text"),
    ('{"instruction": "a", "output": "b"}\n', ":1: not an output record (no string generator)"),
])
def test_foreign_file_is_refused_before_the_model_loads(tmp_path, instructions, content, fragment):
    target = tmp_path / "precious.jsonl"
    target.write_text(content)
    before = target.read_bytes()
    result = run_cli("generate-outputs", "-m", "not-a-model-either", "--instructions", instructions, "-o", target)
    assert_refused(result, target, before, str(target), fragment, "refusing")


def test_other_generators_outputs_are_refused(tmp_path, instructions, tiny_llama_dir):
    target = tmp_path / "outputs.jsonl"
    target.write_text(json.dumps({"instruction": "Name a colour (0).", "output": "red", "generator": "gpt-x"}) + "\n")
    before = target.read_bytes()
    result = run_cli("generate-outputs", "-m", tiny_llama_dir, "--instructions", instructions, "-o", target,
                     "--max-new-tokens", 2)
    assert_refused(result, target, before, f"{target}:1", "'gpt-x'")


def test_bad_complete_line_in_a_real_outputs_file_names_file_and_line(tmp_path, instructions, tiny_llama_dir):
    target = tmp_path / "outputs.jsonl"
    args = ["generate-outputs", "-m", tiny_llama_dir, "--instructions", instructions, "-o", target,
            "--max-new-tokens", 2]
    assert run_cli(*args).returncode == 0
    lines = target.read_text().splitlines(keepends=True)
    target.write_text(lines[0] + '{"instruction": "Name a colour (1).", "outp\n' + lines[2])
    before = target.read_bytes()
    assert_refused(run_cli(*args), target, before, f"{target}:2", "not JSON")


def test_read_finished_never_rewrites_a_foreign_file(tmp_path):
    """The resumable readers that rank and winrate use: a text file is refused, not emptied."""
    text = tmp_path / "notes.txt"
    text.write_text("line one\nline two")
    with pytest.raises(NevermindError, match="not touching"):
        read_finished(text, "key")
    assert text.read_text() == "line one\nline two"
    ours = tmp_path / "records.jsonl"
    ours.write_text('{"key": "a", "v": 1}\n{"key": "b", "v": 2}\n{"key": "c", "v"')  # torn by a kill
    assert sorted(read_finished(ours, "key")) == ["a", "b"]
    assert ours.read_text() == '{"key": "a", "v": 1}\n{"key": "b", "v": 2}\n'  # only the torn tail is cut
