"""The eval config: YAML + CLI overrides, one-line errors naming file and line, deterministic run ids."""

import pytest

from nevermind.errors import NevermindError
from nevermind.runs.config import EvalConfig, RunSpec, model_slug, resolve_config, split_list


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_with_cli_overrides(tmp_path):
    path = write(tmp_path, "models: [smollm2-135m-instruct]\ntasks: [needle]\nlengths: [100, 250]\nlimit: 5\n")
    config = resolve_config(path, {"limit": 2, "depths": ["0", "50"], "seed": None})
    assert config.models == ["smollm2-135m-instruct"]
    assert config.lengths == [100, 250] and config.depths == [0.0, 50.0]
    assert config.limit == 2  # the flag wins
    assert config.seed == 0  # a flag not given (None) keeps the default


def test_single_model_key(tmp_path):
    config = resolve_config(write(tmp_path, "model: gemma-3-270m\n"))
    assert config.models == ["gemma-3-270m"]


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "models: [a]\ntasks: [needle\nlimit: 3\n")
    with pytest.raises(NevermindError, match=r"suite\.yaml:\d+: malformed YAML"):
        resolve_config(path)


def test_bad_value_in_yaml_names_its_line(tmp_path):
    path = write(tmp_path, "models: [a]\n\nlengths: [100, lots]\n")
    with pytest.raises(NevermindError) as caught:
        resolve_config(path)
    message = str(caught.value)
    assert "suite.yaml:3" in message and "lengths.1" in message and "lots" in message
    assert "\n" not in message


def test_unknown_yaml_key(tmp_path):
    with pytest.raises(NevermindError, match=r"yaml:2: lenghts: unknown option"):
        resolve_config(write(tmp_path, "models: [a]\nlenghts: [100]\n"))


def test_non_numeric_length_flag_names_the_flag():
    with pytest.raises(NevermindError, match=r"^--lengths: .*'1oo'"):
        resolve_config(None, {"models": ["a"], "lengths": split_list("100,1oo")})


def test_depth_out_of_range():
    with pytest.raises(NevermindError, match="--depths: every depth must be a percentage"):
        resolve_config(None, {"models": ["a"], "depths": [0, 150]})


def test_missing_model():
    with pytest.raises(NevermindError, match="no model given"):
        resolve_config(None, {})


def test_run_id_deterministic_and_sensitive():
    config = EvalConfig(models=["smollm2-135m-instruct", "/tmp/x/gemma.gguf"], tasks=["needle", "override"])
    first, second = config.run_specs()
    assert first.run_id == config.run_specs()[0].run_id
    assert first.run_id.startswith("smollm2-135m-instruct-") and second.run_id.startswith("gemma-")
    # Task order and batch size do not change what is computed; the grid does.
    assert RunSpec(model=first.model, tasks=["override", "needle"], batch_size=3).run_id == first.run_id
    assert RunSpec(model=first.model, tasks=["needle", "override"], lengths=[100]).run_id != first.run_id


def test_model_slug():
    assert model_slug("HuggingFaceTB/SmolLM2-135M") == "SmolLM2-135M"
    assert model_slug("/a/b/model dir/") == "model-dir"


def test_comma_separated_lists_in_yaml(tmp_path):
    config = resolve_config(write(tmp_path, "models: a\ntasks: needle, override\nlengths: 100,250\n"))
    assert config.tasks == ["needle", "override"] and config.lengths == [100, 250] and config.models == ["a"]


def test_shipped_small_suite_config():
    from pathlib import Path

    from nevermind.tasks import available_tasks

    config = resolve_config(Path(__file__).parents[2] / "configs" / "suite-small.yaml")
    assert config.models == ["smollm2-135m-instruct", "gemma-3-270m"]  # the base and the instruction-tuned model
    assert set(config.tasks) == {"needle", "override", "moderation", "jailbreak"} <= set(available_tasks())
    assert config.lengths and max(config.lengths) <= 1000 and config.limit
