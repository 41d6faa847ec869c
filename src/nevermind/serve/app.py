"""An OpenAI-compatible HTTP API over one local model (plus decode-time adapters): /v1/models,
/v1/chat/completions and /v1/completions, with token log-probabilities, so any OpenAI client,
inspect_ai or lm-evaluation-harness can use a base model with an adapter.

Requests are served one at a time (one lock around the model). Log-probabilities are the
model's own next-token distribution at each position, before any adapter reshapes it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from nevermind.errors import NevermindError
from nevermind.models.requests import GenerateRequest, GenerationConfig

MAX_TOP_LOGPROBS = 20
"""Most alternatives returned per position (OpenAI's limit)."""


class ContentPart(BaseModel):
    """One part of a multi-part message; only text parts are understood."""

    model_config = ConfigDict(extra="allow")
    type: str = "text"
    text: str = ""


class ChatMessage(BaseModel):
    """One chat turn as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[ContentPart] | None = ""

    def text(self) -> str:
        """The message's text (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content if part.type == "text")
        return self.content or ""


class SamplingFields(BaseModel):
    """Fields shared by chat and text completions (unknown OpenAI fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    def generation_config(self, max_tokens: int) -> GenerationConfig:
        """The GenerationConfig these fields ask for."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationConfig(
            max_new_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=tuple(stop),
        )


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class CompletionRequest(SamplingFields):
    """POST /v1/completions."""

    prompt: str | list[str]
    max_tokens: int = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False


class APIError(Exception):
    """A request the server refuses, answered as an OpenAI error object."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


class Server:
    """The model, its adapters and one lock: what every endpoint calls into."""

    def __init__(
        self, model: Any, *, model_id: str | None = None, adapters: Sequence[Any] = (), max_tokens: int = 512
    ) -> None:
        self.model = model
        self.model_id = model_id or model.name
        self.adapters = list(adapters)
        self.max_tokens = max_tokens
        self.lock = threading.Lock()
        self.created = int(time.time())

    def generate(self, prompts: list[str], config: GenerationConfig) -> list[Any]:
        """Generate for already formatted prompts, through the adapters when there are any."""
        requests = [GenerateRequest(p, chat=False) for p in prompts]
        with self.lock:
            if self.adapters:
                from nevermind.adapters import generate_with_adapters

                return generate_with_adapters(
                    self.model, requests, config, self.adapters, batch_size=len(requests), on_batch=None
                )
            return self.model.generate(requests, config, batch_size=len(requests))

    @torch.inference_mode()
    def logprobs(
        self, prompt_ids: list[int], new_ids: list[int], top: int, echo: bool
    ) -> list[dict[str, Any]]:
        """Per-token log-probability and the `top` most likely alternatives, for the new tokens
        (and, with `echo`, the prompt tokens after the first, which has none)."""
        ids = prompt_ids + new_ids
        if len(ids) < 2:
            return [{"id": i, "logprob": None, "top": []} for i in ids] if echo else []
        first = 1 if echo else len(prompt_ids)
        keep = len(ids) - first
        with self.lock:
            logits = (
                self.model.model(
                    input_ids=torch.tensor([ids], device=self.model.device), logits_to_keep=keep + 1
                )
                .logits[0, :-1]
                .float()
            )
        logp = torch.log_softmax(logits, dim=-1)
        targets = torch.tensor(ids[first:], device=logp.device)
        chosen = logp.gather(-1, targets[:, None])[:, 0].tolist()
        alternatives = logp.topk(top, dim=-1) if top else None
        rows = [{"id": ids[0], "logprob": None, "top": []}] if echo else []
        for k, token_id in enumerate(ids[first:]):
            top_rows = []
            if alternatives is not None:
                top_rows = list(zip(alternatives.indices[k].tolist(), alternatives.values[k].tolist()))
            rows.append({"id": token_id, "logprob": chosen[k], "top": top_rows})
        return rows

    def pieces(self, ids: list[int]) -> list[str]:
        """Each token's share of the decoded text (special tokens decode to nothing)."""
        tokenizer = self.model.tokenizer
        out, previous = [], ""
        for k in range(1, len(ids) + 1):
            text = tokenizer.decode(ids[:k], skip_special_tokens=True)
            out.append(
                text[len(previous) :] if text.startswith(previous) else tokenizer.decode(ids[k - 1 : k])
            )
            previous = text
        return out

    def token_text(self, token_id: int) -> str:
        """A single token decoded on its own."""
        return self.model.tokenizer.decode([token_id])


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _check_common(body: SamplingFields) -> None:
    if body.stream:
        raise APIError("streaming is not supported by nevermind serve; send stream=false")
    if body.n != 1:
        raise APIError("only n=1 is supported")


