"""The model requests (generate, score, next-token and sequence log-probabilities) and their results,
shared by every backend."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict, Union


class Message(TypedDict):
    """One chat turn: role is "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True)
class TokensPrompt:
    """A prompt given as token ids (already formatted; used as they are, no BOS added)."""

    ids: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        if not self.ids:
            raise ValueError("a token prompt needs at least one token id")


Prompt = Union[str, Sequence[Message], TokensPrompt]
FinishReason = Literal["stop", "eos", "length"]
TokenCallback = Callable[[int, int], "bool | None"]
"""`on_token(request_index, token_id)` during generation; returning False stops that request."""


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
    """What to continue: text or chat messages (formatted by the model's chat template, or seed 001's
    plain template for a model without one), or token ids used as they are."""

    prompt: Prompt
    chat: bool | None = None
    """Apply chat formatting. None (the default) means yes: a string is one user turn. False sends a
    string as raw text to be continued. Token prompts are never formatted."""


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


@dataclass(frozen=True)
class NextTokenRequest:
    """Log-probabilities of a few candidate next tokens after a prompt (judges' verdicts, moderators)."""

    prompt: str | TokensPrompt
    """Raw text (already formatted; BOS added like any prompt) or token ids."""
    candidates: tuple[str, ...]
    """Strings that must each be one token of the model's vocabulary (e.g. "1", "2", "Yes", "No")."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates", tuple(self.candidates))
        if not self.candidates:
            raise ValueError("a next-token request needs at least one candidate")


@dataclass
class TokenLogprobs:
    """Per-token log-probabilities of a token sequence (each token given the tokens before it)."""

    token_ids: list[int]
    """The sequence scored."""
    logprobs: list[float | None]
    """logprobs[j] = log p(token j | tokens < j); None for token 0 and for positions not asked for."""
    top: list[list[tuple[int, float]]] | None = None
    """With top_k > 0: at every position j ≥ 1, the k most likely tokens and their log-probabilities."""


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
