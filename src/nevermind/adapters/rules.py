"""Seed 001's rule-based adapter: a product of experts p(w|x) ∝ p_base(w|x) · p_rules(w|x), where
the rules' scores are added to the base model's logits at every step.

1. end-of-sequence bonus growing with response length: +eos_weight · p / eos_horizon for
   0 < p < eos_horizon generated tokens, 0 otherwise;
2. fixed score changes for token strings, each matched with and without a leading space;
3. `used_weight` for every distinct token already used in the response.

"Since the instruction began" is read as: since the response began — rule 3 counts the tokens
generated after the prompt (instruction and chat template are not counted); a token used twice is
still penalised once. All three rules are vectorised: one precomputed bias vector, a per-step
EOS bonus on a few ids and a [batch, vocab] penalty updated by a scatter of the newest tokens."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from nevermind.adapters.base import AdapterConfig, register_adapter
from nevermind.adapters.vocab import token_surfaces

REFERENCE_TOKEN_WEIGHTS: dict[str, float] = {
    "<": -4.0,
    "|": -4.0,
    "I": -5.0,
    "We": -3.0,
    "What": -5.0,
    "should": -6.0,
    "*": 1.0,
    "-": 1.0,
    "#": 1.0,
    "##": 1.0,
    "   ": 1.0,
    "\n": 1.0,
    "!": 1.0,
}
"""Rule 2's reference weights (seed 001 / issue 4), by token string."""


class RulesConfig(AdapterConfig):
    """Which of the three rules are on, and their weights."""

    eos: bool = Field(True, description="Rule 1 on: end-of-sequence bonus growing with response length.")
    eos_weight: float = Field(15.0, description="Rule 1: bonus reached just before eos_horizon tokens.")
    eos_horizon: int = Field(250, ge=1, description="Rule 1: bonus is eos_weight·p/eos_horizon for 0<p<horizon.")
    tokens: bool = Field(True, description="Rule 2 on: fixed score changes for listed token strings.")
    token_weights: dict[str, float] = Field(
        default_factory=lambda: dict(REFERENCE_TOKEN_WEIGHTS),
        description="Rule 2: token string → added score (matched with and without a leading space).",
    )
    used: bool = Field(True, description="Rule 3 on: penalise every distinct token already generated.")
    used_weight: float = Field(-1.5, description="Rule 3: score added to each token already in the response.")


class RulesAdapter:
    """Logits processor adding the three rules' scores to the base model's logits."""

    name = "rules"

    def __init__(self, tokenizer: Any, eos_token_ids: set[int], config: RulesConfig) -> None:
        self.config = config
        self.eos_token_ids = sorted(eos_token_ids)
        self.token_ids = self._token_ids(tokenizer, config.token_weights) if config.tokens else {}
        self.prompt_length: int | None = None
        self._bias: torch.Tensor | None = None
        self._eos_index: torch.Tensor | None = None
        self._penalty: torch.Tensor | None = None
        self._absorbed = 0

    @staticmethod
    def _token_ids(tokenizer: Any, weights: dict[str, float]) -> dict[int, float]:
        """Rule 2's weight per token id: each string is matched bare and after a leading space."""
        surfaces = token_surfaces(tokenizer)
        wanted: dict[str, float] = {}
        for string, weight in weights.items():
            for variant in {string, " " + string}:
                wanted[variant] = wanted.get(variant, 0.0) + weight
        by_id: dict[int, float] = {}
        for variant, ids in surfaces.ids_spelling(set(wanted)).items():
            for token_id in ids:
                by_id[token_id] = by_id.get(token_id, 0.0) + wanted[variant]
        return by_id

    def start_batch(self, prompt_length: int) -> None:
        """A new batch starts: its generated tokens are input_ids[:, prompt_length:]."""
        self.prompt_length = prompt_length
        self._penalty = None
        self._absorbed = 0

    def _static(self, scores: torch.Tensor) -> None:
        vocab = scores.shape[-1]
        bias = torch.zeros(vocab, dtype=scores.dtype)
        for token_id, weight in self.token_ids.items():
            if token_id < vocab:
                bias[token_id] += weight
        self._bias = bias.to(scores.device) if self.token_ids else None
        eos = [i for i in self.eos_token_ids if i < vocab]
        self._eos_index = torch.tensor(eos, dtype=torch.long, device=scores.device)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Add the rules' scores to `scores` ([batch, vocab]) given the tokens so far."""
        if self.prompt_length is None:
            self.prompt_length = input_ids.shape[1]
        if self._eos_index is None or (self._bias is not None and self._bias.shape[0] != scores.shape[-1]):
            self._static(scores)
        generated = input_ids.shape[1] - self.prompt_length
        if self._bias is not None:
            scores = scores + self._bias
        if self.config.eos and 0 < generated < self.config.eos_horizon and self._eos_index.numel():
            bonus = self.config.eos_weight * generated / self.config.eos_horizon
            scores = scores.index_add(
                1, self._eos_index, scores.new_full((scores.shape[0], self._eos_index.numel()), bonus)
            )
        if self.config.used and generated > 0:
            scores = scores + self._used_penalty(input_ids, scores, generated)
        return scores

    def _used_penalty(self, input_ids: torch.Tensor, scores: torch.Tensor, generated: int) -> torch.Tensor:
        """[batch, vocab] with used_weight at every token id generated so far (updated incrementally)."""
        if self._penalty is None or self._penalty.shape != scores.shape or generated < self._absorbed:
            self._penalty = torch.zeros_like(scores)
            self._absorbed = 0
        new = input_ids[:, self.prompt_length + self._absorbed :]
        self._penalty.scatter_(1, new, self.config.used_weight)
        self._absorbed = generated
        return self._penalty


@register_adapter("rules", RulesConfig)
def rules_adapter(model: Any, config: RulesConfig) -> RulesAdapter:
    """Seed 001's 3-rule adapter (EOS bonus by length, token-string changes, used-token penalty)."""
    eos = getattr(model, "eos_token_ids", None) or {model.tokenizer.eos_token_id}
    return RulesAdapter(model.tokenizer, set(eos), config)
