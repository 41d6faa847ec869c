"""The llamacpp backend on the bundled SmolLM2 GGUF (quantized weights run as stored): the interface,
the same prompt tokens as the transformers backend, scores close to transformers' on the dequantized
weights, nevermind's logits processors inside the decoding loop, stop strings, seeds, streaming, and
the conflict suite through `nevermind eval --backend llamacpp`."""

from __future__ import annotations

import pytest
import torch

from tests.models.backend_checks import (
    EndAfter,
    assert_scores_agree,
    require_library,
    scoring_requests,
    suite_scores,
)

require_library("llama_cpp", "llamacpp")

from nevermind.adapters import generate_with_adapters
from nevermind.errors import ModelNotFoundError, NevermindError
from nevermind.models import (
    GenerateRequest,
    GenerationConfig,
    LanguageModel,
    NextTokenRequest,
    ScoreRequest,
    TokensPrompt,
    load_model,
)
from nevermind.models.llamacpp import locate_gguf

PROMPTS = ["What is the capital of France?", "Name three colors.", "Write a haiku about rain."]


@pytest.fixture(scope="module")
def llama():
    return load_model("smollm2-135m-instruct", backend="llamacpp:score_n_ctx=1024")


class ForceToken:
    """A logits processor that leaves only one token possible (and records the calls it gets)."""

    def __init__(self, token: int) -> None:
        self.token = token
        self.prompt_length: int | None = None
        self.widths: list[int] = []

    def start_batch(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.widths.append(input_ids.shape[1])
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token] = 0.0
        return forced


def test_only_gguf_files_and_the_cpu_are_accepted(tmp_path):
    with pytest.raises(NevermindError, match="the llamacpp backend runs GGUF files: give a .gguf path"):
        locate_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        locate_gguf(str(tmp_path / "missing.gguf"))
    for options, message in (({"device": "cuda"}, "runs on cpu, not on cuda"),
                             ({"dtype": "float32"}, "dtype float32 is not possible"),
                             ({"rope": "ntk:2"}, "does not scale RoPE")):  # fmt: skip
        with pytest.raises(NevermindError, match=message):
            load_model("smollm2-135m-instruct", backend="llamacpp", **options)
    with pytest.raises(NevermindError, match=r"backend llamacpp: n_thread: unknown option"):
        load_model("smollm2-135m-instruct", backend="llamacpp:n_thread=2")


@pytest.mark.slow
def test_the_model_implements_the_interface_with_the_transformers_prompts(llama, smollm2):
    assert isinstance(llama, LanguageModel)
    assert "rope" not in llama.capabilities and "logits_processors" in llama.capabilities
    assert llama.eos_token_ids == smollm2.eos_token_ids
    import llama_cpp

    vocab = llama_cpp.Llama(str(llama.gguf), vocab_only=True, verbose=False)
    for prompt in PROMPTS:
        text = llama.format_prompt(prompt)
        assert text == smollm2.format_prompt(prompt)
        assert llama.encode(text) == smollm2.encode(text)
        # llama.cpp's own tokenizer agrees with the one transformers read from the same GGUF
        assert vocab.tokenize(text.encode(), add_bos=False, special=True) == llama.encode(text)
    vocab.close()


@pytest.mark.slow
def test_scores_are_close_to_transformers_and_a_shared_prefix_changes_nothing(llama, smollm2):
    requests = scoring_requests(smollm2)
    ours = llama.score(requests)
    reference = smollm2.score(requests)
    gaps = [abs(a - b) for x, y in zip(ours, reference) for a, b in zip(x.token_logprobs, y.token_logprobs)]
    assert [r.tokens for r in ours] == [r.tokens for r in reference]
    # llama.cpp multiplies the 4-bit (Q4_1) weights with 8-bit-quantized activations: close, not equal.
    # Measured on these 40 tokens: mean 0.076, largest 0.37 nats; the bounds are about twice that.
    assert sum(gaps) / len(gaps) < 0.15 and max(gaps) < 0.75, (sum(gaps) / len(gaps), max(gaps))
    # positive control: the same comparison one position off (a misaligned row) is far outside them
    shifted = [abs(a - b) for x, y in zip(ours, reference) for a, b in zip(x.token_logprobs[1:], y.token_logprobs)]
    assert sum(shifted) / len(shifted) > 0.5, sum(shifted) / len(shifted)
    alone = [llama.score([r])[0] for r in reversed(requests)][::-1]  # each evaluated from scratch or another prefix
    for a, b in zip(ours, alone):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


@pytest.mark.slow
def test_next_token_and_sequence_logprobs_agree_with_scores(llama):
    prompt = llama.format_prompt("Is the sky blue? Answer 1 or 2.")
    [values] = llama.next_token_logprobs([NextTokenRequest(prompt, ("1", "2"))])
    scored = llama.score([ScoreRequest(prompt, "1"), ScoreRequest(prompt, "2")])
    assert values == pytest.approx([s.logprob for s in scored], abs=1e-4)
    [scored] = llama.score([ScoreRequest("The capital of France is", " Paris, of course.")])
    ids = llama.encode("The capital of France is") + scored.tokens
    [rolled] = llama.sequence_logprobs([ids], top_k=3)
    assert rolled.logprobs[0] is None
    assert rolled.logprobs[-len(scored.tokens) :] == pytest.approx(scored.token_logprobs, abs=1e-4)
    assert all(top[0][1] >= value - 1e-6 for top, value in zip(rolled.top[1:], rolled.logprobs[1:]))
    with pytest.raises(NevermindError, match="does not fit the llama.cpp context of 1024 tokens"):
        llama.sequence_logprobs([ids * 200])


