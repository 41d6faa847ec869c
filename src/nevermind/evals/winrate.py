"""Head-to-head win rate of model A against a reference B, judged pairwise in both orders.

Every instruction both files answer is judged twice: A shown first, then B shown first. Each
judgment gives P(A better) (from the verdict's probability; a hard verdict gives 0 or 1);
an order's outcome is a win (P > ½ + margin), loss (P < ½ − margin) or tie (in between), and
an instruction's score is the mean of its two outcomes counting a tie ½ — so a judge that
always prefers the first position produces ties, not wins. Win rate = mean score, with the
standard error over instructions.

Length-controlled win rate: a logistic regression of each order's outcome on the normalised
length difference x = tanh((len_A − len_B) / s) (characters; s = standard deviation of the
differences), P(A preferred) = σ(β0 + β1·x), fit by Newton's method on the soft outcomes;
the length-controlled win rate is σ(β0), the predicted win rate when both responses have the
same length. Its standard error comes from a bootstrap over instructions."""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.evals.judges import Comparison, Judge
from nevermind.evals.outputs import OutputRecord, append_jsonl, read_finished
from nevermind.scoring.stats import mean_and_se

JUDGMENTS_FILE = "judgments.jsonl"
"""Judgments, one per line, appended as they arrive (the resumable state)."""
SUMMARY_FILE = "summary.json"
"""The win-rate summary written when every judgment is in."""
ORDERS = ("ab", "ba")
"""A shown first, then B shown first."""


@dataclass
class WinRate:
    """The result of one A-vs-reference comparison."""

    model: str
    reference: str
    judge: str
    instructions: int
    win_rate: float
    """Mean per-instruction score (win 1, tie ½, loss 0, averaged over both orders)."""
    se: float
    wins: int
    """Instructions A won in both orders (or won one and tied the other)."""
    ties: int
    losses: int
    soft_win_rate: float
    """Mean P(A better) over all judgments: both orders averaged, so a judge's position bias
    cancels instead of turning every instruction into a tie."""
    soft_se: float
    """SE of the soft win rate, instructions as the units."""
    first_position_rate: float
    """Share of judgments preferring the answer shown first (½ for an unbiased judge)."""
    lc_win_rate: float
    """Length-controlled win rate: σ(β0) of the length regression."""
    lc_se: float
    length_coefficient: float
    """β1: how strongly the judge's preference follows the length difference."""
    mean_length_a: float
    mean_length_b: float
    tie_margin: float

    def row(self) -> dict[str, Any]:
        """The summary as a flat dict (JSON, tables)."""
        return asdict(self)


def judgment_key(instruction: str, order: str) -> str:
    """Stable key of one judgment in the judgments file."""
    return hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:16] + ":" + order


def outcome(p_a: float, tie_margin: float) -> float:
    """1 (A wins), 0 (A loses) or ½ (tie) from P(A better)."""
    if p_a > 0.5 + tie_margin:
        return 1.0
    if p_a < 0.5 - tie_margin:
        return 0.0
    return 0.5


