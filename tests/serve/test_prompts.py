"""Completions take every prompt form of the OpenAI API (string, strings, token ids, token-id lists),
echo and logprobs work on each, and bad requests get OpenAI-shaped errors before any model work."""

from __future__ import annotations

import httpx
import pytest

from nevermind.models.requests import GenerateRequest, GenerationConfig, ScoreRequest, TokensPrompt
from nevermind.serve import Server, create_app, serve_in_thread
from nevermind.serve.engine import Detokenizer

PAIRS = [
    ("The capital of France is", " Paris"),
    ("The capital of France is", " London, said nobody."),
    ("Once upon a time", " there was a cat."),
    ("Q: What is two plus two?\nA:", " 4"),
]


@pytest.fixture(scope="module")
def server(tiny_llama):
    return Server(tiny_llama, model_id="tiny", max_tokens=32)


@pytest.fixture(scope="module")
def served(server):
    with serve_in_thread(create_app(server)) as url:
        yield url


def post(url: str, payload: dict) -> httpx.Response:
    return httpx.post(f"{url}/completions", json=payload, timeout=120)


def test_every_prompt_form_gives_the_answer_of_its_tokens(served, tiny_llama):
    texts = ["Once upon a time", "The capital of France is"]
    ids = [tiny_llama.encode(t) for t in texts]
    config = GenerationConfig(max_new_tokens=5)
    local = tiny_llama.generate([GenerateRequest(TokensPrompt(i)) for i in ids], config)
    forms = {
        "string": (texts[0], local[:1]),
        "strings": (texts, local),
        "token ids": (ids[0], local[:1]),
        "token-id lists": (ids, local),
    }
    for form, (prompt, want) in forms.items():
        body = post(served, {"prompt": prompt, "max_tokens": 5, "temperature": 0}).json()
        assert [c["index"] for c in body["choices"]] == list(range(len(want))), form
        assert [c["text"] for c in body["choices"]] == [w.text for w in want], form
        assert body["usage"]["prompt_tokens"] == sum(len(i) for i in ids[: len(want)]), form


def test_lm_eval_shaped_requests_give_model_score(served, tiny_llama):
    """What lm-evaluation-harness's local-completions sends for loglikelihood: token-id lists,
    echo, max_tokens=1, logprobs=1; it sums token_logprobs[ctxlen:-1] and calls a continuation
    greedy when each of its tokens is the top alternative."""
    rows, ctxlens = [], []
    for context, continuation in PAIRS:
        context_ids = tiny_llama.encode(context)
        [scored] = tiny_llama.score([ScoreRequest(context, continuation)])
        rows.append(context_ids + scored.tokens)
        ctxlens.append(len(context_ids))
    # a continuation that is the model's own greedy answer, so is_greedy must come back True
    greedy_context = tiny_llama.encode("The best thing about")
    [greedy] = tiny_llama.generate(
        [GenerateRequest(TokensPrompt(greedy_context))], GenerationConfig(max_new_tokens=3)
    )
    rows.append(greedy_context + greedy.token_ids)
    ctxlens.append(len(greedy_context))
    body = post(served, {"model": "tiny", "prompt": rows, "echo": True, "max_tokens": 1, "logprobs": 1,
                         "temperature": 0, "seed": 1234}).json()  # fmt: skip
    want = tiny_llama.score([ScoreRequest(c, x) for c, x in PAIRS])
    want_greedy = [w.is_greedy for w in want] + [True]
    for choice, row, ctxlen, k in zip(body["choices"], rows, ctxlens, range(len(rows))):
        logprobs = choice["logprobs"]
        assert len(logprobs["token_logprobs"]) == len(row) + 1  # the prompt, echoed, and one new token
        assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
        values = logprobs["token_logprobs"][ctxlen:-1]
        tops = logprobs["top_logprobs"][ctxlen:-1]
        if k < len(want):
            assert values == pytest.approx(want[k].token_logprobs, abs=1e-5)
        assert all(v == max(t.values()) for v, t in zip(values, tops)) == want_greedy[k]
        assert "".join(logprobs["tokens"]) == choice["text"]  # echo: pieces spell the returned text
        assert logprobs["text_offset"][-1] == len(choice["text"]) - len(logprobs["tokens"][-1])


