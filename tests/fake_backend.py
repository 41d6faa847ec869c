"""A fake in-memory backend: a word-level "copy model" that implements the model interface with no
transformers model behind it. Consumers that run on it (eval, rank, judges, perplexity) prove they
go through the interface only.

The copy model: log p(w | context) gives every word already in the context e^COPY times the weight
of any other word of a VOCAB-word vocabulary, so a response sharing words with its instruction is
more likely than an unrelated one (a known truth for ranking), and generation repeats the
context's first words (an echo)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from nevermind.models.backends import register_backend
from nevermind.models.chat import prompt_text
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    NextTokenRequest,
    ScoreRequest,
    ScoreResult,
    TokenLogprobs,
    TokensPrompt,
)

VOCAB = 50_000
"""Size of the virtual vocabulary the probabilities are spread over."""
COPY = 2.0
"""Log-weight bonus of a word that already occurs in the context."""
EOS = 0
_TOKEN = re.compile(r"\s*\S+|\s+$")


class WordTokenizer:
    """Whitespace-attached word tokens (" word"), ids assigned on first sight; the transformers call
    convention (`tokenizer(text, add_special_tokens=False)["input_ids"]`) that tasks use."""

    chat_template = None
    eos_token = "</s>"
    eos_token_id = EOS
    bos_token = None
    bos_token_id = None
    pad_token_id = EOS

    def __init__(self) -> None:
        self.ids: dict[str, int] = {"</s>": EOS}
        self.words: list[str] = ["</s>"]

    def _id(self, word: str) -> int:
        if word not in self.ids:
            self.ids[word] = len(self.words)
            self.words.append(word)
        return self.ids[word]

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False) -> Any:
        matches = list(_TOKEN.finditer(text))
        out: dict[str, Any] = {"input_ids": [self._id(m.group()) for m in matches]}
        if return_offsets_mapping:
            out["offset_mapping"] = [m.span() for m in matches]
        return _Encoding(out)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return "".join(self.words[i] for i in ids if not (skip_special_tokens and i == EOS))

    def __len__(self) -> int:
        return VOCAB


class _Encoding(dict):
    @property
    def input_ids(self) -> list[int]:
        return self["input_ids"]


class FakeModel:
    """The copy model behind the full interface."""

    backend = "fake"
    capabilities = frozenset({"generate", "score", "next_token", "sequence_logprobs", "token_ids", "local_tokenizer"})

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.tokenizer = WordTokenizer()
        self.eos_token_ids = frozenset({EOS})
        self.calls: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.calls[kind] = self.calls.get(kind, 0) + 1

    # tokenizer protocol
    def format_prompt(self, request: GenerateRequest | str) -> str:
        return prompt_text(self.tokenizer, request if isinstance(request, GenerateRequest) else GenerateRequest(request))

    def encode(self, text: str, *, prefix: bool = True) -> list[int]:
        return self.tokenizer(text).input_ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    def info(self) -> dict[str, Any]:
        return {"backend": self.backend, "context_length": 4096, "trained_positions": 4096, "rope_bases": {}}

    # the model
    def logprob(self, context: Sequence[int], token: int) -> float:
        seen = set(context)
        z = (VOCAB - len(seen)) + len(seen) * math.exp(COPY)
        return (COPY if token in seen else 0.0) - math.log(z)

    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig | None = None,
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: Any = None,
        on_token: Any = None,
    ) -> list[Generation]:
        self._count("generate")
        if logits_processors:
            raise AssertionError("the fake backend runs no logits processors")
        config = config or GenerationConfig()
        out = []
        for request in requests:
            request = request if isinstance(request, GenerateRequest) else GenerateRequest(request)
            ids = list(request.prompt.ids) if isinstance(request.prompt, TokensPrompt) else self.encode(
                self.format_prompt(request)
            )
            tokens = ids[: config.max_new_tokens - 1] + [EOS]
            finish = "eos" if len(tokens) <= config.max_new_tokens else "length"
            out.append(Generation(self.decode(tokens), tokens, finish, prompt_tokens=len(ids)))
        if on_batch:
            on_batch(len(out), sum(len(g.token_ids) for g in out))
        return out

    def score(self, requests: Sequence[ScoreRequest], *, batch_size: int = 16, on_batch: Any = None) -> list[ScoreResult]:
        self._count("score")
        out = []
        for request in requests:
            context = self.encode(request.context)
            continuation = self.encode(request.continuation)
            values = [self.logprob(context + continuation[:k], t) for k, t in enumerate(continuation)]
            out.append(ScoreResult(sum(values), values, continuation, False))
        if on_batch:
            on_batch(len(out), sum(len(r.tokens) for r in out))
        return out

    def next_token_logprobs(
        self, requests: Sequence[NextTokenRequest], *, batch_size: int = 16, on_batch: Any = None
    ) -> list[list[float]]:
        self._count("next_token")
        out = []
        for request in requests:
            ids = list(request.prompt.ids) if isinstance(request.prompt, TokensPrompt) else self.encode(request.prompt)
            out.append([self.logprob(ids, self.tokenizer(c).input_ids[0]) for c in request.candidates])
        return out

    def sequence_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        positions: Sequence[int] | None = None,
        top_k: int = 0,
        batch_size: int = 1,
        on_batch: Any = None,
    ) -> list[TokenLogprobs]:
        self._count("sequence_logprobs")
        out = []
        for seq in sequences:
            wanted = set(positions) if positions is not None else set(range(1, len(seq)))
            values = [self.logprob(seq[:j], seq[j]) if j in wanted and j >= 1 else None for j in range(len(seq))]
            out.append(TokenLogprobs(list(seq), values))
        return out


@register_backend("fake", description="tests' in-memory copy model")
def load_fake(name: str, **_: Any) -> FakeModel:
    return FakeModel(name)
