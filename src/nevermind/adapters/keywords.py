"""Keyword filter: banned strings never appear in the decoded output, even when a string would be
spelled across several tokens.

Matching works on bytes (exactly what decoding concatenates). At each step, for every row and
banned string b, a token is masked when it would complete b: its bytes contain b, or the row's
output ends with b[:k] and the token's bytes start with b[k:]. Tokens by prefix are found by
bisecting the sorted token spellings once, so a step costs a few suffix checks per row, not a
loop over the vocabulary."""

from __future__ import annotations

import bisect
from typing import Any

import torch
from pydantic import Field, field_validator

from nevermind.adapters.base import AdapterConfig, register_adapter
from nevermind.adapters.vocab import token_surfaces


class KeywordsConfig(AdapterConfig):
    """The strings to keep out of the output."""

    banned: list[str] = Field(description="Strings that must never appear in the output (`a;b` on the CLI).")
    ignore_case: bool = Field(False, description="Also ban other ASCII casings of each string.")

    @field_validator("banned")
    @classmethod
    def _not_empty(cls, banned: list[str]) -> list[str]:
        if not banned or any(not b for b in banned):
            raise ValueError("give at least one non-empty banned string")
        return banned


class KeywordFilter:
    """Logits processor masking every token that would complete a banned string."""

    name = "keywords"

    def __init__(self, tokenizer: Any, config: KeywordsConfig) -> None:
        self.config = config
        surfaces = token_surfaces(tokenizer)
        self.raw = raw = surfaces.raw_folded(config.ignore_case)
        self.banned = [self._fold(b.encode("utf-8")) for b in config.banned]
        self.keep = max(len(b) for b in self.banned) - 1
        order, sorted_raw = surfaces.sorted_raw(config.ignore_case)
        # always masked: tokens that hold a whole banned string
        self.always = sorted({i for i, r in enumerate(raw) if r and any(b in r for b in self.banned)})
        # completions[b][k]: tokens whose bytes start with b[k:] (they finish b after a b[:k] suffix)
        self.completions: list[list[list[int]]] = []
        for b in self.banned:
            per_k = [[]]
            for k in range(1, len(b)):
                rest = b[k:]
                lo = bisect.bisect_left(sorted_raw, rest)
                hi = lo
                while hi < len(sorted_raw) and sorted_raw[hi].startswith(rest):
                    hi += 1
                per_k.append(order[lo:hi])
            self.completions.append(per_k)
        self.prompt_length: int | None = None
        self._tails: list[bytes] = []
        self._absorbed = 0
        self._always_index: torch.Tensor | None = None

    def _fold(self, data: bytes) -> bytes:
        return data.lower() if self.config.ignore_case else data

    def start_batch(self, prompt_length: int) -> None:
        """A new batch starts: its generated tokens are input_ids[:, prompt_length:]."""
        self.prompt_length = prompt_length
        self._tails = []
        self._absorbed = 0

    def _absorb(self, input_ids: torch.Tensor) -> None:
        generated = input_ids.shape[1] - self.prompt_length
        if len(self._tails) != input_ids.shape[0] or generated < self._absorbed:
            self._tails, self._absorbed = [b""] * input_ids.shape[0], 0
        if generated > self._absorbed:
            new = input_ids[:, self.prompt_length + self._absorbed :].tolist()
            for row, tokens in enumerate(new):
                tail = self._tails[row] + b"".join(self.raw[t] if t < len(self.raw) else b"" for t in tokens)
                self._tails[row] = tail[-self.keep :] if self.keep else b""
            self._absorbed = generated

    def masked_ids(self, tail: bytes, *, include_always: bool = True) -> set[int]:
        """Token ids that would complete a banned string after output ending in `tail`."""
        masked = set(self.always) if include_always else set()
        for b, per_k in zip(self.banned, self.completions):
            for k in range(1, len(b)):
                if tail.endswith(b[:k]):
                    masked.update(per_k[k])
        return masked

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Set the score of every token that would complete a banned string to -inf."""
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        self._absorb(input_ids)
        rows, cols = [], []
        for row, tail in enumerate(self._tails):
            ids = self.masked_ids(tail, include_always=False)
            rows += [row] * len(ids)
            cols += ids
        if self.always or cols:
            scores = scores.clone()
        if self.always:
            if self._always_index is None or self._always_index.device != scores.device:
                self._always_index = torch.tensor(self.always, device=scores.device)
            scores[:, self._always_index[self._always_index < scores.shape[-1]]] = float("-inf")
        if cols:
            index = (torch.tensor(rows, device=scores.device), torch.tensor(cols, device=scores.device))
            keep = index[1] < scores.shape[-1]
            scores[index[0][keep], index[1][keep]] = float("-inf")
        return scores


@register_adapter("keywords", KeywordsConfig)
def keywords_adapter(model: Any, config: KeywordsConfig) -> KeywordFilter:
    """Keyword filter: banned strings never appear in the output, even spelled across tokens."""
    return KeywordFilter(model.tokenizer, config)
