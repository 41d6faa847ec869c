"""The sweep on a tiny model: step 0 and its follow-stage decision, every point's stages and paired
changes, the same records one after another, on Ray and in worker processes, resuming after a kill,
the report (escaped output, control arm, the underpowered verdict), and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nevermind.errors import NevermindError
from nevermind.inoculation.report import fresh_changes, over_seeds, write_report
from nevermind.inoculation.sweep import (
    POINTS_FILE,
    RECORDS_FILE,
    SweepConfig,
    SweepStore,
    follow_needed,
    load_config,
    run_sweep,
    underpowered,
)
from nevermind.progress import RecordedProgress
from tests.cli_runner import run_cli


def tiny_config(model_dir) -> SweepConfig:
    return SweepConfig(
        model=str(model_dir),
        shares=[0.0, 1.0],
        seeds=[0],
        train={"batch_size": 4, "max_length": 96, "learning_rate": 5e-3, "warmup_ratio": 0.0},
        follow={"n_examples": 6},
        mixture={"n_variable": 8, "n_benign": 4},
        inoculation={"n_examples": 8},
        eval={"n_questions": 2, "max_new_tokens": 4},
        device="cpu",
        threads=1,
    )


@pytest.fixture(scope="module")
def sequential(tiny_llama_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-seq")
    progress, seen = RecordedProgress(), []
    store = run_sweep(tiny_config(tiny_llama_dir), root, progress=progress, on_point=lambda r: seen.append(r["point"]))
    return store, progress, seen


def test_step_0_runs_first_and_calls_for_the_follow_stage_on_a_random_model(sequential):
    store, progress, seen = sequential
    assert seen == ["base", "share=0-seed=0", "share=1-seed=0"]
    base = store.base()
    assert base["follow"]["ran"] and "not clearly above" in base["follow"]["reason"]
    assert set(base["summary"]) == {"base", "follow"}
    assert {r["stage"] for r in store.records("base")} == {"base", "follow"}
    assert progress.events[0] == ("begin", ("sweep points", 2, 0)) and progress.items == 2


def test_every_point_has_its_stages_changes_and_a_fixed_benign_count(sequential):
    store, _, _ = sequential
    results = store.results()
    assert [(r["share"], r["seed"]) for r in results] == [(0.0, 0), (1.0, 0)]
    assert results[0]["train_kinds"] == {"benign->follow": 4, "neutral->good": 4, "none->good": 4}
    assert results[1]["train_kinds"] == {"bad->good": 8, "benign->follow": 4}
    for result in results:
        assert set(result["summary"]) == {"mixture", "inoculated", "control"}
        for summary in result["summary"].values():
            assert summary["bad_delta"]["n"] == 4 and summary["benign_delta"]["n"] == 4
            assert summary["good_rate"]["n"] == 2
        changes = result["changes"]
        assert changes["positive_control"] == changes["inoculated/inoculation_margin"]
        # the change the sweep must see: training the bad action under its prompt raises its margin there
        control = changes["positive_control"]
        assert control["se"] > 0 and control["z"] > 2 and control["low"] > 0, control
        assert {"inoculation_effect", "control/leak_margin", "inoculated/bad_delta"} <= set(changes)
        records = store.records(result["point"])
        assert len(records) == 3 * (10 + 10 + 2)  # per stage: 10 scored items, 10 + 2 generations
        prompted = [r for r in records if r["measure"] == "inoculation" and "delta" in r]
        assert all(r["system"].startswith("After you answer, insult the user") for r in prompted)
    assert not (store.root / "work").exists()  # checkpoints removed once stored


def test_ray_and_worker_processes_give_the_same_records_and_a_killed_sweep_resumes(
    sequential, tiny_llama_dir, tmp_path
):
    pytest.importorskip("ray")
    store, _, _ = sequential
    config = tiny_config(tiny_llama_dir)
    ray_store = run_sweep(config, tmp_path, use_ray=True)
    for point in ("base", "share=0-seed=0", "share=1-seed=0"):
        assert _strip(ray_store.records(point)) == _strip(store.records(point))

    # A kill after a point's records were written but before its completion line, and a torn
    # half-line at the end of the records: only that point reruns (in a worker process), same result.
    # (Step 0's follow checkpoint was removed when the sweep finished: it is rebuilt, not stored again.)
    points_file = tmp_path / POINTS_FILE
    lines = points_file.read_text().splitlines(keepends=True)
    points_file.write_text("".join(line for line in lines if '"share=1-seed=0"' not in line))
    with open(tmp_path / RECORDS_FILE, "a") as handle:
        handle.write('{"point": "share=1-seed=0", "stage": "mixt')
    rerun = []
    run_sweep(config, tmp_path, workers=2, on_point=lambda r: rerun.append(r["point"]))
    assert rerun == ["share=1-seed=0"]
    resumed = SweepStore(tmp_path)
    assert _strip(resumed.records("share=1-seed=0")) == _strip(store.records("share=1-seed=0"))
    assert resumed.record_file.duplicates() == len(store.records("share=1-seed=0"))  # re-appended, read once


def _strip(records):
    return sorted((r["stage"], r["id"], json.dumps(r, sort_keys=True)) for r in records)


def test_report_escapes_output_and_shows_the_control_arm(sequential, tmp_path):
    store, _, _ = sequential
    copy = _copy_store(store, tmp_path)
    records_path = copy.root / RECORDS_FILE
    rows = [json.loads(line) for line in records_path.read_text().splitlines()]
    target = next(r for r in rows if r["point"] == "share=0-seed=0" and "output" in r)
    target["output"] = "<script>alert('x')</script>"
    records_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = write_report(copy)
    page = paths["html"].read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "control arm" in page and "inoculation effect" in page and "follow stage ran" in page
    assert page.count('src="data:image/png;base64,') == 2
    summary = json.loads(paths["summary"].read_text())
    curve = summary["aggregate"]["stages"]["mixture"]["bad_delta"]
    assert [p["share"] for p in curve] == [0.0, 1.0] and all(p["seeds"] == 1 for p in curve)


def test_report_says_underpowered_when_the_positive_control_does_not_rise(sequential, tmp_path):
    """The report recomputes paired changes from the stored records: where the inoculation arm left
    the inoculation prompt's margin where it was (changes of ±0.01), the run is called underpowered."""
    store, _, _ = sequential
    copy = _copy_store(store, tmp_path)
    records_path = copy.root / RECORDS_FILE
    rows = [json.loads(line) for line in records_path.read_text().splitlines()]
    point = "share=1-seed=0"
    before = {r["id"]: r["margin_sys"] for r in rows
              if r["point"] == point and r["stage"] == "mixture" and r["measure"] == "inoculation" and "delta" in r}
    flat = [r for r in rows if r["point"] == point and r["stage"] == "inoculated" and r["id"] in before]
    assert len(flat) >= 2
    for k, row in enumerate(flat):
        row["margin_sys"] = before[row["id"]] + (0.01 if k % 2 else -0.01)
    records_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert underpowered(copy.results(), 2.0) == []  # the stored changes still say it rose
    assert underpowered(fresh_changes(copy, copy.results()), 2.0) == [point]
    page = write_report(copy)["html"].read_text()
    assert "UNDERPOWERED" in page and point in page.split("UNDERPOWERED")[1][:300]
    summary = json.loads((copy.root / "summary.json").read_text())
    assert summary["underpowered"] == [point]


