"""The model interface's token-level requests on the transformers backend (both architectures):
shared-prefix scoring, next-token candidates, sequence log-probabilities, token prompts,
streaming with cancellation; and the backend registry."""

from __future__ import annotations

import sys

import pytest

from nevermind.errors import NevermindError
from nevermind.models import (
    GenerateRequest,
    GenerationConfig,
    LanguageModel,
    NextTokenRequest,
    ScoreRequest,
    TokensPrompt,
    available_backends,
    get_backend,
    load_model,
    require,
)
from nevermind.models import backends as registry

# Longer than the tiny gemma's 32-token sliding window, so the shared cache crosses it.
CONTEXT = (
    "Below is an instruction. Write a response that completes the request well, with care and in "
    "plain words, and keep it short because the reader is busy and tired of long answers today.\n"
)
CONTINUATIONS = [" Sure, here it is.", " No.", " The answer is forty-two, as everyone knows by now.", " Fine"]


def test_the_backend_implements_the_interface(tiny_model):
    assert isinstance(tiny_model, LanguageModel)
    assert {"generate", "score", "next_token", "sequence_logprobs"} <= tiny_model.capabilities


def test_shared_context_scores_equal_unshared(tiny_model):
    shared = tiny_model.score([ScoreRequest(CONTEXT, c) for c in CONTINUATIONS])
    alone = [tiny_model.score([ScoreRequest(CONTEXT, c)])[0] for c in CONTINUATIONS]
    assert len(tiny_model.encode(CONTEXT)) > 32
    for s, a in zip(shared, alone):
        assert s.tokens == a.tokens
        assert s.token_logprobs == pytest.approx(a.token_logprobs, abs=1e-4)
        assert s.is_greedy == a.is_greedy


def test_contexts_of_different_lengths_packed_together_score_as_alone(tiny_model):
    # Three shared contexts (one past the sliding window, two short) run as one left-padded prefix
    # batch; each continuation row must see only its own context.
    contexts = [CONTEXT, "A short shared context for two answers.", "Another one, even shorter here."]
    requests = [ScoreRequest(c, r) for c in contexts for r in CONTINUATIONS[:3]]
    requests.append(ScoreRequest("A context of its own", " and its answer"))
    packed = tiny_model.score(requests, batch_size=16)
    alone = [tiny_model.score([r])[0] for r in requests]
    for p, a in zip(packed, alone):
        assert p.tokens == a.tokens
        assert p.token_logprobs == pytest.approx(a.token_logprobs, abs=1e-4)
        assert p.is_greedy == a.is_greedy
    split = tiny_model.score(requests, batch_size=2)  # packs split a group across batches
    assert [s.logprob for s in split] == pytest.approx([a.logprob for a in alone], abs=1e-4)


def test_one_token_continuations_of_a_shared_context_score_as_alone(tiny_model):
    # Multiple choice: every continuation is one token, so only the context runs.
    requests = [ScoreRequest(CONTEXT, c) for c in [" A", " B", " C"]]
    assert all(len(tiny_model.score([r])[0].tokens) == 1 for r in requests)
    shared = tiny_model.score(requests)
    for s, r in zip(shared, requests):
        assert s.token_logprobs == pytest.approx(tiny_model.score([r])[0].token_logprobs, abs=1e-4)


def test_right_padded_rows_of_different_lengths_score_as_alone(tiny_model):
    requests = [ScoreRequest("One", " two three four five"), ScoreRequest(CONTEXT, " x"),
                ScoreRequest("Mid length context, a few words", " and a longer answer than the first")]  # fmt: skip
    batched = tiny_model.score(requests)
    for b, r in zip(batched, requests):
        assert b.token_logprobs == pytest.approx(tiny_model.score([r])[0].token_logprobs, abs=1e-4)


def test_mixed_shared_and_single_requests_keep_their_order(tiny_model):
    requests = [ScoreRequest(CONTEXT, " a b c"), ScoreRequest("Other context here", " x"),
                ScoreRequest(CONTEXT, " d e")]  # fmt: skip
    mixed = tiny_model.score(requests, batch_size=2)
    alone = [tiny_model.score([r])[0] for r in requests]
    assert [m.tokens for m in mixed] == [a.tokens for a in alone]
    for m, a in zip(mixed, alone):
        assert m.logprob == pytest.approx(a.logprob, abs=1e-3)


def test_next_token_logprobs_equal_scores_of_one_token(tiny_model):
    prompt = tiny_model.format_prompt("Is the sky blue? Answer 1 or 2.")
    [values] = tiny_model.next_token_logprobs([NextTokenRequest(prompt, ("1", "2"))])
    scored = tiny_model.score([ScoreRequest(prompt, "1"), ScoreRequest(prompt, "2")])
    assert values == pytest.approx([s.logprob for s in scored], abs=1e-4)
    with pytest.raises(NevermindError, match="not a single token"):
        tiny_model.next_token_logprobs([NextTokenRequest(prompt, ("supercalifragilistic",))])


def test_sequence_logprobs_equal_continuation_scores(tiny_model):
    context, continuation = "The capital of France is", " Paris, of course."
    [scored] = tiny_model.score([ScoreRequest(context, continuation)])
    ids = tiny_model.encode(context) + scored.tokens
    [rolled] = tiny_model.sequence_logprobs([ids], top_k=3)
    assert rolled.logprobs[0] is None
    tail = rolled.logprobs[-len(scored.tokens) :]
    assert tail == pytest.approx(scored.token_logprobs, abs=1e-4)
    best = [top[0][1] for top in rolled.top[1:]]
    assert all(b >= v - 1e-6 for b, v in zip(best, rolled.logprobs[1:]))
    [some] = tiny_model.sequence_logprobs([ids], positions=[len(ids) - 1])
    assert some.logprobs[:-1] == [None] * (len(ids) - 1)
    assert some.logprobs[-1] == pytest.approx(rolled.logprobs[-1], abs=1e-5)


