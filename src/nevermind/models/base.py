"""The interface every backend implements, and the only door consumers use to reach a model.

Request kinds (all batched by the backend):
- `generate`: prompts (text, chat messages or token ids) → text and token ids, with stop strings,
  sampling, logits processors (decode-time adapters) and per-token streaming / cancellation;
- `score`: log-probability of a continuation given a context; requests that share a context are
  scored with the context computed once (its key/value cache reused);
- `next_token_logprobs`: log-probabilities of a few single-token candidates after a prompt;
- `sequence_logprobs`: per-token log-probabilities of whole token sequences (perplexity, echo).
Plus a small tokenizer protocol (`encode`, `decode`, `format_prompt`, `eos_token_ids`).

A backend declares what it can do in `capabilities`; a consumer that needs more calls `require`
and fails with one line naming the backend and the missing capability."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from nevermind.errors import NevermindError
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    NextTokenRequest,
    ScoreRequest,
    ScoreResult,
    TokenCallback,
    TokenLogprobs,
)

BatchCallback = Callable[[int, int], None]
"""Called after each batch with (requests finished, tokens generated or scored): the shape of
`nevermind.progress.Progress.advance`."""

CAPABILITIES: dict[str, str] = {
    "generate": "generate text",
    "score": "score continuations",
    "next_token": "give next-token log-probabilities of candidates",
    "sequence_logprobs": "give per-token log-probabilities of token sequences",
    "token_ids": "report generated token ids",
    "logits_processors": "run torch logits processors (decode-time adapters) while generating",
    "stream": "stream tokens while generating (on_token)",
    "rope": "scale its rotary position embedding (rope=...)",
    "local_tokenizer": "tokenize locally (token counts, token prompts)",
}
"""Capabilities a backend may declare, and what each lets a consumer do."""


@runtime_checkable
class LanguageModel(Protocol):
    """A model behind some backend: generate, score, and token-level requests."""

    name: str
    """The name it was loaded by."""
    backend: str
    """Registry name of its backend ("hf", "openai", "vllm", "llamacpp", ...)."""
    capabilities: frozenset[str]
    """What it can do (keys of CAPABILITIES)."""
    tokenizer: Any
    """A transformers tokenizer for its vocabulary (adapters, token counts), or None (remote models)."""
    eos_token_ids: frozenset[int]
    """Token ids that end a generation."""

    def format_prompt(self, request: GenerateRequest | str) -> str:
        """The text a request asks the model to continue (chat template applied unless chat=False)."""
        ...

    def encode(self, text: str, *, prefix: bool = True) -> list[int]:
        """Token ids of `text`; with `prefix`, the BOS a prompt starts with (unless already there)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (special tokens skipped)."""
        ...

    def info(self) -> dict[str, Any]:
        """Facts about the loaded model: context_length, trained_positions, rope_bases, dtype, device..."""
        ...

    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig | None = None,
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Generation]:
        """One Generation per request, in request order.

        Logits processors follow the transformers convention, `processor(input_ids, scores)`; a
        processor may define `start_batch(prompt_length)` (the padded prompt width of the coming
        batch) and `start_rows(request_indices)` (which request each of its rows is)."""
        ...

    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[ScoreResult]:
        """One ScoreResult per request, in request order."""
        ...

    def next_token_logprobs(
        self,
        requests: Sequence[NextTokenRequest],
        *,
        batch_size: int = 16,
        on_batch: BatchCallback | None = None,
    ) -> list[list[float]]:
        """Per request, the log-probability of each candidate (in the candidates' order)."""
        ...

    def sequence_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        positions: Sequence[int] | None = None,
        top_k: int = 0,
        batch_size: int = 1,
        on_batch: BatchCallback | None = None,
    ) -> list[TokenLogprobs]:
        """Per sequence, log p(token j | tokens < j) for every j ≥ 1 (or only j in `positions`)."""
        ...


def require(model: Any, *capabilities: str, purpose: str) -> None:
    """Fail with one line unless `model` has every capability `purpose` needs."""
    have = getattr(model, "capabilities", frozenset())
    missing = [c for c in capabilities if c not in have]
    if missing:
        backend = getattr(model, "backend", type(model).__name__)
        what = "; ".join(f"{CAPABILITIES.get(c, c)}" for c in missing)
        raise NevermindError(
            f"{purpose} needs a model that can {what}; {getattr(model, 'name', 'this model')!r} "
            f"(backend {backend}) cannot: use a backend that can (--backend hf)"
        )


def fits_context(model: Any, n_tokens: int) -> bool:
    """Whether `n_tokens` fit in the model's context (unknown context: assume they do)."""
    limit = model.info().get("context_length")
    return limit is None or n_tokens <= limit
