"""Decoding speed with and without the decode-time adapters, in one process.

    python bench/adapters.py [--models smollm2-135m-instruct,gemma-3-270m] [--max-new-tokens 64]

Prints a table per model: tokens/s (generated tokens), steps/s (rows × forward passes for batched
variants: adapters that end responses early do not look faster for it), the share of time
spent inside the adapter's own code, and each speed as a ratio of plain decoding at the same batch
size. Thought inhibition drafts all requests of a batch together in rounds (each round re-reads the
prompt and what was emitted, through the model interface), so it is compared with plain decoding at
the same batch size, on emitted tokens/s (its forward passes include the re-reading and its judge's,
which are its cost, not its work); plain batch 1 is shown for reference. Rounds alternate between
variants (in a rotated order each round); a variant's speed is its median round, its ratio the median of its per-round ratios to the baseline (the model-judge variant
runs in the first round only). A no-op processor shows the noise floor: it does nothing."""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from nevermind.adapters import build_adapter, generate_with_adapters, is_decoding_adapter
from nevermind.models import GenerationConfig, load_model

INSTRUCTIONS = [
    "Give me a recipe for tiramisu.",
    "Explain how the game of kickball is played.",
    "Write a short poem about the sea.",
    "What are three tips for staying healthy?",
    "Describe the water cycle to a ten-year-old.",
    "List some good names for a pet turtle.",
    "How do I make a paper airplane?",
    "Summarize the plot of Romeo and Juliet.",
]
BANNED = "keywords:banned=the;and;water;Romeo"
VARIANTS = {
    # name: (adapter specs, batch size key)
    "plain": ([], "batch"),
    "no-op processor": (["no-op"], "batch"),
    "rules": (["rules"], "batch"),
    "rules eos-off": (["rules:eos=false"], "batch"),
    "keywords": ([BANNED], "batch"),
    "plain batch 1": ([], "one"),
    "inhibition never-flags k=8": (["inhibition:moderator=regex,pattern=(?!),k=8"], "batch"),
    "inhibition keywords k=8": (["inhibition:moderator=keywords,banned=the;and;water;Romeo,k=8"], "batch"),
    # SmolLM2 judging its own benign drafts flags many of them; each flag costs a judged prefix
    # search, so responses are capped at 4 inhibitions to keep the bench to minutes.
    "inhibition model-judge k=8": (["inhibition:moderator=model,k=8,max_inhibitions=4"], "batch"),
}
BASELINE = {"batch": "plain", "one": "plain batch 1"}
SINGLE_ROUND = {"inhibition model-judge k=8"}
"""Variants measured in the first round only: the model judge is an order of magnitude slower than
plain decoding on 2 CPU cores, so its noise does not matter."""


class NoOp:
    """A logits processor that returns the scores unchanged: the cost of having a processor at all."""

    def __call__(self, input_ids, scores):
        return scores


class Timed:
    """Wraps a logits processor and adds up the time spent inside it."""

    def __init__(self, processor):
        self.processor, self.seconds = processor, 0.0

    def start_batch(self, prompt_length: int) -> None:
        if hasattr(self.processor, "start_batch"):
            self.processor.start_batch(prompt_length)

    def __call__(self, input_ids, scores):
        start = time.perf_counter()
        out = self.processor(input_ids, scores)
        if out.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


