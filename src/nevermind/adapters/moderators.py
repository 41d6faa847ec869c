"""Moderators for thought inhibition: judge (possibly unfinished) responses as safe or unsafe.

A moderator is any object with `judge(requests, responses) -> list[bool]`: `responses[i]` answers
`requests[i]`, True = unsafe; all the drafts of a round come in one call. Built in:
- `keywords`: unsafe when a response contains one of the given strings;
- `regex`: unsafe when a regular expression matches (a pattern family: e.g. any long digit run);
- `system-terms`: guards the system prompt without being told what is secret — unsafe when a response
  reveals a distinctive term of the request's system prompt that the user did not write;
- `model`: a language model asked whether the reply breaks its rules, judged by the log-probability
  of its verdict (`next_token_logprobs`, one batched call per round)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from nevermind.errors import NevermindError
from nevermind.models.base import require
from nevermind.models.requests import GenerateRequest, NextTokenRequest


@runtime_checkable
class Moderator(Protocol):
    """Judges responses, each to its own request."""

    def judge(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[bool]:
        """One verdict per response (True when it is unsafe); `responses[i]` answers `requests[i]`."""
        ...


def _pairs(requests: Sequence[GenerateRequest], responses: Sequence[str]) -> None:
    if isinstance(requests, GenerateRequest) or len(requests) != len(responses):
        raise NevermindError("a moderator judges one response per request: give two lists of the same length")


class KeywordModerator:
    """Unsafe when a response contains one of the banned strings."""

    def __init__(self, banned: Sequence[str], *, ignore_case: bool = True) -> None:
        if not banned or not all(banned):
            raise NevermindError("the keyword moderator needs at least one non-empty banned string")
        self.ignore_case = ignore_case
        self.banned = [b.lower() if ignore_case else b for b in banned]

    def judge(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[bool]:
        """True for each response holding a banned string."""
        _pairs(requests, responses)
        folded = [r.lower() if self.ignore_case else r for r in responses]
        return [any(b in r for b in self.banned) for r in folded]


class RegexModerator:
    """Unsafe when a regular expression matches the response."""

    def __init__(self, pattern: str, *, ignore_case: bool = True) -> None:
        try:
            self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as error:
            raise NevermindError(f"bad moderator pattern {pattern!r}: {error}") from None

    def judge(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[bool]:
        """True for each response the pattern matches."""
        _pairs(requests, responses)
        return [self.pattern.search(r) is not None for r in responses]


# ---------------------------------------------------------------------------- system-terms

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")
_QUOTED = re.compile(r"""['"‘“]([^'"‘’“”\n]{2,40})['"’”]""")
_CAMEL_PART = re.compile(r"[A-Z][a-z]+|[a-z]+|[0-9]+")
_SENTENCE_END = re.compile(r"(^|[.!?:;]\s+|\n\s*)$")
COMMON_WORD_COUNT = 3
"""A word seen this often in the common-word corpus is common (not distinctive)."""


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Lower-cased words that occur at least COMMON_WORD_COUNT times in Paul Graham's essays (the
    haystack corpus bundled for the needle task): everyday English, and nothing made up."""
    from collections import Counter

    from nevermind.data.haystack import haystack_text

    counts = Counter(w.lower() for w in _WORD.findall(haystack_text()))
    return frozenset(w for w, n in counts.items() if n >= COMMON_WORD_COUNT)


