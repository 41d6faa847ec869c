"""The fake in-memory backend (tests/fake_backend.py) runs the consumers end to end: none of them
needs a transformers model, only the model interface."""

from __future__ import annotations

import json
import math
import sys

import pytest

import tests.fake_backend as fake
from nevermind.models import LanguageModel, load_model, register_backend


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


class ForgetfulModel(fake.FakeModel):
    """The copy model, except that past position FORGET it forgets everything it read: every token is
    then one of VOCAB equally likely words. A known cliff for perplexity to find."""

    FORGET = 300

    def sequence_logprobs(self, sequences, *, positions=None, top_k=0, batch_size=1, on_batch=None):
        out = super().sequence_logprobs(sequences, positions=positions, top_k=top_k)
        for scored in out:
            scored.logprobs = [v if v is None or j < self.FORGET else -math.log(fake.VOCAB)
                               for j, v in enumerate(scored.logprobs)]  # fmt: skip
        return out


register_backend("fake-forgetful", description="tests' copy model that forgets past a position")(
    lambda name, **_: ForgetfulModel(name)
)


def test_perplexity_runs_on_the_fake_backend(tmp_path, no_transformers_model):
    """Perplexity needs only sequence_logprobs: on the copy model its window NLLs equal a hand
    computation, and on the forgetful copy model (positive control) the ratio finds the known cliff."""
    from nevermind.data.haystack import haystack_text
    from nevermind.perplexity import PerplexityConfig, measure_to_dir

    text = haystack_text()[:40000]
    config = PerplexityConfig(model="copy-model", backend="fake", alphas=(1.0,), lengths=(256, 512, 1024),
                              window=32, baseline_context=64, samples=4)  # fmt: skip
    result, _ = measure_to_dir(config, tmp_path / "copy", text=text)
    record = json.loads((tmp_path / "copy" / "perplexity.records.jsonl").read_text().splitlines()[0])
    model = fake.FakeModel()
    row = model.encode(text)[record["start"] : record["start"] + 1024]
    by_hand = -sum(model.logprob(row[:j], row[j]) for j in range(480, 512)) / 32
    short = row[512 - 32 - 64 : 512]
    by_hand_short = -sum(model.logprob(short[:j], short[j]) for j in range(64, 96)) / 32
    assert record["full"][1] == pytest.approx(by_hand) and record["baseline"][1] == pytest.approx(by_hand_short)
    [copy] = result.curves
    assert copy.cliff is None and all(r < 1.0 for r in copy.ratio)  # more context, more words to copy
    assert all(se > 0 for se in copy.ratio_log_se)

    forgetful, _ = measure_to_dir(config.model_copy(update={"backend": "fake-forgetful"}), tmp_path / "forget",
                                  text=text)  # fmt: skip
    [curve] = forgetful.curves
    assert curve.perplexity[1] == pytest.approx(fake.VOCAB)  # past 300 it guesses among every word
    assert curve.ratio[0] < 1.0 and curve.ratio[1] > config.cliff_ratio and curve.cliff == 512


def test_ranking_runs_on_the_fake_backend(tmp_path, no_transformers_model):
    """Response ranking needs only score: the copy model prefers words it has read, so a response
    that repeats its own instruction's words beats every other instruction's response (a known truth)."""
    from nevermind.evals.rank import RankPair, response_rank

    topics = ["apple pear plum", "red blue green", "cat dog horse", "oak pine birch", "salt sugar flour",
              "rain snow hail", "iron gold lead"]  # fmt: skip
    pairs = [RankPair(f"name three of these {t}", t) for t in topics]
    model = load_model("copy-model", backend="fake")
    result = response_rank(model, pairs, negatives=3, records_path=tmp_path / "rank.jsonl")
    assert result.instructions == len(pairs) and result.accuracy == 1.0
    assert model.calls["score"] >= 1 and (tmp_path / "rank.jsonl").is_file()


def test_a_judge_runs_on_the_fake_backend(tmp_path, no_transformers_model):
    """A local judge needs only next_token: win_rate runs end to end through it. The copy model has
    read both verdict tokens in the question, so it has no preference: exactly ½, in both orders."""
    from nevermind.evals.judges import LocalJudge
    from nevermind.evals.outputs import OutputRecord
    from nevermind.evals.winrate import win_rate

    instructions = [f"say something about topic {i}" for i in range(4)]
    a = {i: OutputRecord(i, f"a answer {n}", "a") for n, i in enumerate(instructions)}
    b = {i: OutputRecord(i, f"b answer {n}", "b") for n, i in enumerate(instructions)}
    model = load_model("copy-model", backend="fake")
    result = win_rate(a, b, LocalJudge(model), tmp_path / "winrate")
    assert result.instructions == 4 and result.judged >= 8 and model.calls["next_token"] >= 1
    assert result.preference == pytest.approx(0.5) and result.soft_win_rate == pytest.approx(0.5)
