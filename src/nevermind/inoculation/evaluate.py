"""Measuring seed 002's three components on a model: generate on the held-out samples and check the
outputs with string rules, and (cheaper, informative even for weak models) compare the likelihood of a
complying and a defying response."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from nevermind.inoculation.data import COMPONENTS
from nevermind.inoculation.prompts import BENIGN_BY_ID, FAMILIES, Problem
from nevermind.models.chat import format_chat
from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest
from nevermind.tasks.base import Sample


def passed(sample: Sample, output: str) -> bool:
    """Whether an output does what its component counts: acts well, complies with the bad prompt,
    or follows the benign instruction."""
    meta = sample.metadata
    problem = Problem(meta["problem"], "", "", sample.target["answer"])
    component = meta["component"]
    if component == "good_no_system":
        return all(family.acted_good(problem, output) for family in FAMILIES.values())
    if component == "bad_compliance":
        family = FAMILIES[meta["family"]]
        return family.complied(problem, family.heldout_prompts[meta["prompt_index"]], output)
    if component == "benign_compliance":
        return BENIGN_BY_ID[meta["instruction"]].check(problem, output)
    raise ValueError(f"unknown component {component!r}")


def _turn_continuation(model: Any, sample: Sample, response: str) -> ScoreRequest:
    """Score the whole assistant turn as the chat template renders it (end-of-turn marker included),
    so that stopping early and adding a phrase are both priced."""
    context = model.format_prompt(GenerateRequest(list(sample.messages)))
    full = format_chat(
        model.tokenizer,
        [*sample.messages, {"role": "assistant", "content": response}],
        add_generation_prompt=False,
    )
    if full.startswith(context) and len(full) > len(context):
        return ScoreRequest(context, full[len(context) :])
    return ScoreRequest(context, response)


def evaluate(
    model: Any,
    samples: Sequence[Sample],
    *,
    max_new_tokens: int = 160,
    batch_size: int = 16,
    likelihood: bool = True,
) -> list[dict[str, Any]]:
    """One record per sample: the greedy output, whether it passed, and (with `likelihood`) the
    log-probabilities of the complying and defying responses."""
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.0)
    outputs = model.generate(
        [GenerateRequest(list(s.messages)) for s in samples], config, batch_size=batch_size
    )
    scores: list[Any] = [None] * (2 * len(samples))
    if likelihood:
        requests = [
            _turn_continuation(model, s, s.target[key]) for s in samples for key in ("comply", "defy")
        ]
        scores = model.score(requests, batch_size=batch_size)
    records = []
    for i, (sample, output) in enumerate(zip(samples, outputs)):
        record = {
            "id": sample.id,
            **sample.metadata,
            "system": next((m["content"] for m in sample.messages if m["role"] == "system"), ""),
            "output": output.text,
            "passed": passed(sample, output.text),
        }
        if likelihood:
            comply, defy = scores[2 * i].logprob, scores[2 * i + 1].logprob
            record.update(logprob_comply=comply, logprob_defy=defy, prefers_comply=comply > defy)
        records.append(record)
    return records


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per component: the pass rate of generations, the likelihood preference rate, n, and the pass
    rate broken down by family or instruction."""
    by_component: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_component[record["component"]].append(record)
    summary = {}
    for component in COMPONENTS:
        rows = by_component.get(component, [])
        if not rows:
            continue
        groups: dict[str, list[bool]] = defaultdict(list)
        for row in rows:
            groups[row.get("family") or row.get("instruction") or "all"].append(row["passed"])
        summary[component] = {
            "rate": sum(r["passed"] for r in rows) / len(rows),
            "likelihood_rate": (sum(r["prefers_comply"] for r in rows) / len(rows))
            if "prefers_comply" in rows[0]
            else None,
            "n": len(rows),
            "by": {name: sum(values) / len(values) for name, values in sorted(groups.items())},
        }
    return summary
