"""The two kinds of model request (generate, score) and their results, shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence, TypedDict, Union


class Message(TypedDict):
    """One chat turn: role is "system", "user" or "assistant"."""

    role: str
    content: str


Prompt = Union[str, Sequence[Message]]
FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class GenerationConfig:
    """How to decode; shared by all requests of one `generate` call."""

    max_new_tokens: int = 256
    """Upper bound on generated tokens per request."""
    temperature: float = 0.0
    """0 means greedy decoding; above 0, sampling at this temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass (used only when temperature > 0)."""
    seed: int | None = None
    """Seed for sampling; the same seed and batch give the same text."""
    stop: tuple[str, ...] = ()
    """Strings that end a generation; the returned text is cut before the first one."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class GenerateRequest:
    """Text to continue: raw text, or chat messages formatted by the model's chat template."""

    prompt: Prompt
    chat: bool | None = None
    """Apply chat formatting; None means: yes for a message list, no for a string."""


@dataclass
class Generation:
    """What a model produced for one GenerateRequest."""

    text: str
    """The generated text, cut before any stop string, without the end-of-sequence token."""
    token_ids: list[int]
    """Generated token ids (up to and including eos or the stop string's last token)."""
    finish_reason: FinishReason
    """"stop" (a stop string), "eos" (the model ended) or "length" (max_new_tokens)."""
    prompt_tokens: int = 0
    """Number of prompt tokens after formatting."""


@dataclass(frozen=True)
class ScoreRequest:
    """Log-probability of `continuation` given `context` (both raw text, already formatted)."""

    context: str
    continuation: str


@dataclass
class ScoreResult:
    """Log-probabilities of a scored continuation."""

    logprob: float
    """Sum of the continuation tokens' log-probabilities (natural log)."""
    token_logprobs: list[float] = field(default_factory=list)
    """One log-probability per continuation token."""
    tokens: list[int] = field(default_factory=list)
    """The continuation's token ids."""
    is_greedy: bool = False
    """True when every continuation token was the model's argmax."""

    @property
    def mean_logprob(self) -> float:
        """Per-token mean log-probability (the log of the geometric-mean probability)."""
        return self.logprob / max(len(self.token_logprobs), 1)
