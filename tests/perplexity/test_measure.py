"""Perplexity on tiny models of both architectures: finite, equal to the direct computation,
one long pass equal to one pass per length (static rope), dynamic NTK reset between passes."""

import json
import math

import pytest
import torch

from nevermind.data.haystack import haystack_text
from nevermind.errors import NevermindError
from nevermind.models.hf import HFModel
from nevermind.perplexity import (
    PerplexityConfig,
    PerplexityResult,
    plot_perplexity,
    run_perplexity,
    token_nll,
)
from nevermind.perplexity.measure import excerpts, measure_curve, window_mean


@pytest.fixture(scope="module")
def prose_ids(tiny_llama):
    return tiny_llama.tokenizer(haystack_text()[:4000], add_special_tokens=False).input_ids[:300]


def test_token_nll_matches_the_model_loss(tiny_model):
    ids = torch.tensor([tiny_model.tokenizer("The quick brown fox jumps over the lazy dog. " * 6).input_ids])
    nll = token_nll(tiny_model.model, ids)
    with torch.inference_mode():
        loss = tiny_model.model(input_ids=ids, labels=ids).loss
    assert nll.shape == (1, ids.shape[1] - 1)
    assert torch.isfinite(nll).all()
    assert math.exp(nll.mean()) == pytest.approx(math.exp(loss), rel=1e-4)


def test_selected_positions_match_the_full_pass(tiny_gemma, prose_ids):
    ids = torch.tensor([prose_ids[:120]])
    full = token_nll(tiny_gemma.model, ids)[0]
    some = token_nll(tiny_gemma.model, ids, [5, 60, 61, 118])[0]
    torch.testing.assert_close(some[[5, 60, 61, 118]], full[[5, 60, 61, 118]])
    assert torch.isnan(some).sum() == full.shape[0] - 4


def test_one_long_pass_equals_one_pass_per_length(tiny_llama, prose_ids):
    lengths, window = [64, 128, 256], 32
    one_pass = measure_curve(tiny_llama.model, [prose_ids], lengths, window, dynamic=False)
    for length, ppl in zip(lengths, one_pass):
        alone = token_nll(tiny_llama.model, torch.tensor([prose_ids[:length]]))[0]
        assert ppl == pytest.approx(math.exp(window_mean(alone, length, window)), rel=1e-4)


def test_dynamic_ntk_is_reset_between_lengths(tiny_llama_dir, prose_ids):
    model = HFModel.load(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64).model
    curve = measure_curve(model, [prose_ids], [64, 256], 16, dynamic=True)
    token_nll(model, torch.tensor([prose_ids[:256]]))  # leave the model grown, as a careless run would
    grown = math.exp(window_mean(token_nll(model, torch.tensor([prose_ids[:64]]))[0], 64, 16))
    fresh = HFModel.load(str(tiny_llama_dir), device="cpu", rope="dynamic:4", max_positions=64).model
    clean = math.exp(window_mean(token_nll(fresh, torch.tensor([prose_ids[:64]]))[0], 64, 16))
    assert curve[0] == pytest.approx(clean, rel=1e-5)
    assert grown != pytest.approx(clean, rel=1e-5)  # the pitfall the reset avoids is real


def test_excerpts_are_spaced_and_checked():
    tokens = list(range(1000))
    rows = excerpts(tokens, [7], 101, 3)
    assert [r[:2] for r in rows] == [[7, 0], [7, 450], [7, 900]]
    assert all(len(r) == 101 for r in rows)
    with pytest.raises(NevermindError, match="fewer than the longest length"):
        excerpts(tokens, [], 2000, 1)


def test_run_on_tiny_gemma_writes_finite_curves(tiny_gemma_dir, tmp_path):
    config = PerplexityConfig(model=str(tiny_gemma_dir), alphas=(1.0, 4.0), lengths=(32, 64, 128), window=16,
                              samples=2, device="cpu")
    result = run_perplexity(config, haystack_text()[:20000])
    assert [c.alpha for c in result.curves] == [1.0, 4.0]
    assert all(math.isfinite(p) and p > 1 for c in result.curves for p in c.perplexity)
    assert result.curves[0].rope == "none" and result.curves[1].rope == "ntk:4"
    # the effective bases read back from the model: global and local both scaled by 4^(d/(d-2))
    d = 16
    for layer_type, base in result.curves[1].rope_bases.items():
        assert base == pytest.approx(result.curves[0].rope_bases[layer_type] * 4 ** (d / (d - 2)), rel=1e-3)
    assert PerplexityResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert len(result.rows()) == 6
    png = plot_perplexity(result, tmp_path / "ppl.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alphas": ()},
        {"alphas": (0.5,)},
        {"lengths": (128, 64)},
        {"lengths": (64, 64)},
        {"lengths": (1, 64)},
        {"scaling": "yarn"},
        {"window": 0},
        {"cliff_multiple": 1.0},
        {"max_positions": 0},
    ],
)
def test_bad_config_is_one_line_error(kwargs):
    with pytest.raises(NevermindError) as error:
        PerplexityConfig(model="x", **kwargs)
    assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_bundled_models_take_every_rope_option(name):
    """On the real models: the bases read back are the formula's, and a short text reads as well scaled."""
    from nevermind.perplexity.measure import rope_bases

    text = haystack_text()[:3000]
    plain = HFModel.load(name, device="cpu")
    ids = torch.tensor([plain.encode(text)[:192]])
    base_ppl = math.exp(token_nll(plain.model, ids).mean())
    dim = plain.model.config.head_dim
    for rope in ("ntk:4", "linear:2", "dynamic:4"):
        scaled = HFModel.load(name, device="cpu", rope=rope)
        for layer_type, base in rope_bases(plain.model).items():
            expected = base * 4 ** (dim / (dim - 2)) if rope == "ntk:4" else base
            assert rope_bases(scaled.model)[layer_type] == pytest.approx(expected, rel=1e-3)
        ppl = math.exp(token_nll(scaled.model, ids).mean())
        assert math.isfinite(ppl) and ppl < 2 * base_ppl  # 192 tokens: well inside every trained length
