"""The fake in-memory backend (tests/fake_backend.py) runs the consumers end to end: none of them
needs a transformers model, only the model interface."""

from __future__ import annotations

import sys

import pytest

import tests.fake_backend as fake
from nevermind.models import LanguageModel, load_model


@pytest.fixture
def no_transformers_model(monkeypatch):
    """Any attempt to build a transformers model fails the test."""
    import transformers

    def refuse(*_, **__):
        raise AssertionError("a consumer reached for a transformers model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", refuse)


def test_fake_backend_implements_the_interface():
    model = load_model("copy-model", backend="fake")
    assert isinstance(model, LanguageModel) and model.backend == "fake"
    assert "tests.fake_backend" in sys.modules


def test_eval_runs_every_suite_task_on_the_fake_backend(tmp_path, no_transformers_model):
    from nevermind.runs import EvalConfig
    from nevermind.runs.runner import run_eval

    config = EvalConfig(models=["copy-model"], backend="fake", limit=4, lengths=[60], depths=[50],
                        out=tmp_path / "runs")  # fmt: skip
    [result] = run_eval(config)
    assert set(result.summary["tasks"]) == {"needle", "override", "moderation", "jailbreak"}
    counts = {name: entry["n"] for name, entry in result.summary["tasks"].items()}
    assert counts == {"needle": 2, "override": 4, "moderation": 4, "jailbreak": 4}  # one needle cell × 2
    assert fake.FakeModel  # the module registered the backend the run used
