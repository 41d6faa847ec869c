"""Requests that arrive together run as one batch through the model interface, each with its own
length limit and stop strings; different sampling settings are grouped, a seeded request runs alone;
and the server reaches the model only through the interface (a fake backend with no transformers
model behind it serves every endpoint)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from nevermind.models.requests import GenerateRequest, GenerationConfig, TokensPrompt
from nevermind.serve import Server, create_app, serve_in_thread

PROMPTS = ["Once upon a time", "The capital of France is", "Q: What is two plus two?\nA:", "Dear diary,",
           "In 1492, Columbus", "def fibonacci(n):"]  # fmt: skip


def fire(url: str, payloads: list[dict]) -> list[dict]:
    """Send every payload at once, each on its own connection."""

    def one(payload: dict) -> dict:
        response = httpx.post(f"{url}/completions", json=payload, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(one, payloads))


def test_concurrent_requests_share_one_model_call_and_keep_their_own_limits(tiny_llama):
    server = Server(tiny_llama, model_id="tiny", batch_window=0.5)
    payloads = [{"prompt": p, "max_tokens": 3 + 2 * i, "temperature": 0} for i, p in enumerate(PROMPTS)]
    with serve_in_thread(create_app(server)) as url:
        bodies = fire(url, payloads)
    stats = server.engine.stats
    assert stats.generate_calls == 1 and stats.largest_batch == len(PROMPTS)
    for payload, body in zip(payloads, bodies):
        config = GenerationConfig(max_new_tokens=payload["max_tokens"])
        [alone] = tiny_llama.generate([GenerateRequest(payload["prompt"], chat=False)], config)
        [choice] = body["choices"]
        assert choice["text"] == alone.text
        assert body["usage"]["completion_tokens"] == len(alone.token_ids) <= payload["max_tokens"]
        assert choice["finish_reason"] == ("length" if alone.finish_reason == "length" else "stop")
    server.close()


def test_stop_strings_of_one_request_do_not_stop_another(tiny_llama):
    prompt = "The capital of France is"
    config = GenerationConfig(max_new_tokens=12)
    [free] = tiny_llama.generate([GenerateRequest(prompt, chat=False)], config)
    stop = free.text[len(free.text) // 2 : len(free.text) // 2 + 3]
    server = Server(tiny_llama, model_id="tiny", batch_window=0.5)
    with serve_in_thread(create_app(server)) as url:
        stopped, free_body = fire(url, [
            {"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop": stop},
            {"prompt": prompt, "max_tokens": 12, "temperature": 0},
        ])  # fmt: skip
    assert server.engine.stats.generate_calls == 1
    [want] = tiny_llama.generate(
        [GenerateRequest(prompt, chat=False)], GenerationConfig(max_new_tokens=12, stop=(stop,))
    )
    assert stopped["choices"][0]["text"] == want.text == free.text[: free.text.find(stop)]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert free_body["choices"][0]["text"] == free.text
    server.close()


def test_sampling_settings_decide_the_groups(tiny_llama):
    """Greedy requests batch whatever their seed or top_p; sampled ones batch by temperature and
    top_p; a seeded sampled request runs alone, so its text is the in-process text for its seed."""
    server = Server(tiny_llama, model_id="tiny", batch_window=0.5)
    greedy = [
        {"prompt": p, "max_tokens": 4, "temperature": 0, "seed": s} for p, s in zip(PROMPTS[:3], (1, 2, None))
    ]
    sampled = [{"prompt": p, "max_tokens": 4, "temperature": 0.8} for p in PROMPTS[3:5]]
    seeded = [{"prompt": PROMPTS[5], "max_tokens": 6, "temperature": 0.8, "seed": 7}]
    with serve_in_thread(create_app(server)) as url:
        bodies = fire(url, greedy + sampled + seeded)
    assert server.engine.stats.generate_calls == 3
    assert server.engine.stats.largest_batch == 6
    config = GenerationConfig(max_new_tokens=6, temperature=0.8, seed=7)
    [alone] = tiny_llama.generate([GenerateRequest(PROMPTS[5], chat=False)], config)
    assert bodies[-1]["choices"][0]["text"] == alone.text
    server.close()


def test_max_batch_caps_a_model_call(tiny_llama):
    server = Server(tiny_llama, model_id="tiny", batch_window=0.5, max_batch=2)
    with serve_in_thread(create_app(server)) as url:
        bodies = fire(url, [{"prompt": p, "max_tokens": 2, "temperature": 0} for p in PROMPTS[:5]])
    assert server.engine.stats.largest_batch == 2 and server.engine.stats.generate_calls >= 3
    assert all(b["usage"]["completion_tokens"] == 2 for b in bodies)
    server.close()


def test_echo_logprob_requests_batch_into_one_call(tiny_llama):
    server = Server(tiny_llama, model_id="tiny", batch_window=0.5)
    rows = [tiny_llama.encode(p) for p in PROMPTS]
    payloads = [{"prompt": [r], "echo": True, "max_tokens": 0, "logprobs": 1} for r in rows]
    with serve_in_thread(create_app(server)) as url:
        bodies = fire(url, payloads)
    assert server.engine.stats.logprob_calls == 1 and server.engine.stats.generate_calls == 0
    for row, body in zip(rows, bodies):
        [alone] = tiny_llama.sequence_logprobs([row])
        assert body["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(alone.logprobs, abs=1e-4)
    server.close()


def test_the_server_needs_only_the_model_interface(monkeypatch):
    """The fake copy model (tests/fake_backend.py) has no transformers model and cannot stream:
    the server still answers every endpoint, with limits and stop strings going to the backend."""
    import transformers

    import tests.fake_backend as fake

    def refuse(*_, **__):
        raise AssertionError("the server reached for a transformers model")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", refuse)
    model = fake.FakeModel("copy")
    server = Server(model, batch_window=0.2)
    ids = model.encode("alpha beta gamma delta")
    with serve_in_thread(create_app(server)) as url:
        chat = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi there"}],
                                                           "max_tokens": 5}).json()  # fmt: skip
        completion = httpx.post(f"{url}/completions", json={"prompt": ids, "max_tokens": 3}).json()
        echo = httpx.post(f"{url}/completions", json={"prompt": [ids], "echo": True, "max_tokens": 0,
                                                      "logprobs": 0}).json()  # fmt: skip
        with httpx.stream(
            "POST", f"{url}/completions", json={"prompt": ids, "max_tokens": 3, "stream": True}
        ) as r:
            streamed = [line for line in r.iter_lines() if line.startswith("data: ")]
        refused = httpx.post(
            f"{url}/completions", json={"prompt": ids, "max_tokens": 0, "echo": True, "logprobs": 2}
        )
    [local] = model.generate([GenerateRequest(TokensPrompt(ids))], GenerationConfig(max_new_tokens=3))
    assert completion["choices"][0]["text"] == local.text
    assert chat["choices"][0]["message"]["content"]
    [rolled] = model.sequence_logprobs([ids])
    assert echo["choices"][0]["logprobs"]["token_logprobs"] == pytest.approx(rolled.logprobs)
    assert streamed[-1] == "data: [DONE]" and len(streamed) >= 3
    assert refused.status_code == 400 and "top alternatives" in refused.json()["error"]["message"]
    server.close()


def test_a_request_that_breaks_the_model_is_an_error_and_the_server_goes_on():
    import jinja2

    import tests.fake_backend as fake

    class Fragile(fake.FakeModel):
        def format_prompt(self, request):
            text = str(request.prompt)
            if "template" in text:
                raise jinja2.TemplateError("Conversation roles must alternate user/assistant")
            if "crash" in text:
                raise RuntimeError("the backend fell over")
            return super().format_prompt(request)

    server = Server(Fragile("fragile"), batch_window=0)
    with serve_in_thread(create_app(server)) as url:
        replies = [
            httpx.post(f"{url}/completions", json={"prompt": p, "max_tokens": 3}, timeout=60)
            for p in ("template here", "crash now", "alpha beta")
        ]
    assert [r.status_code for r in replies] == [400, 500, 200]
    assert "roles must alternate" in replies[0].json()["error"]["message"]
    assert replies[1].json()["error"]["type"] == "server_error"
    server.close()
