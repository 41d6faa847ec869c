"""Models: one interface (generate, score, next-token and sequence log-probabilities) over backends
registered by name, and the registry of model names (bundled, GGUF, local, hub)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nevermind.models.backends import (
    BACKENDS,
    available_backends,
    get_backend,
    pick_backend,
    prepare_model,
    register_backend,
    resolve_backend,
)
from nevermind.models.base import CAPABILITIES, LanguageModel, require
from nevermind.models.chat import format_chat, plain_chat_format
from nevermind.models.registry import BUNDLED, BundledModel, cache_root, resolve_model
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    Message,
    NextTokenRequest,
    ScoreRequest,
    ScoreResult,
    TokenLogprobs,
    TokensPrompt,
)
from nevermind.models.rope import RopeScaling


def load_model(
    name: str,
    *,
    backend: str = "auto",
    device: str = "auto",
    dtype: str = "auto",
    on_status: Callable[[str], None] | None = None,
    rope: RopeScaling | str | None = None,
    max_positions: int | None = None,
    **options: Any,
) -> LanguageModel:
    """Load a model by bundled name, hub id, local directory, GGUF file, or endpoint URL.

    `backend` picks the registered backend ("hf", "openai", "vllm", "llamacpp", ...); "auto" means
    openai for an http(s) URL ("http://127.0.0.1:8000/v1#model") and hf otherwise. `rope` scales the
    rotary position embedding ("ntk:4", "dynamic:2", "linear:4[:all]"; Gemma 3 scales only its global
    layers unless told `:all` or `:local`); `max_positions` overrides the context length the config
    declares. Backend-specific options pass through `options` or the backend spec
    ("vllm:tensor_parallel_size=2"); a keyword given here wins over the spec's."""
    entry, spec_options = resolve_backend(name, backend)
    options = {**spec_options, **options}
    return entry.loader(
        name, device=device, dtype=dtype, on_status=on_status, rope=rope, max_positions=max_positions, **options
    )


__all__ = [
    "BACKENDS",
    "BUNDLED",
    "CAPABILITIES",
    "BundledModel",
    "GenerateRequest",
    "Generation",
    "GenerationConfig",
    "LanguageModel",
    "Message",
    "NextTokenRequest",
    "RopeScaling",
    "ScoreRequest",
    "ScoreResult",
    "TokenLogprobs",
    "TokensPrompt",
    "available_backends",
    "cache_root",
    "format_chat",
    "get_backend",
    "load_model",
    "pick_backend",
    "plain_chat_format",
    "prepare_model",
    "register_backend",
    "require",
    "resolve_backend",
    "resolve_model",
]
