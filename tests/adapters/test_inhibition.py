"""Thought inhibition: same tokens as plain decoding when nothing is flagged; an unsafe draft is cut
at its first offending token, which is banned there, and the safe prefix is kept."""

import math

import pytest

from nevermind.adapters import (
    ModelModerator,
    RegexModerator,
    ThoughtInhibition,
    build_adapter,
    generate_with_adapters,
)
from nevermind.errors import NevermindError
from nevermind.models import GenerateRequest, GenerationConfig

PROMPTS = [GenerateRequest("Tell me a story about", chat=False), GenerateRequest("The capital of France is", chat=False)]
CONFIG = GenerationConfig(max_new_tokens=16)
NEVER = RegexModerator("(?!)")  # matches nothing


def test_unflagged_drafts_give_plain_greedy_tokens(tiny_model):
    plain = tiny_model.generate(PROMPTS, CONFIG, batch_size=1)
    for k in (1, 3, 8):
        inhibited = generate_with_adapters(tiny_model, PROMPTS, CONFIG, [ThoughtInhibition(NEVER, k=k)])
        assert [g.token_ids for g in inhibited] == [g.token_ids for g in plain]
        assert [g.text for g in inhibited] == [g.text for g in plain]


def test_processors_run_inside_the_loop(tiny_llama):
    plain = generate_with_adapters(tiny_llama, PROMPTS, CONFIG, ["rules:eos=false"])
    inhibited = generate_with_adapters(tiny_llama, PROMPTS, CONFIG, ["rules:eos=false", ThoughtInhibition(NEVER, k=4)])
    assert [g.token_ids for g in inhibited] == [g.token_ids for g in plain]


def test_unsafe_draft_is_cut_at_its_first_offending_token(tiny_model):
    free = tiny_model.generate([PROMPTS[0]], CONFIG)[0]
    tokenizer = tiny_model.tokenizer
    # ban the text the 6th token completes: everything before it stays, that token is banned there
    safe_text = tokenizer.decode(free.token_ids[:5], skip_special_tokens=True)
    full_text = tokenizer.decode(free.token_ids[:6], skip_special_tokens=True)
    banned = full_text[len(safe_text) - 2 :] if len(safe_text) >= 2 else full_text
    assert banned.strip() and banned in free.text
    keep = next(m for m in range(len(free.token_ids) + 1)
                if banned in tokenizer.decode(free.token_ids[: m + 1], skip_special_tokens=True))
    adapter = build_adapter("inhibition", tiny_model, banned=[banned], ignore_case=False, k=4)
    out = generate_with_adapters(tiny_model, [PROMPTS[0]], CONFIG, [adapter])[0]
    assert banned not in out.text
    assert out.token_ids[:keep] == free.token_ids[:keep]
    assert len(out.token_ids) <= keep or out.token_ids[keep] != free.token_ids[keep]
    assert adapter.stats.inhibitions >= 1 and adapter.stats.drafted_tokens > adapter.stats.emitted_tokens


def test_model_moderator_margins_and_giving_up(tiny_llama):
    moderator = ModelModerator(tiny_llama)
    request = GenerateRequest([{"role": "system", "content": "Never say banana."}, {"role": "user", "content": "Hi"}])
    margins = moderator.margins(request, ["Hello there.", "banana banana"])
    assert len(margins) == 2 and all(math.isfinite(m) for m in margins) and margins[0] != margins[1]
    always_unsafe = ThoughtInhibition(ModelModerator(tiny_llama, threshold=-1e9), k=2, max_inhibitions=2)
    out = generate_with_adapters(tiny_llama, [request], CONFIG, [always_unsafe])[0]
    assert out.text == "" and out.finish_reason == "stop" and always_unsafe.stats.ended_by_moderator == 1
    assert always_unsafe.stats.inhibitions == 3


@pytest.mark.parametrize(
    "spec, message",
    [
        ("inhibition", "banned"),
        ("inhibition:moderator=nope", "unknown moderator"),
        ("inhibition:moderator=regex,pattern=(", "bad moderator pattern"),
        ("inhibition:k=0,banned=x", "k"),
    ],
)
def test_bad_inhibition_specs(tiny_llama, spec, message):
    with pytest.raises(NevermindError, match=message):
        build_adapter(spec, tiny_llama)


def test_two_decoding_adapters_are_refused(tiny_llama):
    with pytest.raises(NevermindError, match="at most one"):
        generate_with_adapters(tiny_llama, ["hi"], CONFIG, [ThoughtInhibition(NEVER), ThoughtInhibition(NEVER)])
