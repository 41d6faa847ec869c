"""Head-to-head win rate of model A against a reference B, judged pairwise in both orders.

Every instruction both files answer is judged twice, A shown first and B shown first; each
judgment is P(A better) from the judge's verdict probability (a hard verdict gives 0 or 1).
Before that, the judge is calibrated on known-answer pairs. Reported (docs/implicit-instruction-
tuning.md has the formulas):

- preference (the headline): per instruction, the two orders' verdicts averaged on the log-odds
  scale, then the mean over instructions ± SE. A judge whose verdict logits carry a fixed bonus
  for the first position is exactly cancelled there; averaging probabilities instead shrinks a
  real preference toward ½ (a +3-logit bias turns a true 0.60 into 0.52);
- controlled: a logistic GLM of P(A better) on a position term and a length term, fitted to the
  soft verdicts with scikit-learn; the predicted preference at equal length and no position
  advantage, ± a bootstrap SE over instructions;
- alpaca_eval's length-controlled win rate, computed as its `glm_winrate` defines it;
- the probability-averaged soft win rate, thresholded wins / ties / losses and the share of
  judgments that prefer the first or the second position (exactly ½ counts as neither);
- the judge's calibration accuracy ± SE on (real response, another instruction's response) pairs.

Judgments are stored by a hash of the judge, the instruction and both texts as shown, so changed
outputs are judged anew and reused judgments are counted and reported."""

from __future__ import annotations

import hashlib
import json
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.evals.judges import Comparison, Judge
from nevermind.evals.outputs import OutputRecord
from nevermind.runs.files import write_atomic
from nevermind.runs.records import RecordFile
from nevermind.scoring.stats import mean_and_se

JUDGMENTS_FILE = "judgments.jsonl"
"""Judgments, one per line, appended as they arrive (the resumable state)."""
SUMMARY_FILE = "summary.json"
"""The win-rate summary written when every judgment is in."""
ORDERS = ("ab", "ba")
"""A shown first, then B shown first."""
LOGIT_FLOOR = 1e-4
"""Verdicts are clipped to [floor, 1 − floor] before taking log-odds (a hard 0/1 verdict has none)."""
STATS_INSTALL = "pip install 'nevermind[stats]'"
"""What installs the statistics libraries the GLMs need."""
ALPACA_EVAL_FOLDS = 5
"""Cross-validation folds of alpaca_eval's GLM (its `n_splits`)."""


@dataclass
class Calibration:
    """How well the judge tells an instruction's real response from another instruction's."""

    pairs: int
    """Instructions used (each judged in both orders)."""
    accuracy: float
    """Share of judgments preferring the real response (exactly ½ counts ½), mean over instructions."""
    se: float
    soft: float
    """Mean P(real better) over both orders and instructions."""
    soft_se: float

    @property
    def near_chance(self) -> bool:
        """Accuracy within 2 SE of ½ (or no spread to tell): the judge cannot be trusted."""
        return abs(self.accuracy - 0.5) <= 2 * self.se


@dataclass
class WinRate:
    """The result of one A-vs-reference comparison."""

    model: str
    reference: str
    judge: str
    instructions: int
    preference: float
    """Headline: P(A better) averaged over both orders on the log-odds scale, mean over instructions."""
    preference_se: float
    controlled: float
    """GLM-predicted P(A better) at equal length and no position advantage."""
    controlled_se: float
    """Bootstrap SE of `controlled` over instructions."""
    position_coefficient: float
    """GLM log-odds bonus for being shown first (half the first-vs-second gap)."""
    length_coefficient: float
    """GLM log-odds per unit of tanh(length difference / its standard deviation)."""
    alpaca_eval_lc: float | None
    """alpaca_eval's length-controlled win rate (its glm_winrate, `length_controlled_minimal`);
    None with fewer than 5 judgments (its 5-fold cross-validation needs 5)."""
    alpaca_eval_lc_se: float | None
    """Bootstrap SE of `alpaca_eval_lc` over instructions (alpaca_eval's own SE is 0 for this GLM)."""
    soft_win_rate: float
    """P(A better) averaged over both orders and instructions on the probability scale."""
    soft_se: float
    win_rate: float
    """Thresholded: mean per-instruction score (win 1, tie ½, loss 0, averaged over both orders)."""
    se: float
    wins: int
    ties: int
    losses: int
    first_position_rate: float
    """Share of judgments preferring the answer shown first (exactly ½ counts as neither)."""
    second_position_rate: float
    calibration_accuracy: float | None
    calibration_se: float | None
    calibration_soft: float | None
    calibration_pairs: int
    mean_length_a: float
    mean_length_b: float
    tie_margin: float
    judged: int = 0
    """Judgments asked of the judge in this run (comparisons and calibration)."""
    reused: int = 0
    """Judgments found in the judgments file for the same judge, instruction and texts."""

    @property
    def calibration_near_chance(self) -> bool:
        """The judge's calibration accuracy is within 2 SE of chance (or was not measured)."""
        if self.calibration_accuracy is None or self.calibration_se is None:
            return True
        return abs(self.calibration_accuracy - 0.5) <= 2 * self.calibration_se

    def row(self) -> dict[str, Any]:
        """The summary as a flat dict (JSON, tables)."""
        return {**asdict(self), "calibration_near_chance": self.calibration_near_chance}


