"""Backend options written in the backend spec (`vllm:tensor_parallel_size=2`): typed by the backend's
options model, checked before anything loads, one line for every mistake."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from nevermind.errors import NevermindError
from nevermind.models import backends as registry
from nevermind.models import load_model, prepare_model, resolve_backend


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int = Field(1, ge=1)
    share: float = 0.9
    eager: bool = False


@pytest.fixture
def echo_backend(monkeypatch):
    """A backend whose loader returns the options it was given (no model behind it)."""
    monkeypatch.delitem(registry.BACKENDS, "echo", raising=False)
    registry.register_backend("echo", options=EchoOptions)(lambda name, **options: options)
    yield
    registry.BACKENDS.pop("echo", None)


def test_spec_options_arrive_typed(echo_backend):
    entry, options = resolve_backend("m", "echo:replicas=4, share=0.5,eager=true")
    assert entry.name == "echo"
    assert options == {"replicas": 4, "share": 0.5, "eager": True}
    loaded = load_model("m", backend="echo:replicas=4")
    assert loaded["replicas"] == 4 and loaded["device"] == "auto"
    assert load_model("m", backend="echo:replicas=4", replicas=2)["replicas"] == 2  # a keyword wins


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("echo:replica=2", r"^backend echo: replica: unknown option \(options: replicas, share, eager\)$"),
        ("echo:replicas=0", r"^backend echo: replicas: Input should be greater than or equal to 1 \(got '0'\)"),
        ("echo:replicas=two", r"replicas: Input should be a valid integer"),
        ("echo:replicas", r"^bad backend option 'replicas' in 'echo:replicas': write NAME:key=value"),
        ("hf:threads=2", r"^backend 'hf' takes no options \(got threads\)$"),
    ],
)
def test_a_bad_option_is_one_line_before_anything_loads(echo_backend, spec, message):
    with pytest.raises(NevermindError, match=message):
        prepare_model("m", spec)


def test_a_spec_without_options_is_the_plain_backend(echo_backend):
    entry, options = resolve_backend("http://127.0.0.1:9/v1", "auto")
    assert entry.name == "openai" and options == {}
    assert resolve_backend("m", "echo")[1] == {}