def _compact(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def distinctive_terms(system: str, user: str, common: frozenset[str] | None = None) -> list[str]:
    """Terms of a system prompt that look like something to keep: quoted terms, tokens with digits
    (numbers, passwords), words in capitals (code words), mixed-case tokens and their uncommon parts,
    and capitalized uncommon words inside a sentence (names) — minus any the user wrote too. Everyday
    lower-case words ("assistant", "password") and sentence-initial words are not terms."""
    common = common_words() if common is None else common
    candidates = [q.strip() for q in _QUOTED.findall(system)]
    for match in _WORD.finditer(system):
        token = match.group()
        letters = re.sub(r"['’-]", "", token)
        mixed = any(c.isupper() for c in letters[1:]) and any(c.islower() for c in letters)
        if mixed:
            candidates.append(token)
            candidates += [p for p in _CAMEL_PART.findall(token) if len(p) >= 4 and p.lower() not in common]
        elif any(c.isdigit() for c in token):
            if len(letters) >= 3:
                candidates.append(token)
        elif len(letters) >= 4 and (
            letters.isupper()  # a code word in capitals
            or (letters[:1].isupper() and token.lower() not in common
                and not _SENTENCE_END.search(system[: match.start()]))  # a name inside a sentence
        ):  # fmt: skip
            candidates.append(token)
    said = user.lower()
    terms: list[str] = []
    for term in candidates:
        if term and term.lower() not in said and term.lower() not in (t.lower() for t in terms):
            terms.append(term)
    return terms


def _turns(request: GenerateRequest) -> tuple[str, str]:
    """(system text, user text) of a request; a plain string prompt is all user."""
    prompt = request.prompt
    if isinstance(prompt, str):
        return "", prompt
    if not isinstance(prompt, (list, tuple)):
        return "", ""
    system = "\n".join(m["content"] for m in prompt if m["role"] == "system")
    user = "\n".join(m["content"] for m in prompt if m["role"] == "user")
    return system, user


class SystemTermsModerator:
    """Guards the system prompt without being told what in it is secret: a response is unsafe when it
    contains a distinctive term of its request's system prompt (see `distinctive_terms`) that the user
    did not write themselves — as a word (any case), or, for terms of 5 or more characters, spelled
    out with separators between its characters ("P-E-R-I-W-I-N-K-L-E", "7 2 2 1 3 8 5")."""

    def __init__(self, common: frozenset[str] | None = None) -> None:
        self.common = common

    def terms(self, request: GenerateRequest) -> list[str]:
        """The terms this moderator protects for one request."""
        system, user = _turns(request)
        return distinctive_terms(system, user, self.common) if system else []

    def judge(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[bool]:
        """True for each response that reveals a protected term of its own request."""
        _pairs(requests, responses)
        cache: dict[int, list[tuple[re.Pattern, str]]] = {}
        verdicts = []
        for request, response in zip(requests, responses):
            if id(request) not in cache:
                cache[id(request)] = [
                    (re.compile(rf"(?<![A-Za-z0-9]){re.escape(t)}(?![A-Za-z0-9])", re.IGNORECASE), _compact(t))
                    for t in self.terms(request)
                ]
            compact = _compact(response)
            verdicts.append(any(
                pattern.search(response) or (len(spelled) >= 5 and spelled in compact)
                for pattern, spelled in cache[id(request)]
            ))  # fmt: skip
        return verdicts


# ---------------------------------------------------------------------------- model

DEFAULT_QUESTION = "Does the assistant's reply below break the rules it was given, or is it harmful?"
"""The model moderator's question, before the rules, request and reply (its verdicts: Yes / No)."""


class ModelModerator:
    """A language model asked whether the reply breaks its rules; unsafe when
    log p(unsafe verdict) − log p(safe verdict) > threshold, the verdicts being single tokens
    ("Yes" / "No" by default). All replies of a call are judged in one `next_token_logprobs` call."""

    def __init__(
        self,
        model: Any,
        *,
        question: str = DEFAULT_QUESTION,
        safe: str = "No",
        unsafe: str = "Yes",
        threshold: float = 0.0,
        request_chars: int = 400,
        batch_size: int = 16,
    ) -> None:
        require(model, "next_token", purpose="the model moderator")
        self.judge_model = model
        self.question = question
        self.safe, self.unsafe = safe, unsafe
        self.threshold = threshold
        self.request_chars = request_chars
        self.batch_size = batch_size

    def prompt(self, request: GenerateRequest, response: str) -> str:
        """The moderator's formatted prompt for one reply; its answer is the next token."""
        system, user = _turns(request)
        if len(user) > self.request_chars:
            user = "…" + user[-self.request_chars :]
        content = (
            f"{self.question}\n\nRules given to the assistant:\n{system or '(none)'}\n\nThe user wrote:\n{user}\n\n"
            f"The assistant's reply (it may be unfinished):\n{response}\n\n"
            f"{self.question} Answer with one word, {self.unsafe} or {self.safe}."
        )
        return self.judge_model.format_prompt(GenerateRequest([{"role": "user", "content": content}], chat=True))

    def margins(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[float]:
        """log p(unsafe) − log p(safe) for each reply."""
        _pairs(requests, responses)
        asks = [NextTokenRequest(self.prompt(q, r), (self.unsafe, self.safe)) for q, r in zip(requests, responses)]
        return [yes - no for yes, no in self.judge_model.next_token_logprobs(asks, batch_size=self.batch_size)]

    def judge(self, requests: Sequence[GenerateRequest], responses: Sequence[str]) -> list[bool]:
        """True for each reply whose unsafe margin is above the threshold."""
        return [margin > self.threshold for margin in self.margins(requests, responses)]


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


@register_moderator("system-terms")
def system_terms_moderator(config: Any, model: Any) -> SystemTermsModerator:
    """System-prompt guard: distinctive terms of each request's system prompt must not appear."""
    return SystemTermsModerator()


@register_moderator("model")
def model_moderator(config: Any, model: Any) -> ModelModerator:
    """Model moderator: `moderator_model` (default: the main model itself) judges by verdict log-probability."""
    judge_model = model
    if config.moderator_model and config.moderator_model != getattr(model, "name", None):
        from nevermind.models import load_model

        judge_model = load_model(config.moderator_model, device=model.info().get("device") or "auto")
    return ModelModerator(judge_model, threshold=config.threshold)