def test_echo_without_generation_scores_a_text_prompt(served, tiny_llama):
    context, continuation = PAIRS[2]
    body = post(
        served, {"prompt": context + continuation, "echo": True, "max_tokens": 0, "logprobs": 0}
    ).json()
    [choice] = body["choices"]
    assert choice["text"] == context + continuation
    ids = tiny_llama.encode(context + continuation)
    [rolled] = tiny_llama.sequence_logprobs([ids])
    assert choice["logprobs"]["token_logprobs"] == pytest.approx(rolled.logprobs, abs=1e-5)
    assert body["usage"] == {"prompt_tokens": len(ids), "completion_tokens": 0, "total_tokens": len(ids)}


def test_generated_token_logprobs_without_echo(served, tiny_llama):
    prompt = "The capital of France is"
    body = post(served, {"prompt": prompt, "max_tokens": 4, "temperature": 0, "logprobs": 3}).json()
    [choice] = body["choices"]
    [local] = tiny_llama.generate([GenerateRequest(prompt, chat=False)], GenerationConfig(max_new_tokens=4))
    ids = tiny_llama.encode(prompt)
    [rolled] = tiny_llama.sequence_logprobs([ids + local.token_ids], top_k=3)
    assert choice["logprobs"]["token_logprobs"] == pytest.approx(rolled.logprobs[len(ids) :], abs=1e-5)
    assert all(len(top) <= 3 for top in choice["logprobs"]["top_logprobs"])
    assert "".join(choice["logprobs"]["tokens"]) == choice["text"] == local.text


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gemma"])
def test_token_pieces_spell_the_decoded_text(fixture, request):
    """The per-token pieces (streaming deltas, logprob tokens) add up to the whole decode, also
    across characters split over several byte tokens."""
    model = request.getfixturevalue(fixture)
    text = "Héllo, wörld! 東京は雨。 Emoji: 🦜🦜 — done.\n  indented\ttab"
    ids = model.encode(text, prefix=False)
    pieces = Detokenizer(model.decode).pieces(ids)
    assert "".join(pieces) == model.decode(ids) == text
    assert "\ufffd" not in "".join(pieces)


def test_unknown_model_is_a_404_in_openai_shape(served):
    for path, payload in [("completions", {"prompt": "x"}),
                          ("chat/completions", {"messages": [{"role": "user", "content": "x"}]})]:  # fmt: skip
        response = httpx.post(f"{served}/{path}", json={**payload, "model": "gpt-17"}, timeout=60)
        assert response.status_code == 404
        error = response.json()["error"]
        assert (
            error["code"] == "model_not_found" and error["param"] == "model" and "gpt-17" in error["message"]
        )
        assert error["type"] == "invalid_request_error"
    assert httpx.get(f"{served}/models/gpt-17").status_code == 404
    assert httpx.get(f"{served}/models/tiny").json()["id"] == "tiny"


