"""The transformers backend on tiny random models of both architectures."""

import math

import pytest
import torch

from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a land far away, there lived a",
    "1, 2, 3,",
    "Write a haiku about rain.",
    "A much longer prompt that goes on and on so that left padding really matters for the batch",
]


def test_batched_greedy_equals_per_sample(tiny_model):
    config = GenerationConfig(max_new_tokens=12)
    batched = tiny_model.generate(PROMPTS, config, batch_size=8)
    single = [tiny_model.generate([p], config, batch_size=1)[0] for p in PROMPTS]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert [g.text for g in batched] == [g.text for g in single]


def test_length_finish_reason(tiny_model):
    [out] = tiny_model.generate(["Hello"], GenerationConfig(max_new_tokens=5))
    assert out.finish_reason == "length" and len(out.token_ids) == 5


class ForceToken:
    """Logits processor forcing one token after `after` generated tokens."""

    def __init__(self, token_id: int, after: int):
        self.token_id, self.after, self.prompt_length = token_id, after, None

    def start_batch(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length

    def __call__(self, input_ids, scores):
        if input_ids.shape[1] - self.prompt_length >= self.after:
            scores = torch.full_like(scores, -math.inf)
            scores[:, self.token_id] = 0.0
        return scores


def test_eos_finish_reason_and_processor_sees_prompt_length(tiny_model):
    eos = tiny_model.tokenizer.eos_token_id
    processor = ForceToken(eos, after=3)
    outs = tiny_model.generate(PROMPTS[:3], GenerationConfig(max_new_tokens=20), logits_processors=[processor])
    assert processor.prompt_length == max(len(tiny_model.encode(tiny_model.format_prompt(p))) for p in PROMPTS[:3])
    for out in outs:
        assert out.finish_reason == "eos"
        assert len(out.token_ids) == 4 and out.token_ids[-1] == eos
        assert tiny_model.tokenizer.eos_token not in out.text


def test_stop_string_cuts_text(tiny_model):
    marker_id = tiny_model.tokenizer(" STOP", add_special_tokens=False).input_ids[0]
    marker = tiny_model.tokenizer.decode([marker_id])
    [out] = tiny_model.generate(
        ["Hello"], GenerationConfig(max_new_tokens=20, stop=(marker,)), logits_processors=[ForceToken(marker_id, 2)]
    )
    assert out.finish_reason == "stop"
    assert marker not in out.text
    assert out.token_ids[-1] == marker_id and len(out.token_ids) == 3


def test_seeded_sampling_is_reproducible(tiny_model):
    config = GenerationConfig(max_new_tokens=10, temperature=1.0, seed=123)
    first = tiny_model.generate(PROMPTS[:2], config)
    second = tiny_model.generate(PROMPTS[:2], config)
    other = tiny_model.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=10, temperature=1.0, seed=7))
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    assert [g.token_ids for g in first] != [g.token_ids for g in other]


def test_score_matches_full_forward(tiny_model):
    context, continuation = "The capital of France is", " Paris, of course."
    [result] = tiny_model.score([ScoreRequest(context, continuation)])
    ctx = tiny_model.encode(context)
    cont = tiny_model.tokenizer(continuation, add_special_tokens=False).input_ids
    ids = torch.tensor([ctx + cont])
    logp = torch.log_softmax(tiny_model.model(ids).logits[0].float(), -1)
    expected = [logp[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont)]
    assert result.tokens == cont
    assert result.token_logprobs == pytest.approx(expected, abs=1e-4)
    assert result.logprob == pytest.approx(sum(expected), abs=1e-3)


def test_batched_score_equals_single(tiny_model):
    requests = [ScoreRequest(p, " and then some more words") for p in PROMPTS] + [ScoreRequest("", "Hello there")]
    batched = tiny_model.score(requests, batch_size=16)
    single = [tiny_model.score([r], batch_size=1)[0] for r in requests]
    for b, s in zip(batched, single):
        assert b.tokens == s.tokens
        assert b.token_logprobs == pytest.approx(s.token_logprobs, abs=1e-4)


def test_score_greedy_flag(tiny_model):
    [out] = tiny_model.generate([GenerateRequest("Hello world", chat=False)], GenerationConfig(max_new_tokens=4))
    greedy_text = tiny_model.tokenizer.decode(out.token_ids)
    [scored] = tiny_model.score([ScoreRequest("Hello world", greedy_text)])
    if scored.tokens == out.token_ids:  # same tokenization both ways
        assert scored.is_greedy


def test_chat_request(tiny_llama):
    [out] = tiny_llama.generate([GenerateRequest([{"role": "user", "content": "Hi"}])], GenerationConfig(max_new_tokens=3))
    assert out.prompt_tokens > 3
