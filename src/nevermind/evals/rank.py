"""Response ranking (seed 001): does the model give an instruction's real response a higher
per-token geometric-mean probability than responses written for other instructions?

For each instruction, the real response and `negatives` random other responses are scored
given the chat-formatted instruction; a (real, random) pair counts 1 when the real one scores
higher (½ on an exact tie). The reported accuracy is the fraction over all pairs; its
standard error treats instructions as the independent units (the negatives of one
instruction share its real response, so they are not independent).

What is scored follows the reference (implicit-ins `ratio_eval.py`): the whole response
followed by the end-of-turn token, with prompt + response cut to `max_total_tokens` (1024)
tokens in total; a response cut there loses its end token, as in the reference. The
`max_response_tokens` option cuts every response to its first N tokens instead (an earlier
nevermind default, kept to compare with)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError

MAX_TOTAL_TOKENS = 1024
"""Default bound on prompt + response tokens (the reference's `--max_seq_length 1024`)."""


@dataclass(frozen=True)
class RankPair:
    """An instruction and the response written for it."""

    instruction: str
    response: str


@dataclass
class RankRecord:
    """Scores for one instruction: its real response and the random ones."""

    instruction: str
    real_logprob: float
    """Mean per-token log-probability of the real response."""
    random_logprobs: list[float]
    """Mean per-token log-probabilities of the random responses."""
    random_sources: list[int]
    """Indices of the instructions the random responses were written for."""

    @property
    def wins(self) -> float:
        """Pairs won by the real response (ties count ½)."""
        return sum(
            1.0 if self.real_logprob > r else 0.5 if self.real_logprob == r else 0.0
            for r in self.random_logprobs
        )


@dataclass
class RankResult:
    """The response-ranking score of one model."""

    model: str
    accuracy: float
    """Fraction of (real, random) pairs where the real response scored higher."""
    se: float
    """Standard error of `accuracy` (instructions as the units)."""
    instructions: int
    negatives: int
    seed: int
    max_total_tokens: int | None
    """Prompt + response were cut to this many tokens (None: no bound)."""
    max_response_tokens: int | None
    """Responses were cut to their first N tokens (None: whole responses)."""
    score_end: bool
    """Whether the end-of-turn token after a whole response was scored."""
    records: list[RankRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the per-instruction records."""
        return {k: v for k, v in asdict(self).items() if k != "records"}

    def to_json(self) -> dict[str, Any]:
        """Summary plus per-instruction records."""
        return {**self.summary(), "records": [asdict(r) for r in self.records]}


def load_rank_pairs(source: str, limit: int | None = None, seed: int = 0) -> list[RankPair]:
    """Pairs from "sharegpt" (the training-data carrier), "alpaca-eval" (its 805 instructions with
    the archive's example responses) or a JSONL file with "instruction" and "response" fields."""
    if source == "sharegpt":
        from nevermind.data.sharegpt import load_pairs

        pairs = [RankPair(p.instruction, p.response) for p in load_pairs(limit=limit, seed=seed)]
    elif source == "alpaca-eval":
        from nevermind.data.alpaca_eval import load_instructions

        pairs = [RankPair(i.instruction, i.example_output) for i in load_instructions(limit)]
    else:
        from nevermind.evals.outputs import read_jsonl

        pairs = [
            RankPair(r["instruction"], r["response"])
            for _, r in read_jsonl(source, ["instruction", "response"])
        ]
        pairs = pairs[:limit] if limit is not None else pairs
    return [p for p in pairs if p.instruction.strip() and p.response.strip()]


def token_count(tokenizer: Any, text: str) -> int:
    """Number of tokens of a prompt, BOS included (about four characters per token without a tokenizer)."""
    if tokenizer is None:
        return max(1, len(text) // 4)
    return len(tokenizer(text).input_ids)


def truncate_tokens(tokenizer: Any, text: str, max_tokens: int | None) -> str:
    """`text` cut to its first `max_tokens` tokens (whole text when it is shorter or no limit)."""
    if max_tokens is None:
        return text
    if tokenizer is None:  # a remote model: about four characters per token
        return text[: 4 * max_tokens]
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def end_of_turn(tokenizer: Any) -> str:
    """The text that ends an assistant turn: the special token the chat template writes right
    after the response (`<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`), else the eos token
    (seed 001's plain template ends a response with eos, as the reference does)."""
    from nevermind.models.chat import format_chat, has_chat_template

    eos = getattr(tokenizer, "eos_token", None) or ""
    if tokenizer is None or not has_chat_template(tokenizer):
        return eos
    marker = "\u2063response\u2063"
    try:
        text = format_chat(
            tokenizer,
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
            add_generation_prompt=False,
        )
    except Exception:  # noqa: BLE001  (a template that refuses this conversation: fall back to eos)
        return eos
    after = text[text.find(marker) + len(marker) :] if marker in text else ""
    special = sorted(getattr(tokenizer, "all_special_tokens", []), key=len, reverse=True)
    return next((t for t in special if t and after.startswith(t)), eos)


def scored_response(
    tokenizer: Any, response: str, budget: int | None, end: str
) -> str:
    """The continuation scored for one response: cut to `budget` tokens, followed by `end` only
    when nothing was cut (a cut response does not end there)."""
    text = response.strip()
    cut = truncate_tokens(tokenizer, text, budget)
    return cut if cut != text or not end else text + end


def draw_negatives(n: int, negatives: int, seed: int) -> list[list[int]]:
    """For each of `n` instructions, `negatives` distinct other indices, reproducible by seed."""
    if n <= negatives:
        raise NevermindError(f"response ranking needs more than {negatives} instructions, got {n}")
    rng = random.Random(seed)
    drawn = []
    for i in range(n):
        others = rng.sample(range(n - 1), negatives)
        drawn.append([j + 1 if j >= i else j for j in others])
    return drawn


def response_rank(
    model: Any,
    pairs: Sequence[RankPair],
    *,
    negatives: int = 5,
    seed: int = 0,
    max_total_tokens: int | None = MAX_TOTAL_TOKENS,
    max_response_tokens: int | None = None,
    score_end: bool = True,
    batch_size: int = 16,
    on_batch: Callable[[int, int], None] | None = None,
    records_path: str | Path | None = None,
) -> RankResult:
    """Score every instruction's real response against `negatives` random others.

    By default each response is scored whole, with the end-of-turn token, prompt + response
    cut to `max_total_tokens` (the reference's setting). `max_response_tokens` cuts responses
    to their first N tokens; `score_end=False` leaves the end-of-turn token out. Requests of
    one instruction share the same formatted prompt and go to `model.score` together, so a
    backend that shares a context computes it once. With `records_path`, each instruction's
    scores are appended there as they finish, keyed by the model and exactly what was scored,
    and a rerun skips them."""
    from nevermind.models.requests import GenerateRequest, ScoreRequest
    from nevermind.runs.records import RecordFile

    drawn = draw_negatives(len(pairs), negatives, seed)
    tokenizer = getattr(model, "tokenizer", None)
    end = end_of_turn(tokenizer) if score_end else ""
    prompts = [model.format_prompt(GenerateRequest(p.instruction, chat=True)) for p in pairs]
    store = RecordFile(records_path, ("key",), what="ranking record") if records_path is not None else None
    if store is not None:
        store.repair()
    finished = store.read() if store is not None else {}
    mean: dict[tuple[int, int], float] = {}
    for i, others in enumerate(drawn):
        budget = max_response_tokens
        if max_total_tokens is not None:
            room = max(1, max_total_tokens - token_count(tokenizer, prompts[i]))
            budget = room if budget is None else min(budget, room)
        sources = [i, *others]
        continuations = [scored_response(tokenizer, pairs[j].response, budget, end) for j in sources]
        key = _record_key(model.name, prompts[i], continuations)
        if (key,) in finished:
            values = finished[(key,)]["values"]
        else:
            results = model.score([ScoreRequest(prompts[i], c) for c in continuations], batch_size=batch_size)
            values = [r.mean_logprob for r in results]
            if store is not None:
                store.append([{"key": key, "instruction": pairs[i].instruction, "values": values}])
        mean.update({(i, j): v for j, v in zip(sources, values)})
        if on_batch:
            on_batch(len(sources), 0)
    records = [
        RankRecord(p.instruction, mean[(i, i)], [mean[(i, j)] for j in drawn[i]], drawn[i])
        for i, p in enumerate(pairs)
    ]
    fractions = [r.wins / negatives for r in records]
    accuracy = sum(fractions) / len(fractions)
    variance = sum((f - accuracy) ** 2 for f in fractions) / max(len(fractions) - 1, 1)
    return RankResult(
        model=model.name,
        accuracy=accuracy,
        se=math.sqrt(variance / len(fractions)),
        instructions=len(records),
        negatives=negatives,
        seed=seed,
        max_total_tokens=max_total_tokens,
        max_response_tokens=max_response_tokens,
        score_end=score_end,
        records=records,
    )


def _record_key(model: str, prompt: str, continuations: Sequence[str]) -> str:
    """Key of one instruction's scores: a hash of the model name and exactly what was scored."""
    text = json.dumps([model, prompt, list(continuations)], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
