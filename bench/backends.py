"""The conflict suite's prompts on every backend: speed, and agreement with the transformers backend.

    python bench/backends.py [--model smollm2-135m-instruct] [--config configs/suite-small.yaml]
                             [--backends hf,vllm,llamacpp] [--rounds 3] [--limit N]

For each backend, on the suite's prompts with each task's own decoding settings (greedy):
- generation: generated tokens/s (one `generate` call per task, all its prompts at once), the share of
  outputs identical to the transformers backend's, and the suite's task scores (mean ± SE);
- scoring: tokens/s scoring (prompt, transformers' answer) pairs, and the largest and mean per-token
  log-probability difference from transformers;
- each speed as a ratio of the transformers backend's.
vLLM is also run raw — `vllm.LLM.generate` on the same token prompts with the same sampling settings, on
the same engine — in rounds alternating with nevermind's `generate` (bar: nevermind ≥ 0.90 × raw), and
as the eval runner calls it (`batch_size` prompts per call). Speeds are medians over the rounds; time
nothing while other jobs run on the machine."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nevermind.models import GenerateRequest, GenerationConfig, ScoreRequest, load_model
from nevermind.runs.config import resolve_config
from nevermind.runs.runner import task_options
from nevermind.scoring.stats import mean_and_se
from nevermind.tasks import build_task

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class SuiteTask:
    """One task of the suite: its prompts, decoding settings and scorer."""

    task: Any
    samples: list[Any]
    config: GenerationConfig

    @property
    def requests(self) -> list[GenerateRequest]:
        return [GenerateRequest(list(s.messages)) for s in self.samples]


def suite(model: Any, config_file: Path, model_name: str, limit: int | None) -> tuple[list[SuiteTask], int]:
    """The suite's tasks built as `nevermind eval` builds them, and the eval's batch size."""
    overrides = {"models": [model_name], **({"limit": limit} if limit else {})}
    spec = resolve_config(config_file, overrides).run_specs()[0]
    tasks = []
    for name in spec.tasks:
        task = build_task(name, task_options(spec), model.tokenizer)
        generation = task.generation
        if spec.max_new_tokens is not None:
            generation = dataclasses.replace(generation, max_new_tokens=spec.max_new_tokens)
        tasks.append(SuiteTask(task, list(task.samples()), generation))
    return tasks, spec.batch_size


def generate_suite(model: Any, tasks: list[SuiteTask], batch_size: int) -> tuple[list[list[Any]], float]:
    """Every task's outputs (one call per chunk of `batch_size` prompts) and the seconds it took."""
    start = time.perf_counter()
    outputs = []
    for t in tasks:
        requests = t.requests
        out: list[Any] = []
        for i in range(0, len(requests), batch_size):
            out += model.generate(requests[i : i + batch_size], t.config, batch_size=batch_size)
        outputs.append(out)
    return outputs, time.perf_counter() - start


def raw_vllm_suite(model: Any, tasks: list[SuiteTask]) -> tuple[list[list[int]], float]:
    """The same prompts straight through vllm.LLM.generate (token prompts, the same sampling settings)."""
    from vllm import SamplingParams

    llm = model.engine
    limit = model.info()["context_length"]
    prepared = []
    for t in tasks:
        ids = [model.encode(model.format_prompt(r)) for r in t.requests]
        params = [SamplingParams(max_tokens=max(1, min(t.config.max_new_tokens, limit - len(p))), temperature=0.0,
                                 stop=list(t.config.stop) or None, stop_token_ids=sorted(model.eos_token_ids))
                  for p in ids]  # fmt: skip
        prepared.append(([{"prompt_token_ids": p} for p in ids], params))
    start = time.perf_counter()
    tokens = []
    for prompts, params in prepared:
        for result in llm.generate(prompts, params, use_tqdm=False):
            tokens.append(list(result.outputs[0].token_ids))
    return tokens, time.perf_counter() - start


def score_pairs(tasks: list[SuiteTask], reference_outputs: list[list[Any]], model: Any) -> list[ScoreRequest]:
    """(formatted prompt, the reference's answer) for every sample with a non-empty answer."""
    pairs = []
    for t, outs in zip(tasks, reference_outputs):
        for request, out in zip(t.requests, outs):
            if out.text.strip():
                pairs.append(ScoreRequest(model.format_prompt(request), out.text))
    return pairs


