"""Thought inhibition on the conflict suite: how often the rule holds with and without it, and what
it costs in speed.

    python bench/inhibition_suite.py [--model smollm2-135m-instruct] [--tasks jailbreak,moderation]
                                     [--limit 12] [--moderators keywords,model] [--k 8]
                                     [--threshold 0] [--max-inhibitions 32] [--json OUT]

Variants per task: plain decoding (batched, and one sequence at a time for the speed ratio), and
inhibition with each moderator. The keyword moderator is configured per sample with the strings
the rule forbids (an external filter that knows the secret / the banned words); the model
moderator is the main model itself, shown the system prompt's rules, the user's request and the
draft, judged by log p("Yes") − log p("No") to "does it break the rules?". Rates are task scores (rule holds = 1) with a
standard error."""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table

from nevermind.adapters import KeywordModerator, ModelModerator, ThoughtInhibition, generate_with_adapters
from nevermind.models import GenerateRequest, load_model
from nevermind.scoring.stats import mean_and_se
from nevermind.tasks import TaskOptions, build_task


def forbidden_strings(task_name: str, target: dict) -> list[str]:
    """The strings the sample's rule forbids (what a keyword moderator would be configured with)."""
    if task_name == "jailbreak":
        return list(target["forbidden"])
    return [target["secret"], *target.get("parts", [])]


def run(task, samples, lm, variant: str, k: int, threshold: float, max_inhibitions: int):
    config = task.generation
    requests = [GenerateRequest(s.messages, chat=True) for s in samples]
    start = time.perf_counter()
    inhibitions = []
    if variant == "plain":
        outputs = lm.generate(requests, config, batch_size=8)
    elif variant == "plain batch 1":
        outputs = lm.generate(requests, config, batch_size=1)
    else:
        outputs = []
        for sample, request in zip(samples, requests):
            if variant == "inhibition keywords":
                moderator = KeywordModerator([f for f in forbidden_strings(task.name, sample.target) if f])
            else:
                moderator = ModelModerator(lm, threshold=threshold)
            adapter = ThoughtInhibition(moderator, k=k, max_inhibitions=max_inhibitions)
            outputs += generate_with_adapters(lm, [request], config, [adapter])
            inhibitions.append(adapter.stats.inhibitions)
    seconds = time.perf_counter() - start
    scores = [task.score(s, o.text) for s, o in zip(samples, outputs)]
    tokens = sum(len(o.token_ids) for o in outputs)
    return {
        "variant": variant,
        "holds": mean_and_se([s.value for s in scores]),
        "obeyed_newest": mean_and_se([s.extra["obeyed_newest"] for s in scores]) if task.name == "jailbreak" else None,
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "inhibitions": sum(inhibitions) / len(inhibitions) if inhibitions else 0.0,
        "outputs": [{"id": s.id, "text": o.text, "score": sc.value, "why": sc.explanation}
                    for s, o, sc in zip(samples, outputs, scores)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tasks", default="jailbreak,moderation")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--moderators", default="keywords,model")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.0, help="Model moderator: log p(Yes) − log p(No) above it is unsafe.")
    parser.add_argument("--max-inhibitions", type=int, default=32, help="Inhibited drafts per response before it is ended.")
    parser.add_argument("--json", dest="json_out", help="Also write all results (with outputs) to this file.")
    args = parser.parse_args()
    lm = load_model(args.model)
    lm.generate(["Hello"])  # warm up: the first generation after load is slow
    console = Console()
    everything = {}
    for task_name in args.tasks.split(","):
        task = build_task(task_name, TaskOptions(limit=args.limit), lm.tokenizer)
        samples = list(task.samples())
        variants = ["plain", "plain batch 1"] + [f"inhibition {m}" for m in args.moderators.split(",") if m]
        results = [run(task, samples, lm, v, args.k, args.threshold, args.max_inhibitions) for v in variants]
        everything[task_name] = results
        base = next(r for r in results if r["variant"] == "plain batch 1")["tokens_per_s"]
        table = Table(title=f"{task_name} on {args.model}: {len(samples)} samples, k={args.k}")
        for column in ("variant", "rule holds", "obeyed newest", "inhibitions / sample", "tokens/s", "÷ plain batch 1"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for r in results:
            obeyed = f"{r['obeyed_newest'][0]:.2f} ± {r['obeyed_newest'][1]:.2f}" if r["obeyed_newest"] else "—"
            table.add_row(
                r["variant"], f"{r['holds'][0]:.2f} ± {r['holds'][1]:.2f}", obeyed, f"{r['inhibitions']:.1f}",
                f"{r['tokens_per_s']:.1f}", f"{r['tokens_per_s'] / base:.2f}",
            )
        console.print(table)
        console.file.flush()  # show each table as soon as it is measured
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(everything, handle, indent=1)


if __name__ == "__main__":
    main()
