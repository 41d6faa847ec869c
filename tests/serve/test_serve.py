"""The OpenAI-compatible server, started for real on 127.0.0.1 and called over HTTP."""

from __future__ import annotations

import math

import httpx
import pytest

from nevermind.models.openai_api import Endpoint, EndpointError, OpenAIModel
from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest
from nevermind.serve import Server, create_app, serve_in_thread


@pytest.fixture(scope="module")
def served(tiny_llama):
    with serve_in_thread(create_app(Server(tiny_llama, model_id="tiny", max_tokens=32))) as url:
        yield url


def test_binds_loopback_and_lists_the_model(served):
    assert served.startswith("http://127.0.0.1:")
    body = httpx.get(f"{served}/models").json()
    assert [m["id"] for m in body["data"]] == ["tiny"]


def test_chat_completion_matches_local_generation_with_logprobs(served, tiny_llama):
    messages = [{"role": "user", "content": "Name a colour."}]
    body = httpx.post(
        f"{served}/chat/completions",
        json={
            "model": "tiny",
            "messages": messages,
            "max_tokens": 6,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 3,
        },
    ).json()
    local = tiny_llama.generate([GenerateRequest(messages)], GenerationConfig(max_new_tokens=6))[0]
    choice = body["choices"][0]
    assert choice["message"]["content"] == local.text
    content = choice["logprobs"]["content"]
    assert len(content) == len(local.token_ids) == body["usage"]["completion_tokens"]
    for entry in content:  # greedy: the chosen token is the most likely alternative
        assert len(entry["top_logprobs"]) == 3
        assert entry["logprob"] == pytest.approx(entry["top_logprobs"][0]["logprob"], abs=1e-5)
        assert entry["logprob"] <= 0


def test_echoed_prompt_logprobs_match_local_scoring(served, tiny_llama):
    context, continuation = "The capital of France is", " Paris, a city on the Seine."
    remote = OpenAIModel(Endpoint(served), "tiny").score([ScoreRequest(context, continuation)])[0]
    local = tiny_llama.score([ScoreRequest(context, continuation)])[0]
    assert len(remote.token_logprobs) == len(local.token_logprobs)
    assert remote.logprob == pytest.approx(local.logprob, abs=1e-3)


def test_completion_with_logprobs_and_openai_client(served, tiny_llama):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=served, api_key="unused")
    result = client.completions.create(
        model="tiny", prompt="Once upon a time", max_tokens=5, temperature=0, logprobs=2
    )
    local = tiny_llama.generate(
        [GenerateRequest("Once upon a time", chat=False)], GenerationConfig(max_new_tokens=5)
    )[0]
    assert result.choices[0].text == local.text
    assert len(result.choices[0].logprobs.token_logprobs) == len(local.token_ids)
    assert all(math.isfinite(v) for v in result.choices[0].logprobs.token_logprobs)
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert chat.choices[0].finish_reason in ("stop", "length")


def test_bad_requests_get_openai_errors(served):
    cases = [
        ({"messages": []}, "chat/completions"),
        (
            {"messages": [{"role": "user", "content": "x"}], "stream": True, "logprobs": True},
            "chat/completions",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "chat/completions"),
        ({"prompt": "x", "max_tokens": 0}, "completions"),
        ({"prompt": "x", "temperature": -1}, "completions"),
    ]
    for payload, path in cases:
        response = httpx.post(f"{served}/{path}", json=payload)
        assert response.status_code == 400, payload
        assert response.json()["error"]["message"]
    with pytest.raises(EndpointError, match="HTTP 400"):
        Endpoint(served).request("POST", "completions", {"prompt": "x", "n": 3})


def test_served_adapter_matches_local_adapter_generation(tiny_gemma):
    from nevermind.adapters import build_adapter, generate_with_adapters

    rules = build_adapter("rules", tiny_gemma)
    messages = [{"role": "user", "content": "Tell me a story."}]
    config = GenerationConfig(max_new_tokens=8)
    local = generate_with_adapters(tiny_gemma, [GenerateRequest(messages)], config, [rules])[0]
    plain = tiny_gemma.generate([GenerateRequest(messages)], config)[0]
    with serve_in_thread(create_app(Server(tiny_gemma, model_id="tiny+rules", adapters=[rules]))) as url:
        body = httpx.post(
            f"{url}/chat/completions", json={"messages": messages, "max_tokens": 8, "temperature": 0}
        ).json()
    assert body["model"] == "tiny+rules"
    assert body["choices"][0]["message"]["content"] == local.text
    assert local.token_ids != plain.token_ids  # the adapter changed what was generated


def test_openai_model_generates_through_the_server(served, tiny_llama):
    remote = OpenAIModel.load(served)  # no "#model": the endpoint's first listed model
    assert remote.name == "tiny"
    config = GenerationConfig(max_new_tokens=5)
    requests = [GenerateRequest("Once upon a time"), GenerateRequest([{"role": "user", "content": "Hello"}])]
    got = remote.generate(requests, config, batch_size=1)
    want = tiny_llama.generate(requests, config)
    assert [g.text for g in got] == [w.text for w in want]
    with pytest.raises(EndpointError, match="connection failed"):
        Endpoint("http://127.0.0.1:9", max_retries=0).request("GET", "models")


def test_load_model_takes_an_endpoint_url(served, tiny_llama):
    from nevermind.models import GenerationConfig, load_model

    remote = load_model(f"{served}#tiny")
    assert remote.name == "tiny"
    [out] = remote.generate(["Hello"], GenerationConfig(max_new_tokens=5))
    [local] = tiny_llama.generate(["Hello"], GenerationConfig(max_new_tokens=5))
    assert out.text == local.text