def task_scores(tasks: list[SuiteTask], outputs: list[list[Any]]) -> dict[str, str]:
    """Each task's first metric as mean ± SE over its samples."""
    shown = {}
    for t, outs in zip(tasks, outputs):
        scores = [t.task.score(s, o.text) for s, o in zip(t.samples, outs)]
        mean, se = mean_and_se([float(s.value) for s in scores])
        shown[t.task.name] = f"{mean:.3f} ± {se:.3f}"
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "suite-small.yaml")
    parser.add_argument("--backends", default="hf,vllm,llamacpp")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds per measurement (median reported).")
    parser.add_argument("--limit", type=int, default=None, help="Samples per task (the config's if unset).")
    args = parser.parse_args()
    console = Console() if sys.stdout.isatty() else Console(width=200)  # piped: never cut a number
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if backends[0] != "hf":
        backends.insert(0, "hf")  # the reference every other backend is compared with

    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] = {}
    vllm_rows: list[tuple[str, float, float]] = []
    for name in backends:
        console.print(f"[bold]{name}[/bold]: loading {args.model}")
        start = time.perf_counter()
        model = load_model(args.model, backend=name, device="cpu")
        load_seconds = time.perf_counter() - start
        tasks, batch_size = suite(model, args.config, args.model, args.limit)
        model.generate(tasks[0].requests[:2], GenerationConfig(max_new_tokens=4))  # warm-up
        speeds, scored_speeds = [], []
        outputs: list[list[Any]] = []
        raw_speeds, whole_speeds = [], []
        for round_ in range(args.rounds):
            if name == "vllm":  # raw vLLM and nevermind in alternating order, on the same engine
                raw_tokens, raw_seconds = raw_vllm_suite(model, tasks)
                whole, whole_seconds = generate_suite(model, tasks, batch_size=10**9)
                raw_speeds.append(sum(map(len, raw_tokens)) / raw_seconds)
                whole_speeds.append(sum(len(o.token_ids) for out in whole for o in out) / whole_seconds)
                mismatched = sum(a != o.token_ids for a, o in zip(raw_tokens, (o for out in whole for o in out)))
                if mismatched:
                    console.print(f"  round {round_}: {mismatched} outputs differ between raw vLLM and nevermind")
            outputs, seconds = generate_suite(model, tasks, batch_size)
            speeds.append(sum(len(o.token_ids) for out in outputs for o in out) / seconds)
            if name == "hf" and round_ == 0:
                reference["outputs"] = outputs
                reference["pairs"] = score_pairs(tasks, outputs, model)
            pairs = reference["pairs"]
            start = time.perf_counter()
            scored = model.score(pairs)
            scored_speeds.append(sum(len(r.tokens) for r in scored) / (time.perf_counter() - start))
        if name == "hf":
            reference["scores"] = scored
        flat = [o.text for out in outputs for o in out]
        same = sum(a == b for a, b in zip(flat, (o.text for out in reference["outputs"] for o in out)))
        diffs = [abs(a - b) for x, y in zip(scored, reference["scores"]) for a, b in zip(x.token_logprobs, y.token_logprobs)]
        rows.append({
            "backend": name, "load s": f"{load_seconds:.1f}", "gen tok/s": statistics.median(speeds),
            "score tok/s": statistics.median(scored_speeds), "same text": f"{same}/{len(flat)}",
            "max |Δ logp|": f"{max(diffs):.1e}", "mean |Δ logp|": f"{statistics.fmean(diffs):.1e}",
            "scores": task_scores(tasks, outputs),
        })  # fmt: skip
        if name == "vllm":
            vllm_rows.append(("one call per task", statistics.median(whole_speeds), statistics.median(raw_speeds)))
            vllm_rows.append((f"eval runner ({batch_size} per call)", statistics.median(speeds), statistics.median(raw_speeds)))
        del model

    base = rows[0]
    table = Table(title=f"{args.model}: {sum(len(t.samples) for t in tasks)} suite prompts, {args.rounds} rounds")
    for column in ("backend", "load s", "gen tok/s", "× hf", "score tok/s", "× hf ", "same text as hf",
                   "max |Δ logp|", "mean |Δ logp|"):  # fmt: skip
        table.add_column(column)
    for row in rows:
        table.add_row(row["backend"], row["load s"], f"{row['gen tok/s']:.0f}", f"{row['gen tok/s'] / base['gen tok/s']:.2f}",
                      f"{row['score tok/s']:.0f}", f"{row['score tok/s'] / base['score tok/s']:.2f}", row["same text"],
                      row["max |Δ logp|"], row["mean |Δ logp|"])  # fmt: skip
    console.print(table)
    scores = Table(title="task scores (first metric, mean ± SE)")
    scores.add_column("backend")
    for task in rows[0]["scores"]:
        scores.add_column(task)
    for row in rows:
        scores.add_row(row["backend"], *row["scores"].values())
    console.print(scores)
    if vllm_rows:
        raw = Table(title="vLLM through nevermind vs raw vLLM (same engine, same prompts; bar ≥ 0.90)")
        for column in ("how nevermind calls it", "nevermind tok/s", "raw vLLM tok/s", "ratio"):
            raw.add_column(column)
        for label, ours, theirs in vllm_rows:
            raw.add_row(label, f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}")
        console.print(raw)


if __name__ == "__main__":
    main()
