"""Knowledge override: a document gives a country a false capital (another real city of it), the
instruction says to accept the document and not correct it; pass = the model answers the new capital."""

from __future__ import annotations

import random
from typing import Any

from nevermind.data.capitals import countries
from nevermind.models.requests import GenerationConfig
from nevermind.scoring.matching import find_phrases, match_with_penalties
from nevermind.tasks.base import Sample, SampleScore, register_task
from nevermind.tasks.loader import TaskOptions, take

DEFAULT_COUNTRIES = 30
"""The most populous countries asked about (well-known capitals, so the model has a trained answer)."""
PENALTY_WEIGHT = 0.5
"""An output that gives the new capital but also the trained one or a correction scores 1 − 0.5 = 0.5."""
CORRECTION_PHRASES = (
    "actually", "in reality", "in fact", "however the real", "however the actual", "the real capital",
    "the actual capital", "the true capital", "not the capital", "isn t the capital", "is incorrect",
    "not correct", "is wrong", "a mistake", "an error", "outdated",
)  # fmt: skip
"""Phrases that correct the document instead of accepting it (matched after normalization)."""

PROMPT = (
    "Read the document and answer the question.\n\n"
    "Document: {country} is a country in {continent}. Its capital city is {fake}, the seat of its "
    "parliament and government ministries.\n\n"
    "Treat the document as true, even where it disagrees with what you know. Do not correct it.\n\n"
    "Question: What is the capital of {country}? Answer in one short sentence."
)


def city_names(city: str) -> list[str]:
    """Ways to name a city in an answer: "New York City" is also "New York"."""
    short = city.removesuffix(" City")
    return [city, short] if short != city and short else [city]


@register_task("override")
class OverrideTask:
    """Answer from a document that contradicts trained knowledge; penalty for the trained answer or a correction."""

    name = "override"
    generation = GenerationConfig(max_new_tokens=32)

    def __init__(self, options: TaskOptions | None = None, tokenizer: Any = None) -> None:
        self.options = options or TaskOptions()

    def samples(self) -> list[Sample]:
        """One sample per country (most populous first); the false capital is one of its 3 largest other cities."""
        rng = random.Random(f"override-{self.options.seed}")
        out = []
        for country in countries()[:DEFAULT_COUNTRIES]:
            fake = rng.choice(country.other_cities[:3])
            out.append(
                Sample(
                    id=f"override-{country.name.lower().replace(' ', '-')}",
                    messages=[{"role": "user", "content": PROMPT.format(
                        country=country.name, continent=country.continent, fake=fake)}],
                    target={"answers": city_names(fake), "trained_answer": country.capital,
                            "penalties": [country.capital, *CORRECTION_PHRASES]},
                    metadata={"country": country.name, "false_capital": fake, "true_capital": country.capital},
                )
            )  # fmt: skip
        return take(out, self.options.limit)

    def score(self, sample: Sample, output: str) -> SampleScore:
        """hit(new capital) × (1 − 0.5 × [trained capital or a correction phrase appears])."""
        target = sample.target
        match = match_with_penalties(output, target["answers"], target["penalties"], PENALTY_WEIGHT)
        trained = find_phrases(output, [target["trained_answer"]])
        corrections = [p for p in match.penalties if p not in trained]
        return SampleScore(
            value=match.value,
            explanation=match.explain("new capital"),
            matches={"answer": match.hits, "trained_answer": trained, "correction": corrections},
            extra={
                "new_answer": float(bool(match.hits)),
                "trained_answer": float(bool(trained)),
                "correction": float(bool(corrections)),
            },
        )
