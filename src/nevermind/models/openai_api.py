"""Any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, `nevermind serve`, ...) as a model:
generation through chat/completions, scoring through completions with echoed log-probabilities.

The API key is read from an environment variable at request time and only ever sent in the
Authorization header: no message, log or record contains it. Requests time out, and
timeouts, dropped connections, 429 and 5xx answers are retried with exponential backoff."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from nevermind.errors import NevermindError
from nevermind.models.backends import register_backend
from nevermind.models.chat import plain_chat_format, uses_chat
from nevermind.models.requests import (
    GenerateRequest,
    Generation,
    GenerationConfig,
    NextTokenRequest,
    ScoreRequest,
    ScoreResult,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
"""HTTP statuses worth retrying (rate limits, overload, transient server errors)."""


class EndpointError(NevermindError):
    """An endpoint that failed, timed out or answered something unusable."""


def api_base(url: str) -> str:
    """Normalise an endpoint URL: a bare host gets the conventional /v1 path."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NevermindError(f"endpoint URL must start with http:// or https://, got {url!r}")
    return url if parts.path not in ("", "/") else url + "/v1"


@dataclass
class Endpoint:
    """An OpenAI-compatible HTTP API with timeouts and retries."""

    base_url: str
    """URL up to and including the version path, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (unset: no Authorization header)."""
    timeout: float = 60.0
    """Seconds before one HTTP request is abandoned."""
    max_retries: int = 3
    """Retries after the first attempt for timeouts, connection errors, 429 and 5xx."""
    backoff: float = 1.0
    """First retry delay in seconds; doubles at every retry."""

    def __post_init__(self) -> None:
        self.base_url = api_base(self.base_url)
        self._client = httpx.Client(timeout=self.timeout)

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its JSON object, retrying transient failures."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, url, json=payload, headers=self._headers())
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout:g} s"
                continue
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
                continue
            if response.status_code in RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise EndpointError(f"{url}: HTTP {response.status_code}: {_error_message(response)}")
            try:
                body = response.json()
            except ValueError:
                raise EndpointError(
                    f"{url}: answered with something that is not JSON: {response.text[:80]!r}"
                ) from None
            if not isinstance(body, dict):
                raise EndpointError(f"{url}: expected a JSON object, got {type(body).__name__}")
            return body
        raise EndpointError(f"{url}: {problem} ({self.max_retries + 1} attempts)")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(str(message or response.reason_phrase).split())[:200]


def parse_model_url(spec: str) -> tuple[str, str | None]:
    """ "URL#model" → (URL, model); the model part is optional."""
    url, _, model = spec.partition("#")
    return url, model or None