class ForwardCounter:
    """Counts the model's forward passes (prefill + one per decoding step) while active."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __enter__(self):
        original = self.model.forward

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        self.model.forward = counted
        return self

    def __exit__(self, *exc):
        del self.model.forward  # back to the class's method


def run_variant(lm, specs, config, batch_size, requests):
    """Speed of one variant. `steps` is rows × forward passes for batched logits-processor variants
    (what decoding did, whether or not rows had already ended), and the emitted tokens at batch 1
    and for thought inhibition (whose forward passes include re-reading each round's prompt and its
    judge's, which are its cost, not its work)."""
    adapters = [NoOp() if spec == "no-op" else build_adapter(spec, lm) for spec in specs]
    timed = [a if is_decoding_adapter(a) else Timed(a) for a in adapters]
    tokens = steps = 0
    start = time.perf_counter()
    for first in range(0, len(requests), batch_size):
        chunk = requests[first : first + batch_size]
        with ForwardCounter(lm.model) as counter:
            outputs = generate_with_adapters(lm, chunk, config, timed, batch_size=batch_size)
        tokens += sum(len(o.token_ids) for o in outputs)
        if any(is_decoding_adapter(a) for a in adapters):
            steps += sum(len(o.token_ids) for o in outputs)
        elif batch_size > 1:
            steps += len(chunk) * counter.calls
        else:
            steps += max(len(o.token_ids) for o in outputs)
    seconds = time.perf_counter() - start
    inside = sum(t.seconds for t in timed if isinstance(t, Timed))
    inhibitions = sum(a.stats.inhibitions for a in adapters if hasattr(a, "stats"))
    return {"tokens": tokens, "steps": steps, "seconds": seconds, "inside": inside, "inhibitions": inhibitions}


def bench_model(name, args, console):
    lm = load_model(name, device=args.device)
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    requests = INSTRUCTIONS[: args.prompts]
    variants = {k: v for k, v in VARIANTS.items() if k in args.variants or args.variants == ["all"]}
    if name.startswith("gemma") and not args.all_on_gemma:
        variants = {k: v for k, v in variants.items() if k.startswith(("plain", "rules"))}
    sizes = {"batch": args.batch_size, "one": 1}
    run_variant(lm, [], config, args.batch_size, requests[:2])  # warm up
    for specs, size in variants.values():
        run_variant(lm, specs, GenerationConfig(max_new_tokens=4), sizes[size], requests[:1])
    rounds = {k: [] for k in variants}
    keys = list(variants)
    for round_number in range(args.rounds):
        # rotate the order each round so no variant always runs first (or right after another)
        shift = round_number % len(keys)
        for key in keys[shift:] + keys[:shift]:
            if key in SINGLE_ROUND and round_number > 0:
                continue
            specs, size = variants[key]
            rounds[key].append(run_variant(lm, specs, config, sizes[size], requests))
    median, ratio = {}, {}
    for key, results in rounds.items():
        median[key] = sorted(results, key=lambda r: r["steps"] / r["seconds"])[len(results) // 2]
        base = rounds.get(BASELINE[variants[key][1]])
        if base:  # the median of per-round ratios: each round's pair ran minutes apart at most
            pairs = sorted(
                (r["steps"] / r["seconds"]) / (b["steps"] / b["seconds"]) for r, b in zip(results, base)
            )
            ratio[key] = pairs[len(pairs) // 2]
    table = Table(title=f"{name} on {lm.device}: {len(requests)} instructions, ≤{args.max_new_tokens} new tokens, "
                        f"median of {args.rounds} rounds")
    for column in ("variant", "batch", "tokens", "tokens/s", "steps/s", "steps/s ÷ plain", "time in adapter", "inhibitions"):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for key, (specs, size) in variants.items():
        r = median[key]
        table.add_row(
            key, str(sizes[size]), str(r["tokens"]), f"{r['tokens'] / r['seconds']:.1f}",
            f"{r['steps'] / r['seconds']:.1f}", f"{ratio.get(key, float('nan')):.3f}",
            f"{100 * r['inside'] / r['seconds']:.1f} %" if r["inside"] else "—",
            str(r["inhibitions"]) if "inhibition" in key else "—",
        )
    console.print(table)
    console.file.flush()  # show each table as soon as it is measured
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default="all", help="Comma-separated variant names, or all.")
    parser.add_argument("--all-on-gemma", action="store_true", help="Also run keywords / inhibition on gemma.")
    args = parser.parse_args()
    args.variants = [v.strip() for v in args.variants.split(",")]
    torch.manual_seed(0)
    console = Console()
    for name in args.models.split(","):
        bench_model(name.strip(), args, console)


if __name__ == "__main__":
    main()
