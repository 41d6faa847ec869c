"""Contract tests with real clients nobody here wrote, against a real server on 127.0.0.1: the
`openai` Python client, lm-evaluation-harness's `local-completions` model with its default
(tokenized) requests, and `nevermind serve` itself started as a user starts it."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest
from nevermind.serve import Server, create_app, serve_in_thread

PAIRS = [
    ("The capital of France is", " Paris"),
    ("The capital of France is", " London"),
    ("Once upon a time", " there was a cat."),
    ("Q: What is two plus two?\nA:", " 4"),
    ("The opposite of hot is", " cold"),
]
MULTIPLE_CHOICE = [
    {"question": "The capital of France is", "choices": ["Paris", "London", "Rome"], "label": 0},
    {"question": "Two plus two equals", "choices": ["four", "five", "twenty-two"], "label": 0},
    {"question": "The opposite of hot is", "choices": ["cold", "warm", "blue"], "label": 0},
    {"question": "Water freezes at zero degrees", "choices": ["Celsius", "Fahrenheit"], "label": 0},
    {"question": "A week has seven", "choices": ["days", "months", "apples"], "label": 0},
    {"question": "The sun rises in the", "choices": ["east", "west"], "label": 0},
]


def lm_eval_or_skip():
    """lm-eval comes with the `clients` extra, which the test script installs: in CI its absence
    is a failure, not a skip."""
    if os.environ.get("CI"):
        import lm_eval

        return lm_eval
    return pytest.importorskip("lm_eval", reason="pip install 'nevermind[clients]'")


@pytest.fixture(scope="module")
def served(tiny_llama):
    server = Server(tiny_llama, model_id="tiny", max_tokens=32)
    with serve_in_thread(create_app(server)) as url:
        yield url
    server.close()


# ---------------------------------------------------------------- the openai client
def test_openai_client_chat_completions_models_and_logprobs(served, tiny_llama):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served, api_key="unused")
    assert [m.id for m in client.models.list()] == ["tiny"]
    messages = [{"role": "user", "content": "Name a colour."}]
    chat = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2
    )
    [local] = tiny_llama.generate([GenerateRequest(messages)], GenerationConfig(max_new_tokens=6))
    assert chat.choices[0].message.content == local.text
    assert len(chat.choices[0].logprobs.content) == len(local.token_ids) == chat.usage.completion_tokens
    for entry in chat.choices[0].logprobs.content:  # greedy: the chosen token is the likeliest
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-6)
    streamed = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0,
                                              stream=True)  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == local.text

    completion = client.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=5, temperature=0, logprobs=2, echo=True
    )
    [raw] = tiny_llama.generate(
        [GenerateRequest("Once upon a time", chat=False)], GenerationConfig(max_new_tokens=5)
    )
    choice = completion.choices[0]
    assert choice.text == "Once upon a time" + raw.text
    prompt_tokens = completion.usage.prompt_tokens
    assert len(choice.logprobs.token_logprobs) == prompt_tokens + len(raw.token_ids)
    assert choice.logprobs.token_logprobs[0] is None
    assert all(math.isfinite(v) for v in choice.logprobs.token_logprobs[1:])
    pieces = client.completions.create(model="tiny", prompt=[tiny_llama.encode("Once upon a time")], max_tokens=5,
                                       temperature=0, stream=True)  # fmt: skip
    assert "".join(c.choices[0].text for c in pieces) == raw.text
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="not-served", prompt="x", max_tokens=1)


# ---------------------------------------------------------------- lm-evaluation-harness
@pytest.mark.parametrize(
    "model_args",
    [
        {},  # the defaults: tokenizer_backend=auto finds the server's /tokenize, tokenized requests
        {"tokenizer_backend": "huggingface", "tokenizer": "LOCAL"},  # the tokenizer from a local directory
        {"num_concurrent": 4},  # concurrent requests, batched by the server
    ],
    ids=["defaults", "local-tokenizer", "concurrent"],
)
def test_lm_eval_local_completions_loglikelihoods_equal_model_score(
    served, tiny_llama, tiny_llama_dir, model_args
):
    lm_eval_or_skip()
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    args = {k: (str(tiny_llama_dir) if v == "LOCAL" else v) for k, v in model_args.items()}
    lm = LocalCompletionsAPI(base_url=f"{served}/completions", model="tiny", **args)
    assert lm.tokenized_requests  # the default: prompts go out as token ids
    # the model's own greedy continuation, so one answer must come back greedy
    context = "The best thing about"
    [greedy] = tiny_llama.generate([GenerateRequest(context, chat=False)], GenerationConfig(max_new_tokens=3))
    pairs = [*PAIRS, (context, greedy.text)]
    instances = [Instance("loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(pairs)]
    got = lm.loglikelihood(instances)
    want = tiny_llama.score([ScoreRequest(c, x) for c, x in pairs])
    assert [g[0] for g in got] == pytest.approx([w.logprob for w in want], abs=1e-5)
    assert [g[1] for g in got] == [w.is_greedy for w in want]
    assert got[-1][1] is True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_cli_server(*args: str, log: Path) -> tuple[subprocess.Popen, str]:
    """`nevermind serve ARGS` in a subprocess, as a user runs it; waits until /v1/models answers."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nevermind.cli", "serve", *args, "--port", str(port)],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nevermind serve exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError(f"nevermind serve did not start: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def test_openai_client_streams_a_chat_answer_from_nevermind_serve_with_the_rules_adapter(
    tiny_llama_dir, tmp_path
):
    openai = pytest.importorskip("openai")
    from nevermind.adapters import build_adapter, generate_with_adapters
    from nevermind.models import load_model

    process, url = _start_cli_server("-m", str(tiny_llama_dir), "--adapter", "rules", "--device", "cpu",
                                     log=tmp_path / "serve.log")  # fmt: skip
    try:
        client = openai.OpenAI(base_url=url, api_key="unused")
        [listed] = client.models.list().data
        assert listed.id == f"{tiny_llama_dir}+rules"
        messages = [{"role": "user", "content": "Tell me a story."}]
        stream = client.chat.completions.create(model=listed.id, messages=messages, max_tokens=10, temperature=0,
                                                stream=True)  # fmt: skip
        deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    finally:
        _stop(process)
    model = load_model(str(tiny_llama_dir), device="cpu")
    config = GenerationConfig(max_new_tokens=10)
    [local] = generate_with_adapters(
        model, [GenerateRequest(messages)], config, [build_adapter("rules", model)]
    )
    [plain] = model.generate([GenerateRequest(messages)], config)
    assert "".join(deltas) == local.text != plain.text  # the adapter shaped what was streamed
    assert len(deltas) >= len(local.token_ids) - 2  # about one chunk per token


