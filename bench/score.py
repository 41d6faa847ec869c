"""Scoring throughput of nevermind against lm-evaluation-harness's transformers backend, in one run.

Both score the same requests with the same weights (lm-eval's HFLM wraps the very module nevermind
loaded, so the comparison is of the scoring paths alone), in alternating rounds; the median round
gives tokens/s (context + continuation tokens per second). Log-probabilities must agree within
1e-4 nats per token. Workloads:
  prose    96 × (200 context + 20 continuation) tokens of Paul Graham's essays
  ranking  16 instructions × 6 responses: one ~150-token context, six ~60-token continuations
           (response ranking, judges and multiple choice look like this: the context is shared)

    .venv/bin/pip install lm-eval==0.4.13     # its dependencies do not conflict with nevermind's
    .venv/bin/python bench/score.py [--models smollm2-135m-instruct,gemma-3-270m] [--rounds 3]

Bars (issue 14): ≥ 1.5× on SmolLM2 prose, ≥ 3× on gemma-3-270m prose, ≥ 2.5× on ranking.
Time nothing else on the machine meanwhile: two cores are easily shared into noise.

--ceiling also times, on one prose batch, the parts both scorers share: the decoder alone (which
every scorer must run over every token), the full model with log-softmax over every position (the
least lm-eval's path does), nevermind's scoring of the batch, and the same with bfloat16 matrix
products (oneDNN's fp32_precision = "bf16"), with its disagreement. The ratio lm-eval can lose by
when both run the same float32 decoder is (full + log-softmax) / decoder."""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import torch

from nevermind.models import ScoreRequest, load_model


def prose(tokenizer, n: int, context: int, continuation: int, seed: int = 0) -> list[ScoreRequest]:
    """(context, continuation) pairs cut from real prose at token boundaries."""
    from nevermind.data.haystack import haystack_text

    ids = tokenizer(haystack_text(), add_special_tokens=False).input_ids
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(0, len(ids) - context - continuation)
        out.append(ScoreRequest(tokenizer.decode(ids[start : start + context]),
                                tokenizer.decode(ids[start + context : start + context + continuation])))
    return out


def ranking(tokenizer, instructions: int, responses: int, context: int, continuation: int) -> list[ScoreRequest]:
    """Each instruction's context shared by several responses (real prose, cut at token boundaries)."""
    pieces = prose(tokenizer, instructions * (responses + 1), context, continuation, seed=1)
    out = []
    for i in range(instructions):
        shared = pieces[i * (responses + 1)].context
        out += [ScoreRequest(shared, pieces[i * (responses + 1) + 1 + r].continuation) for r in range(responses)]
    return out


def lm_eval_model(model, batch_size: int):
    """lm-eval's HFLM around the module nevermind loaded (same weights, same tokenizer)."""
    try:
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        sys.exit("bench/score.py needs lm-evaluation-harness: .venv/bin/pip install lm-eval==0.4.13")
    bos = bool(model.encode("x")[:1] and model.encode("x")[0] == model.tokenizer.bos_token_id)
    return HFLM(pretrained=model.model, tokenizer=model.tokenizer, batch_size=batch_size, device="cpu",
                add_bos_token=bos)  # fmt: skip


def run_lm_eval(lm, requests: list[ScoreRequest]) -> list[float]:
    from lm_eval.api.instance import Instance

    instances = [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(requests)]
    return [logprob for logprob, _ in lm.loglikelihood(instances, disable_tqdm=True)]