class OpenAIModel:
    """A model behind an OpenAI-compatible endpoint, implementing generate and score."""

    backend = "openai"
    capabilities = frozenset({"generate", "score", "next_token"})
    tokenizer: Any = None
    """No local tokenizer: text is tokenized by the server."""
    eos_token_ids: frozenset[int] = frozenset()

    def __init__(self, endpoint: Endpoint, model: str | None = None, *, concurrency: int = 4) -> None:
        self.endpoint = endpoint
        self.model_id = model or self._first_model()
        self.name = self.model_id
        self.concurrency = concurrency

    @classmethod
    def load(
        cls, spec: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0, **_: Any
    ) -> OpenAIModel:
        """A model from "URL#model" (without "#model": the endpoint's first listed model)."""
        url, model = parse_model_url(spec)
        return cls(Endpoint(url, api_key_env=api_key_env, timeout=timeout), model)

    def _first_model(self) -> str:
        listed = self.endpoint.request("GET", "models").get("data") or []
        if not listed or not isinstance(listed[0], dict) or "id" not in listed[0]:
            raise EndpointError(f"{self.endpoint.base_url}/models lists no model; name one as URL#model")
        return str(listed[0]["id"])

    def format_prompt(self, request: GenerateRequest | str) -> str:
        """Raw prompts as they are; chat requests in seed 001's plain template (the server's own
        chat template is applied only by `generate`, through chat/completions)."""
        if isinstance(request, str):
            request = GenerateRequest(request)
        use_chat = uses_chat(request)
        if not use_chat:
            return str(request.prompt)
        prompt = request.prompt
        return plain_chat_format([{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt)

    def encode(self, text: str, *, prefix: bool = True) -> list[int]:
        """Not available: the endpoint tokenizes."""
        raise NevermindError(f"{self.name}: a remote endpoint has no local tokenizer (needs --backend hf)")

    def decode(self, ids: Sequence[int]) -> str:
        """Not available: the endpoint tokenizes."""
        raise NevermindError(f"{self.name}: a remote endpoint has no local tokenizer (needs --backend hf)")

    def info(self) -> dict[str, Any]:
        """What is known locally about the endpoint's model."""
        return {"backend": self.backend, "endpoint": self.endpoint.base_url, "context_length": None}

    def next_token_logprobs(
        self,
        requests: Sequence[NextTokenRequest],
        *,
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[list[float]]:
        """Each candidate scored as a continuation of the (text) prompt through echoed log-probabilities."""
        flat = [ScoreRequest(str(r.prompt), c) for r in requests for c in r.candidates]
        if any(not isinstance(r.prompt, str) for r in requests):
            raise NevermindError(f"{self.name}: token prompts need a local backend")
        scores = iter(self.score(flat, batch_size=batch_size, on_batch=on_batch))
        return [[next(scores).logprob for _ in r.candidates] for r in requests]

    def _sampling(self, config: GenerationConfig) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.seed is not None:
            payload["seed"] = config.seed
        if config.stop:
            payload["stop"] = list(config.stop)
        return payload

    def _generate_one(self, request: GenerateRequest | str, config: GenerationConfig) -> Generation:
        if isinstance(request, str):
            request = GenerateRequest(request)
        use_chat = uses_chat(request)
        payload = self._sampling(config)
        if use_chat:
            prompt = request.prompt
            payload["messages"] = (
                [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            )
            body = self.endpoint.request("POST", "chat/completions", payload)
        else:
            payload["prompt"] = request.prompt
            body = self.endpoint.request("POST", "completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] if use_chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.endpoint.base_url}: response has no choices[0] text") from None
        usage = body.get("usage") or {}
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Generation(text or "", [], finish, prompt_tokens=int(usage.get("prompt_tokens") or 0))

    def generate(
        self,
        requests: Sequence[GenerateRequest | str],
        config: GenerationConfig | None = None,
        *,
        logits_processors: Sequence[Any] = (),
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
        on_token: Any = None,
    ) -> list[Generation]:
        """One Generation per request (sent `concurrency` at a time); token ids are not returned."""
        if on_token is not None:
            raise NevermindError(f"{self.name}: streaming tokens from a remote endpoint is not supported")
        if logits_processors:
            raise NevermindError(
                "logits processors cannot run on a remote endpoint; serve the model with --adapter instead"
            )
        config = config or GenerationConfig()
        results: list[Generation] = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for start in range(0, len(requests), batch_size):
                batch = list(requests[start : start + batch_size])
                results += pool.map(lambda r: self._generate_one(r, config), batch)
                if on_batch:
                    on_batch(len(batch), 0)
        return results

    def _score_one(self, request: ScoreRequest) -> ScoreResult:
        payload = {
            "model": self.model_id,
            "prompt": request.context + request.continuation,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "temperature": 0,
        }
        body = self.endpoint.request("POST", "completions", payload)
        try:
            logprobs = body["choices"][0]["logprobs"]
            tokens, values, offsets = logprobs["tokens"], logprobs["token_logprobs"], logprobs["text_offset"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(
                f"{self.endpoint.base_url}: no echoed prompt log-probabilities; scoring needs an endpoint that "
                "supports completions with echo and logprobs (vLLM, nevermind serve)"
            ) from None
        boundary = len(request.context)
        picked = [v for t, v, o in zip(tokens, values, offsets) if v is not None and o + len(t) > boundary]
        if not picked:
            raise NevermindError(f"empty continuation to score after context {request.context[-40:]!r}")
        return ScoreResult(logprob=float(sum(picked)), token_logprobs=[float(v) for v in picked])

    def score(
        self,
        requests: Sequence[ScoreRequest],
        *,
        batch_size: int = 16,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[ScoreResult]:
        """Log-probability of each continuation, read from the endpoint's echoed prompt log-probabilities."""
        results: list[ScoreResult] = []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for start in range(0, len(requests), batch_size):
                batch = list(requests[start : start + batch_size])
                scored = list(pool.map(self._score_one, batch))
                results += scored
                if on_batch:
                    on_batch(len(batch), sum(len(s.token_logprobs) for s in scored))
        return results


@register_backend("openai", extra="serve", description="any OpenAI-compatible HTTP endpoint")
def load_openai(name: str, *, rope: Any = None, max_positions: int | None = None, **options: Any) -> OpenAIModel:
    """The endpoint backend's loader: `name` is "URL#model"; device and dtype do not apply."""
    if rope is not None or max_positions is not None:
        raise NevermindError("rope scaling and max_positions need a local model, not an HTTP endpoint")
    for ignored in ("device", "dtype", "on_status"):
        options.pop(ignored, None)
    return OpenAIModel.load(name, **options)
