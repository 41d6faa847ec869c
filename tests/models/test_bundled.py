"""Model-quality checks on the real bundled models."""

import pytest

from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest

pytestmark = pytest.mark.slow


def test_paris_is_more_likely_than_berlin(smollm2):
    paris, berlin = smollm2.score(
        [ScoreRequest("The capital of France is", " Paris"), ScoreRequest("The capital of France is", " Berlin")]
    )
    assert paris.logprob > berlin.logprob


def test_instruct_model_answers_paris(smollm2):
    request = GenerateRequest("What is the capital of France?", chat=True)
    [out] = smollm2.generate([request], GenerationConfig(max_new_tokens=24))
    assert "Paris" in out.text
    assert out.finish_reason == "eos"


def test_base_model_knows_paris(gemma):
    paris, berlin = gemma.score(
        [ScoreRequest("The capital of France is", " Paris"), ScoreRequest("The capital of France is", " Berlin")]
    )
    assert paris.logprob > berlin.logprob


def test_batched_equals_per_sample_on_real_model(smollm2):
    prompts = [
        GenerateRequest(p, chat=True)
        for p in ["What is the capital of France?", "Name a color.", "Write one sentence about the sea.", "2+2="]
    ]
    config = GenerationConfig(max_new_tokens=16)
    batched = smollm2.generate(prompts, config, batch_size=4)
    single = [smollm2.generate([p], config, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