def compare(model, lm, name: str, requests: list[ScoreRequest], rounds: int, batch_size: int) -> dict:
    """Alternating timed rounds of both scorers; agreement of their log-probabilities."""
    ours = model.score(requests[:4])  # warm-up both
    run_lm_eval(lm, requests[:4])
    times: dict[str, list[float]] = {"nevermind": [], "lm-eval": []}
    for _ in range(rounds):
        began = time.perf_counter()
        ours = model.score(requests, batch_size=batch_size)
        times["nevermind"].append(time.perf_counter() - began)
        began = time.perf_counter()
        theirs = run_lm_eval(lm, requests)
        times["lm-eval"].append(time.perf_counter() - began)
    tokens = sum(len(model.encode(req.context)) + len(res.tokens) for req, res in zip(requests, ours))
    per_token = max(abs(o.logprob - t) / len(o.tokens) for o, t in zip(ours, theirs))
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"workload": name, "tokens": tokens, "nevermind": tokens / medians["nevermind"],
            "lm-eval": tokens / medians["lm-eval"], "ratio": medians["lm-eval"] / medians["nevermind"],
            "max_diff_per_token": per_token}  # fmt: skip


def ceiling(model, requests: list[ScoreRequest], batch_size: int) -> dict:
    """Seconds for one prose batch: decoder alone, full model + log-softmax, nevermind, nevermind in bf16."""
    pairs = [model._score_ids(r) for r in requests[:batch_size]]
    rows = [c + t for c, t in pairs]
    width, pad = max(map(len, rows)), model.tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    decoder = model.model.get_decoder()

    def best(fn, n: int = 3) -> tuple[float, object]:
        out = fn()
        times = []
        for _ in range(n):
            began = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - began)
        return min(times), out

    with torch.inference_mode():
        row = {"decoder": best(lambda: decoder(input_ids=ids))[0],
               "full+log_softmax": best(lambda: torch.log_softmax(model.model(input_ids=ids).logits, -1))[0]}  # fmt: skip
        row["nevermind"], exact = best(lambda: model._score_batch(pairs))
        matmul = torch.backends.mkldnn.matmul
        before = matmul.fp32_precision
        try:
            matmul.fp32_precision = "bf16"
            row["nevermind bf16"], rough = best(lambda: model._score_batch(pairs))
        finally:
            matmul.fp32_precision = before
    row["bf16 max |Δ|/token"] = max(abs(a.logprob - b.logprob) / len(a.tokens) for a, b in zip(exact, rough))
    row["ceiling"] = row["full+log_softmax"] / row["decoder"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply request counts (0.25 for a quick check).")
    parser.add_argument("--ceiling", action="store_true", help="Also time the shared parts on one prose batch.")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    for name in args.models.split(","):
        model = load_model(name, device="cpu", dtype="float32")
        lm = lm_eval_model(model, args.batch_size)
        n = max(4, round(96 * args.scale))
        workloads = [("prose", prose(model.tokenizer, n if "smollm" in name else round(n * 2 / 3), 200, 20))]
        if "smollm" in name:
            workloads.append(("ranking", ranking(model.tokenizer, max(2, round(16 * args.scale)), 6, 150, 60)))
        if args.ceiling:
            c = ceiling(model, workloads[0][1], args.batch_size)
            print(f"{name:24} one prose batch of {args.batch_size}: decoder {c['decoder']:.2f} s, "
                  f"full model + log-softmax {c['full+log_softmax']:.2f} s (ceiling {c['ceiling']:.2f}x), "
                  f"nevermind {c['nevermind']:.2f} s, with bf16 products {c['nevermind bf16']:.2f} s "
                  f"(max |Δ logprob|/token {c['bf16 max |Δ|/token']:.1e})", flush=True)
        for label, requests in workloads:
            row = compare(model, lm, label, requests, args.rounds, args.batch_size)
            row["model"] = name
            rows.append(row)
            print(f"{name:24} {label:8} {row['tokens']:6d} tok  nevermind {row['nevermind']:7.1f} tok/s  "
                  f"lm-eval {row['lm-eval']:7.1f} tok/s  ratio {row['ratio']:5.2f}x  "
                  f"max |Δ logprob|/token {row['max_diff_per_token']:.1e}", flush=True)
        del lm, model
    bad = [r for r in rows if r["max_diff_per_token"] > 1e-4]
    if bad:
        sys.exit(f"log-probabilities disagree beyond 1e-4 nats/token: {[(r['model'], r['workload']) for r in bad]}")


if __name__ == "__main__":
    main()
