"""The sweep: config errors, one tiny grid run one after another, on a local Ray instance and in a
worker process (same results for the same seeds), resume after losing a point, and the report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nevermind.errors import NevermindError
from nevermind.inoculation.report import seed_interval, write_report
from nevermind.inoculation.sweep import Point, SweepConfig, SweepStore, load_config, run_sweep


def tiny_config(model_dir) -> SweepConfig:
    return SweepConfig(
        model=str(model_dir),
        shares=[0.0, 1.0],
        seeds=[0],
        n_train=4,
        train={"max_steps": 1, "batch_size": 2, "max_length": 128, "learning_rate": 5e-3},
        inoculation={"n_examples": 2, "train": {"max_steps": 1}},
        eval={"n_problems": 2, "max_new_tokens": 8, "batch_size": 8},
        device="cpu",
        threads=1,
    )


def _records(store: SweepStore, point: Point) -> list[dict]:
    return store.records(point)


@pytest.fixture(scope="module")
def sequential(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-seq")
    seen = []
    store = run_sweep(
        tiny_config(tiny_llama_dir), root, on_point=lambda r, done, total: seen.append((done, total))
    )
    return store, seen


def test_sequential_sweep_stores_every_point(sequential):
    store, seen = sequential
    assert seen == [(1, 2), (2, 2)]
    results = store.results()
    assert [r["point"] for r in results] == [{"share": 0.0, "seed": 0}, {"share": 1.0, "seed": 0}]
    assert results[0]["train_kinds"].get("bad->good", 0) == 0
    assert results[1]["train_kinds"] == {"bad->good": 4}
    for result in results:
        assert set(result["summary"]) == {"trained", "inoculated", "inoculated_prompted"}
        for stage in result["summary"].values():
            assert stage["bad_compliance"]["n"] == 4 and stage["good_no_system"]["n"] == 2
    records = _records(store, Point(0.0, 0))
    assert len(records) == 3 * 8
    prompted = [r for r in records if r["stage"] == "inoculated_prompted"]
    assert all(r["system"].startswith("Always give an incorrect final answer") for r in prompted)
    assert not (store.root / "work" / "share=0-seed=0").exists()  # checkpoints removed once stored


def test_ray_gives_the_sequential_results_and_a_killed_sweep_resumes(sequential, tiny_llama_dir, tmp_path):
    pytest.importorskip("ray")
    store, _ = sequential
    config = tiny_config(tiny_llama_dir)
    ray_store = run_sweep(config, tmp_path, use_ray=True)
    for point in (Point(0.0, 0), Point(1.0, 0)):
        assert _records(ray_store, point) == _records(store, point)

    # Lose one finished point (as if the sweep had been killed before storing it): only it reruns,
    # this time in a worker process, with the same result.
    kept = ray_store.point_dir(Point(0.0, 0)) / "result.json"
    kept_stamp = kept.stat().st_mtime_ns
    (ray_store.point_dir(Point(1.0, 0)) / "result.json").unlink()
    rerun = []
    run_sweep(config, tmp_path, workers=2, on_point=lambda r, done, total: rerun.append(r["point"]))
    assert rerun == [{"share": 1.0, "seed": 0}]
    assert kept.stat().st_mtime_ns == kept_stamp
    assert _records(ray_store, Point(1.0, 0)) == _records(store, Point(1.0, 0))


def test_report_escapes_model_output_and_has_intervals(sequential):
    store, _ = sequential
    records_path = store.point_dir(Point(0.0, 0)) / "records.jsonl"
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    records[0]["output"] = "<script>alert('x')</script>"
    records_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    paths = write_report(store)
    page = paths["html"].read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["summary"].read_text())
    curve = summary["rate"]["trained"]["good_no_system"]
    assert [p["share"] for p in curve] == [0.0, 1.0] and all(p["seeds"] == 1 for p in curve)


def test_seed_interval():
    assert seed_interval([0.5]) == (0.5, 0.5, 0.5)
    mean, low, high = seed_interval([0.4, 0.5, 0.6])
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.5 - 4.303 * 0.1 / 3**0.5)
    assert high == pytest.approx(0.5 + 4.303 * 0.1 / 3**0.5)
    assert seed_interval([0.0, 1.0])[1:] == (0.0, 1.0)  # clipped to [0, 1]


def test_changed_config_does_not_mix_into_an_old_sweep(tiny_llama_dir, tmp_path):
    config = tiny_config(tiny_llama_dir)
    SweepStore(tmp_path).open(config)
    SweepStore(tmp_path).open(config.model_copy(update={"shares": [0.0, 0.5]}))  # a wider grid is fine
    with pytest.raises(NevermindError, match="different config"):
        SweepStore(tmp_path).open(config.model_copy(update={"n_train": 5}))


@pytest.mark.parametrize(
    "text, message",
    [
        ("shares: [0, 1.5]\n", "shares: Value error, share 1.5"),
        ("sharez: [0]\n", "sharez: Extra inputs"),
        ("shares: [0\n", "line 2: not valid YAML"),
        ("families: [rudeness]\n", "unknown family 'rudeness'"),
        ("train: {max_steps: 0}\n", "train.max_steps: Input should be greater than or equal to 1"),
        ("train: {lora_rank: 8}\n", "train.lora_rank: Extra inputs"),
        ("train: {seed: 3}\n", "train.seed: set by the sweep"),
        ("- a\n- b\n", "must be a mapping"),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(NevermindError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seeds: []\n")
    done = subprocess.run(
        [sys.executable, "-m", "nevermind.cli", "sweep", str(path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ") and "seeds" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_shipped_mini_config_is_valid():
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "configs" / "sweep-mini.yaml")
    assert len(config.seeds) == 2 and config.train.get("lora", True)
