"""The rules adapter: each rule's exact effect on the logits, with the tiny models' real tokenizers."""

import pytest
import torch

from nevermind.adapters import (
    REFERENCE_TOKEN_WEIGHTS,
    TOKEN_PRESETS,
    RulesConfig,
    build_adapter,
    generate_with_adapters,
)
from nevermind.adapters.rules import RulesAdapter, special_token_ids, user_turn_marker
from nevermind.models import GenerationConfig
from nevermind.models.requests import GenerateRequest

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


_SPELLED = {}


def spelled(tokenizer):
    """Every token's text as it reads after earlier text (decoded after token 0, then cut off)."""
    if id(tokenizer) not in _SPELLED:
        anchor = tokenizer.decode([0])
        texts = tokenizer.batch_decode([[0, i] for i in range(len(tokenizer))])
        _SPELLED[id(tokenizer)] = [t[len(anchor) :] for t in texts]
    return _SPELLED[id(tokenizer)]


def single_token(tokenizer, text):
    """The id of the (first) ordinary token spelling exactly `text`, or None."""
    special = set(tokenizer.all_special_ids)
    return next((i for i, t in enumerate(spelled(tokenizer)) if t == text and i not in special), None)


def test_rule_2_reference_preset_keeps_the_reference_spacing(tiny_model):
    adapter = only(tiny_model, tokens=True)
    out = adapter(torch.tensor(PROMPT), torch.zeros(1, vocab(tiny_model)))[0]
    tokenizer = tiny_model.tokenizer
    checked = 0
    for string, weight in REFERENCE_TOKEN_WEIGHTS.items():
        token_id = single_token(tokenizer, string)
        if token_id is not None:
            assert out[token_id].item() == pytest.approx(weight), (string, token_id)
            checked += 1
    assert checked >= 13  # nearly every string of the reference is one token in both vocabularies
    # the reference lists "▁We" and "▁should" but not bare "We"/"should", and bare "What" but not "▁What"
    for unlisted in ("We", "should", " What"):
        token_id = single_token(tokenizer, unlisted)
        assert token_id is not None and out[token_id].item() == 0, unlisted
    for token_id in out.nonzero()[:, 0].tolist():  # nothing else moved
        assert spelled(tokenizer)[token_id] in REFERENCE_TOKEN_WEIGHTS


def test_rule_2_both_spacings_preset_is_the_earlier_list(tiny_model):
    adapter = only(tiny_model, tokens=True, token_preset="both-spacings")
    out = adapter(torch.tensor(PROMPT), torch.zeros(1, vocab(tiny_model)))[0]
    for string, weight in [("We", -3), (" We", -3), ("What", -5), (" What", -5), ("should", -6), ("*", 1)]:
        token_id = single_token(tiny_model.tokenizer, string)
        assert token_id is not None and out[token_id].item() == weight, string
    assert TOKEN_PRESETS["both-spacings"]["I"] == TOKEN_PRESETS["both-spacings"][" I"] == -5


def test_rule_2_custom_weights_are_matched_as_written(tiny_model):
    adapter = only(tiny_model, tokens=True, token_weights={" Hello": 2.5})
    out = adapter(torch.tensor(PROMPT), torch.zeros(1, vocab(tiny_model)))[0]
    spaced = tiny_model.tokenizer(" Hello", add_special_tokens=False).input_ids
    bare = tiny_model.tokenizer.convert_tokens_to_ids("Hello")
    assert len(spaced) == 1 and out[spaced[0]].item() == 2.5 and out[bare].item() == 0
    assert int((out != 0).sum()) == 1


def test_rule_3_response_scope_penalises_each_distinct_generated_token_once(tiny_model):
    adapter = only(tiny_model, used=True, scope="response")
    width = vocab(tiny_model)
    generated = [11, 12, 11, 13]
    for step in range(len(generated) + 1):  # step by step, as generate calls it
        ids = torch.tensor([PROMPT[0] + generated[:step]])
        out = adapter(ids, torch.zeros(1, width))[0]
        expected = torch.zeros(width)
        expected[list(set(generated[:step]))] = -1.5
        assert torch.equal(out, expected)
    assert out[PROMPT[0]].abs().sum() == 0  # the prompt's tokens are not counted


def chat_prompt_ids(model, instruction):
    return model.encode(model.format_prompt(GenerateRequest(instruction, chat=True)))


def test_default_rule_3_penalises_the_instruction_at_the_first_response_step(tiny_model):
    """Reference scope: from just after the user-turn marker — instruction and assistant marker."""
    instruction = "Describe zebras quickly"
    prompt = chat_prompt_ids(tiny_model, instruction)
    adapter = build_adapter("rules", tiny_model)  # every default
    adapter.start_batch(len(prompt))
    scores = torch.zeros(1, vocab(tiny_model))
    change = adapter(torch.tensor([prompt]), scores)[0] - adapter._bias  # rule 2's fixed part removed
    words = tiny_model.tokenizer(" zebras quickly", add_special_tokens=False).input_ids
    assert words and all(change[t].item() == -1.5 for t in words)  # restating the instruction costs
    marker = user_turn_marker(tiny_model.tokenizer)
    before = prompt[: next(i for i in range(len(prompt), 0, -1) if prompt[i - len(marker) : i] == marker)]
    after = set(prompt[len(before) :])
    special = set(special_token_ids(tiny_model.tokenizer))
    penalised = set(change.lt(-1).nonzero()[:, 0].tolist())
    assert penalised == after - special  # marker, BOS, system prompt and special tokens stay free
    assert before and not (set(before) - after) & penalised
    response_only = build_adapter("rules:scope=response", tiny_model)
    response_only.start_batch(len(prompt))
    assert torch.equal(response_only(torch.tensor([prompt]), scores)[0], adapter._bias)


