"""RoPE scaling as a model option: the rotary embedding's inv_freq changes as each formula says,
on both bundled architectures (Gemma 3 with its separate local and global bases)."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from nevermind.errors import NevermindError
from nevermind.models.hf import HFModel
from nevermind.models.rope import RopeScaling, apply_rope_scaling, inv_freqs, ntk_base, reset_rope_state


class _Loaded:
    """The model alone (tokenizers are slow to load): what HFModel.load builds, through the same config edit."""

    def __init__(self, directory, rope=None, max_positions=None) -> None:
        config = AutoConfig.from_pretrained(directory)
        scaling = RopeScaling.parse(rope) if isinstance(rope, str) else rope
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, config=apply_rope_scaling(config, scaling, max_positions=max_positions)
        ).eval()


_load = _Loaded


def test_hf_model_load_applies_the_option(tiny_dir):
    lm = HFModel.load(str(tiny_dir), device="cpu", rope="linear:2:all", max_positions=512)
    assert lm.model.config.max_position_embeddings == 512
    for params in _groups(lm.model.config):
        assert params["rope_type"] == "linear" and params["factor"] == 2.0


def _inv_freq(base: float, dim: int) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def _groups(config) -> list[dict]:
    params = config.rope_parameters
    return [params] if "rope_theta" in params else list(params.values())


def _bases(model) -> dict[str, float]:
    params = model.model.config.rope_parameters
    if "rope_theta" in params:
        return {"": float(params["rope_theta"])}
    return {layer_type: float(p["rope_theta"]) for layer_type, p in params.items()}


@pytest.fixture(params=["llama", "gemma3"])
def tiny_dir(request):
    return request.getfixturevalue("tiny_llama_dir" if request.param == "llama" else "tiny_gemma_dir")


def test_parse_and_print():
    assert RopeScaling.parse("ntk:4") == RopeScaling("ntk", 4.0)
    assert RopeScaling.parse(" linear:2.5:global ") == RopeScaling("linear", 2.5, "global")
    assert str(RopeScaling.parse("dynamic:8:local")) == "dynamic:8:local"


@pytest.mark.parametrize("spec", ["ntk", "ntk:", "yarn:4", "ntk:four", "ntk:0.5", "ntk:nan", "ntk:4:middle", "a:b:c:d"])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(NevermindError) as error:
        RopeScaling.parse(spec)
    assert "\n" not in str(error.value)


def test_ntk_base_formula():
    assert ntk_base(10_000.0, 4.0, 64) == pytest.approx(10_000 * 4 ** (64 / 62))
    assert ntk_base(10_000.0, 1.0, 64) == 10_000.0


def test_static_ntk_changes_every_base_as_the_formula_says(tiny_dir):
    plain = _load(tiny_dir)
    scaled = _load(tiny_dir, "ntk:4:all")
    dim = plain.model.config.head_dim
    before, after = inv_freqs(plain.model), inv_freqs(scaled.model)
    assert set(before) == set(_bases(plain))  # gemma3: both full_attention and sliding_attention
    for layer_type, base in _bases(plain).items():
        expected = _inv_freq(ntk_base(base, 4.0, dim), dim)
        torch.testing.assert_close(after[layer_type].double(), expected, rtol=1e-5, atol=0)
        assert not torch.allclose(after[layer_type], before[layer_type])


def test_linear_divides_frequencies(tiny_dir):
    plain, scaled = inv_freqs(_load(tiny_dir).model), inv_freqs(_load(tiny_dir, "linear:4:all").model)
    for layer_type in plain:
        torch.testing.assert_close(scaled[layer_type], plain[layer_type] / 4)


def test_alpha_one_is_the_model_as_trained(tiny_dir):
    plain, same = _load(tiny_dir), _load(tiny_dir, RopeScaling("dynamic", 1.0))
    ids = torch.arange(100, 400)[None]
    with torch.inference_mode():
        torch.testing.assert_close(plain.model(ids).logits, same.model(ids).logits)


def test_dynamic_ntk_grows_past_max_positions_and_resets(tiny_dir):
    model = _load(tiny_dir, "dynamic:4:all", max_positions=64)
    restricted = inv_freqs(_load(tiny_dir, max_positions=64).model)
    dim = model.model.config.head_dim
    for layer_type, freq in inv_freqs(model.model).items():  # as loaded: no growth yet
        torch.testing.assert_close(freq, restricted[layer_type])
    with torch.inference_mode():
        model.model(torch.arange(100, 300)[None])  # 200 tokens > 64 declared positions
    grown = inv_freqs(model.model)
    for layer_type, base in _bases(model).items():
        expected_base = base * (4 * 200 / 64 - 3) ** (dim / (dim - 2))
        torch.testing.assert_close(grown[layer_type].double(), _inv_freq(expected_base, dim), rtol=1e-5, atol=0)
    reset_rope_state(model.model)
    for layer_type, freq in inv_freqs(model.model).items():
        torch.testing.assert_close(freq, restricted[layer_type])


def test_max_positions_compresses_bases_that_see_past_it(tiny_dir):
    plain = _load(tiny_dir)
    trained = plain.model.config.max_position_embeddings
    dim = plain.model.config.head_dim
    restricted = _load(tiny_dir, max_positions=256)
    assert restricted.model.config.max_position_embeddings == 256
    window = getattr(plain.model.config, "sliding_window", None)  # tiny gemma: 32 ≤ 256, left alone
    for layer_type, base in _bases(plain).items():
        kept = layer_type == "sliding_attention" and window <= 256
        expected = base if kept else ntk_base(base, 256 / trained, dim)
        assert _bases(restricted)[layer_type] == pytest.approx(expected)
        torch.testing.assert_close(inv_freqs(restricted.model)[layer_type].double(), _inv_freq(expected, dim),
                                   rtol=1e-5, atol=0)
    # the slowest frequency reaches at 256 the angle it reached at the trained length
    slow_plain = inv_freqs(plain.model)[layer_type][-1] * trained
    slow_restricted = inv_freqs(restricted.model)[layer_type][-1] * 256
    if not kept:
        assert float(slow_restricted) == pytest.approx(float(slow_plain), rel=1e-4)
    # ntk:4 on top multiplies the compressed base by 4^(d/(d-2))
    both = _load(tiny_dir, "ntk:4:all", max_positions=256)
    for layer_type, base in _bases(restricted).items():
        assert _bases(both)[layer_type] == pytest.approx(ntk_base(base, 4.0, dim))


def test_default_scales_only_gemmas_global_layers(tiny_gemma_dir, tiny_llama_dir):
    """The sliding window never sees long distances: by default Gemma 3 scales its global layers only,
    and a model with one rope group scales all its layers."""
    assert RopeScaling.parse("ntk:4").layers == "auto" and str(RopeScaling.parse("ntk:4:all")) == "ntk:4:all"
    plain = inv_freqs(_load(tiny_gemma_dir).model)
    for spec in ("ntk:4", "linear:4", "dynamic:4"):
        scaled = _load(tiny_gemma_dir, spec).model
        torch.testing.assert_close(inv_freqs(scaled)["sliding_attention"], plain["sliding_attention"])
        params = scaled.config.rope_parameters
        assert params["sliding_attention"].get("rope_type", "default") == "default"
        assert params["full_attention"] != _load(tiny_gemma_dir).model.config.rope_parameters["full_attention"]
    torch.testing.assert_close(inv_freqs(_load(tiny_gemma_dir, "linear:4").model)["full_attention"],
                               plain["full_attention"] / 4)
    llama = inv_freqs(_load(tiny_llama_dir).model)[""]
    torch.testing.assert_close(inv_freqs(_load(tiny_llama_dir, "linear:4").model)[""], llama / 4)


def test_gemma_layer_groups_scale_separately(tiny_gemma_dir):
    plain = inv_freqs(_load(tiny_gemma_dir).model)
    only_global = inv_freqs(_load(tiny_gemma_dir, "ntk:8:global").model)
    only_local = inv_freqs(_load(tiny_gemma_dir, "ntk:8:local").model)
    torch.testing.assert_close(only_global["sliding_attention"], plain["sliding_attention"])
    assert not torch.allclose(only_global["full_attention"], plain["full_attention"])
    torch.testing.assert_close(only_local["full_attention"], plain["full_attention"])
    assert not torch.allclose(only_local["sliding_attention"], plain["sliding_attention"])


def test_llama_has_no_layer_groups(tiny_llama_dir):
    with pytest.raises(NevermindError, match="no separate global layers"):
        _load(tiny_llama_dir, "ntk:2:global")


def test_max_positions_above_trained_only_declares(tiny_llama_dir):
    plain, longer = _load(tiny_llama_dir), _load(tiny_llama_dir, max_positions=4096)
    assert longer.model.config.max_position_embeddings == 4096
    torch.testing.assert_close(inv_freqs(longer.model)[""], inv_freqs(plain.model)[""])
    with pytest.raises(NevermindError):
        _load(tiny_llama_dir, max_positions=1)