def test_a_prompt_beyond_the_context_is_refused_before_any_work(served, server, tiny_llama):
    context = tiny_llama.info()["context_length"]
    long_ids = [tiny_llama.encode("hello")[-1]] * (context - 3)
    before = (server.engine.stats.generate_calls, server.engine.stats.logprob_calls)
    for payload in [
        {"prompt": long_ids, "max_tokens": 10},
        {"prompt": "word " * (context + 10), "max_tokens": 1},
        {"prompt": [long_ids[:5], long_ids], "max_tokens": 10},  # one bad prompt refuses the request
    ]:
        response = post(served, payload)
        assert response.status_code == 400, payload
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert f"context of {context} tokens" in response.json()["error"]["message"]
    chat = httpx.post(
        f"{served}/chat/completions",
        json={"messages": [{"role": "user", "content": "word " * context}]},
        timeout=60,
    )
    assert chat.status_code == 400
    assert (server.engine.stats.generate_calls, server.engine.stats.logprob_calls) == before
    fits = post(served, {"prompt": long_ids, "max_tokens": 3, "temperature": 0})
    assert fits.status_code == 200 and fits.json()["usage"]["completion_tokens"] <= 3


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"prompt": ""}, "prompt 0 is empty"),
        ({"prompt": []}, "empty list"),
        ({"prompt": [[]]}, "empty list of token ids"),
        ({"prompt": ["fine", ""]}, "prompt 1 is empty"),
        ({"prompt": [10**9]}, "outside the vocabulary"),
        ({"prompt": [-1]}, "outside the vocabulary"),
        ({"prompt": "x", "stop": ""}, "empty stop string"),
        ({"prompt": "x", "stop": ["ok", ""]}, "empty stop string"),
        ({"prompt": [1.5]}, "a list of token ids"),
        ({"prompt": ["text", [1, 2]]}, "a list of token-id lists"),
        ({"prompt": "x", "logit_bias": {"1": 5}}, "logit_bias"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
    ],
)
def test_bad_prompts_are_400_with_a_message(served, payload, message):
    response = post(served, payload)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_tokenizer_endpoints_match_the_model(served, tiny_llama):
    root = served.removesuffix("/v1")
    text = "The capital of France is Paris."
    tokens = httpx.post(f"{root}/tokenize", json={"prompt": text, "add_special_tokens": False}).json()[
        "tokens"
    ]
    assert tokens == tiny_llama.encode(text, prefix=False)
    assert httpx.post(f"{root}/detokenize", json={"tokens": tokens}).json()["prompt"] == text
    info = httpx.get(f"{root}/tokenizer_info").json()
    assert info["eos_token"] == tiny_llama.tokenizer.eos_token
    assert info["model_max_length"] == tiny_llama.info()["context_length"]


def test_a_greedy_one_token_answer_with_logprobs_needs_no_generate_call(tiny_model):
    """lm-eval's loglikelihood shape is answered from the log-probability pass alone; its one token
    is the one greedy generation picks, and its log-probability the one a second pass gives."""
    server = Server(tiny_model, model_id="tiny")
    prompts = ["Once upon a time", "The capital of France is", "Dear diary,"]
    rows = [tiny_model.encode(p) for p in prompts]
    with serve_in_thread(create_app(server)) as url:
        body = post(
            url, {"prompt": rows, "echo": True, "max_tokens": 1, "logprobs": 0, "temperature": 0}
        ).json()
        plain = post(url, {"prompt": rows, "max_tokens": 1, "temperature": 0}).json()
    assert server.engine.stats.generate_calls == 1  # the second request only
    generated = tiny_model.generate(
        [GenerateRequest(TokensPrompt(r)) for r in rows], GenerationConfig(max_new_tokens=1)
    )
    for choice, plain_choice, row, local in zip(body["choices"], plain["choices"], rows, generated):
        assert choice["text"] == tiny_model.decode(row) + local.text
        assert plain_choice["text"] == local.text
        [rolled] = tiny_model.sequence_logprobs([row + local.token_ids])
        assert choice["logprobs"]["token_logprobs"] == pytest.approx(rolled.logprobs, abs=1e-5)
        assert choice["logprobs"]["top_logprobs"][-1] is None  # logprobs=0: no alternatives shown
    server.close()


def test_a_chat_request_without_max_tokens_gets_the_room_left_in_the_context(served, tiny_llama):
    context = tiny_llama.info()["context_length"]

    def chat_tokens(words: int) -> int:
        messages = [{"role": "user", "content": "word " * words}]
        return len(tiny_llama.encode(tiny_llama.format_prompt(GenerateRequest(messages))))

    overhead = chat_tokens(10) - 10
    words = context - 4 - overhead
    assert context - chat_tokens(words) == 4
    messages = [{"role": "user", "content": "word " * words}]
    body = httpx.post(
        f"{served}/chat/completions", json={"messages": messages, "temperature": 0}, timeout=120
    ).json()
    assert body["usage"]["prompt_tokens"] == context - 4
    assert body["usage"]["completion_tokens"] <= 4
    asked = httpx.post(
        f"{served}/chat/completions", json={"messages": messages, "max_tokens": 5}, timeout=120
    )
    assert asked.status_code == 400 and asked.json()["error"]["code"] == "context_length_exceeded"