# ------------------------------------------------------------------ the reference's combination
LLAMA2_RULE_2 = {29966: "<", 529: "▁<", 29989: "|", 306: "▁I", 29902: "I", 1334: "▁We", 5618: "What",
                 881: "▁should", 334: "▁*", 448: "▁-", 1678: "▁▁▁", 396: "▁#", 444: "▁##", 13: "<0x0A>",
                 29991: "!"}  # fmt: skip
"""The ids combined_model.py sets in rule 2 and the Llama-2 token each one is (checked against the
Llama-2 vocabulary), with the reference's weights below, in the order the reference assigns them."""
LLAMA2_RULE_2_WEIGHTS = {29966: -4, 529: -4, 29989: -4, 306: -5, 29902: -5, 1334: -3, 5618: -5, 881: -6,
                         334: 1, 448: 1, 1678: 1, 396: 1, 444: 1, 13: 1, 29991: 1}  # fmt: skip


def sentencepiece_text(piece):
    """What a SentencePiece token spells after earlier text: "▁" is a space, <0xNN> a byte."""
    if piece.startswith("<0x") and piece.endswith(">"):
        return chr(int(piece[3:-1], 16))
    return piece.replace("▁", " ")


def reference_rules(row, tokenizer, user_tag, assistant_tag, eos_id, vocab_size):
    """combined_model.py's InsTunerModel.forward for `eos-uniform-diversity`, on one row of ids,
    with its Llama-2 ids carried to this tokenizer by the text each token spells."""
    output = torch.zeros(vocab_size)
    spelled = {}
    for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(list(range(vocab_size)))):
        if piece is not None and token_id not in tokenizer.all_special_ids:
            spelled.setdefault(sentencepiece_text(piece), []).append(token_id)
    for llama_id, piece in LLAMA2_RULE_2.items():  # uniform rule: fixed values by token
        for token_id in spelled.get(sentencepiece_text(piece), []):
            output[token_id] = LLAMA2_RULE_2_WEIGHTS[llama_id]
    first = None
    for i in range(len(row)):
        if row[i : i + len(user_tag)] == user_tag:
            first = i + len(user_tag)
    for token_id in set(row[first:]):  # diversity rule: every distinct token since the user tag
        output[token_id] -= 1.5
    for i in range(len(row)):
        if row[i : i + len(assistant_tag)] == assistant_tag:
            prompt_len = i + len(assistant_tag)
    prefix_len = len(row) - prompt_len
    if 0 < prefix_len < 250:  # eos rule: 5 · p / 250, times 3
        output[eos_id] += 5 * prefix_len / 250 * 3
    return output


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, input_ids, scores):
        self.calls.append((input_ids.clone(), scores.clone()))
        return scores


def test_adapter_reproduces_the_reference_combination_over_a_decode(tiny_gemma):
    """Seed 001's plain template (the tiny Gemma has no chat template): two prompts of different
    lengths decoded together, every step's next-token distribution compared with the reference's
    log_softmax(base) + log_softmax(rules)."""
    tokenizer = tiny_gemma.tokenizer
    assert tiny_gemma.format_prompt(GenerateRequest("x", chat=True)) == "<|user|>\nx\n<|assistant|>\n"
    tag = lambda text: tokenizer(text, add_special_tokens=False).input_ids[1:]  # after the "\n"
    user_tag, assistant_tag = tag("\n<|user|>\n"), tag("\n<|assistant|>\n")
    before, after = Recorder(), Recorder()
    adapter = build_adapter("rules", tiny_gemma)
    prompts = ["Write a list: should we go? I think we should!", "What is 2 + 2?"]
    config = GenerationConfig(max_new_tokens=10)
    generations = tiny_gemma.generate(
        [GenerateRequest(p, chat=True) for p in prompts], config, logits_processors=[before, adapter, after]
    )
    assert len(before.calls) >= 5  # a multi-step decode
    (eos_id,) = tiny_gemma.eos_token_ids
    for (ids, base), (_, ours) in zip(before.calls, after.calls):
        for row in range(ids.shape[0]):
            rules = reference_rules(ids[row].tolist(), tokenizer, user_tag, assistant_tag, eos_id, base.shape[1])
            combined = torch.log_softmax(base[row], -1) + torch.log_softmax(rules, -1)
            expected = torch.softmax(combined, -1)
            assert torch.allclose(torch.softmax(ours[row], -1), expected, atol=1e-6, rtol=1e-5)
    first_prompt = tiny_gemma.encode(tiny_gemma.format_prompt(GenerateRequest(prompts[0], chat=True)))
    assert generations[0].prompt_tokens == len(first_prompt)


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
