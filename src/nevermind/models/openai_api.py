"""Any OpenAI-compatible HTTP endpoint (OpenAI, vLLM, `nevermind serve`, ...) as a model:
generation through chat/completions, scoring through completions with echoed log-probabilities.

The API key is read from an environment variable at request time and only ever sent in the
Authorization header; credentials written into the URL (http://user:password@host/v1) are sent as
HTTP basic auth and removed from the URL: no message, log or record contains either, and error
bodies are scrubbed of them. Requests time out; timeouts, dropped connections, 429 and 5xx answers
are retried (tenacity) with exponential backoff, waiting as long as a Retry-After header asks.
Needs the `serve` extra (httpx, tenacity), imported when an endpoint is first used."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from nevermind.credentials import scrub
from nevermind.errors import NevermindError
from nevermind.extras import require
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


class _Transient(Exception):
    """A failure worth another attempt, with the delay the server asked for (Retry-After), if any."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


def api_base(url: str) -> str:
    """Normalise an endpoint URL: a bare host gets the conventional /v1 path."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NevermindError(f"endpoint URL must start with http:// or https://, got {scrub(url)!r}")
    return url if parts.path not in ("", "/") else url + "/v1"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(URL without user-info, (user, password) or None): credentials travel as basic auth only."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay in seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class Endpoint:
    """An OpenAI-compatible HTTP API with timeouts and retries."""

    base_url: str
    """URL up to and including the version path, e.g. http://127.0.0.1:8000/v1 (user-info removed)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (unset: no Authorization header)."""
    timeout: float = 60.0
    """Seconds before one HTTP request is abandoned."""
    max_retries: int = 3
    """Retries after the first attempt for timeouts, connection errors, 429 and 5xx."""
    backoff: float = 1.0
    """First retry delay in seconds without Retry-After; doubles at every retry."""
    max_wait: float = 120.0
    """Longest wait before one retry; a Retry-After asking for more ends the request with an error."""

    def __post_init__(self) -> None:
        self.base_url, self._auth = split_credentials(api_base(self.base_url))
        self._httpx = require("serve", "httpx", purpose="an OpenAI-compatible endpoint")
        self._tenacity = require("serve", "tenacity", purpose="an OpenAI-compatible endpoint")
        self._client = self._httpx.Client(timeout=self.timeout, auth=self._auth)

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def _secrets(self) -> list[str | None]:
        return [self._key(), *(self._auth or ())]

    def _headers(self) -> dict[str, str]:
        key = self._key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and return its JSON object, retrying transient failures."""
        tenacity = self._tenacity
        url = f"{self.base_url}/{path.lstrip('/')}"
        backoff = tenacity.wait_exponential(multiplier=self.backoff, max=self.max_wait)

        def wait(state: Any) -> float:
            asked = getattr(state.outcome.exception(), "retry_after", None)
            return asked if asked is not None else backoff(state)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return retrying(self._send, method, url, payload)
        except _Transient as problem:
            raise EndpointError(f"{url}: {problem} ({self.max_retries + 1} attempts)") from None

    def _send(self, method: str, url: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        httpx = self._httpx
        try:
            response = self._client.request(method, url, json=payload, headers=self._headers())
        except httpx.TimeoutException:
            raise _Transient(f"timed out after {self.timeout:g} s") from None
        except httpx.TransportError as error:
            raise _Transient(f"connection failed ({type(error).__name__})") from None
        status = response.status_code
        if status in RETRY_STATUS:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None and retry_after > self.max_wait:
                raise EndpointError(
                    f"{url}: HTTP {status}: the endpoint asks to retry after {retry_after:.0f} s "
                    f"(more than the {self.max_wait:g} s nevermind waits); try again later"
                )
            raise _Transient(f"HTTP {status}", retry_after)
        if status in (401, 403):  # the body may quote the rejected key: never echo it
            where = f"${self.api_key_env}" + ("" if self._key() else ", which is unset")
            raise EndpointError(f"{url}: HTTP {status}: the endpoint refused the credentials (API key from {where})")
        if status >= 400:
            raise EndpointError(f"{url}: HTTP {status}: {self._error_message(response)}")
        try:
            body = response.json()
        except ValueError:
            raise EndpointError(
                f"{url}: answered with something that is not JSON: {scrub(response.text[:80], self._secrets())!r}"
            ) from None
        if not isinstance(body, dict):
            raise EndpointError(f"{url}: expected a JSON object, got {type(body).__name__}")
        return body

    def _error_message(self, response: Any) -> str:
        """The error's message, on one line, short, and scrubbed of the key and URL credentials."""
        try:
            error = response.json().get("error")
            message = error.get("message") if isinstance(error, dict) else error
        except (ValueError, AttributeError):
            message = response.text
        text = " ".join(str(message or response.reason_phrase).split())
        return scrub(text, self._secrets())[:200]

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


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
