"""The keyword filter: banned strings never reach the decoded output, even across token boundaries."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nevermind.adapters import KeywordFilter, KeywordsConfig, generate_with_adapters
from nevermind.errors import NevermindError
from nevermind.models import GenerateRequest, GenerationConfig

PROMPTS = [GenerateRequest(p, chat=False) for p in ("Tell me a story about", "The capital of France is", "List three colors:")]
CONFIG = GenerationConfig(max_new_tokens=12)


@pytest.fixture(scope="module")
def free_outputs(tiny_model):
    """What the tiny model writes without the filter: banned strings are drawn from it."""
    return [g.text for g in tiny_model.generate(PROMPTS, CONFIG)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_banned_substrings_of_the_free_output_never_appear(tiny_model, free_outputs, data):
    prompt = data.draw(st.sampled_from(range(len(PROMPTS))), label="prompt")
    text = free_outputs[prompt]
    banned = []
    for _ in range(data.draw(st.integers(1, 3), label="count")):
        start = data.draw(st.integers(0, max(len(text) - 2, 0)), label="start")
        length = data.draw(st.integers(1, 6), label="length")
        if text[start : start + length].strip():
            banned.append(text[start : start + length])
    if not banned:
        banned = [text[:3] or "x"]
    spec = "keywords:banned=" + ";".join(b.replace(";", "") or "x" for b in banned)
    if any(c in b for b in banned for c in ",=[{\"'"):  # pass awkward strings through Python instead
        from nevermind.adapters import build_adapter

        adapter = build_adapter("keywords", tiny_model, banned=[b for b in banned if b])
        spec = adapter
    out = generate_with_adapters(tiny_model, [PROMPTS[prompt]], CONFIG, [spec])[0]
    for b in banned:
        assert b not in out.text, (b, out.text, text)


def test_multi_token_word_is_blocked_at_its_last_token(tiny_llama):
    tokenizer = tiny_llama.tokenizer
    ids = tokenizer(" periwinkle", add_special_tokens=False).input_ids
    assert len(ids) >= 2  # spelled across several tokens
    f = KeywordFilter(tokenizer, KeywordsConfig(banned=["periwinkle"]))
    f.start_batch(1)
    prefix = torch.tensor([[0] + ids[:-1]])
    scores = f(prefix, torch.zeros(1, tiny_llama.model.config.vocab_size))
    assert scores[0, ids[-1]] == float("-inf")
    assert torch.isfinite(scores[0, ids[0]])  # the word's start alone is allowed here
    free = KeywordFilter(tokenizer, KeywordsConfig(banned=["periwinkle"]))
    free.start_batch(1)
    assert torch.isfinite(free(torch.tensor([[0]]), torch.zeros(1, tiny_llama.model.config.vocab_size))[0, ids[-1]])


def test_ignore_case(tiny_llama):
    f = KeywordFilter(tiny_llama.tokenizer, KeywordsConfig(banned=["hello"], ignore_case=True))
    for variant in (" Hello", " HELLO", "hello"):
        ids = tiny_llama.tokenizer(variant, add_special_tokens=False).input_ids
        if len(ids) == 1:
            assert ids[0] in f.always


@pytest.mark.parametrize("spec", ["keywords", "keywords:banned=", "keywords:nope=1,banned=a", "keywords:banned"])
def test_bad_specs_are_one_line_errors(tiny_llama, spec):
    with pytest.raises(NevermindError) as error:
        generate_with_adapters(tiny_llama, ["hi"], CONFIG, [spec])
    assert "\n" not in str(error.value)
