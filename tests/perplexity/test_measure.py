"""Perplexity against a position-matched baseline: the window NLLs equal transformers' own loss, the
baseline scores the same tokens after a short context, one long pass equals one pass per length,
dynamic NTK never carries over, the ratio statistic recovers a known truth, and a run resumes."""

import json
import math
import random

import pytest
import torch

from nevermind.config import load_config
from nevermind.data.haystack import haystack_text
from nevermind.errors import NevermindError
from nevermind.models import load_model
from nevermind.perplexity import (
    PerplexityConfig,
    PerplexityResult,
    find_cliff,
    measure_to_dir,
    plot_perplexity,
    ratio_over_excerpts,
    run_perplexity,
)
from nevermind.perplexity.measure import baseline_row, excerpt_starts, measure_excerpt
from nevermind.progress import RecordedProgress

TEXT = haystack_text()[:30000]


@pytest.fixture(scope="module")
def prose_ids(tiny_llama):
    return tiny_llama.encode(TEXT, prefix=False)[:400]


def _window_loss(hf_module, row, first, last):
    """Mean NLL of tokens row[first:last] by transformers' own loss (labels -100 elsewhere)."""
    ids = torch.tensor([row])
    labels = torch.full_like(ids, -100)
    labels[0, first:last] = ids[0, first:last]
    with torch.inference_mode():
        return float(hf_module(input_ids=ids, labels=labels).loss)


def test_window_nlls_equal_transformers_loss(tiny_model):
    prefix = tiny_model.encode("", prefix=True)
    row = prefix + tiny_model.encode(TEXT, prefix=False)[:300]
    lengths, window, context = [96, 160, 300], 32, 48
    full, baseline, read = measure_excerpt(tiny_model, row, prefix, lengths, window, context, dynamic=False)
    for length, value in zip(lengths, full):
        assert value == pytest.approx(_window_loss(tiny_model.model, row[:length], length - window, length), rel=1e-4)
    for length, value in zip(lengths, baseline):
        short = baseline_row(row, prefix, length, window, context)
        assert short == prefix + row[length - window - context : length]  # the same tokens after a short context
        assert value == pytest.approx(_window_loss(tiny_model.model, short, len(short) - window, len(short)), rel=1e-4)
    assert read == 300 + 3 * len(short)


def test_one_long_pass_equals_one_pass_per_length(tiny_llama, prose_ids):
    row = prose_ids[:256]
    one = measure_excerpt(tiny_llama, row, [], [64, 128, 256], 32, 16, dynamic=False)
    each = measure_excerpt(tiny_llama, row, [], [64, 128, 256], 32, 16, dynamic=True)
    assert one[0] == pytest.approx(each[0], rel=1e-5) and one[1] == pytest.approx(each[1], rel=1e-5)


def test_dynamic_ntk_never_carries_over_between_lengths(tiny_llama_dir, prose_ids):
    grown = load_model(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64)
    grown.sequence_logprobs([prose_ids[:300]])  # a long pass first, as a careless run would
    after_long = measure_excerpt(grown, prose_ids[:256], [], [64, 256], 16, 16, dynamic=True)
    fresh = load_model(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64)
    alone = measure_excerpt(fresh, prose_ids[:64], [], [64], 16, 16, dynamic=True)
    assert after_long[0][0] == pytest.approx(alone[0][0], rel=1e-5)


def test_baseline_row_and_same_context():
    row = [0] + list(range(100, 400))
    assert baseline_row(row, [0], 300, 50, 100) == [0] + list(range(249, 399))
    assert baseline_row(row, [0], 150, 50, 100) is None  # the full context is the baseline's: ratio 1
    assert baseline_row(row, [0], 152, 50, 100) == [0] + list(range(101, 251))  # BOS, then 100 + 50 tokens


def test_excerpts_are_spaced_and_checked():
    assert excerpt_starts(1000, 100, 3) == [0, 450, 900]
    assert excerpt_starts(1000, 100, 1) == [0]
    with pytest.raises(NevermindError, match="fewer than the longest length"):
        excerpt_starts(1000, 2000, 1)


