"""tests/data/gold/collect.py: outputs of eval run directories become gold records; labels written
while reading (`--labels` TSV) or already in the gold file are kept, and never invented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

COLLECT = Path(__file__).parent / "gold" / "collect.py"
MESSAGES = [{"role": "user", "content": "Where is the key? (a haystack)"}]


def write_run(runs: Path, name: str, model: str, outputs: dict[str, str]) -> None:
    run = runs / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": model, "seed": 0, "adapters": []}), encoding="utf-8")
    rows = [{"task": "needle", "id": sid, "messages": MESSAGES, "target": {"answers": ["7481"]},
             "metadata": {"length": 100}, "output": text, "finish_reason": "stop"} for sid, text in outputs.items()]  # fmt: skip
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def collect(runs: Path, gold: Path, *labels: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(COLLECT), str(runs), str(gold)]
    for path in labels:
        command += ["--labels", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_labels_from_a_tsv_are_attached_and_kept_on_recollection(tmp_path):
    runs, gold = tmp_path / "runs", tmp_path / "gold.jsonl"
    write_run(runs, "a", "m", {"needle-1": "The key is 7481.", "needle-2": "I do not know."})
    tsv = tmp_path / "labels.tsv"
    tsv.write_text('m/plain/seed0/needle-1\t{"value": 1, "echo": 0}\tsays 7481\n', encoding="utf-8")
    done = collect(runs, gold, tsv)
    assert done.returncode == 0, done.stderr
    records = {r["gid"]: r for r in map(json.loads, gold.read_text(encoding="utf-8").splitlines())}
    assert records["m/plain/seed0/needle-1"]["label"] == {"value": 1, "echo": 0}
    assert records["m/plain/seed0/needle-1"]["reason"] == "says 7481"
    assert "label" not in records["m/plain/seed0/needle-2"]  # unread outputs stay unlabelled
    assert records["m/plain/seed0/needle-2"]["output"] == "I do not know."
    # a second collection without the TSV keeps the label the gold file holds
    done = collect(runs, gold)
    assert done.returncode == 0, done.stderr
    again = {r["gid"]: r for r in map(json.loads, gold.read_text(encoding="utf-8").splitlines())}
    assert again["m/plain/seed0/needle-1"]["label"] == {"value": 1, "echo": 0}


def test_a_label_for_an_output_not_in_the_runs_is_an_error(tmp_path):
    runs, gold = tmp_path / "runs", tmp_path / "gold.jsonl"
    write_run(runs, "a", "m", {"needle-1": "The key is 7481."})
    tsv = tmp_path / "labels.tsv"
    tsv.write_text('m/plain/seed0/needle-9\t{"value": 0, "echo": 0}\tno such output\n', encoding="utf-8")
    done = collect(runs, gold, tsv)
    assert done.returncode != 0
    assert "needle-9" in done.stderr