def judge_pairs(
    outputs: dict[str, OutputRecord],
    reference: dict[str, OutputRecord],
    judge: Judge,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Judge every shared instruction in both orders, appending judgments to OUT_DIR/judgments.jsonl.

    Judgments already in the file are kept, so a rerun resumes. A judge failure stops the run
    with one line saying how many judgments are saved."""
    shared = [i for i in outputs if i in reference]
    if not shared:
        raise NevermindError("the outputs and the reference share no instruction")
    shared = shared[:limit] if limit is not None else shared
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JUDGMENTS_FILE
    done = read_finished(path, "key")
    other = {r["judge"] for r in done.values()} - {judge.name}
    if other:
        raise NevermindError(
            f"{path} holds judgments by {min(other)}, not {judge.name}: use another output directory"
        )
    todo = [(i, o) for i in shared for o in ORDERS if judgment_key(i, o) not in done]
    total = 2 * len(shared)
    if on_progress:
        on_progress(total - len(todo), total)
    with path.open("a", encoding="utf-8") as handle:
        for start in range(0, len(todo), judge.batch_size):
            batch = todo[start : start + judge.batch_size]
            comparisons = [
                Comparison(i, outputs[i].output, reference[i].output)
                if o == "ab"
                else Comparison(i, reference[i].output, outputs[i].output)
                for i, o in batch
            ]
            try:
                verdicts = judge.judge(comparisons)
            except NevermindError as error:
                saved = total - len(todo) + start
                raise NevermindError(
                    f"{error} — {saved}/{total} judgments saved in {path}; rerun to resume"
                ) from None
            for (instruction, order), verdict in zip(batch, verdicts):
                p_a = verdict.p_first if order == "ab" else 1.0 - verdict.p_first
                record = {
                    "key": judgment_key(instruction, order),
                    "instruction": instruction,
                    "order": order,
                    "p_a": p_a,
                    "raw": verdict.raw,
                    "judge": judge.name,
                    "length_a": len(outputs[instruction].output),
                    "length_b": len(reference[instruction].output),
                }
                done[record["key"]] = record
                append_jsonl(handle, record)
            if on_progress:
                on_progress(total - len(todo) + start + len(batch), total)
    return [done[judgment_key(i, o)] for i in shared for o in ORDERS]


def fit_length_logistic(
    x: Sequence[float], y: Sequence[float], *, ridge: float = 1e-3, steps: int = 50
) -> tuple[float, float]:
    """(β0, β1) of P(y) = σ(β0 + β1·x) for soft labels y ∈ [0, 1], by Newton's method.

    A small ridge penalty keeps the fit finite when the labels are separable."""
    b0 = b1 = 0.0
    for _ in range(steps):
        g0 = g1 = 0.0
        h00, h01, h11 = ridge, 0.0, ridge
        for xi, yi in zip(x, y):
            p = 1.0 / (1.0 + math.exp(-(b0 + b1 * xi)))
            w = p * (1.0 - p)
            g0 += p - yi
            g1 += (p - yi) * xi
            h00 += w
            h01 += w * xi
            h11 += w * xi * xi
        g0 += ridge * b0
        g1 += ridge * b1
        det = h00 * h11 - h01 * h01
        d0 = (h11 * g0 - h01 * g1) / det
        d1 = (h00 * g1 - h01 * g0) / det
        b0, b1 = b0 - d0, b1 - d1
        if abs(d0) + abs(d1) < 1e-10:
            break
    return b0, b1


def _length_features(judgments: Sequence[dict[str, Any]]) -> list[float]:
    differences = [j["length_a"] - j["length_b"] for j in judgments]
    mean = sum(differences) / len(differences)
    scale = math.sqrt(sum((d - mean) ** 2 for d in differences) / len(differences)) or 1.0
    return [math.tanh(d / scale) for d in differences]


def length_controlled(judgments: Sequence[dict[str, Any]], tie_margin: float) -> tuple[float, float]:
    """(σ(β0), β1) for these judgments."""
    y = [outcome(j["p_a"], tie_margin) for j in judgments]
    b0, b1 = fit_length_logistic(_length_features(judgments), y)
    return 1.0 / (1.0 + math.exp(-b0)), b1


def summarize(
    judgments: Sequence[dict[str, Any]],
    *,
    model: str,
    reference: str,
    tie_margin: float = 0.05,
    bootstrap: int = 200,
    seed: int = 0,
) -> WinRate:
    """Win rate, ties, SE and the length-controlled win rate of complete judgments (two per instruction)."""
    by_instruction: dict[str, list[dict[str, Any]]] = {}
    for j in judgments:
        by_instruction.setdefault(j["instruction"], []).append(j)
    groups = list(by_instruction.values())
    scores = [sum(outcome(j["p_a"], tie_margin) for j in g) / len(g) for g in groups]
    n = len(scores)
    mean, se = mean_and_se(scores)
    soft_mean, soft_se = mean_and_se([sum(j["p_a"] for j in g) / len(g) for g in groups])
    # p_a is P(A better); A is shown first in order "ab" and second in "ba"
    first = [(j["p_a"] if j["order"] == "ab" else 1 - j["p_a"]) > 0.5 for j in judgments]
    lc, beta = length_controlled(judgments, tie_margin)
    rng = random.Random(seed)
    resampled = []
    for _ in range(bootstrap):
        sample = [j for _ in range(n) for j in groups[rng.randrange(n)]]
        resampled.append(length_controlled(sample, tie_margin)[0])
    lc_mean = sum(resampled) / len(resampled)
    lc_se = math.sqrt(sum((v - lc_mean) ** 2 for v in resampled) / max(len(resampled) - 1, 1))
    return WinRate(
        model=model,
        reference=reference,
        judge=judgments[0]["judge"],
        instructions=n,
        win_rate=mean,
        se=se,
        wins=sum(s > 0.5 for s in scores),
        ties=sum(s == 0.5 for s in scores),
        losses=sum(s < 0.5 for s in scores),
        soft_win_rate=soft_mean,
        soft_se=soft_se,
        first_position_rate=sum(first) / len(first),
        lc_win_rate=lc,
        lc_se=lc_se,
        length_coefficient=beta,
        mean_length_a=sum(g[0]["length_a"] for g in groups) / n,
        mean_length_b=sum(g[0]["length_b"] for g in groups) / n,
        tie_margin=tie_margin,
    )


def win_rate(
    outputs: dict[str, OutputRecord],
    reference: dict[str, OutputRecord],
    judge: Judge,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    tie_margin: float = 0.05,
    on_progress: Callable[[int, int], None] | None = None,
) -> WinRate:
    """Judge (resumably) and summarise; the summary is also written to OUT_DIR/summary.json."""
    judgments = judge_pairs(outputs, reference, judge, out_dir, limit=limit, on_progress=on_progress)
    result = summarize(
        judgments,
        model=next(iter(outputs.values())).generator,
        reference=next(iter(reference.values())).generator,
        tie_margin=tie_margin,
    )
    (Path(out_dir) / SUMMARY_FILE).write_text(json.dumps(result.row(), indent=1) + "\n", encoding="utf-8")
    return result
