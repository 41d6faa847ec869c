"""Spec strings, typed configs and the registry."""

import pytest

from nevermind.adapters import (
    ADAPTERS,
    AdapterConfig,
    adapter_config,
    generate_with_adapters,
    parse_spec,
    register_adapter,
)
from nevermind.adapters.base import _BUILT
from nevermind.errors import NevermindError
from nevermind.models import GenerationConfig


def test_parse_spec_keeps_json_values_whole():
    name, options = parse_spec('rules:token_weights={"I": -5, "We": -3},used_weight=-1')
    assert name == "rules" and options == {"token_weights": '{"I": -5, "We": -3}', "used_weight": "-1"}


def test_values_are_typed_and_lists_split_on_semicolons():
    config = adapter_config("rules", parse_spec('rules:eos=false,eos_horizon=100,token_weights={"Hi": 2}')[1])
    assert config.eos is False and config.eos_horizon == 100 and config.token_weights == {"Hi": 2.0}
    assert adapter_config("keywords", {"banned": "a b;c"}).banned == ["a b", "c"]
    assert adapter_config("inhibition", {"banned": '["x,y", "z"]', "k": "3"}).banned == ["x,y", "z"]


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "empty adapter name"),
        ("rules:eos_horizon=0", "eos_horizon"),
        ("rules:eos_weight=high", "eos_weight"),
        ("rules:bogus=1", "bogus"),
        ("rules:token_weights={bad", "not valid JSON"),
        ("zzz", "unknown adapter"),
    ],
)
def test_bad_specs(spec, words):
    with pytest.raises(NevermindError, match=words) as error:
        adapter_config(*parse_spec(spec))
    assert "\n" not in str(error.value)


def test_user_adapter_registers_and_runs(tiny_llama):
    class ForceConfig(AdapterConfig):
        token: int = 42
        """The only token allowed."""

    @register_adapter("force-token", ForceConfig)
    def force(model, config):
        """Only ever emit one token."""

        def processor(input_ids, scores):
            forced = scores.new_full(scores.shape, float("-inf"))
            forced[:, config.token] = 0
            return forced

        return processor

    try:
        out = generate_with_adapters(tiny_llama, ["hi"], GenerationConfig(max_new_tokens=3), ["force-token:token=7"])
        assert out[0].token_ids == [7, 7, 7]
        assert "force-token:token=7" in _BUILT[tiny_llama]  # built once per model and spec, then reused
    finally:
        del ADAPTERS["force-token"]
