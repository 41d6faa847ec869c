"""Throughput of `nevermind serve` at concurrency 1, 4 and 16, against the same requests run
in-process through the model interface, and the ratios.

    .venv/bin/python bench/serve.py [--model smollm2-135m-instruct] [--requests 48] [--max-tokens 48]
                                    [--workload chat|loglikelihood]

One model is loaded once; the server runs on 127.0.0.1 in this process (serve_in_thread) over that
model, and C client threads each send one request at a time until N requests are answered
(closed loop). The in-process baseline runs the same N requests through `model.generate` (chat) or
`model.sequence_logprobs` (loglikelihood: lm-eval's echo + max_tokens=1 + logprobs=1 requests,
which the server answers from one log-probability pass) in batches of C. Greedy decoding, so both sides produce the same tokens.
Numbers mean something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from _common import PROMPTS, timer

from nevermind.models import GenerateRequest, GenerationConfig, load_model
from nevermind.serve import Server, create_app, serve_in_thread

LOGLIKELIHOOD_TEXT = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "wondering whether the harvest will come in before the first frost of the year."
)


def workload(
    model, kind: str, n: int, max_tokens: int
) -> tuple[list[dict], list[GenerateRequest] | list[list[int]]]:
    """N request bodies for the server and the same requests for the model interface."""
    if kind == "chat":
        messages = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(n)]
        bodies = [{"messages": m, "max_tokens": max_tokens, "temperature": 0} for m in messages]
        return bodies, [GenerateRequest(m) for m in messages]
    words = LOGLIKELIHOOD_TEXT.split()
    rows = [model.encode(" ".join(words[i % 7 :] + words[: i % 7]), prefix=False) for i in range(n)]
    bodies = [{"prompt": [r], "echo": True, "max_tokens": 1, "logprobs": 1, "temperature": 0} for r in rows]
    return bodies, rows


def run_server(url: str, kind: str, bodies: list[dict], concurrency: int) -> tuple[float, int]:
    """Seconds to answer every body with `concurrency` clients, and the tokens they report."""
    path = "chat/completions" if kind == "chat" else "completions"
    clients = [httpx.Client(timeout=600) for _ in range(concurrency)]

    def send(i: int) -> int:
        response = clients[i % concurrency].post(f"{url}/{path}", json=bodies[i])
        response.raise_for_status()
        usage = response.json()["usage"]
        return usage["completion_tokens"] if kind == "chat" else usage["prompt_tokens"]

    with ThreadPoolExecutor(concurrency) as pool, timer() as elapsed:
        tokens = sum(pool.map(send, range(len(bodies))))
    for client in clients:
        client.close()
    return elapsed[0], tokens


def run_in_process(model, kind: str, requests, max_tokens: int, batch: int) -> tuple[float, int]:
    with timer() as elapsed:
        if kind == "chat":
            out = model.generate(requests, GenerationConfig(max_new_tokens=max_tokens), batch_size=batch)
            tokens = sum(len(g.token_ids) for g in out)
        else:
            model.sequence_logprobs(requests, top_k=1, batch_size=batch)  # what the server runs for these
            tokens = sum(len(r) for r in requests)
    return elapsed[0], tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=48, help="Requests per concurrency level.")
    parser.add_argument("--max-tokens", type=int, default=48, help="max_tokens of each chat request.")
    parser.add_argument("--workload", choices=["chat", "loglikelihood"], default="chat")
    parser.add_argument("--levels", default="1,4,16", help="Concurrency levels, comma-separated.")
    args = parser.parse_args()
    levels = [int(c) for c in args.levels.split(",")]

    model = load_model(args.model, device="cpu")
    bodies, requests = workload(model, args.workload, args.requests, args.max_tokens)
    server = Server(model, model_id=args.model, max_tokens=max(args.max_tokens, 1), max_batch=max(levels))
    unit = "generated" if args.workload == "chat" else "scored"
    print(f"model {args.model}, workload {args.workload}, {args.requests} requests per level, "
          f"max_tokens {args.max_tokens}, greedy; tokens = {unit} tokens")  # fmt: skip
    print(f"{'concurrency':>11} | {'server req/s':>12} {'tok/s':>8} {'batch':>6} | "
          f"{'in-process req/s':>16} {'tok/s':>8} | {'server/in-proc':>14}")  # fmt: skip
    with serve_in_thread(create_app(server)) as url:
        run_server(url, args.workload, bodies[:2], 2)  # warm-up: the first calls are slow
        run_in_process(model, args.workload, requests[:2], 8, 2)
        rates = {}
        for c in levels:
            stats = server.engine.stats
            counter = "generate_calls" if args.workload == "chat" else "logprob_calls"  # calls answering them
            jobs, calls = stats.jobs, getattr(stats, counter)
            seconds, tokens = run_server(url, args.workload, bodies, c)
            mean_batch = (stats.jobs - jobs) / max(
                1, getattr(stats, counter) - calls
            )  # prompts per model call
            local_seconds, local_tokens = run_in_process(model, args.workload, requests, args.max_tokens, c)
            rates[c] = args.requests / seconds
            local_rate = args.requests / local_seconds
            print(f"{c:>11} | {rates[c]:>12.2f} {tokens / seconds:>8.1f} {mean_batch:>6.1f} | "
                  f"{local_rate:>16.2f} {local_tokens / local_seconds:>8.1f} | {rates[c] / local_rate:>13.2f}x",
                  flush=True)  # fmt: skip
    server.close()
    base = levels[0]
    for c in levels[1:]:
        print(f"server throughput at concurrency {c} / concurrency {base}: {rates[c] / rates[base]:.2f}x")
    print(f"(measured {time.strftime('%Y-%m-%d %H:%M')}; valid only on an idle machine)")


if __name__ == "__main__":
    main()