def test_batched_sequences_of_different_lengths_equal_single(tiny_model):
    rows = [tiny_model.encode("one two three four five six"), tiny_model.encode("seven eight")]
    batched = tiny_model.sequence_logprobs(rows, batch_size=2)
    single = [tiny_model.sequence_logprobs([r])[0] for r in rows]
    for b, s in zip(batched, single):
        assert b.logprobs[1:] == pytest.approx(s.logprobs[1:], abs=1e-4)


def test_token_prompt_generates_like_its_text(tiny_model):
    config = GenerationConfig(max_new_tokens=6)
    text = tiny_model.format_prompt("Name a color.")
    [from_text] = tiny_model.generate([GenerateRequest(text, chat=False)], config)
    [from_ids] = tiny_model.generate([GenerateRequest(TokensPrompt(tiny_model.encode(text)))], config)
    assert from_ids.token_ids == from_text.token_ids


def test_streamed_tokens_are_the_generated_ones_and_a_stream_can_be_cancelled(tiny_model):
    config = GenerationConfig(max_new_tokens=8)
    prompts = ["Tell me a story.", "Count to ten.", "Say hi."]
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def watch(index: int, token: int) -> bool:
        seen[index].append(token)
        return not (index == 1 and len(seen[1]) == 3)  # the client of request 1 hangs up

    outs = tiny_model.generate(prompts, config, on_token=watch, batch_size=3)
    plain = tiny_model.generate(prompts, config, batch_size=3)
    assert seen[0] == outs[0].token_ids == plain[0].token_ids
    assert seen[2] == outs[2].token_ids == plain[2].token_ids
    assert len(seen[1]) == 3 and outs[1].token_ids == plain[1].token_ids[:3]
    assert outs[1].finish_reason == "stop"


class _ForceToken:
    """A logits processor that makes request i emit token wanted[i] at every step: it can only do
    so if the backend says which request each row of the batch is."""

    def __init__(self, wanted: list[int]) -> None:
        self.wanted, self.rows = wanted, None

    def start_rows(self, indices: list[int]) -> None:
        self.rows = indices

    def __call__(self, input_ids, scores):
        forced = scores.new_full(scores.shape, float("-inf"))
        for row, request in enumerate(self.rows):
            forced[row, self.wanted[request]] = 0.0
        return forced


def test_processors_learn_which_request_each_row_is(tiny_model):
    # prompts of different lengths, so the backend's batching reorders them
    prompts = ["Hi.", "Tell me a long story about a dragon and a knight.", "Count to three, please."]
    wanted = [tiny_model.encode(w, prefix=False)[0] for w in (" apple", " river", " stone")]
    outs = tiny_model.generate(prompts, GenerationConfig(max_new_tokens=3), logits_processors=[_ForceToken(wanted)],
                               batch_size=2)  # fmt: skip
    assert [o.token_ids for o in outs] == [[w] * 3 for w in wanted]


class _FirstScores:
    """Keeps the scores of the first step of the last batch."""

    def start_batch(self, prompt_length: int) -> None:
        self.first = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.first = scores.clone()
        return scores


def test_generate_never_carries_dynamic_rope_over_from_a_longer_batch(tiny_llama_dir):
    long_ids, short_ids = list(range(300, 600)), list(range(300, 400))  # both past the 64 declared positions
    config = GenerationConfig(max_new_tokens=1)
    used = load_model(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64)
    used.generate([GenerateRequest(TokensPrompt(long_ids))], config)  # grows the base for 300 tokens
    after_long, fresh_scores = _FirstScores(), _FirstScores()
    used.generate([GenerateRequest(TokensPrompt(short_ids))], config, logits_processors=[after_long])
    fresh = load_model(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64)
    fresh.generate([GenerateRequest(TokensPrompt(short_ids))], config, logits_processors=[fresh_scores])
    assert (after_long.first - fresh_scores.first).abs().max() < 1e-5


def test_require_names_the_missing_capability(tiny_model):
    class Remote:
        name, backend, capabilities = "gpt", "openai", frozenset({"generate", "score"})

    require(tiny_model, "sequence_logprobs", purpose="perplexity")
    with pytest.raises(NevermindError, match=r"perplexity needs .*per-token.*'gpt' \(backend openai\)"):
        require(Remote(), "sequence_logprobs", purpose="perplexity")


def test_backend_registry_lists_and_loads_lazily(tiny_llama_dir):
    assert {"hf", "openai", "vllm", "llamacpp"} <= set(available_backends())
    model = load_model(str(tiny_llama_dir), backend="hf", device="cpu")
    assert model.backend == "hf"
    with pytest.raises(NevermindError, match="unknown backend 'nope'"):
        get_backend("nope")


def test_a_backend_whose_library_is_missing_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "nm_fake_backend.py").write_text("import surely_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.BUILTIN, "fakebackend", ("nm_fake_backend", "fakeextra", "a test"))
    with pytest.raises(NevermindError, match=r"surely_not_installed_xyz.*pip install 'nevermind\[fakeextra\]'"):
        get_backend("fakebackend")
    sys.modules.pop("nm_fake_backend", None)