def test_ratio_statistic_recovers_a_known_ratio_with_an_honest_se():
    """Simulate excerpts whose full-context NLL is the baseline's + log(1.8) + noise: the estimate
    recovers 1.8, its SE is > 0, and over many simulations the SE matches the estimates' spread."""
    rng = random.Random(0)
    truth, n, noise = 1.8, 6, 0.15
    estimates, ses = [], []
    for _ in range(3000):
        base = [rng.uniform(2.5, 4.0) for _ in range(n)]  # the text's own difficulty varies a lot
        full = [b + math.log(truth) + rng.gauss(0, noise) for b in base]
        stats = ratio_over_excerpts(full, base)
        estimates.append(math.log(stats.ratio))
        ses.append(stats.log_se)
    mean = sum(estimates) / len(estimates)
    spread = math.sqrt(sum((e - mean) ** 2 for e in estimates) / (len(estimates) - 1))
    assert math.exp(mean) == pytest.approx(truth, rel=0.01)
    assert all(se > 0 for se in ses)
    assert sum(ses) / len(ses) == pytest.approx(spread, rel=0.1)  # E[SE] ≈ sd (slightly below: n = 6)
    single = ratio_over_excerpts([3.0], [2.0])
    assert single.ratio == pytest.approx(math.e) and math.isnan(single.log_se)


def test_cliff_is_on_the_ratio():
    lengths = [512, 1024, 2048, 4096]
    assert find_cliff(lengths, [1.0, 0.97, 1.4, 9.0], 1.5) == 4096
    assert find_cliff(lengths, [1.0, 0.97, 1.6, 9.0], 1.5) == 2048
    assert find_cliff(lengths, [1.0, math.inf, 1.0, 1.0]) == 1024
    assert find_cliff(lengths, [1.0, 1.0, 1.0, 1.0]) is None


def test_run_on_tiny_gemma_scales_its_global_layers(tiny_gemma_dir, tmp_path):
    config = PerplexityConfig(model=str(tiny_gemma_dir), alphas=(1.0, 4.0), lengths=(48, 96, 160), window=16,
                              baseline_context=32, samples=2, device="cpu")  # fmt: skip
    progress = RecordedProgress()
    result = run_perplexity(config, TEXT, progress=progress)
    assert progress.items == 4 and progress.events[0] == ("begin", ("perplexity", 4, 0))
    assert [c.alpha for c in result.curves] == [1.0, 4.0]
    assert result.curves[0].rope == "none" and result.curves[1].rope == "ntk:4"
    for curve in result.curves:
        assert all(math.isfinite(p) and p > 1 for p in curve.perplexity + curve.baseline)
        assert curve.same_context == [True, False, False]  # 48 - 16 - 32 ≤ BOS: nothing shorter to compare
        assert curve.ratio[0] == 1.0 and all(se > 0 for se in curve.ratio_log_se[1:])
    d = 16  # the tiny gemma's head dimension: only the global (full-attention) base is scaled by default
    plain, scaled = result.curves[0].rope_bases, result.curves[1].rope_bases
    assert scaled["full_attention"] == pytest.approx(plain["full_attention"] * 4 ** (d / (d - 2)), rel=1e-3)
    assert scaled["sliding_attention"] == pytest.approx(plain["sliding_attention"], rel=1e-6)
    assert PerplexityResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert len(result.rows()) == 6
    assert plot_perplexity(result, tmp_path / "ppl.png").read_bytes()[:4] == b"\x89PNG"


def test_baseline_context_fits_the_models_positions(tiny_llama_dir, tiny_llama):
    config = PerplexityConfig(model=str(tiny_llama_dir), alphas=(1.0,), lengths=(64, 128), window=16,
                              baseline_context=512, samples=1, max_positions=48, device="cpu")  # fmt: skip
    result = run_perplexity(config, TEXT)
    bos = len(tiny_llama.encode("", prefix=True))
    assert result.declared_positions == 48 and result.baseline_context == 48 - bos - 16  # BOS + context + window