def judgment_key(judge: str, comparison: Comparison) -> str:
    """Content key of one judgment: the judge, the instruction and both texts in the order shown."""
    text = json.dumps([judge, comparison.instruction, comparison.first, comparison.second], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def outcome(p_a: float, tie_margin: float) -> float:
    """1 (A wins), 0 (A loses) or ½ (tie) from P(A better)."""
    if p_a > 0.5 + tie_margin:
        return 1.0
    if p_a < 0.5 - tie_margin:
        return 0.0
    return 0.5


def _logit(p: float) -> float:
    p = min(max(p, LOGIT_FLOOR), 1 - LOGIT_FLOOR)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def order_averaged(p_values: Sequence[float]) -> float:
    """P(A better) from one instruction's verdicts in both orders, averaged on the log-odds scale."""
    return _sigmoid(sum(_logit(p) for p in p_values) / len(p_values))


@dataclass
class _Task:
    kind: str
    instruction: str
    order: str
    comparison: Comparison


def calibration_pairs(
    reference: dict[str, OutputRecord], instructions: Sequence[str], seed: int = 0
) -> list[tuple[str, str]]:
    """(instruction, impostor) pairs: each instruction with another instruction's reference response,
    reproducible by seed. The impostor comes from a shuffled cycle (never the instruction itself);
    an instruction whose only candidates read exactly like its own response is left out."""
    if len(instructions) < 2:
        return []
    order = list(instructions)
    random.Random(seed).shuffle(order)
    pairs = []
    for k, instruction in enumerate(order):
        real = reference[instruction].output
        others = (reference[order[(k + step) % len(order)]].output for step in range(1, len(order)))
        impostor = next((text for text in others if text != real), None)
        if impostor is not None:
            pairs.append((instruction, impostor))
    position = {instruction: k for k, instruction in enumerate(instructions)}
    return sorted(pairs, key=lambda pair: position[pair[0]])


def judge_pairs(
    outputs: dict[str, OutputRecord],
    reference: dict[str, OutputRecord],
    judge: Judge,
    out_dir: str | Path,
    *,
    limit: int | None = None,
    calibration: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """Calibrate the judge, then judge every shared instruction in both orders.

    Judgments are appended to OUT_DIR/judgments.jsonl, keyed by content, so a rerun resumes and
    changed outputs are judged anew. Returns (comparison judgments, calibration judgments, counts
    of judged / reused / unused records). `calibration` limits the known-answer pairs to the first
    N instructions (default: all judged; 0: none). A judge failure stops the run with one line
    saying how many judgments are saved."""
    shared = [i for i in outputs if i in reference]
    if not shared:
        raise NevermindError("the outputs and the reference share no instruction")
    shared = shared[:limit] if limit is not None else shared
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / JUDGMENTS_FILE
    store = RecordFile(path, ("key",), what="judgment")
    store.repair()
    done = {key[0]: record for key, record in store.read().items()}
    tasks: list[_Task] = []
    calibrated = shared if calibration is None else shared[:calibration]
    for instruction, impostor in calibration_pairs(reference, calibrated):
        real = reference[instruction].output
        tasks.append(_Task("calibration", instruction, "real-first", Comparison(instruction, real, impostor)))
        tasks.append(_Task("calibration", instruction, "real-second", Comparison(instruction, impostor, real)))
    for instruction in shared:
        a, b = outputs[instruction].output, reference[instruction].output
        tasks.append(_Task("comparison", instruction, "ab", Comparison(instruction, a, b)))
        tasks.append(_Task("comparison", instruction, "ba", Comparison(instruction, b, a)))
    keys = [judgment_key(judge.name, t.comparison) for t in tasks]
    wanted = set(keys)
    todo, asked = [], set()
    for task, key in zip(tasks, keys):
        if key not in done and key not in asked:  # identical texts in both orders: asked once
            todo.append((task, key))
            asked.add(key)
    counts = {
        "judged": len(todo),
        "reused": len(wanted) - len(todo),
        "unused": sum(1 for k in done if k not in wanted),
    }
    total = len(wanted)
    if on_progress:
        on_progress(total - len(todo), total)
    for start in range(0, len(todo), judge.batch_size):
        batch = todo[start : start + judge.batch_size]
        try:
            verdicts = judge.judge([t.comparison for t, _ in batch])
        except NevermindError as error:
            saved = total - len(todo) + start
            raise NevermindError(f"{error} — {saved}/{total} judgments saved in {path}; rerun to resume") from None
        records = [
            {
                "key": key,
                "kind": task.kind,
                "instruction": task.instruction,
                "order": task.order,
                "p_first": verdict.p_first,
                "raw": verdict.raw,
                "judge": judge.name,
            }
            for (task, key), verdict in zip(batch, verdicts)
        ]
        store.append(records)
        done.update((r["key"], r) for r in records)
        if on_progress:
            on_progress(total - len(todo) + start + len(batch), total)
    comparisons, calibrations = [], []
    for task, key in zip(tasks, keys):
        p_first = done[key]["p_first"]
        if task.kind == "calibration":
            p_real = p_first if task.order == "real-first" else 1.0 - p_first
            calibrations.append({"instruction": task.instruction, "order": task.order, "p_real": p_real})
        else:
            comparisons.append(
                {
                    "instruction": task.instruction,
                    "order": task.order,
                    "p_a": p_first if task.order == "ab" else 1.0 - p_first,
                    "judge": judge.name,
                    "length_a": len(outputs[task.instruction].output),
                    "length_b": len(reference[task.instruction].output),
                }
            )
    return comparisons, calibrations, counts


def summarize_calibration(calibrations: Sequence[dict[str, Any]]) -> Calibration | None:
    """Accuracy ± SE of the judge on known-answer pairs (None without any)."""
    if not calibrations:
        return None
    by_instruction: dict[str, list[float]] = {}
    for c in calibrations:
        by_instruction.setdefault(c["instruction"], []).append(c["p_real"])
    hard = [sum(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in ps) / len(ps) for ps in by_instruction.values()]
    soft = [sum(ps) / len(ps) for ps in by_instruction.values()]
    accuracy, se = mean_and_se(hard)
    soft_mean, soft_se = mean_and_se(soft)
    return Calibration(len(by_instruction), accuracy, se, soft_mean, soft_se)


# ---------------------------------------------------------------- the GLMs
def require_stats() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise NevermindError(f"win rates need scikit-learn: {STATS_INSTALL}") from None


def _length_features(judgments: Sequence[dict[str, Any]]) -> list[float]:
    """tanh(Δ / s): Δ = chars of A − chars of B, s = the standard deviation of Δ (1 if none)."""
    differences = [j["length_a"] - j["length_b"] for j in judgments]
    n = len(differences)
    mean = sum(differences) / n
    scale = math.sqrt(sum((d - mean) ** 2 for d in differences) / max(n - 1, 1)) or 1.0
    return [math.tanh(d / scale) for d in differences]


def fit_soft_logistic(
    features: Sequence[Sequence[float]], y: Sequence[float], *, intercept: bool = True
) -> tuple[float, list[float]]:
    """(intercept, coefficients) of P = σ(β0 + β·x) fitted to soft labels y ∈ [0, 1] by maximum
    likelihood (scikit-learn; each row enters once as label 1 with weight y and once as label 0
    with weight 1 − y, which is the soft-label cross-entropy). A negligible L2 penalty keeps
    the fit finite when a feature separates the labels."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=float)
    labels = np.asarray(y, dtype=float)
    model = LogisticRegression(C=1e6, fit_intercept=intercept, solver="newton-cholesky", max_iter=200, tol=1e-10)
    model.fit(
        np.concatenate([x, x]),
        np.concatenate([np.ones(len(x)), np.zeros(len(x))]),
        sample_weight=np.concatenate([labels, 1 - labels]),
    )
    return (float(model.intercept_[0]) if intercept else 0.0), [float(c) for c in model.coef_[0]]


def position_length_glm(judgments: Sequence[dict[str, Any]]) -> tuple[float, float, float]:
    """(σ(β0), β_position, β_length) of P(A better) = σ(β0 + β_pos·pos + β_len·tanh(Δ/s)),
    pos = +1 when A is shown first and −1 when second: σ(β0) is the preference at equal length
    and no position advantage."""
    lengths = _length_features(judgments)
    features = [[1.0 if j["order"] == "ab" else -1.0, x] for j, x in zip(judgments, lengths)]
    b0, (b_pos, b_len) = fit_soft_logistic(features, [j["p_a"] for j in judgments])
    return _sigmoid(b0), b_pos, b_len


def alpaca_eval_length_controlled(
    judgments: Sequence[dict[str, Any]], difficulty: dict[str, float] | None = None
) -> float:
    """alpaca_eval's length-controlled win rate as its `glm_winrate` defines it, in [0, 1].

    One row per judgment with the model as output_2 and the reference as output_1: preference
    y = P(model better); feature tanh(Δ/s) with Δ = chars of the reference − chars of the model and
    s its standard deviation; an always-1 "not gamed baseline" column as the intercept (and, with
    `difficulty`, the instruction's difficulty — the `length_controlled_noreg` GLM; without it
    `length_controlled_minimal`). Fitted by L1-penalised logistic regression (liblinear, no
    intercept) whose C is chosen by 5-fold cross-validated soft log-loss over 10 values, then
    predicted for Δ = 0 and averaged over the rows. (AlpacaEval 2's leaderboard GLM,
    `length_controlled_v1`, also regularises toward gamed baselines with instruction
    difficulties from its hub data: not available offline.)"""
    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    n = len(judgments)
    if n < ALPACA_EVAL_FOLDS:
        raise NevermindError(f"alpaca_eval's LC win rate needs at least {ALPACA_EVAL_FOLDS} judgments, got {n}")
    delta = np.array([j["length_b"] - j["length_a"] for j in judgments], dtype=float)
    scale = delta.std(ddof=1) if n > 1 else 0.0
    columns = [np.tanh(delta / scale) if scale > 0 else np.zeros(n)]
    if difficulty is not None:
        columns.append(np.array([difficulty[j["instruction"]] for j in judgments], dtype=float))
    columns.append(np.ones(n))
    x = np.stack(columns, axis=1)
    y = np.array([j["p_a"] for j in judgments], dtype=float)
    rows = np.concatenate([x, x])
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    target = np.concatenate([y, 1 - y])  # the probability of each duplicated row's own label
    groups = np.concatenate([np.arange(n), np.arange(n)])

    def soft_log_loss(label: Any, predicted: Any, target_prob: Any) -> float:
        p_true = np.where(label == 1, target_prob, 1 - target_prob)
        predicted = np.clip(predicted, 1e-15, 1 - 1e-15)
        return float(-np.mean(p_true * np.log(predicted) + (1 - p_true) * np.log(1 - predicted)))

    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        # liblinear stops early at the grid's extreme C values, as it does inside alpaca_eval
        warnings.simplefilter("ignore", ConvergenceWarning)
        scorer = make_scorer(
            soft_log_loss, response_method="predict_proba", greater_is_better=False
        ).set_score_request(target_prob=True)
        model = LogisticRegressionCV(
            cv=GroupKFold(n_splits=ALPACA_EVAL_FOLDS),
            scoring=scorer,
            l1_ratios=(1.0,),
            solver="liblinear",
            fit_intercept=False,
            random_state=123,
            use_legacy_attributes=False,
        )
        model.set_fit_request(sample_weight=True)
        model.fit(rows, labels, sample_weight=target, groups=groups, target_prob=target)
    at_equal_length = x.copy()
    at_equal_length[:, 0] = 0.0
    return float(model.predict_proba(at_equal_length)[:, 1].mean())


def _bootstrap(
    groups: list[list[dict[str, Any]]], statistic: Callable[[list[dict[str, Any]]], float], samples: int, seed: int
) -> float:
    """SE of `statistic` over resampled instructions (each keeps both its judgments)."""
    if samples < 2 or len(groups) < 2:
        return 0.0
    rng = random.Random(seed)
    n = len(groups)
    values = []
    for _ in range(samples):
        drawn = [groups[rng.randrange(n)] for _ in range(n)]
        # a resampled instruction drawn twice is two instructions
        sample = [{**j, "instruction": f"{k}:{j['instruction']}"} for k, g in enumerate(drawn) for j in g]
        values.append(statistic(sample))
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(
    judgments: Sequence[dict[str, Any]],
    *,
    model: str,
    reference: str,
    calibrations: Sequence[dict[str, Any]] = (),
    tie_margin: float = 0.05,
    bootstrap: int = 200,
    alpaca_bootstrap: int = 30,
    seed: int = 0,
) -> WinRate:
    """Every statistic of complete judgments (two per instruction) and the calibration."""
    require_stats()
    by_instruction: dict[str, list[dict[str, Any]]] = {}
    for j in judgments:
        by_instruction.setdefault(j["instruction"], []).append(j)
    groups = list(by_instruction.values())
    n = len(groups)
    preference, preference_se = mean_and_se([order_averaged([j["p_a"] for j in g]) for g in groups])
    soft, soft_se = mean_and_se([sum(j["p_a"] for j in g) / len(g) for g in groups])
    scores = [sum(outcome(j["p_a"], tie_margin) for j in g) / len(g) for g in groups]
    win, win_se = mean_and_se(scores)
    p_first = [j["p_a"] if j["order"] == "ab" else 1 - j["p_a"] for j in judgments]
    controlled, b_pos, b_len = position_length_glm(judgments)
    controlled_se = _bootstrap(groups, lambda s: position_length_glm(s)[0], bootstrap, seed)
    alpaca = alpaca_se = None
    if len(judgments) >= ALPACA_EVAL_FOLDS:
        alpaca = alpaca_eval_length_controlled(judgments)
        alpaca_se = _bootstrap(groups, alpaca_eval_length_controlled, alpaca_bootstrap, seed)
    calibration = summarize_calibration(calibrations)
    return WinRate(
        model=model,
        reference=reference,
        judge=judgments[0]["judge"],
        instructions=n,
        preference=preference,
        preference_se=preference_se,
        controlled=controlled,
        controlled_se=controlled_se,
        position_coefficient=b_pos,
        length_coefficient=b_len,
        alpaca_eval_lc=alpaca,
        alpaca_eval_lc_se=alpaca_se,
        soft_win_rate=soft,
        soft_se=soft_se,
        win_rate=win,
        se=win_se,
        wins=sum(s > 0.5 for s in scores),
        ties=sum(s == 0.5 for s in scores),
        losses=sum(s < 0.5 for s in scores),
        first_position_rate=sum(p > 0.5 for p in p_first) / len(p_first),
        second_position_rate=sum(p < 0.5 for p in p_first) / len(p_first),
        calibration_accuracy=calibration.accuracy if calibration else None,
        calibration_se=calibration.se if calibration else None,
        calibration_soft=calibration.soft if calibration else None,
        calibration_pairs=calibration.pairs if calibration else 0,
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
    calibration: int | None = None,
    tie_margin: float = 0.05,
    on_progress: Callable[[int, int], None] | None = None,
) -> WinRate:
    """Calibrate, judge (resumably) and summarise; the summary is also written to OUT_DIR/summary.json."""
    require_stats()
    judgments, calibrations, counts = judge_pairs(
        outputs, reference, judge, out_dir, limit=limit, calibration=calibration, on_progress=on_progress
    )
    result = summarize(
        judgments,
        model=next(iter(outputs.values())).generator,
        reference=next(iter(reference.values())).generator,
        calibrations=calibrations,
        tie_margin=tie_margin,
    )
    result.judged, result.reused = counts["judged"], counts["reused"]
    row = {**result.row(), "unused_records": counts["unused"]}
    write_atomic(Path(out_dir) / SUMMARY_FILE, json.dumps(row, indent=1) + "\n")
    return result