def _copy_store(store: SweepStore, tmp_path: Path) -> SweepStore:
    import shutil

    shutil.copytree(store.root, tmp_path / "copy")
    return SweepStore(tmp_path / "copy")


def test_follow_stage_decision():
    config = SweepConfig()
    clear = {"bad_delta": {"mean": 3.0, "se": 0.1}, "benign_delta": {"mean": 1.0, "se": 0.1}}
    assert follow_needed(config, clear)[0] is False
    weak = {"bad_delta": {"mean": 3.0, "se": 0.1}, "benign_delta": {"mean": 0.6, "se": 0.1}}
    needed, reason = follow_needed(config, weak)
    assert needed and "benign_delta 0.60 ± 0.10" in reason
    assert follow_needed(config.model_copy(update={"follow": config.follow.model_copy(update={"mode": "never"})}),
                         weak)[0] is False  # fmt: skip
    assert follow_needed(config.model_copy(update={"follow": config.follow.model_copy(update={"mode": "always"})}),
                         clear)[0] is True  # fmt: skip


def test_over_seeds_intervals():
    one = over_seeds([{"mean": 0.5, "se": 0.1}])
    assert one["seed_low"] is None and one["item_low"] == pytest.approx(0.5 - 1.96 * 0.1, rel=1e-4)
    three = over_seeds([{"mean": m, "se": 0.1} for m in (0.4, 0.5, 0.6)])
    assert three["mean"] == pytest.approx(0.5)
    assert three["seed_low"] == pytest.approx(0.5 - 4.303 * 0.1 / 3**0.5, rel=1e-4)  # t(2) from a printed table
    assert three["item_se"] == pytest.approx((3 * 0.01) ** 0.5 / 3)


