"""Pairwise judges: given an instruction and two responses, how likely is the first the better?

Both judges ask the same question (`JUDGE_PROMPT`) and read the verdict token "1" or "2":
- `LocalJudge` (`local:MODEL`): any nevermind model's next-token log-probabilities of "1" and "2"
  after the chat-formatted question (`model.next_token_logprobs`); P(first) = e^l1 / (e^l1 + e^l2).
- `APIJudge` (`openai:URL#model`): any OpenAI-compatible chat endpoint. With the answer's
  top log-probabilities, the same soft verdict; without them, the answer text "1" or "2".
  Anything else is an error naming the answer, never a silent guess."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nevermind.errors import NevermindError
from nevermind.models.openai_api import Endpoint, parse_model_url

JUDGE_PROMPT = """Two AI assistants answered the same instruction. Decide which response follows the \
instruction better: more helpful, accurate, relevant and complete. Ignore the order in which they \
appear and do not prefer a response for its length alone.

# Instruction
{instruction}

# Response 1
{first}

# Response 2
{second}

Which response is better? Answer with a single character: 1 or 2."""
"""The question every judge answers; its verdict is the next token, "1" or "2"."""

VERDICTS = ("1", "2")
"""Verdict tokens: the first response is better, the second is better."""


class JudgeError(NevermindError):
    """A judge whose answer cannot be read as a verdict."""


@dataclass(frozen=True)
class Comparison:
    """One question for a judge: an instruction and two responses in the order shown."""

    instruction: str
    first: str
    second: str


@dataclass(frozen=True)
class Verdict:
    """A judge's answer to one Comparison."""

    p_first: float
    """Probability that the first response is the better one."""
    raw: str
    """What the judge said (its answer text or verdict log-probabilities), for inspection."""


class Judge(Protocol):
    """Anything that judges comparisons."""

    name: str
    batch_size: int
    """Comparisons handed over per call (results are stored after each call)."""

    def judge(self, comparisons: Sequence[Comparison]) -> list[Verdict]:
        """One Verdict per comparison, in order."""
        ...


def clip(text: str, max_chars: int) -> str:
    """A response cut to `max_chars` characters (judge prompts stay bounded)."""
    return text if len(text) <= max_chars else text[:max_chars] + " […]"


def judge_prompt(comparison: Comparison, max_chars: int) -> str:
    """The judge question for one comparison."""
    return JUDGE_PROMPT.format(
        instruction=comparison.instruction.strip(),
        first=clip(comparison.first.strip(), max_chars),
        second=clip(comparison.second.strip(), max_chars),
    )


def soft_verdict(logprob_first: float, logprob_second: float) -> float:
    """P(first) from the log-probabilities of the two verdict tokens."""
    return 1.0 / (1.0 + math.exp(logprob_second - logprob_first))


class LocalJudge:
    """A model judging by the log-probability of its verdict token (through the model interface)."""

    def __init__(self, model: Any, *, max_chars: int = 1500, batch_size: int = 4) -> None:
        from nevermind.models.base import require

        require(model, "next_token", purpose="a judge reading verdict log-probabilities")
        self.model = model
        self.name = f"local:{model.name}"
        self.max_chars = max_chars
        self.batch_size = batch_size

    def judge(self, comparisons: Sequence[Comparison]) -> list[Verdict]:
        """Verdicts from the next-token log-probabilities of "1" and "2" after each question."""
        from nevermind.models.requests import GenerateRequest, NextTokenRequest

        requests = [
            NextTokenRequest(
                self.model.format_prompt(GenerateRequest(judge_prompt(c, self.max_chars), chat=True)), VERDICTS
            )
            for c in comparisons
        ]
        try:
            logprobs = self.model.next_token_logprobs(requests, batch_size=self.batch_size)
        except NevermindError as error:  # a verdict that is no single token of this vocabulary
            raise NevermindError(f"judge {self.model.name}: {error}") from None
        return [Verdict(soft_verdict(l1, l2), f"logp(1)={l1:.4f} logp(2)={l2:.4f}") for l1, l2 in logprobs]


class APIJudge:
    """An OpenAI-compatible chat endpoint as judge (key from the environment, timeouts, retries)."""

    def __init__(self, endpoint: Endpoint, model: str | None = None, *, max_chars: int = 1500) -> None:
        self.endpoint = endpoint
        self.model = model
        self.name = f"openai:{endpoint.base_url}#{model or ''}"
        self.max_chars = max_chars
        self.batch_size = 1

    def judge(self, comparisons: Sequence[Comparison]) -> list[Verdict]:
        """One chat request per comparison."""
        return [self._judge_one(c) for c in comparisons]

    def _judge_one(self, comparison: Comparison) -> Verdict:
        payload: dict[str, Any] = {
            "messages": [{"role": "user", "content": judge_prompt(comparison, self.max_chars)}],
            "max_tokens": 4,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 20,
        }
        if self.model:
            payload["model"] = self.model
        body = self.endpoint.request("POST", "chat/completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise JudgeError(f"judge {self.name}: response has no choices[0].message.content") from None
        soft = _verdict_from_logprobs(choice.get("logprobs"))
        if soft is not None:
            return Verdict(soft, text)
        answer = text.strip()[:1]
        if answer in VERDICTS:
            return Verdict(1.0 if answer == "1" else 0.0, text)
        raise JudgeError(f"judge {self.name} answered neither 1 nor 2: {text[:60]!r}")


def _verdict_from_logprobs(logprobs: Any) -> float | None:
    """Soft verdict from the first answer token's alternatives; None when they do not say.

    When only one verdict token is among the alternatives, the other's log-probability is at
    most the smallest listed one, which is used as its value (a conservative bound)."""
    try:
        first = logprobs["content"][0]
        alternatives = [(a["token"], float(a["logprob"])) for a in first.get("top_logprobs") or []]
        alternatives.append((first["token"], float(first["logprob"])))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    found: dict[str, float] = {}
    for token, value in alternatives:
        label = token.strip()
        if label in VERDICTS:
            found[label] = max(found.get(label, -math.inf), value)
    if not found:
        return None
    floor = min(value for _, value in alternatives)
    return soft_verdict(found.get("1", floor), found.get("2", floor))


def make_judge(
    spec: str,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 60.0,
    max_retries: int = 3,
    backend: str = "auto",
) -> Judge:
    """A judge from "openai:URL#model" or "local:MODEL" (`backend` picks the local model's backend)."""
    kind, _, target = spec.partition(":")
    if kind == "openai" and target:
        url, model = parse_model_url(target)
        return APIJudge(
            Endpoint(url, api_key_env=api_key_env, timeout=timeout, max_retries=max_retries), model
        )
    if kind == "local" and target:
        from nevermind.models import load_model

        return LocalJudge(load_model(target, backend=backend))
    raise NevermindError(f"unknown judge {spec!r}: use openai:URL#model or local:MODEL")
