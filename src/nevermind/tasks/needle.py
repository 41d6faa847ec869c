"""Needle in a haystack: a fact placed at a depth of N tokens of real prose, then a question about it.

The haystack is Paul Graham's essays (data/haystack.py), measured in tokens of the model's
own tokenizer; the needle goes to the sentence boundary nearest the requested depth. The needles
are built in (NEEDLES) or the user's own (`TaskOptions.data["needle"]`, tasks/userdata.py)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nevermind.data.haystack import haystack_text
from nevermind.models.requests import GenerationConfig
from nevermind.scoring.echo import answer_sentences, find_echo, question_sentence
from nevermind.scoring.matching import match_with_penalties
from nevermind.tasks.base import Sample, SampleScore, register_task
from nevermind.tasks.loader import TaskOptions, count_tokens, take, token_ids
from nevermind.tasks.userdata import NeedleRecord, load_records

NEEDLES_PER_CELL = 2
"""Different needles asked in every (length, depth) cell of the grid."""


@dataclass(frozen=True)
class Needle:
    """A made-up fact (so no model knows it), the question that asks for it, and accepted answers."""

    key: str
    sentence: str
    question: str
    answers: tuple[str, ...]


NEEDLES = (
    Needle("dolores-park", "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a "
           "sunny day.", "What is the best thing to do in San Francisco?", ("Dolores Park", "eat a sandwich")),
    Needle("orion-number", "The special magic number for the Orion archive is 7481.",
           "What is the special magic number for the Orion archive?", ("7481",)),
    Needle("soup-ingredient", "The secret ingredient in Rosa Calloway's lentil soup is smoked paprika.",
           "What is the secret ingredient in Rosa Calloway's lentil soup?", ("paprika",)),
    Needle("lighthouse-password", "The password to the Harrow Point lighthouse is blue heron.",
           "What is the password to the Harrow Point lighthouse?", ("blue heron",)),
    Needle("spare-keys", "Dr. Amelia Hart keeps her spare keys inside a red teapot on the windowsill.",
           "Where does Dr. Amelia Hart keep her spare keys?", ("teapot",)),
    Needle("derby-winner", "The winner of the 1931 Glenmoor Derby was a horse named Copper Lantern.",
           "What was the name of the horse that won the 1931 Glenmoor Derby?", ("Copper Lantern",)),
    Needle("marigold-treasure", "The treasure of the sunken ship Marigold lies buried on Kestrel Island.",
           "Where is the treasure of the sunken ship Marigold buried?", ("Kestrel Island", "Kestrel")),
    Needle("book-club", "The Lindqvist book club meets every second Thursday at the Juniper Café.",
           "Where does the Lindqvist book club meet?", ("Juniper Café", "Juniper")),
)  # fmt: skip

PROMPT = (
    "Below is a document. Read it, then answer the question that follows it.\n\n"
    "<document>\n{document}\n</document>\n\n"
    "Question: {question} Answer in one short sentence, using only the document."
)

# A sentence ends after . ! or ? (not after a capital initial like "U.S."), maybe closing quotes, then space.
_SENTENCE_END = re.compile(r"(?<=[a-z0-9%)\]][.!?])[\"')\]]*\s+|\n\n+")


def sentence_starts(text: str) -> list[int]:
    """Character offsets where a sentence starts: 0, after every sentence end, and len(text)."""
    return sorted({0, len(text), *(m.end() for m in _SENTENCE_END.finditer(text))})


def insert_at_depth(haystack: str, needle: str, depth: float) -> tuple[str, float]:
    """Put `needle` at the sentence boundary nearest `depth` percent of `haystack`'s characters.

    Returns the document and the depth actually used (percent of characters before the needle)."""
    target = len(haystack) * depth / 100
    starts = sentence_starts(haystack)
    i = bisect.bisect_left(starts, target)
    candidates = starts[max(i - 1, 0) : i + 1]
    position = min(candidates, key=lambda s: (abs(s - target), s))
    before, after = haystack[:position].rstrip(), haystack[position:].lstrip()
    document = " ".join(part for part in (before, needle, after) if part)
    return document, 100.0 * position / max(len(haystack), 1)


def _char_offsets(tokenizer: Any, text: str) -> list[int]:
    """End character offset of every token of `text` (offsets from a fast tokenizer, else by decoding)."""
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    try:
        encoded = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return [end for _, end in encoded["offset_mapping"]]
    except (NotImplementedError, TypeError, KeyError, ValueError):
        ids = token_ids(tok, text)
        return [len(tok.decode(ids[: i + 1])) for i in range(len(ids))]


def cut_to_tokens(tokenizer: Any, text: str, n_tokens: int) -> str:
    """The longest prefix of `text` of at most `n_tokens` tokens that ends at a word boundary."""
    if n_tokens <= 0:
        return ""
    ends = _char_offsets(tokenizer, text)
    if len(ends) <= n_tokens:
        return text
    prefix = text[: ends[n_tokens - 1]]
    cut = max(prefix.rfind(" "), prefix.rfind("\n"))
    return prefix[:cut].rstrip() if cut > 0 else prefix


@register_task("needle")
class NeedleTask:
    """Retrieve a fact from a haystack of `length` tokens at `depth` percent; pass = the fact's answer appears."""

    name = "needle"
    generation = GenerationConfig(max_new_tokens=32)

    def __init__(self, options: TaskOptions | None = None, tokenizer: Any = None) -> None:
        self.options = options or TaskOptions()
        self.tokenizer = tokenizer

    def _haystack(self, start_essay: int, n_tokens: int) -> str:
        """`n_tokens` tokens of the essays, starting at essay number `start_essay` (wrapping around)."""
        essays = haystack_text().split("\n\n")
        start = start_essay % len(essays)
        text = "\n\n".join(essays[start:] + essays[:start])
        budget = n_tokens * 8 + 2000  # characters: far more than n_tokens tokens of English prose
        while len(text) < budget:  # beyond the essays' ~150k tokens, they start over
            text = f"{text}\n\n{text}"
        return cut_to_tokens(self.tokenizer, text[:budget], n_tokens)

    def needles(self) -> tuple[Needle, ...]:
        """The built-in needles, or the user's (`options.data["needle"]`)."""
        path = self.options.data.get(self.name)
        if path is None:
            return NEEDLES
        records = load_records(path, NeedleRecord, self.name)
        return tuple(Needle(r.id, r.needle, r.question, tuple(r.answers)) for r in records)

    def samples(self) -> list[Sample]:
        """Cells length × depth, NEEDLES_PER_CELL needles each; the first pass covers every cell once."""
        return take(self._generate(), self.options.limit)

    def _generate(self) -> Iterator[Sample]:
        opts = self.options
        needles = self.needles()
        cells = [(length, depth) for length in opts.lengths for depth in opts.depths]
        haystacks: dict[tuple[int, int], str] = {}
        # Built in: NEEDLES_PER_CELL different needles per cell. The user's: every needle in every cell.
        builtin = needles is NEEDLES
        rounds = NEEDLES_PER_CELL if builtin else len(needles)
        step = len(needles) // NEEDLES_PER_CELL if builtin else 1
        for round_ in range(rounds):
            for c, (length, depth) in enumerate(cells):
                needle = needles[(opts.seed + c + round_ * step) % len(needles)]
                hay_tokens = length - count_tokens(self.tokenizer, needle.sentence)
                key = (opts.seed + round_ % NEEDLES_PER_CELL, hay_tokens)  # a few haystacks, reused
                if key not in haystacks:
                    haystacks[key] = self._haystack(*key)
                document, actual = insert_at_depth(haystacks[key], needle.sentence, depth)
                prompt = PROMPT.format(document=document, question=needle.question)
                yield Sample(
                    id=f"needle-L{length}-D{depth:g}-{needle.key}",
                    messages=[{"role": "user", "content": prompt}],
                    target={"answers": list(needle.answers)},
                    metadata={
                        "length": length,
                        "depth": depth,
                        "needle": needle.key,
                        "depth_actual": round(actual, 2),
                        "document_tokens": count_tokens(self.tokenizer, document),
                    },
                )

    def score(self, sample: Sample, output: str) -> SampleScore:
        """1 when one of the needle's answers appears in the output (normalized, whole words) outside
        any echo of the prompt (quoting the needle sentence itself is an answer), else 0."""
        answers = sample.target["answers"]
        prompt = "\n".join(m["content"] for m in sample.messages)
        sources = answer_sentences(prompt, answers) + question_sentence(sample.messages)
        echo = find_echo(output, sample.messages, sources)
        match = match_with_penalties(echo.mask(), answers)
        return SampleScore(
            value=match.value,
            explanation=f"{match.explain('needle answer')}; {echo.explain()}",
            matches={"answer": match.hits, "echo": [span.text for span in echo.echoes]},
            extra={"echo": float(echo.echo)},
        )
