"""The rules adapter: each rule's exact effect on the logits, with the tiny models' real tokenizers."""

import pytest
import torch

from nevermind.adapters import REFERENCE_TOKEN_WEIGHTS, RulesConfig, build_adapter, generate_with_adapters
from nevermind.adapters.rules import RulesAdapter
from nevermind.models import GenerationConfig

PROMPT = [[5, 6, 7]]


def only(tiny_model, **on):
    config = RulesConfig(**{"eos": False, "tokens": False, "used": False, **on})
    adapter = RulesAdapter(tiny_model.tokenizer, tiny_model.eos_token_ids, config)
    adapter.start_batch(len(PROMPT[0]))
    return adapter


def vocab(tiny_model):
    return tiny_model.model.config.vocab_size


def test_rule_1_eos_bonus_grows_with_length_then_stops(tiny_model):
    adapter = only(tiny_model, eos=True)
    eos = sorted(tiny_model.eos_token_ids)
    for generated, bonus in [(0, 0.0), (1, 15 / 250), (100, 6.0), (249, 15 * 249 / 250), (250, 0.0), (400, 0.0)]:
        adapter.start_batch(len(PROMPT[0]))
        ids = torch.tensor([PROMPT[0] + [9] * generated])
        out = adapter(ids, torch.zeros(1, vocab(tiny_model)))
        assert out[0, eos].tolist() == pytest.approx([bonus] * len(eos))
        others = torch.ones(vocab(tiny_model), dtype=torch.bool)
        others[eos] = False
        assert out[0, others].abs().max().item() == 0


def test_rule_2_token_strings_with_and_without_leading_space(tiny_model):
    adapter = only(tiny_model, tokens=True)
    out = adapter(torch.tensor(PROMPT), torch.zeros(1, vocab(tiny_model)))[0]
    tokenizer = tiny_model.tokenizer
    checked = 0
    for string, weight in REFERENCE_TOKEN_WEIGHTS.items():
        for variant in (string, " " + string):
            ids = tokenizer(variant, add_special_tokens=False).input_ids
            if len(ids) == 1 and tokenizer.decode(ids) == variant:
                assert out[ids[0]].item() == pytest.approx(weight), (variant, ids)
                checked += 1
    assert checked >= 15  # most strings exist as single tokens in both vocabularies, bare and spaced
    for token_id in out.nonzero()[:, 0].tolist():  # nothing else moved
        text = tokenizer.decode([token_id])
        assert text.removeprefix(" ") in REFERENCE_TOKEN_WEIGHTS or text in REFERENCE_TOKEN_WEIGHTS, text


def test_rule_2_custom_weights(tiny_model):
    adapter = only(tiny_model, tokens=True, token_weights={"Hello": 2.5})
    out = adapter(torch.tensor(PROMPT), torch.zeros(1, vocab(tiny_model)))[0]
    spaced = tiny_model.tokenizer(" Hello", add_special_tokens=False).input_ids
    bare = tiny_model.tokenizer.convert_tokens_to_ids("Hello")
    assert len(spaced) == 1 and out[spaced[0]].item() == 2.5 and out[bare].item() == 2.5
    assert int((out != 0).sum()) == 2


def test_rule_3_penalises_each_distinct_generated_token_once(tiny_model):
    adapter = only(tiny_model, used=True)
    width = vocab(tiny_model)
    generated = [11, 12, 11, 13]
    for step in range(len(generated) + 1):  # step by step, as generate calls it
        ids = torch.tensor([PROMPT[0] + generated[:step]])
        out = adapter(ids, torch.zeros(1, width))[0]
        expected = torch.zeros(width)
        expected[list(set(generated[:step]))] = -1.5
        assert torch.equal(out, expected)
    assert out[PROMPT[0]].abs().sum() == 0  # the prompt's tokens are not counted


def test_rules_add_up_and_batch_rows_are_independent(tiny_model):
    adapter = build_adapter("rules", tiny_model)
    adapter.start_batch(2)
    ids = torch.tensor([[1, 2, 40, 41], [1, 2, 50, 50]])
    scores = torch.randn(2, vocab(tiny_model))
    out = adapter(ids, scores.clone())
    eos = min(tiny_model.eos_token_ids)
    for row, used in ((0, {40, 41}), (1, {50})):
        parts = [only(tiny_model, **{rule: True}) for rule in ("eos", "tokens", "used")]
        expected = scores[row].clone()
        for part in parts:
            part.start_batch(2)
            expected += part(ids[row : row + 1], torch.zeros(1, vocab(tiny_model)))[0]
        assert torch.allclose(out[row], expected)
        assert out[row, eos] == pytest.approx(scores[row, eos].item() + 15 * 2 / 250 + adapter._bias[eos].item())
        assert {i for i in used} <= set((out[row] - scores[row] - adapter._bias).lt(-1).nonzero()[:, 0].tolist())


def test_rules_through_generate(tiny_llama):
    config = GenerationConfig(max_new_tokens=12)
    distinct = generate_with_adapters(tiny_llama, ["hello"], config, ["rules:eos=false,tokens=false,used_weight=-1e4"])
    assert len(set(distinct[0].token_ids)) == len(distinct[0].token_ids) == 12
    ends = generate_with_adapters(tiny_llama, ["hello"], config, ["rules:eos_weight=1e6,eos_horizon=250"])
    assert ends[0].finish_reason == "eos" and len(ends[0].token_ids) == 2
