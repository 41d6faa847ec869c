"""Models: one interface (generate, score) over backends, and the registry of model names."""

from __future__ import annotations

from typing import Any, Callable

from nevermind.models.base import LanguageModel
from nevermind.models.chat import format_chat, plain_chat_format
from nevermind.models.registry import BUNDLED, BundledModel, cache_root, resolve_model
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    Message,
    ScoreRequest,
    ScoreResult,
)
from nevermind.models.rope import RopeScaling

BACKENDS = ("hf", "openai")
"""Backends that `load_model` knows: transformers, and any OpenAI-compatible HTTP endpoint."""


def load_model(
    name: str,
    *,
    backend: str = "hf",
    device: str = "auto",
    dtype: str = "auto",
    on_status: Callable[[str], None] | None = None,
    rope: RopeScaling | str | None = None,
    max_positions: int | None = None,
    **options: Any,
) -> LanguageModel:
    """Load a model by bundled name, hub id, local directory, GGUF file, or endpoint URL.

    An http(s) URL ("http://127.0.0.1:8000/v1#model") selects the "openai" backend. `rope` scales its rotary position embedding ("ntk:4", "dynamic:2", "linear:4[:global]");
    `max_positions` overrides the context length its config declares."""
    from nevermind.errors import NevermindError

    if backend == "openai" or name.startswith(("http://", "https://")):
        if rope is not None or max_positions is not None:
            raise NevermindError("rope scaling and max_positions need a local model, not an HTTP endpoint")
        from nevermind.models.openai_api import OpenAIModel

        return OpenAIModel.load(name, **options)
    if backend == "hf":
        from nevermind.models.hf import HFModel

        return HFModel.load(
            name, device=device, dtype=dtype, on_status=on_status, rope=rope, max_positions=max_positions, **options
        )
    raise NevermindError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "BUNDLED",
    "BundledModel",
    "GenerateRequest",
    "Generation",
    "GenerationConfig",
    "LanguageModel",
    "Message",
    "ScoreRequest",
    "RopeScaling",
    "ScoreResult",
    "cache_root",
    "format_chat",
    "load_model",
    "plain_chat_format",
    "resolve_model",
]
