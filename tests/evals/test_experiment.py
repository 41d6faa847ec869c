"""The experiment pipeline end to end on a tiny model: train, generate, judge, rank, report."""

from __future__ import annotations

import json

import pytest
import yaml

from nevermind.errors import NevermindError
from nevermind.evals.experiment import load_experiment, run_experiment


def without_counts(rows):
    """Rows without the judged / reused counts (which say what a rerun did, not what it found)."""
    return [
        {**r, "winrate": r["winrate"] and {k: v for k, v in r["winrate"].items() if k not in ("judged", "reused")}}
        for r in rows
    ]


def test_tiny_experiment_end_to_end_and_resume(tiny_llama_dir, tmp_path):
    instructions = tmp_path / "instructions.jsonl"
    lines = ["Name a <b>fruit</b>.", "Say hello.", "Count to three."]
    instructions.write_text("".join(json.dumps({"instruction": i}) + "\n" for i in lines))
    pairs = tmp_path / "pairs.jsonl"
    responses = ["Apple.", "Hello!", "One, two, three.", "Blue.", "Paris.", "Seven.", "Yes.", "No."]
    pairs.write_text(
        "".join(
            json.dumps({"instruction": f"Question {k}?", "response": r}) + "\n"
            for k, r in enumerate(responses)
        )
    )
    config_file = tmp_path / "experiment.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "base": str(tiny_llama_dir),
                "out_dir": str(tmp_path / "run"),
                "train": {"limit": 8, "max_steps": 1, "batch_size": 4, "max_length": 64},
                "variants": {"response-tuned": "response"},
                "eval": {
                    "instructions": str(instructions),
                    "limit": 3,
                    "max_new_tokens": 4,
                    "judge": f"local:{tiny_llama_dir}",
                },
                "rank": {
                    "pairs": str(pairs),
                    "limit": 8,
                    "negatives": 2,
                    "max_response_tokens": 8,
                    "models": ["base"],
                },
            }
        )
    )
    config = load_experiment(config_file)
    summary = run_experiment(config)
    rows = {row["model"]: row for row in summary["rows"]}
    assert list(rows) == ["base", "response-tuned", "reference"]
    assert rows["base"]["winrate"]["instructions"] == 3 and rows["reference"]["winrate"] is None
    assert rows["base"]["rank"]["instructions"] == 8 and rows["response-tuned"]["rank"] is None
    checkpoint = tmp_path / "run" / "checkpoints" / "response-tuned"
    assert json.loads((checkpoint / "nevermind-train.json").read_text())["config"]["recipe"] == "response"
    report = (tmp_path / "run" / "report.html").read_text()
    assert "Name a &lt;b&gt;fruit&lt;/b&gt;." in report and "<b>fruit</b>" not in report
    stamp = checkpoint.joinpath("config.json").stat().st_mtime
    again = run_experiment(config)  # everything is found on disk
    # Identical texts in both orders are asked once, so the count depends on what the tiny models wrote.
    first = summary["rows"][0]["winrate"]["judged"]
    assert first >= 3 and summary["rows"][0]["winrate"]["reused"] == 0
    assert (again["rows"][0]["winrate"]["judged"], again["rows"][0]["winrate"]["reused"]) == (0, first)
    assert without_counts(again["rows"]) == without_counts(summary["rows"])
    assert checkpoint.joinpath("config.json").stat().st_mtime == stamp
    assert rows["base"]["winrate"]["calibration_pairs"] in (0, 3) and "judge calibration" in report


def test_bad_experiment_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("variants:\n  base: response\n")
    with pytest.raises(NevermindError, match=r"bad.yaml:1: variants: .*base/reference"):
        load_experiment(bad)
    bad.write_text("eval: {limit: one}\n")
    with pytest.raises(NevermindError, match=r"bad.yaml:1: eval.limit"):
        load_experiment(bad)
    bad.write_text("base: [\n")
    with pytest.raises(NevermindError, match=r"bad.yaml:\d+: malformed YAML"):
        load_experiment(bad)
