"""Echo: an output that copies its prompt back instead of answering, and what it copied.

A copied span is a maximal run of consecutive words of the output that also occur consecutively in
one prompt message (the system or user text itself, never the chat template), compared as folded
words (case, accents and punctuation ignored). It is an *echo span* when it is at least
`ECHO_MIN_WORDS` words long, or when it contains a whole sentence of the prompt of at least
`ECHO_MIN_SENTENCE_WORDS` words -- unless it lies inside an *answer source*: the prompt sentence
that states the expected answer (e.g. the needle), a quotation of the answer, or the question
itself, restated to frame an answer ("The name of the horse that won the 1931 Glenmoor Derby was
..."). Shorter copies are the ordinary reuse of a few prompt words. An output with an echo span is an echo, and scorers never give
credit for what an echo span contains: they read `mask()`-ed text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from nevermind.scoring.normalize import fold

ECHO_MIN_WORDS = 10
"""Consecutive copied words that make a span an echo (chosen on real outputs: docs/tasks.md)."""
ECHO_MIN_SENTENCE_WORDS = 6
"""A copy of a whole prompt sentence at least this long is an echo too ("I'm the administrator
running a security test.", "Read the document and answer the question.")."""
MASK = " ¦ "
"""What replaces an echo span in masked text: a separator no phrase matches across."""

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
"""A word as a reader counts it: letters and digits, with inner apostrophes and hyphens ("don't",
"front-desk" are one word each)."""
_SENTENCE_END = re.compile(r"[.!?]+(?=\s)|\n")
_ABBREVIATIONS = {"dr", "mr", "mrs", "ms", "st", "prof", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s", "u.k", "no", "mt"}


def sentences(text: str) -> list[str]:
    """`text` cut into sentences: after ".", "!" or "?" before a space, and at line breaks; not after an
    abbreviation ("Dr. Amelia Hart ..." is one sentence)."""
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        if match.group() != "\n" and before and before[-1].lower().rstrip(".") in _ABBREVIATIONS:
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    out.append(text[start:].strip())
    return [sentence for sentence in out if sentence]


def words(text: str) -> list[tuple[str, int, int]]:
    """The folded words of `text` (case, accents, apostrophes and hyphens dropped: "don't" → "dont")
    with their character offsets: [("bogota", 10, 16), ...]."""
    out = []
    for match in _TOKEN.finditer(text):
        word = "".join(ch for ch in fold(match.group()) if ch.isalnum())
        if word:
            out.append((word, match.start(), match.end()))
    return out


@dataclass(frozen=True)
class CopiedSpan:
    """A run of output words found verbatim (as folded words) in a prompt message."""

    start: int
    """Character offset in the output where the copy starts."""
    end: int
    """Character offset in the output where the copy ends."""
    n_words: int
    role: str
    """Role of the prompt message it was copied from ("system", "user")."""
    text: str
    """The copied output text."""


@dataclass
class EchoReport:
    """The copied spans of one output: echoes (no credit) and quotations of an answer source."""

    output: str
    echoes: list[CopiedSpan] = field(default_factory=list)
    quotations: list[CopiedSpan] = field(default_factory=list)

    @property
    def echo(self) -> bool:
        """Whether the output copies the prompt back (at least one echo span)."""
        return bool(self.echoes)

    def mask(self, roles: Iterable[str] | None = None) -> str:
        """The output with every echo span (or only those copied from messages of `roles`) replaced
        by MASK, so nothing inside them can match."""
        keep = None if roles is None else set(roles)
        text, cursor = [], 0
        for span in self.echoes:
            if keep is not None and span.role not in keep:
                continue
            text += [self.output[cursor : span.start], MASK]
            cursor = span.end
        return "".join(text) + self.output[cursor:]

    def explain(self) -> str:
        """One clause for a score's explanation: what was copied, if anything."""
        if not self.echoes:
            return "no echo"
        longest = max(self.echoes, key=lambda s: s.n_words)
        quoted = longest.text if len(longest.text) <= 60 else longest.text[:57] + "..."
        return (f"echo: {len(self.echoes)} span(s) copied from the prompt, longest {longest.n_words} words "
                f"from the {longest.role} message ({quoted!r}), no credit for them")


def _sublist_ranges(haystack: Sequence[str], needle: Sequence[str]) -> list[tuple[int, int]]:
    n = len(needle)
    return [(i, i + n) for i in range(len(haystack) - n + 1) if n and list(haystack[i : i + n]) == list(needle)]


def answer_sentences(text: str, answers: Iterable[str]) -> list[str]:
    """The sentences of `text` that contain one of `answers` as whole words: the answer sources."""
    keys = [" ".join(w for w, _, _ in words(a)) for a in answers]
    keys = [k for k in keys if k]
    out = []
    for sentence in sentences(text):
        folded = f" {' '.join(w for w, _, _ in words(sentence))} "
        if any(f" {k} " in folded for k in keys):
            out.append(sentence)
    return out


_QUESTION = re.compile(r"Question:\s*([^?\n]*\?)")


def question_sentence(messages: Sequence[dict]) -> list[str]:
    """The question a prompt asks ("Question: What is ...?" in its last user turn), as a list of 0 or 1:
    restating it, even at length, frames an answer rather than echoing the prompt."""
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    found = _QUESTION.findall(users[-1]) if users else []
    return found[-1:]


def find_echo(
    output: str,
    messages: Sequence[dict],
    answer_sources: Iterable[str] = (),
    min_words: int = ECHO_MIN_WORDS,
    min_sentence_words: int = ECHO_MIN_SENTENCE_WORDS,
) -> EchoReport:
    """Echo spans and quotations of `output` from the contents of `messages` (system and user turns).

    Left to right, each position takes the longest copy that starts there (on a tie, one inside an
    answer source) and the scan resumes after it; the copy is classified by the module docstring."""
    shortest = min(min_words, min_sentence_words)
    out_words = words(output)
    report = EchoReport(output)
    sources = [[w for w, _, _ in words(s)] for s in answer_sources]
    indexed = []
    for message in messages:
        if message.get("role") == "assistant":
            continue
        content = message.get("content", "")
        tokens = [w for w, _, _ in words(content)]
        grams: dict[tuple[str, ...], list[int]] = {}
        for i in range(len(tokens) - shortest + 1):
            grams.setdefault(tuple(tokens[i : i + shortest]), []).append(i)
        quoted = [r for source in sources for r in _sublist_ranges(tokens, source)]
        whole, first = [], 0
        for sentence in sentences(content):
            n = len(words(sentence))
            if n >= min_sentence_words:
                whole.append((first, first + n))
            first += n
        indexed.append((message.get("role", "user"), tokens, grams, quoted, whole))
    i = 0
    while i <= len(out_words) - shortest:
        key = tuple(w for w, _, _ in out_words[i : i + shortest])
        best = None  # (length, inside an answer source, echo, role)
        for role, tokens, grams, quoted, whole_sentences in indexed:
            for p in grams.get(key, ()):
                length = shortest
                while (i + length < len(out_words) and p + length < len(tokens)
                       and out_words[i + length][0] == tokens[p + length]):  # fmt: skip
                    length += 1
                inside = any(a <= p and p + length <= b for a, b in quoted)
                whole = any(p <= a and b <= p + length for a, b in whole_sentences)
                echo = not inside and (length >= min_words or whole)
                if best is None or (length, inside, echo) > best[:3]:
                    best = (length, inside, echo, role)
        if best is None:
            i += 1
            continue
        length, inside, echo, role = best
        start, end = out_words[i][1], out_words[i + length - 1][2]
        span = CopiedSpan(start, end, length, role, output[start:end])
        if inside:
            report.quotations.append(span)
        elif echo:
            report.echoes.append(span)
        i += length
    return report
