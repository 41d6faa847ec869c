"""What an output claims about a name: asserted, negated, or only asked about; and whether it calls
its source wrong. Used by the override scorer (docs/tasks.md, "override").

The output is cut into clauses at sentence ends, commas, semicolons, colons, dashes and
contrastive words (but, however, although, though, whereas, while, yet). In a clause, a mention is
  negated   when a negation comes before it in the clause ("not Mashhad", "isn't Mashhad",
            "rather than Mashhad", "instead of Mashhad") or right after it ("Mashhad is not the
            capital", "Mashhad is wrong");
  a question when the clause ends with "?";
  asserted  otherwise."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nevermind.scoring.normalize import normalize

_CLAUSE_BREAK = re.compile(
    r"(?<=[.!?;:,\n])|(?<=\s[-–—])|(?=\b(?:but|however|although|though|whereas|while|yet)\b)", re.IGNORECASE
)
_NEGATION_BEFORE = re.compile(r"\b(?:not|never|no|nor|neither|rather than|instead of|nothing|\w+n t|cannot)\b")
_NEGATION_AFTER = re.compile(
    r"^(?:\w+ ){0,2}?(?:(?:is|was|s|are|were) (?:not|no longer|never|wrong|incorrect|false|mistaken)"
    r"|(?:isn|wasn|aren|weren) t)\b"
)
_NOT_ASSERTING = ("isn t", "wasn t", "aren t", "doesn t", "don t", "didn t", "won t", "can t", "couldn t")
_DOCUMENT_WRONG = re.compile(
    r"\b(?:document|text|passage|statement|claim|information|this|that|it|which)"
    r" (?:is|s|was|are|seems|seems to be|appears to be)(?: (?:actually|in fact|really|simply|clearly|factually))?"
    r" (?:not correct|incorrect|wrong|false|inaccurate|not true|untrue|mistaken|outdated|not accurate"
    r"|a mistake|an error|a typo|misleading|not right)\b"
    r"|\b(?:error|mistake|typo|inaccuracy) in (?:the|this) (?:document|text|passage|statement)\b"
    r"|\b(?:contrary to|despite what) (?:the|this) (?:document|text|passage)\b"
)
_REAL_CAPITAL = re.compile(r"\b(?:real|actual|true|correct|official|proper) (?:capital|answer)\b")
_REALITY = re.compile(r"\b(?:actually|in reality|in fact|in truth|really|in the real world|in real life)\b")


@dataclass(frozen=True)
class Mention:
    """One occurrence of a name in an output and how its clause treats it."""

    name: str
    """The name as given to `mentions` (the first of its spellings)."""
    stance: str
    """"asserted", "negated" or "question"."""
    clause: str


def clauses(text: str) -> list[str]:
    """`text` cut into clauses (module docstring), each stripped; empty pieces dropped."""
    pieces = []
    for line in text.splitlines():
        pieces += [piece.strip() for piece in _CLAUSE_BREAK.split(line)]
    return [piece for piece in pieces if piece]


def _stance(folded: str, start: int, end: int, question: bool) -> str:
    """The stance of the mention at folded[start:end] in its clause."""
    before, after = folded[:start], folded[end:].strip()
    if _NEGATION_BEFORE.search(before) or _NEGATION_AFTER.match(after):
        return "negated"
    return "question" if question else "asserted"


def mentions(output: str, names: Sequence[Sequence[str]]) -> list[Mention]:
    """Every mention of each name (a list of its spellings; reported by the first) in `output`, in
    order; where spellings overlap ("New Delhi" and "Delhi", or one name inside another) the longest
    counts once."""
    found = []
    for clause in clauses(output):
        folded = f" {normalize(clause)} "
        question = clause.rstrip().endswith("?")
        keys = sorted({(normalize(s), i) for i, spellings in enumerate(names) for s in spellings if normalize(s)},
                      key=lambda key: -len(key[0]))  # fmt: skip
        spans: list[tuple[int, int, int]] = []
        for key, i in keys:
            for match in re.finditer(f"(?<= ){re.escape(key)}(?= )", folded):
                if not any(a < match.end() and match.start() < b for a, b, _ in spans):
                    spans.append((match.start(), match.end(), i))
        for start, end, i in sorted(spans):
            found.append(Mention(names[i][0], _stance(folded, start, end, question), clause))
    return found


def sentences(text: str) -> list[str]:
    """`text` cut at sentence ends and line breaks."""
    return [piece.strip() for piece in re.split(r"(?<=[.!?])\s+|\n+", text) if piece.strip()]


def contradictions(output: str, asserted_names: Iterable[str]) -> list[str]:
    """Where `output` calls its source wrong: a clause saying so ("the document is incorrect",
    "that's outdated", "an error in the document"), a clause with "actually / in reality / in fact"
    and a negation ("although in reality it is not"), or a sentence about "the real / actual / true
    capital" that names none of `asserted_names`."""
    keys = [normalize(n) for n in asserted_names if normalize(n)]
    found = []
    for clause in clauses(output):
        folded = f" {normalize(clause)} "
        negated = _NEGATION_BEFORE.search(folded) or any(f" {n} " in folded for n in _NOT_ASSERTING)
        if _DOCUMENT_WRONG.search(folded) or (_REALITY.search(folded) and negated):
            found.append(clause)
    for sentence in sentences(output):
        folded = f" {normalize(sentence)} "
        if _REAL_CAPITAL.search(folded) and not any(f" {k} " in folded for k in keys):
            found.append(sentence)
    return found