def create_app(server: Server) -> FastAPI:
    """The FastAPI application serving `server`'s model."""
    app = FastAPI(title="nevermind", docs_url=None, redoc_url=None)

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return _error(str(error), error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(f"{where}: {first.get('msg')}", 400)

    @app.exception_handler(NevermindError)
    async def user_error(_: Request, error: NevermindError) -> JSONResponse:
        return _error(str(error), 400)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "nevermind"}
            ],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatCompletionRequest) -> dict[str, Any]:
        _check_common(body)
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in body.messages
        ]
        try:
            prompt = server.model.format_prompt(GenerateRequest(messages, chat=True))
        except ValueError as error:
            raise APIError(str(error)) from None
        max_tokens = min(
            body.max_completion_tokens or body.max_tokens or server.max_tokens, server.max_tokens
        )
        try:
            config = body.generation_config(max_tokens)
        except ValueError as error:
            raise APIError(str(error)) from None
        generation = server.generate([prompt], config)[0]
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "finish_reason": _finish(generation.finish_reason),
            "logprobs": None,
        }
        if body.logprobs:
            rows = server.logprobs(
                server.model.encode(prompt), generation.token_ids, body.top_logprobs or 0, echo=False
            )
            choice["logprobs"] = {"content": [_chat_logprob(server, row) for row in rows]}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": server.model_id,
            "choices": [choice],
            "usage": _usage(generation.prompt_tokens, len(generation.token_ids)),
        }

    @app.post("/v1/completions")
    def completions(body: CompletionRequest) -> dict[str, Any]:
        _check_common(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise APIError("prompt: at least one prompt is needed")
        max_tokens = min(body.max_tokens, server.max_tokens)
        if max_tokens == 0:
            if not body.echo:
                raise APIError("max_tokens=0 only makes sense with echo=true")
            generations = None
        else:
            try:
                config = body.generation_config(max_tokens)
            except ValueError as error:
                raise APIError(str(error)) from None
            generations = server.generate(prompts, config)
        choices, prompt_total, completion_total = [], 0, 0
        for index, prompt in enumerate(prompts):
            prompt_ids = server.model.encode(prompt)
            new_ids = generations[index].token_ids if generations else []
            text = generations[index].text if generations else ""
            choice: dict[str, Any] = {
                "index": index,
                "text": (prompt + text) if body.echo else text,
                "finish_reason": _finish(generations[index].finish_reason) if generations else "length",
                "logprobs": None,
            }
            if body.logprobs is not None:
                rows = server.logprobs(prompt_ids, new_ids, body.logprobs, echo=body.echo)
                choice["logprobs"] = _completion_logprobs(
                    server, rows, prompt_ids if body.echo else [], new_ids
                )
            choices.append(choice)
            prompt_total += len(prompt_ids)
            completion_total += len(new_ids)
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:24]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": server.model_id,
            "choices": choices,
            "usage": _usage(prompt_total, completion_total),
        }

    return app


def _chat_logprob(server: Server, row: dict[str, Any]) -> dict[str, Any]:
    token = server.token_text(row["id"])
    return {
        "token": token,
        "logprob": row["logprob"],
        "bytes": list(token.encode("utf-8")),
        "top_logprobs": [
            {"token": (t := server.token_text(i)), "logprob": v, "bytes": list(t.encode("utf-8"))}
            for i, v in row["top"]
        ],
    }


def _completion_logprobs(
    server: Server, rows: list[dict[str, Any]], echoed: list[int], new_ids: list[int]
) -> dict[str, Any]:
    """The legacy completions logprobs object; text_offset indexes the returned text."""
    pieces = server.pieces(echoed + new_ids) if echoed else server.pieces(new_ids)
    offsets, position = [], 0
    for piece in pieces:
        offsets.append(position)
        position += len(piece)
    top = []
    for row in rows:
        alternatives: dict[str, float] = {}
        for i, v in row["top"]:
            alternatives.setdefault(server.token_text(i), v)
        top.append(alternatives or None)
    return {
        "tokens": pieces,
        "token_logprobs": [row["logprob"] for row in rows],
        "top_logprobs": top,
        "text_offset": offsets,
    }
