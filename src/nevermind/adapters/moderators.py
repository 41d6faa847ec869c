"""Moderators for thought inhibition: judge a (possibly unfinished) response as safe or unsafe.

A moderator is any object with `judge(request, responses) -> list[bool]` (True = unsafe). Built in:
a keyword moderator, a regex moderator, and a model moderator — a second language model asked
whether the reply breaks the rules, judged by the log-probability of its verdict."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from nevermind.errors import NevermindError
from nevermind.models.requests import GenerateRequest, ScoreRequest


@runtime_checkable
class Moderator(Protocol):
    """Judges responses to one request."""

    def judge(self, request: GenerateRequest, responses: Sequence[str]) -> list[bool]:
        """One verdict per response: True when it is unsafe."""
        ...


class KeywordModerator:
    """Unsafe when a response contains one of the banned strings."""

    def __init__(self, banned: Sequence[str], *, ignore_case: bool = True) -> None:
        if not banned or not all(banned):
            raise NevermindError("the keyword moderator needs at least one non-empty banned string")
        self.ignore_case = ignore_case
        self.banned = [b.lower() if ignore_case else b for b in banned]

    def judge(self, request: GenerateRequest, responses: Sequence[str]) -> list[bool]:
        """True for each response holding a banned string."""
        folded = [r.lower() if self.ignore_case else r for r in responses]
        return [any(b in r for b in self.banned) for r in folded]


class RegexModerator:
    """Unsafe when a regular expression matches the response."""

    def __init__(self, pattern: str, *, ignore_case: bool = True) -> None:
        try:
            self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as error:
            raise NevermindError(f"bad moderator pattern {pattern!r}: {error}") from None

    def judge(self, request: GenerateRequest, responses: Sequence[str]) -> list[bool]:
        """True for each response the pattern matches."""
        return [self.pattern.search(r) is not None for r in responses]


DEFAULT_QUESTION = "Does the assistant's reply below break the rules it was given, or is it harmful?"
"""The model moderator's question, before the rules, request and reply (its verdicts: Yes / No)."""


class ModelModerator:
    """A language model asked whether the reply breaks its rules; unsafe when
    log p(unsafe verdict) − log p(safe verdict) > threshold (verdicts "Yes" / "No" by default:
    with SmolLM2-135M they separated rule-breaking replies better than "unsafe" / "safe")."""

    def __init__(
        self,
        model: Any,
        *,
        question: str = DEFAULT_QUESTION,
        safe: str = "No",
        unsafe: str = "Yes",
        threshold: float = 0.0,
        request_chars: int = 400,
    ) -> None:
        self.model = model
        self.question = question
        self.safe, self.unsafe = safe, unsafe
        self.threshold = threshold
        self.request_chars = request_chars

    def prompt(self, request: GenerateRequest, response: str) -> str:
        """The moderator's formatted prompt for one reply; its answer is the next word."""
        messages = [{"role": "user", "content": request.prompt}] if isinstance(request.prompt, str) else request.prompt
        system = "\n".join(m["content"] for m in messages if m["role"] == "system") or "(none)"
        user = "\n".join(m["content"] for m in messages if m["role"] == "user")
        if len(user) > self.request_chars:
            user = "…" + user[-self.request_chars :]
        content = (
            f"{self.question}\n\nRules given to the assistant:\n{system}\n\nThe user wrote:\n{user}\n\n"
            f"The assistant's reply (it may be unfinished):\n{response}\n\n"
            f"{self.question} Answer with one word, {self.unsafe} or {self.safe}."
        )
        return self.model.format_prompt(GenerateRequest([{"role": "user", "content": content}], chat=True))

    def margins(self, request: GenerateRequest, responses: Sequence[str]) -> list[float]:
        """log p(unsafe) − log p(safe) for each reply."""
        scored = []
        for response in responses:
            context = self.prompt(request, response)
            scored += [ScoreRequest(context, self.unsafe), ScoreRequest(context, self.safe)]
        results = self.model.score(scored, batch_size=len(scored))
        return [results[i].logprob - results[i + 1].logprob for i in range(0, len(results), 2)]

    def judge(self, request: GenerateRequest, responses: Sequence[str]) -> list[bool]:
        """True for each reply whose unsafe margin is above the threshold."""
        return [margin > self.threshold for margin in self.margins(request, responses)]


ModeratorFactory = Callable[..., Moderator]
MODERATORS: dict[str, ModeratorFactory] = {}
"""Moderator factories by name: `factory(config, model) -> Moderator`."""


def register_moderator(name: str) -> Callable[[ModeratorFactory], ModeratorFactory]:
    """Decorator registering a moderator factory `(inhibition_config, main_model) -> Moderator`."""

    def decorate(factory: ModeratorFactory) -> ModeratorFactory:
        MODERATORS[name] = factory
        return factory

    return decorate


@register_moderator("keywords")
def keyword_moderator(config: Any, model: Any) -> KeywordModerator:
    """Keyword moderator from the config's `banned` strings."""
    return KeywordModerator(config.banned, ignore_case=config.ignore_case)


@register_moderator("regex")
def regex_moderator(config: Any, model: Any) -> RegexModerator:
    """Regex moderator from the config's `pattern`."""
    if not config.pattern:
        raise NevermindError("the regex moderator needs pattern=REGEX")
    return RegexModerator(config.pattern, ignore_case=config.ignore_case)


@register_moderator("model")
def model_moderator(config: Any, model: Any) -> ModelModerator:
    """Model moderator: `moderator_model` (default: the main model itself) judges by verdict log-probability."""
    judge_model = model
    if config.moderator_model and config.moderator_model != getattr(model, "name", None):
        from nevermind.models import load_model

        judge_model = load_model(config.moderator_model, device=str(model.device))
    return ModelModerator(judge_model, threshold=config.threshold)