@pytest.mark.slow
def test_lm_eval_cli_runs_a_loglikelihood_task_against_nevermind_serve(smollm2, tmp_path):
    """The README command: `lm_eval --model local-completions --model_args base_url=...` with
    default settings, on a multiple-choice task defined here over a local JSONL file (lm-eval's
    own tasks download their data from the hub), against `nevermind serve` on SmolLM2."""
    lm_eval_or_skip()
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in MULTIPLE_CHOICE))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "nevermind_contract.yaml").write_text(
        "task: nevermind_contract\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    process, url = _start_cli_server(
        "-m", "smollm2-135m-instruct", "--device", "cpu", log=tmp_path / "serve.log"
    )
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        run = subprocess.run(
            [sys.executable, "-m", "lm_eval", "--model", "local-completions",
             "--model_args", f"base_url={url}/completions,model=smollm2-135m-instruct",
             "--tasks", "nevermind_contract", "--include_path", str(tasks),
             "--output_path", str(tmp_path / "out"), "--log_samples"],
            capture_output=True, text=True, timeout=900, env=env, check=False,
        )  # fmt: skip
    finally:
        _stop(process)
    assert run.returncode == 0, run.stderr[-3000:]
    [samples_file] = (tmp_path / "out").rglob("samples_nevermind_contract_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == len(MULTIPLE_CHOICE)
    correct = 0
    for sample in sorted(samples, key=lambda s: s["doc_id"]):
        arguments = [sample["arguments"][f"gen_args_{k}"] for k in range(len(sample["arguments"]))]
        got = [float(resp[0][0]) for resp in sample["resps"]]
        want = smollm2.score([ScoreRequest(a["arg_0"], a["arg_1"]) for a in arguments])
        assert got == pytest.approx([w.logprob for w in want], abs=1e-4)
        assert [resp[0][1] == "True" for resp in sample["resps"]] == [w.is_greedy for w in want]
        best = max(range(len(want)), key=lambda k: want[k].logprob)
        assert sample["acc"] == float(best == sample["doc"]["label"])
        correct += best == sample["doc"]["label"]
    [results_file] = (tmp_path / "out").rglob("results_*.json")
    accuracy = json.loads(results_file.read_text())["results"]["nevermind_contract"]["acc,none"]
    assert accuracy == pytest.approx(correct / len(MULTIPLE_CHOICE))
