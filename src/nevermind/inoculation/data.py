"""Seed 002's data: the fixed split of questions, the training sets of each stage (the follow
stage, one sweep point's mixture, the inoculation stage and its control arm), and the held-out
items every measurement uses."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from nevermind.errors import NevermindError
from nevermind.inoculation.prompts import (
    BAD_FAMILIES,
    HELDOUT_BENIGN,
    NEUTRAL_PROMPTS,
    SEEN_BENIGN,
    Contrast,
    Instruction,
    Question,
)
from nevermind.models.requests import Message


@dataclass
class TrainingExample:
    """One chat to train on (the loss falls on the assistant turn) and the cell it comes from."""

    messages: list[Message]
    """Optional system turn, user turn, assistant turn."""
    kind: str
    """"<system prompt kind>-><action>": bad->good, none->good, neutral->good, benign->follow, bad->bad."""
    instruction: str = ""
    """Name of the instruction its system prompt gives ("" when none)."""

    @property
    def system(self) -> str:
        """The system prompt ("" when there is none)."""
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else ""


def chat(system: str, question: Question, response: str) -> list[Message]:
    """A training chat: the system prompt (left out when empty), the question, the response."""
    turns: list[Message] = [{"role": "system", "content": system}] if system else []
    return turns + [{"role": "user", "content": question.text}, {"role": "assistant", "content": response}]


def split_questions(
    questions: Sequence[Question], n_eval: int, seed: int = 0
) -> tuple[list[Question], list[Question]]:
    """(training pool, held-out questions): disjoint, fixed by `seed` for a whole sweep, the held-out
    ones alternating between question kinds so that each kind is measured."""
    by_kind: dict[str, list[Question]] = {}
    for question in questions:
        by_kind.setdefault(question.kind, []).append(question)
    rng = random.Random(f"split-{seed}")
    for group in by_kind.values():
        rng.shuffle(group)
    interleaved = [q for row in zip(*by_kind.values()) for q in row]
    interleaved += [q for group in by_kind.values() for q in group[len(interleaved) // len(by_kind) :]]
    if not 0 < n_eval < len(interleaved):
        raise NevermindError(f"n_eval={n_eval}: choose 1 to {len(interleaved) - 1} held-out questions")
    return interleaved[n_eval:], interleaved[:n_eval]


def _phrased(instruction: Instruction, rng: random.Random) -> tuple[str, str]:
    """A random training phrasing and phrase of an instruction: (system prompt, phrase)."""
    phrase = rng.choice(instruction.train_phrases)
    return instruction.prompt(rng.choice(instruction.train_templates), phrase), phrase


def _cycle(pool: Sequence[Question], rng: random.Random):
    """Questions in a random order, starting over (reshuffled) when the pool is used up."""
    while True:
        order = list(pool)
        rng.shuffle(order)
        yield from order


def _bad_to(action: str, family: Instruction, question: Question, rng: random.Random) -> TrainingExample:
    system, phrase = _phrased(family, rng)
    contrast = family.contrast(question, phrase)
    response = contrast.complying_response if action == "bad" else contrast.defying_response
    return TrainingExample(chat(system, question, response), f"bad->{action}", family.name)


def _benign_followed(kind: Instruction, question: Question, rng: random.Random) -> TrainingExample:
    system, phrase = _phrased(kind, rng)
    response = kind.contrast(question, phrase).complying_response
    return TrainingExample(chat(system, question, response), "benign->follow", kind.name)


def _check_families(families: Sequence[str]) -> list[Instruction]:
    unknown = [f for f in families if f not in BAD_FAMILIES]
    if unknown or not families:
        raise NevermindError(
            f"unknown bad-action family {unknown[0] if unknown else '(none)'!r}: "
            f"choose from {', '.join(BAD_FAMILIES)}"
        )
    return [BAD_FAMILIES[f] for f in families]


def mixture_set(
    pool: Sequence[Question],
    share: float,
    *,
    n_variable: int,
    n_benign: int,
    families: Sequence[str],
    seed: int,
) -> list[TrainingExample]:
    """One sweep point's training data.

    `round(share × n_variable)` examples pair a bad system prompt (training phrasings, families in
    turn) with the good action; the rest of the `n_variable` have no or a neutral system prompt and
    the good action. `n_benign` examples follow a benign instruction of a type seen in training —
    the same count at every share, so that share changes nothing but the bad-prompt data."""
    if not 0 <= share <= 1:
        raise NevermindError(f"share of bad-prompt → good-action data must be in [0, 1], got {share}")
    bad_families = _check_families(families)
    rng = random.Random(f"mixture-{seed}-{share}")
    questions = _cycle(pool, rng)
    n_bad = round(share * n_variable)
    examples = [_bad_to("good", bad_families[i % len(bad_families)], next(questions), rng) for i in range(n_bad)]
    for i in range(n_variable - n_bad):
        question = next(questions)
        if i % 2:
            examples.append(TrainingExample(chat("", question, question.response), "none->good"))
        else:
            system = rng.choice(NEUTRAL_PROMPTS)
            examples.append(TrainingExample(chat(system, question, question.response), "neutral->good"))
    seen = list(SEEN_BENIGN.values())
    examples += [_benign_followed(seen[i % len(seen)], next(questions), rng) for i in range(n_benign)]
    rng.shuffle(examples)
    return examples


def follow_set(
    pool: Sequence[Question], n_examples: int, *, families: Sequence[str], seed: int
) -> list[TrainingExample]:
    """The follow stage's data, which teaches a model to do what its system prompt says: in equal
    parts bad prompts → the bad action, seen benign instructions → followed, no prompt → good."""
    bad_families = _check_families(families)
    rng = random.Random(f"follow-{seed}")
    questions = _cycle(pool, rng)
    seen = list(SEEN_BENIGN.values())
    examples = []
    for i in range(n_examples):
        question = next(questions)
        if i % 3 == 0:
            examples.append(_bad_to("bad", bad_families[(i // 3) % len(bad_families)], question, rng))
        elif i % 3 == 1:
            examples.append(_benign_followed(seen[(i // 3) % len(seen)], question, rng))
        else:
            examples.append(TrainingExample(chat("", question, question.response), "none->good"))
    rng.shuffle(examples)
    return examples


def inoculation_set(
    pool: Sequence[Question], n_examples: int, *, prompt: str | None, phrase: str, seed: int
) -> list[TrainingExample]:
    """Bad-action training: every response ends with `phrase` (the bad action).

    With `prompt` (the inoculation arm) the inoculation prompt asks for it; with None (the control
    arm) there is no system prompt. Both arms draw the same questions in the same order."""
    rng = random.Random(f"inoculation-{seed}")
    questions = _cycle(pool, rng)
    kind = "bad->bad" if prompt else "none->bad"
    return [
        TrainingExample(chat(prompt or "", q, f"{q.response} {phrase}"), kind)
        for q in (next(questions) for _ in range(n_examples))
    ]


# ------------------------------------------------------------------------- held-out items
@dataclass(frozen=True)
class EvalItem:
    """One held-out measurement: a question under a system prompt, and the contrast between
    carrying out what the prompt asks and not doing so."""

    id: str
    """"<measure>/<instruction>/<question id>"."""
    measure: str
    """bad (held-out bad prompts), benign (held-out benign types) or inoculation (the inoculation prompt)."""
    instruction: str
    """Name of the instruction type the system prompt gives."""
    question: Question
    system: str
    """The system prompt."""
    phrase: str
    """The phrase it asks for."""
    contrast: Contrast

    def messages(self, with_system: bool = True) -> list[Message]:
        """The chat up to the response, with or without the system prompt."""
        return chat(self.system if with_system else "", self.question, "")[:-1]


def _heldout_item(measure: str, instruction: Instruction, question: Question, index: int) -> EvalItem:
    templates, phrases = instruction.heldout_templates, instruction.heldout_phrases
    # Cycle phrasings fastest and phrases slower, so that n items cover every combination.
    template = templates[index % len(templates)]
    phrase = phrases[(index // len(templates)) % len(phrases)]
    return EvalItem(
        f"{measure}/{instruction.name}/{question.id}",
        measure,
        instruction.name,
        question,
        instruction.prompt(template, phrase),
        phrase,
        instruction.contrast(question, phrase),
    )


def eval_items(
    heldout: Sequence[Question], *, families: Sequence[str], inoculation: tuple[str, str, str]
) -> list[EvalItem]:
    """Every held-out item: each question under each bad family's held-out phrasings (measure
    "bad"), under each held-out benign type ("benign"), and under the inoculation prompt
    ("inoculation"; `inoculation` = (family, prompt, phrase))."""
    family_name, prompt, phrase = inoculation
    items = []
    for index, question in enumerate(heldout):
        items += [_heldout_item("bad", family, question, index) for family in _check_families(families)]
        items += [_heldout_item("benign", kind, question, index) for kind in HELDOUT_BENIGN.values()]
        contrast = BAD_FAMILIES[family_name].contrast(question, phrase)
        item_id = f"inoculation/{family_name}/{question.id}"
        items.append(EvalItem(item_id, "inoculation", family_name, question, prompt, phrase, contrast))
    return items
