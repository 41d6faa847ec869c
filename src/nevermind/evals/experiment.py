"""Seed 001's comparison in one file: a base model, its response-tuned and single-task
finetunes, and an instruction-tuned reference trained on the same pairs; win rates of each
against the reference, response ranking for each; one table with standard errors.

Every step writes into the experiment directory and is skipped when its result is there
(checkpoints, output files, judgment files all resume), so a killed run picks up where it
stopped:

    OUT/checkpoints/NAME/    finetuned models (nevermind.training.train)
    OUT/outputs/NAME.jsonl   answers to the evaluation instructions
    OUT/winrate/NAME/        judgments vs the reference + summary.json
    OUT/rank/NAME.json       response ranking
    OUT/summary.json, OUT/report.html"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

BASE = "base"
"""Name of the untuned base model in tables and paths."""


class EvalSection(BaseModel):
    """How outputs are produced and judged."""

    model_config = ConfigDict(extra="forbid")
    instructions: str = Field(
        "alpaca-eval", description='"alpaca-eval" or a JSONL file with an "instruction" field.'
    )
    limit: int = Field(24, ge=2, description="Evaluation instructions judged (the first N).")
    max_new_tokens: int = Field(96, ge=1, description="Tokens generated per answer.")
    batch_size: int = Field(8, ge=1, description="Generation batch size.")
    judge: str = Field("local:smollm2-135m-instruct", description="openai:URL#model or local:MODEL.")
    tie_margin: float = Field(0.05, ge=0.0, le=0.5, description="|P(A better) − ½| at most this is a tie.")
    calibration: int | None = Field(
        None, ge=0, description="Known-answer pairs calibrating the judge: the first N instructions (default all)."
    )


class RankSection(BaseModel):
    """Response-ranking settings."""

    model_config = ConfigDict(extra="forbid")
    pairs: str = Field(
        "alpaca-eval", description='"alpaca-eval", "sharegpt" or a JSONL file of instruction/response.'
    )
    limit: int = Field(40, ge=6, description="Instructions ranked.")
    negatives: int = Field(5, ge=1, description="Random responses per instruction.")
    max_total_tokens: int = Field(1024, ge=2, description="Prompt + response are cut to this many tokens.")
    max_response_tokens: int | None = Field(
        None, ge=1, description="Cut every response to its first N tokens (default: whole responses)."
    )
    score_end: bool = Field(True, description="Score the end-of-turn token after a whole response.")
    models: list[str] | None = Field(None, description="Which models to rank (default: all).")


class ExperimentConfig(BaseModel):
    """The experiment file (YAML)."""

    model_config = ConfigDict(extra="forbid")
    base: str = Field("gemma-3-270m", description="The base model every variant starts from.")
    out_dir: str = Field("runs/experiment", description="Experiment directory.")
    seed: int = Field(0, description="Seed for training data, training and ranking.")
    train: dict[str, Any] = Field(
        default_factory=dict, description="nevermind.training.TrainConfig fields shared by every finetune."
    )
    reference: str = Field("instruction", description="Training recipe of the instruction-tuned reference.")
    variants: dict[str, str] = Field(
        default_factory=lambda: {"response-tuned": "response", "single-task": "single-task:poems"},
        description="Name → training recipe of every implicitly tuned model.",
    )
    eval: EvalSection = Field(default_factory=EvalSection, description="Outputs and judging.")
    rank: RankSection = Field(default_factory=RankSection, description="Response ranking.")

    @field_validator("variants")
    @classmethod
    def _names(cls, variants: dict[str, str]) -> dict[str, str]:
        for name in variants:
            if name in (BASE, "reference") or not name.replace("-", "_").isidentifier():
                raise ValueError(
                    f"variant name {name!r} must be a plain identifier other than base/reference"
                )
        return variants

    def models(self) -> list[str]:
        """Every model name in table order: base, the variants, the reference."""
        return [BASE, *self.variants, "reference"]


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file; errors name the file and line (nevermind.config)."""
    from nevermind.config import load_config

    return load_config(ExperimentConfig, path, what="experiment file")


def _train(config: ExperimentConfig, name: str, recipe: str, out: Path, say: Callable[[str], None]) -> str:
    """Checkpoint directory of one finetune, trained unless already there."""
    from nevermind.training import build_config, train

    target = out / "checkpoints" / name
    if (target / "config.json").exists() and (target / "nevermind-train.json").exists():
        return str(target)
    overrides = {
        **config.train,
        "model": config.base,
        "recipe": recipe,
        "seed": config.seed,
        "output_dir": str(target),
    }
    preset = overrides.pop("preset", None)
    train_config = build_config(preset=preset, overrides=overrides)

    def progress(p: Any) -> None:
        loss = f", loss {p.loss:.3f}" if p.loss is not None else ""
        say(f"training {name}: step {p.step}/{p.total_steps}{loss}")

    say(f"training {name} ({recipe})")
    return str(train(train_config, on_progress=progress, on_status=say))


