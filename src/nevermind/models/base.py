"""The interface every backend implements: generate and score, in batches."""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from nevermind.models.requests import GenerateRequest, Generation, GenerationConfig, ScoreRequest, ScoreResult


@runtime_checkable
class LanguageModel(Protocol):
    """A model that can continue prompts and score continuations."""

    name: str
    tokenizer: Any

    def format_prompt(self, request: GenerateRequest | str) -> str:
        """The text a request asks the model to continue."""
        ...

    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig = ...,
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[Generation]:
        """One Generation per request, in request order."""
        ...

    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[ScoreResult]:
        """One ScoreResult per request, in request order."""
        ...
