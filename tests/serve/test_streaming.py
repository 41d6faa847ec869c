"""Streaming as server-sent events (OpenAI's chunk format, ending with [DONE]) on both endpoints,
stop strings that never leak into the stream, and clients that hang up stopping the generation."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from nevermind.models.requests import GenerateRequest, GenerationConfig
from nevermind.serve import Server, create_app, serve_in_thread
from nevermind.serve.engine import Job, TextStream

MESSAGES = [{"role": "user", "content": "Tell me a long story about a parrot."}]


@pytest.fixture(scope="module")
def server(tiny_llama):
    return Server(tiny_llama, model_id="tiny", max_tokens=64)


@pytest.fixture(scope="module")
def served(server):
    with serve_in_thread(create_app(server)) as url:
        yield url


def sse_lines(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def test_openai_client_streams_chat_token_by_token(served, tiny_llama):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served, api_key="unused")
    whole = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    [local] = tiny_llama.generate([GenerateRequest(MESSAGES)], GenerationConfig(max_new_tokens=12))
    assert "".join(deltas) == whole.choices[0].message.content == local.text
    assert len(deltas) >= len(local.token_ids) - 2  # about one chunk per token (a split character waits)
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == len(local.token_ids)


def test_completions_stream_several_prompts_and_end_with_done(served):
    prompts = ["Once upon a time", "The capital of France is"]
    payload = {"model": "tiny", "prompt": prompts, "max_tokens": 8, "temperature": 0}
    whole = httpx.post(f"{served}/completions", json=payload, timeout=60).json()
    with httpx.stream(
        "POST", f"{served}/completions", json={**payload, "stream": True}, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = sse_lines(response)
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"text_completion"}
    texts, finishes = {0: "", 1: ""}, {}
    for chunk in chunks:
        [choice] = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert [texts[0], texts[1]] == [c["text"] for c in whole["choices"]]
    assert [finishes[0], finishes[1]] == [c["finish_reason"] for c in whole["choices"]]


def test_streamed_echo_starts_with_the_prompt(served, tiny_llama):
    ids = tiny_llama.encode("Once upon a time")
    payload = {"prompt": ids, "max_tokens": 4, "temperature": 0, "echo": True}
    whole = httpx.post(f"{served}/completions", json=payload, timeout=60).json()["choices"][0]["text"]
    with httpx.stream(
        "POST", f"{served}/completions", json={**payload, "stream": True}, timeout=60
    ) as response:
        chunks = [json.loads(line) for line in sse_lines(response)[:-1]]
    assert chunks[0]["choices"][0]["text"] == tiny_llama.decode(ids) == "Once upon a time"
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole


def test_a_stop_string_never_leaks_into_the_stream(served, tiny_llama):
    """The stop string is cut from the model's own greedy answer across a token boundary, so the
    stream sees its first characters one token before the stop string is complete."""
    prompt = "The capital of France is"
    [free] = tiny_llama.generate([GenerateRequest(prompt, chat=False)], GenerationConfig(max_new_tokens=20))
    pieces = [tiny_llama.decode(free.token_ids[: k + 1]) for k in range(len(free.token_ids))]
    cut = next(k for k in range(3, len(pieces)) if len(pieces[k]) - len(pieces[k - 1]) >= 2)
    boundary = len(pieces[cut - 1])
    stop = free.text[boundary - 2 : boundary + 2]  # the last 2 characters of one token, first 2 of the next
    want = free.text[: free.text.find(stop)]
    payload = {"prompt": prompt, "max_tokens": 20, "temperature": 0, "stop": [stop, "never-seen"]}
    whole = httpx.post(f"{served}/completions", json=payload, timeout=60).json()["choices"][0]
    with httpx.stream(
        "POST", f"{served}/completions", json={**payload, "stream": True}, timeout=60
    ) as response:
        chunks = [json.loads(line) for line in sse_lines(response)[:-1]]
    streamed = [c["choices"][0]["text"] for c in chunks]
    assert whole["text"] == want and whole["finish_reason"] == "stop"
    assert "".join(streamed) == want  # nothing streamed was taken back: no piece of the stop string left
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_text_stream_holds_back_what_may_start_a_stop_string():
    """Characters as tokens: the held-back text is released once the stop string is ruled out."""
    sent: list[str] = []
    job = Job(
        GenerateRequest("x"), max_tokens=50, stop=("STOP",), stream=True, sink=lambda e: sent.append(e[2])
    )
    stream = TextStream(job, lambda ids: "".join(map(chr, ids)), eos=frozenset({0}), stream=True)
    for char in "abST":
        assert stream.push(ord(char))
    assert "".join(sent) == "ab"  # "ST" may start "STOP"
    assert stream.push(ord("x"))
    assert "".join(sent) == "abSTx"
    for char in "yS":
        stream.push(ord(char))
    assert "".join(sent) == "abSTxy"
    for char in "TO":
        assert stream.push(ord(char))
    assert not stream.push(ord("P"))
    assert job.finish_reason == "stop" and job.text == "abSTxy" == "".join(sent)
    assert job.token_ids[-1] == ord("P")  # the stop string's last token is among the generated ids


def test_the_earliest_of_several_stop_strings_wins():
    """Two stop strings completed by one multi-character token: the text ends before the first."""
    job = Job(GenerateRequest("x"), max_tokens=50, stop=("CD", "BC"))
    pieces = {1: "a", 2: "ABCD"}
    stream = TextStream(job, lambda ids: "".join(pieces[i] for i in ids), eos=frozenset({0}), stream=False)
    assert stream.push(1)
    assert not stream.push(2)
    assert job.text == "aA" and job.finish_reason == "stop"


class SlowProcessor:
    """A logits processor that takes its time, so a client can hang up in the middle."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        time.sleep(self.seconds)
        return scores


def _wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_client_that_hangs_up_mid_stream_stops_the_generation(tiny_llama):
    slow = SlowProcessor(0.02)
    server = Server(tiny_llama, model_id="tiny", adapters=[slow], max_tokens=400)
    with serve_in_thread(create_app(server)) as url:
        payload = {"messages": MESSAGES, "max_tokens": 400, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{url}/chat/completions", json=payload, timeout=60) as response:
            for n, _ in enumerate(response.iter_lines()):
                if n == 6:
                    break  # leaving the block closes the connection
        assert _wait_for(lambda: server.engine.stats.cancelled == 1)
        steps = slow.calls
        time.sleep(0.3)
        assert slow.calls == steps  # the generation stopped, the worker is idle
        assert steps < 100
        assert server.engine.stats.generated_tokens < 100
        # the server goes on serving
        body = httpx.post(
            f"{url}/chat/completions", json={**payload, "stream": False, "max_tokens": 3}
        ).json()
        assert body["usage"]["completion_tokens"] == 3
    server.close()


def test_a_client_that_gives_up_on_a_whole_answer_stops_it_too(tiny_llama):
    slow = SlowProcessor(0.02)
    server = Server(tiny_llama, model_id="tiny", adapters=[slow], max_tokens=400)
    with serve_in_thread(create_app(server)) as url:
        payload = {"messages": MESSAGES, "max_tokens": 400, "temperature": 0}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/chat/completions", json=payload, timeout=0.5)
        assert _wait_for(lambda: server.engine.stats.cancelled == 1)
        assert slow.calls < 200
    server.close()