def run_experiment(
    config: ExperimentConfig, *, on_status: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run (or resume) every step; return the summary and write summary.json and report.html."""
    from nevermind.evals.judges import make_judge
    from nevermind.evals.outputs import generate_outputs, load_instruction_source
    from nevermind.evals.rank import load_rank_pairs, response_rank
    from nevermind.evals.winrate import win_rate
    from nevermind.models import GenerationConfig, load_model

    say = on_status or (lambda _: None)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(config.model_dump_json(indent=1) + "\n")
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(step: str, began: float) -> None:
        timings[step] = round(timings.get(step, 0.0) + time.perf_counter() - began, 1)

    began = time.perf_counter()
    paths = {BASE: config.base}
    for name, recipe in [*config.variants.items(), ("reference", config.reference)]:
        paths[name] = _train(config, name, recipe, out, say)
    timed("train", began)

    instructions = load_instruction_source(config.eval.instructions, config.eval.limit)
    generation = GenerationConfig(max_new_tokens=config.eval.max_new_tokens)
    rank_pairs = load_rank_pairs(config.rank.pairs, limit=config.rank.limit, seed=config.seed)
    ranked = set(config.rank.models or config.models())
    ranks: dict[str, Any] = {}
    for name in config.models():
        began = time.perf_counter()
        say(f"loading {name}")
        model = load_model(paths[name], on_status=say)
        generate_outputs(
            model,
            instructions,
            out / "outputs" / f"{name}.jsonl",
            config=generation,
            generator=name,
            batch_size=config.eval.batch_size,
            on_progress=lambda done, total, n=name: say(f"{n}: outputs {done}/{total}"),
        )
        timed("generate", began)
        rank_file = out / "rank" / f"{name}.json"
        if name in ranked:
            began = time.perf_counter()
            if not rank_file.exists():
                say(f"{name}: response ranking")
                result = response_rank(
                    model,
                    rank_pairs,
                    negatives=config.rank.negatives,
                    seed=config.seed,
                    max_total_tokens=config.rank.max_total_tokens,
                    max_response_tokens=config.rank.max_response_tokens,
                    score_end=config.rank.score_end,
                )
                rank_file.parent.mkdir(parents=True, exist_ok=True)
                rank_file.write_text(json.dumps({**result.to_json(), "model": name}, indent=1))
            ranks[name] = {k: v for k, v in json.loads(rank_file.read_text()).items() if k != "records"}
            timed("rank", began)
        del model

    from nevermind.evals.outputs import load_outputs

    began = time.perf_counter()
    say(f"loading judge {config.eval.judge}")
    judge = make_judge(config.eval.judge)
    reference = load_outputs(out / "outputs" / "reference.jsonl")
    rates: dict[str, Any] = {}
    for name in config.models()[:-1]:
        result = win_rate(
            load_outputs(out / "outputs" / f"{name}.jsonl"),
            reference,
            judge,
            out / "winrate" / name,
            calibration=config.eval.calibration,
            tie_margin=config.eval.tie_margin,
            on_progress=lambda done, total, n=name: say(f"judging {n} vs reference {done}/{total}"),
        )
        rates[name] = result.row()
        say(f"{name}: {result.judged} judgments made, {result.reused} reused")
    timed("judge", began)
    timings["total"] = round(time.perf_counter() - started, 1)

    summary = {
        "base": config.base,
        "judge": judge.name,
        "instructions": len(instructions),
        "rank_pairs": config.rank.pairs,
        "rows": [{"model": n, "winrate": rates.get(n), "rank": ranks.get(n)} for n in config.models()],
        "seconds": timings,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "report.html").write_text(render_report(config, summary, out), encoding="utf-8")
    return summary


def _pct(value: float | None, se: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} ± {100 * (se or 0):.1f}"


REPORT_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Implicit instruction tuning: {{ base }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.4em;margin:0}.warn{color:#a40}</style></head><body>
<h1>Implicit instruction tuning on {{ base }}</h1>
<p>Against the instruction-tuned reference on {{ instructions }} instructions, judged by {{ judge }} in
both orders. <b>Preference</b>: P(model better), the two orders averaged on the log-odds scale (a fixed
position bonus in the judge's verdict cancels), mean over instructions. <b>Controlled</b>: a logistic GLM
with a position and a length term, predicted at equal length and no position advantage (bootstrap SE).
<b>alpaca_eval LC</b>: alpaca_eval's length-controlled win rate (its minimal GLM). <b>Soft</b>: verdict
probabilities averaged over both orders. <b>Thresholded</b>: win/tie/loss per order (margin
{{ tie_margin }}), a tie ½. <b>Picks 1st/2nd</b>: share of judgments preferring the answer in that
position (exactly ½ is neither). <b>Judge calibration</b>: how often the judge prefers an
instruction's real (reference) response over another instruction's, both orders — near 50 % the judge
cannot tell and its win rates mean nothing. Response ranking: P(real response &gt; random response) on
{{ rank_pairs }} pairs. All values in %, ± one standard error.</p>
<table><tr><th>model</th><th>preference</th><th>controlled</th><th>alpaca_eval LC</th><th>soft</th>
<th>thresholded</th><th>W / T / L</th><th>picks 1st / 2nd</th><th>judge calibration</th><th>mean chars</th>
<th>response ranking</th></tr>
{% for row in rows %}<tr><td>{{ row.model }}</td><td>{{ row.preference }}</td><td>{{ row.controlled }}</td>
<td>{{ row.alpaca }}</td><td>{{ row.soft }}</td><td>{{ row.win }}</td><td>{{ row.wtl }}</td><td>{{ row.first }}</td>
<td{% if row.near_chance %} class="warn"{% endif %}>{{ row.calibration }}</td><td>{{ row.chars }}</td><td>{{ row.rank }}</td></tr>
{% endfor %}</table>
{% if near_chance %}<p class="warn">The judge's calibration accuracy is within 2 SE of chance: it cannot
tell an instruction's real response from another instruction's, so these win rates say nothing about
the models.</p>{% endif %}
<p>Wall time (s): {% for k, v in seconds.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</p>
<h2>Sample outputs</h2>
{% for sample in samples %}<h3>{{ sample.instruction }}</h3><table>
{% for name, text in sample.outputs %}<tr><td>{{ name }}</td><td style="text-align:left"><pre>{{ text }}</pre></td></tr>
{% endfor %}</table>
{% endfor %}</body></html>
"""
"""The report page; Jinja2 autoescape escapes every model output and name."""


def render_report(config: ExperimentConfig, summary: dict[str, Any], out: Path, *, samples: int = 5) -> str:
    """The self-contained HTML report of a finished experiment."""
    from jinja2 import Environment

    from nevermind.evals.outputs import load_outputs

    rows = []
    for row in summary["rows"]:
        rate, rank = row["winrate"] or {}, row["rank"] or {}
        rows.append(
            {
                "model": row["model"],
                "preference": _pct(rate.get("preference"), rate.get("preference_se")) if rate else "(reference)",
                "controlled": _pct(rate.get("controlled"), rate.get("controlled_se")) if rate else "–",
                "alpaca": _pct(rate.get("alpaca_eval_lc"), rate.get("alpaca_eval_lc_se")) if rate else "–",
                "soft": _pct(rate.get("soft_win_rate"), rate.get("soft_se")) if rate else "–",
                "win": _pct(rate.get("win_rate"), rate.get("se")) if rate else "–",
                "wtl": f"{rate['wins']} / {rate['ties']} / {rate['losses']}" if rate else "–",
                "first": f"{100 * rate['first_position_rate']:.0f} / {100 * rate['second_position_rate']:.0f}"
                if rate
                else "–",
                "calibration": _pct(rate.get("calibration_accuracy"), rate.get("calibration_se")) if rate else "–",
                "near_chance": bool(rate.get("calibration_near_chance")),
                "chars": f"{rate['mean_length_a']:.0f}" if rate else "",
                "rank": _pct(rank.get("accuracy"), rank.get("se")) if rank else "–",
            }
        )
    outputs = {name: load_outputs(out / "outputs" / f"{name}.jsonl") for name in config.models()}
    instructions = list(outputs["reference"])[:samples]
    shown = [
        {"instruction": i, "outputs": [(n, outputs[n][i].output) for n in config.models() if i in outputs[n]]}
        for i in instructions
    ]
    template = Environment(autoescape=True).from_string(REPORT_TEMPLATE)
    near_chance = any(r["near_chance"] for r in rows)
    return template.render(
        **{**summary, "rows": rows, "samples": shown, "near_chance": near_chance, "tie_margin": config.eval.tie_margin}
    )