@pytest.mark.parametrize(
    "values, message",
    [
        ({"alphas": []}, "at least one alpha"),
        ({"alphas": [0.5]}, "alpha must be a finite number"),
        ({"alphas": [2, 2]}, "distinct"),
        ({"lengths": [128, 64]}, "distinct and ascending"),
        ({"lengths": [1, 64]}, "at least 2"),
        ({"scaling": "yarn"}, "unknown scaling"),
        ({"layers": "middle"}, "layers"),
        ({"window": 0}, "window"),
        ({"samples": 0}, "samples"),
        ({"cliff_ratio": 1.0}, "cliff ratio"),
        ({"max_positions": 1}, "max positions"),
        ({"nope": 1}, "unknown option"),
    ],
)
def test_bad_config_is_one_line_error(values, message):
    with pytest.raises(NevermindError, match=message) as error:
        load_config(PerplexityConfig, None, {"model": "x", **values})
    assert "\n" not in str(error.value)


def test_config_from_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "ppl.yaml"
    path.write_text("model: smollm2-135m-instruct\nalphas: [1, 2]\nwindow: -3\n")
    with pytest.raises(NevermindError, match=r"ppl.yaml:3: window"):
        load_config(PerplexityConfig, path)
    path.write_text("model: smollm2-135m-instruct\nalphas: [1, 2]\nwindow: 64\n")
    assert load_config(PerplexityConfig, path, {"window": 32}).window == 32


def test_a_killed_run_resumes_and_another_setting_is_refused(tiny_llama_dir, tmp_path):
    config = PerplexityConfig(model=str(tiny_llama_dir), alphas=(1.0, 2.0), lengths=(48, 96), window=16,
                              baseline_context=16, samples=2, device="cpu")  # fmt: skip
    out = tmp_path / "ppl"
    first, reused = measure_to_dir(config, out, text=TEXT)
    assert reused == 0
    records = out / "perplexity.records.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    assert len(lines) == 4
    records.write_text("".join(lines[:3]) + lines[3][:40])  # killed while writing the last record
    progress = RecordedProgress()
    again, reused = measure_to_dir(config, out, text=TEXT, progress=progress)
    assert reused == 3 and progress.items == 1  # only the torn measurement was made again
    assert again == first
    more, reused = measure_to_dir(config.model_copy(update={"alphas": (1.0, 2.0, 4.0)}), out, text=TEXT)
    assert reused == 4 and [c.alpha for c in more.curves] == [1.0, 2.0, 4.0]
    with pytest.raises(NevermindError, match="window=16, not 32"):
        measure_to_dir(config.model_copy(update={"window": 32}), out, text=TEXT)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_bundled_models_take_every_rope_option(name):
    """On the real models, through the interface: the bases read back are the formula's (Gemma 3: its
    global layers only, by default), and a short text reads as well scaled."""
    plain = load_model(name, device="cpu")
    ids = plain.encode(TEXT[:3000])[:192]

    def perplexity(model):
        [scored] = model.sequence_logprobs([ids])
        return math.exp(-sum(scored.logprobs[1:]) / (len(ids) - 1))

    base_ppl, bases = perplexity(plain), plain.info()["rope_bases"]
    dim = 256 if name == "gemma-3-270m" else 64  # head dimensions of the two models
    for rope in ("ntk:4", "linear:2", "dynamic:4"):
        scaled = load_model(name, device="cpu", rope=rope)
        for layer_type, base in bases.items():
            expected = base * 4 ** (dim / (dim - 2)) if rope == "ntk:4" and layer_type != "sliding_attention" else base
            assert scaled.info()["rope_bases"][layer_type] == pytest.approx(expected, rel=1e-3)
        ppl = perplexity(scaled)
        assert math.isfinite(ppl) and ppl < 2 * base_ppl  # 192 tokens: well inside every trained length


@pytest.mark.slow
def test_positive_control_the_unscaled_restricted_model_falls_off_its_cliff(tmp_path):
    """SmolLM2 compressed to 128 positions, read at 1024 tokens without scaling, must lose the ratio
    (positive control); the shipped model, trained on 8192, must not (negative control)."""
    config = PerplexityConfig(model="smollm2-135m-instruct", alphas=(1.0,), lengths=(256, 1024), window=64,
                              baseline_context=64, samples=2, device="cpu")  # fmt: skip
    shipped = run_perplexity(config, TEXT * 2)
    restricted = run_perplexity(config.model_copy(update={"max_positions": 128}), TEXT * 2)
    assert all(0.8 < r < 1.2 for r in shipped.curves[0].ratio) and shipped.curves[0].cliff is None
    assert restricted.curves[0].ratio[1] > 3 and restricted.curves[0].cliff == 1024
