"""Scoring throughput and model FLOPs utilization (MFU) against a matmul peak measured in this run.

Compares nevermind's scorer (output layer only on continuation positions, chunked) with a naive
baseline in the same process: a full forward that materialises logits for every position and takes
log_softmax over them (what lm-evaluation-harness's transformers backend does).

    .venv/bin/python bench/score.py [--model smollm2-135m-instruct] [--requests 128] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import random

import torch
from _common import matmul_peak_gflops, timer

from nevermind.models import ScoreRequest, load_model


def prose_requests(tokenizer, n: int, context_tokens: int = 200, continuation_tokens: int = 20, seed: int = 0):
    """(context, continuation) pairs cut from real prose at token boundaries."""
    from nevermind.data.haystack import haystack_text

    ids = tokenizer(haystack_text(), add_special_tokens=False).input_ids
    rng = random.Random(seed)
    requests = []
    for _ in range(n):
        start = rng.randrange(0, len(ids) - context_tokens - continuation_tokens)
        context = tokenizer.decode(ids[start : start + context_tokens])
        continuation = tokenizer.decode(ids[start + context_tokens : start + context_tokens + continuation_tokens])
        requests.append(ScoreRequest(context, continuation))
    return requests


@torch.inference_mode()
def naive_score(model, requests, batch_size: int) -> int:
    """Full-logits baseline; returns the number of tokens processed."""
    tokens = 0
    for start in range(0, len(requests), batch_size):
        batch = requests[start : start + batch_size]
        rows = [model.encode(r.context) + model.tokenizer(r.continuation, add_special_tokens=False).input_ids for r in batch]
        ids, mask, positions = model._left_pad(rows)
        logits = model.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        torch.log_softmax(logits.float(), dim=-1)
        tokens += int(mask.sum())
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    requests = prose_requests(model.tokenizer, args.requests)
    model.score(requests[:4])  # warm-up

    peak = matmul_peak_gflops()
    with timer() as ours_time:
        results = model.score(requests, batch_size=args.batch_size)
    with timer() as naive_time:
        naive_tokens = naive_score(model, requests, args.batch_size)

    scored = sum(len(r.tokens) for r in results)
    processed = naive_tokens
    params = sum(p.numel() for p in model.model.parameters())
    head = model.model.get_output_embeddings().weight.numel()
    body = params - model.model.get_input_embeddings().weight.numel()
    # Forward FLOPs ≈ 2 × weights touched per token: the body for every token, the head where used.
    ours_flops = 2 * (body * processed + head * scored)
    naive_flops = 2 * (body + head) * processed
    print(f"model {args.model}: {params / 1e6:.0f}M params, head {head / 1e6:.0f}M; "
          f"{len(requests)} requests, {processed} tokens, {scored} scored; batch {args.batch_size}")
    print(f"matmul peak (fp32, this run): {peak:.1f} GFLOP/s")
    for label, seconds, flops in (("nevermind", ours_time[0], ours_flops), ("naive full-logits", naive_time[0], naive_flops)):
        print(f"{label:>18}: {processed / seconds:7.1f} tok/s ({seconds:5.1f} s), "
              f"{flops / seconds / 1e9:6.1f} GFLOP/s useful = MFU {flops / seconds / 1e9 / peak:5.1%}")
    print(f"speed-up over naive: {naive_time[0] / ours_time[0]:.2f}x")


if __name__ == "__main__":
    main()
