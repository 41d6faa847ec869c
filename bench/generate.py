"""Tokens/s of batched (16) vs per-sample greedy generation on smollm2-135m-instruct, and the ratio.

    .venv/bin/python bench/generate.py [--model smollm2-135m-instruct] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse

from _common import PROMPTS, timer

from nevermind.models import GenerationConfig, load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    config = GenerationConfig(max_new_tokens=args.max_new_tokens)
    model.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=8))  # warm-up: the first call is slow

    with timer() as single_time:
        single = [model.generate([p], config, batch_size=1)[0] for p in PROMPTS]
    with timer() as batched_time:
        batched = model.generate(PROMPTS, config, batch_size=16)

    single_tokens = sum(len(g.token_ids) for g in single)
    batched_tokens = sum(len(g.token_ids) for g in batched)
    single_rate = single_tokens / single_time[0]
    batched_rate = batched_tokens / batched_time[0]
    same = [g.text for g in single] == [g.text for g in batched]
    print(f"model {args.model}, {len(PROMPTS)} prompts, max_new_tokens {args.max_new_tokens}, greedy")
    print(f"per-sample : {single_tokens:5d} tokens in {single_time[0]:6.1f} s = {single_rate:6.1f} tok/s")
    print(f"batched(16): {batched_tokens:5d} tokens in {batched_time[0]:6.1f} s = {batched_rate:6.1f} tok/s")
    print(f"ratio batched / per-sample: {batched_rate / single_rate:.2f}x; identical text: {same}")


if __name__ == "__main__":
    main()
