"""Seed 001's rule-based adapter: a product of experts p(w|x) ∝ p_base(w|x) · p_rules(w|x), where
the rules' scores are added to the base model's logits at every step.

1. end-of-sequence bonus growing with response length: +eos_weight · p / eos_horizon for
   0 < p < eos_horizon generated tokens, 0 otherwise;
2. fixed score changes for token strings (a preset, or your own list), matched by the exact
   text each token id spells;
3. `used_weight` for every distinct token already used since the instruction began.

Reference (implicit-ins `open_instruct/combined_model.py`, run as `eos-uniform-diversity`):
rule 3 counts every token from just after the last user-turn marker on — the instruction, the
assistant marker and the response — so restating the instruction is penalised from the first
response token; `scope="response"` counts generated tokens only. Rule 2's `reference` preset
is the reference's Llama-2 token list by string, as that tokenizer spells each token (with or
without its leading "▁"). All three rules are vectorised: one precomputed bias vector, a per-step
EOS bonus on a few ids and a [batch, vocab] penalty updated by a scatter of the newest tokens."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from nevermind.adapters.base import AdapterConfig, register_adapter
from nevermind.adapters.vocab import token_surfaces

REFERENCE_TOKEN_WEIGHTS: dict[str, float] = {
    "<": -4.0,  # Llama-2 id 29966
    " <": -4.0,  # 529 "▁<"
    "|": -4.0,  # 29989
    " I": -5.0,  # 306 "▁I"
    "I": -5.0,  # 29902
    " We": -3.0,  # 1334 "▁We"
    "What": -5.0,  # 5618 (bare; "▁What" is 1724, not listed)
    " should": -6.0,  # 881 "▁should"
    " *": 1.0,  # 334 "▁*"
    " -": 1.0,  # 448 "▁-"
    "   ": 1.0,  # 1678 "▁▁▁"
    " #": 1.0,  # 396 "▁#"
    " ##": 1.0,  # 444 "▁##"
    "\n": 1.0,  # 13 "<0x0A>"
    "!": 1.0,  # 29991
}
"""Rule 2 as the reference lists it: its Llama-2 token ids, each as the text the token spells after
earlier text (a leading "▁" is a leading space)."""

_BARE_REFERENCE_STRINGS: dict[str, float] = {
    "<": -4.0, "|": -4.0, "I": -5.0, "We": -3.0, "What": -5.0, "should": -6.0,
    "*": 1.0, "-": 1.0, "#": 1.0, "##": 1.0, "   ": 1.0, "\n": 1.0, "!": 1.0,
}  # fmt: skip

BOTH_SPACINGS_TOKEN_WEIGHTS: dict[str, float] = {}
"""Rule 2 with every listed string both bare and after a leading space (nevermind's first reading
of the seed's list)."""
for _string, _weight in _BARE_REFERENCE_STRINGS.items():
    for _variant in (_string, " " + _string):
        BOTH_SPACINGS_TOKEN_WEIGHTS[_variant] = BOTH_SPACINGS_TOKEN_WEIGHTS.get(_variant, 0.0) + _weight

TOKEN_PRESETS: dict[str, dict[str, float]] = {
    "reference": REFERENCE_TOKEN_WEIGHTS,
    "both-spacings": BOTH_SPACINGS_TOKEN_WEIGHTS,
}
"""Rule 2's named token lists (token text → added score)."""


class RulesConfig(AdapterConfig):
    """Which of the three rules are on, and their weights."""

    eos: bool = Field(True, description="Rule 1 on: end-of-sequence bonus growing with response length.")
    eos_weight: float = Field(15.0, description="Rule 1: bonus reached just before eos_horizon tokens.")
    eos_horizon: int = Field(250, ge=1, description="Rule 1: bonus is eos_weight·p/eos_horizon for 0<p<horizon.")
    tokens: bool = Field(True, description="Rule 2 on: fixed score changes for listed token strings.")
    token_preset: Literal["reference", "both-spacings"] = Field(
        "reference",
        description="Rule 2's list: reference (the reference's Llama-2 tokens, leading space as spelled) "
        "or both-spacings (every string bare and after a space).",
    )
    token_weights: dict[str, float] | None = Field(
        None,
        description="Rule 2: your own token text → added score (leading space written out, e.g. \" I\"); "
        "replaces the preset.",
    )
    used: bool = Field(True, description="Rule 3 on: penalise every distinct token already used.")
    used_weight: float = Field(-1.5, description="Rule 3: score added to each token already used.")
    scope: Literal["instruction", "response"] = Field(
        "instruction",
        description="Rule 3 counts tokens from just after the last user-turn marker (instruction, "
        "assistant marker, response: the reference) or the generated response only.",
    )

    def weights(self) -> dict[str, float]:
        """Rule 2's token text → score in force."""
        return self.token_weights if self.token_weights is not None else TOKEN_PRESETS[self.token_preset]


def user_turn_marker(tokenizer: Any) -> list[int]:
    """Token ids that end the last user-turn marker in a chat-formatted prompt (`<|user|>\\n` in
    seed 001's plain template, `<|im_start|>user\\n` in ChatML, ...), as the tokenizer splits them
    in context; [] when the template shows none.

    The marker is the text that precedes a user message both at the start of a chat and after an
    assistant turn, so a system prompt or a BOS before the first turn is not part of it."""
    from nevermind.models.chat import format_chat

    probe, earlier = "\u2063probe\u2063", "\u2063earlier\u2063"
    first = format_chat(tokenizer, [{"role": "user", "content": probe}])
    prefix = first[: first.find(probe)] if probe in first else ""
    try:
        later = format_chat(
            tokenizer,
            [
                {"role": "user", "content": earlier},
                {"role": "assistant", "content": earlier},
                {"role": "user", "content": probe},
            ],
        )
        between = later[later.rfind(earlier) + len(earlier) : later.find(probe)]
    except Exception:  # noqa: BLE001  (a template that takes one turn only: the first prefix alone)
        between = prefix
    shared = 0
    while shared < min(len(prefix), len(between)) and prefix[-1 - shared] == between[-1 - shared]:
        shared += 1
    if not shared:
        return []
    marker_start = len(prefix) - shared
    encoded = tokenizer(first, add_special_tokens=False, return_offsets_mapping=True)
    return [
        token_id
        for token_id, (start, end) in zip(encoded.input_ids, encoded.offset_mapping)
        if start >= marker_start and end <= len(prefix) and end > start
    ]


def special_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the tokenizer's special tokens (turn markers, eos, pad): never "used" text."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    return sorted(special)


class RulesAdapter:
    """Logits processor adding the three rules' scores to the base model's logits."""

    name = "rules"

    def __init__(self, tokenizer: Any, eos_token_ids: set[int], config: RulesConfig) -> None:
        self.config = config
        self.eos_token_ids = sorted(eos_token_ids)
        self.token_ids = self._token_ids(tokenizer, config.weights()) if config.tokens else {}
        instruction_scope = config.used and config.scope == "instruction"
        self.user_marker = user_turn_marker(tokenizer) if instruction_scope else []
        self.special_ids = special_token_ids(tokenizer) if instruction_scope else []
        self.prompt_length: int | None = None
        self._bias: torch.Tensor | None = None
        self._eos_index: torch.Tensor | None = None
        self._penalty: torch.Tensor | None = None
        self._absorbed = 0

    @staticmethod
    def _token_ids(tokenizer: Any, weights: dict[str, float]) -> dict[int, float]:
        """Rule 2's weight per token id: every id whose text is exactly a listed string."""
        by_id: dict[int, float] = {}
        for string, ids in token_surfaces(tokenizer).ids_spelling(set(weights)).items():
            for token_id in ids:
                by_id[token_id] = by_id.get(token_id, 0.0) + weights[string]
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
        if self.config.used and (generated > 0 or self.config.scope == "instruction"):
            scores = scores + self._used_penalty(input_ids, scores, generated)
        return scores

    def _prompt_penalty(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """[batch, vocab] with used_weight at every non-special prompt token after the last
        user-turn marker (the whole prompt when a row has no marker: a raw-text prompt)."""
        prompt = input_ids[:, : self.prompt_length]
        rows, width = prompt.shape
        start = torch.zeros(rows, dtype=torch.long, device=prompt.device)
        k = len(self.user_marker)
        if k and width >= k:
            marker = torch.tensor(self.user_marker, device=prompt.device)
            hits = (prompt.unfold(1, k, 1) == marker).all(-1)  # [rows, width - k + 1]
            positions = torch.arange(hits.shape[1], device=prompt.device)
            last = torch.where(hits, positions, -1).max(dim=1).values
            start = torch.where(last >= 0, last + k, start)
        counted = torch.arange(width, device=prompt.device)[None, :] >= start[:, None]
        if self.special_ids:
            counted &= ~torch.isin(prompt, torch.tensor(self.special_ids, device=prompt.device))
        seen = torch.zeros_like(scores).scatter_add_(1, prompt, counted.to(scores.dtype))
        return torch.where(seen > 0, self.config.used_weight, 0.0).to(scores.dtype)

    def _used_penalty(self, input_ids: torch.Tensor, scores: torch.Tensor, generated: int) -> torch.Tensor:
        """[batch, vocab] with used_weight at every token id used so far (updated incrementally)."""
        if self._penalty is None or self._penalty.shape != scores.shape or generated < self._absorbed:
            if self.config.scope == "instruction":
                self._penalty = self._prompt_penalty(input_ids, scores)
            else:
                self._penalty = torch.zeros_like(scores)
            self._absorbed = 0
        new = input_ids[:, self.prompt_length + self._absorbed :]
        if new.numel():
            self._penalty.scatter_(1, new, self.config.used_weight)
        self._absorbed = generated
        return self._penalty


@register_adapter("rules", RulesConfig)
def rules_adapter(model: Any, config: RulesConfig) -> RulesAdapter:
    """Seed 001's 3-rule adapter (EOS bonus by length, token-string changes, used-token penalty)."""
    eos = getattr(model, "eos_token_ids", None) or {model.tokenizer.eos_token_id}
    return RulesAdapter(model.tokenizer, set(eos), config)
