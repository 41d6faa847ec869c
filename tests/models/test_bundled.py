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


SAMPLES = [
    "The capital of France is Paris.",
    "<start_of_turn>user\nhi  there\n\n\t ünïcode 😀 <|im_start|>assistant\n",
    "def f(x):\n    return x ** 2  # squares\r\n",
    "   leading spaces, trailing spaces   ",
]


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_fast_tokenizer_matches_transformers(name, monkeypatch):
    """load_tokenizer's shortcut for converted directories must tokenize, decode, template
    and name special tokens exactly as AutoTokenizer does."""
    from transformers import AutoTokenizer

    from nevermind.models.hf import load_tokenizer
    from nevermind.models.registry import resolve_model

    source = resolve_model(name).source
    reference = AutoTokenizer.from_pretrained(source)

    def refuse(*args, **kwargs):
        raise AssertionError("load_tokenizer went through AutoTokenizer instead of its shortcut")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    fast = load_tokenizer(source)
    monkeypatch.undo()
    assert len(fast) == len(reference)
    for attribute in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "chat_template"):
        assert getattr(fast, attribute) == getattr(reference, attribute), attribute
    for text in SAMPLES:
        ids = reference(text).input_ids
        assert fast(text).input_ids == ids
        assert fast(text, add_special_tokens=False).input_ids == reference(text, add_special_tokens=False).input_ids
        assert fast.decode(ids) == reference.decode(ids)
        assert fast.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    if reference.chat_template:
        messages = [{"role": "user", "content": "Hi"}]
        assert fast.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == (
            reference.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