@pytest.mark.slow
def test_generation_stops_streams_and_repeats_with_a_seed(llama):
    # the stop string is a word from the middle of the model's own answer (greedy texts are the
    # quantized model's, not transformers')
    [whole] = llama.generate(["Name three colors."], GenerationConfig(max_new_tokens=40))
    stop = whole.text.split()[len(whole.text.split()) // 2]
    [stopped] = llama.generate(["Name three colors."], GenerationConfig(max_new_tokens=40, stop=(stop,)))
    assert stopped.finish_reason == "stop" and stopped.text == whole.text[: whole.text.index(stop)]
    assert stop in llama.decode(stopped.token_ids) and stop not in llama.decode(stopped.token_ids[:-1])
    [short] = llama.generate(["Tell me a long story."], GenerationConfig(max_new_tokens=3))
    assert short.finish_reason == "length" and len(short.token_ids) == 3
    eos = min(llama.eos_token_ids)  # ending is forced: whether the model ends by itself is its own business
    [ended] = llama.generate(["Say yes."], GenerationConfig(max_new_tokens=64), logits_processors=[EndAfter(2, eos)])
    assert ended.finish_reason == "eos" and len(ended.token_ids) == 3 and ended.token_ids[-1] == eos
    assert ended.text == llama.decode(ended.token_ids[:2])
    text = llama.format_prompt("Name a color.")
    config = GenerationConfig(max_new_tokens=8)
    [from_text] = llama.generate([GenerateRequest(text, chat=False)], config)
    [from_ids] = llama.generate([GenerateRequest(TokensPrompt(llama.encode(text)))], config)
    assert from_ids.token_ids == from_text.token_ids
    sampled = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=5)
    assert [g.token_ids for g in llama.generate(PROMPTS, sampled)] == [g.token_ids for g in llama.generate(PROMPTS, sampled)]
    seen: dict[int, list[int]] = {0: [], 1: []}

    def watch(index: int, token: int) -> bool:
        seen[index].append(token)
        return not (index == 0 and len(seen[0]) == 2)

    outs = llama.generate(PROMPTS[:2], config, on_token=watch)
    plain = llama.generate(PROMPTS[:2], config)
    assert outs[0].token_ids == plain[0].token_ids[:2] and outs[0].finish_reason == "stop"
    assert seen[1] == outs[1].token_ids == plain[1].token_ids


@pytest.mark.slow
def test_logits_processors_run_in_the_decoding_loop(llama, smollm2):
    token = llama.encode(" banana", prefix=False)[0]
    forcing = ForceToken(token)
    prompt = llama.encode(llama.format_prompt("Hi"))
    [forced] = llama.generate(["Hi"], GenerationConfig(max_new_tokens=4), logits_processors=[forcing])
    assert forced.token_ids == [token] * 4
    assert forcing.prompt_length == len(prompt) and forcing.widths == [len(prompt) + k for k in range(4)]
    config = GenerationConfig(max_new_tokens=40)
    plain = llama.generate(PROMPTS[1:], config)
    ruled = generate_with_adapters(llama, PROMPTS[1:], config, ["rules"])
    assert [g.token_ids for g in ruled] != [g.token_ids for g in plain]
    [answer] = llama.generate(["What is the capital of France?"], config)
    word = max(answer.text.replace(",", " ").split(), key=len)  # a word the plain answer uses
    [filtered] = generate_with_adapters(llama, ["What is the capital of France?"], config, [f"keywords:banned={word}"])
    assert word in answer.text and word not in filtered.text
    # thought inhibition's drafting rounds: its round processor is told each request's index (start_rows)
    prompts = ["What is the capital of France?", "Name three colors."]
    inhibited = generate_with_adapters(llama, prompts, config, [f"inhibition:banned={word},k=4"])
    assert word.lower() not in inhibited[0].text.lower() and inhibited[0].text != answer.text
    assert inhibited[1].text == plain[0].text  # nothing banned there: plain greedy decoding


@pytest.mark.slow
def test_the_conflict_suite_on_llamacpp_agrees_with_transformers():
    reference = suite_scores("hf")
    ours = suite_scores("llamacpp")
    table = assert_scores_agree(reference, ours)
    same = sum(a["output"] == b["output"] for a, b in zip(
        sorted(reference["records"], key=lambda r: (r["task"], r["id"])),
        sorted(ours["records"], key=lambda r: (r["task"], r["id"])),
    ))  # fmt: skip
    print("\n".join(table), f"\nidentical outputs: {same}/{len(ours['records'])}")  # quantized: many differ


@pytest.mark.slow
def test_eval_runs_the_rules_adapter_on_llamacpp(tmp_path):
    from tests.cli_runner import run_cli

    result = run_cli("eval", "-m", "smollm2-135m-instruct", "--backend", "llamacpp", "--tasks", "jailbreak",
                     "--limit", "4", "--adapters", "rules", "--out", tmp_path, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    [samples] = list(tmp_path.glob("*/samples.jsonl"))
    assert len(samples.read_text().splitlines()) == 4