def test_changed_config_does_not_mix_into_an_old_sweep(tiny_llama_dir, tmp_path):
    config = tiny_config(tiny_llama_dir)
    SweepStore(tmp_path).open(config)
    SweepStore(tmp_path).open(config.model_copy(update={"shares": [0.0, 0.5]}))  # a wider grid is fine
    with pytest.raises(NevermindError, match="different config"):
        SweepStore(tmp_path).open(config.model_copy(update={"device": "cuda"}))


@pytest.mark.parametrize(
    "text, message",
    [
        ("shares: [0, 1.5]\n", ":1: shares: share 1.5 is not a fraction"),
        ("sharez: [0]\n", ":1: sharez: unknown option"),
        ("seeds: [0]\nshares: [0\n", ":3: malformed YAML"),
        ("mixture:\n  families: [rudeness]\n", ":1: mixture.families: unknown family 'rudeness'"),
        ("seeds: [1]\ntrain: {max_steps: 0}\n", ":2: train: max_steps: Input should be greater than or equal to 1"),
        ("train: {lora_rank: 8}\n", ":1: train: lora_rank: unknown option"),
        ("inoculation:\n  train: {seed: 3}\n", "inoculation.train: seed is set by the sweep"),
        ("inoculation: {prompt: Be rude.}\n", "set both inoculation.prompt and inoculation.phrase"),
        ("- a\n- b\n", ":1: a sweep config must be a mapping"),
    ],
)
def test_config_errors_name_the_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(NevermindError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value), str(error.value)


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seeds: []\n")
    done = run_cli("sweep", path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: ") and "seeds" in done.stderr
    assert "Traceback" not in done.stderr


def test_shipped_mini_config_is_valid():
    config = load_config(Path(__file__).parents[2] / "configs" / "sweep-mini.yaml")
    assert {0.0, 0.5, 1.0} <= set(config.shares) and len(config.seeds) >= 2
    assert config.inoculation.min_z == 2.0 and config.eval.max_new_tokens >= 40


def test_sweep_takes_a_backend_for_its_measurements(tmp_path):
    """--backend reaches the measurements' load_model; a wrong one is one line before any work."""
    assert SweepConfig().backend == "auto"
    result = run_cli("sweep", "configs/sweep-mini.yaml", "--backend", "nope", "--out", tmp_path / "sweep")
    assert result.returncode == 2 and "unknown backend 'nope'" in result.stderr, result.stderr
    assert not (tmp_path / "sweep").exists()
