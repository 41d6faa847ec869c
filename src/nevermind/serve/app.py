"""An OpenAI-compatible HTTP API over one model (plus decode-time adapters): /v1/models,
/v1/chat/completions and /v1/completions (every prompt form, echo, log-probabilities, streaming as
server-sent events), and /tokenize, /detokenize, /tokenizer_info (vLLM's shape, which
lm-evaluation-harness's local-completions detects and uses instead of needing a tokenizer).

Requests are batched by the engine (serve/engine.py): one worker thread owns the model and runs
what arrives together as one batch. Log-probabilities are the model's own next-token distribution
at each position, before any adapter reshapes it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from nevermind.errors import NevermindError
from nevermind.models.requests import GenerateRequest, TokensPrompt
from nevermind.serve.engine import (
    DEFAULT_BATCH_WINDOW,
    DEFAULT_MAX_BATCH,
    APIError,
    Engine,
    Job,
    TokenRow,
    async_sink,
)
from nevermind.serve.schema import ChatCompletionRequest, CompletionRequest

PROMPT_FORMS = "prompt: give a string, a list of strings, a list of token ids, or a list of token-id lists"
DISCONNECT_POLL = 0.5
"""Seconds between checks that a client waiting for a whole (non-streamed) answer is still there."""


class Server:
    """The model, its adapters and the engine that batches requests: what every endpoint calls into."""

    def __init__(
        self,
        model: Any,
        *,
        model_id: str | None = None,
        adapters: Sequence[Any] = (),
        max_tokens: int = 512,
        max_batch: int = DEFAULT_MAX_BATCH,
        batch_window: float = DEFAULT_BATCH_WINDOW,
    ) -> None:
        self.model_id = model_id or model.name
        self.max_tokens = max_tokens
        self.created = int(time.time())
        self.engine = Engine(model, adapters=adapters, max_batch=max_batch, batch_window=batch_window)

    def check_model(self, requested: str | None) -> None:
        """An unknown model name is a 404, as OpenAI answers it (no name: the served model)."""
        if requested is not None and requested != self.model_id:
            raise APIError(
                f"the model {requested!r} does not exist here; this server serves {self.model_id!r}",
                404, code="model_not_found", param="model",
            )  # fmt: skip

    def close(self) -> None:
        """Stop the engine's worker."""
        self.engine.close()


class ClientGone(APIError):
    """The client hung up while waiting; its jobs were cancelled."""

    def __init__(self) -> None:
        super().__init__("the client disconnected", 499)


class _Answer:
    """The jobs of one HTTP request and the events the worker sends about them."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.events: asyncio.Queue = asyncio.Queue()
        self.checked = time.monotonic()
        sink = async_sink(asyncio.get_running_loop(), self.events)
        for job in jobs:
            job.sink = sink

    def cancel(self) -> None:
        """Stop the jobs: a generation in progress stops at its next token."""
        for job in self.jobs:
            job.cancelled = True

    async def next_event(self, request: Request) -> tuple[Any, ...]:
        """The next event; a client that hung up cancels the jobs (their generation stops)."""
        while True:
            if time.monotonic() - self.checked > DISCONNECT_POLL:
                self.checked = time.monotonic()
                if await request.is_disconnected():
                    self.cancel()
                    raise ClientGone()
            try:
                return await asyncio.wait_for(self.events.get(), DISCONNECT_POLL)
            except TimeoutError:
                continue

    async def accepted(self, request: Request) -> None:
        """Wait until the worker has tokenized and checked the jobs; raise its refusal."""
        event = await self.next_event(request)
        if event[0] == "error":
            self.cancel()
            raise event[2]

    async def finished(self, request: Request) -> None:
        """Wait until every job is done."""
        left = len(self.jobs)
        while left:
            event = await self.next_event(request)
            if event[0] == "error":
                self.cancel()
                raise event[2]
            left -= event[0] == "done"


class _EventStream(StreamingResponse):
    """Server-sent events; whenever the response ends (done, or the client hung up and the next
    write failed), the request's jobs are cancelled so no generation outlives its client."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _error_body(error: APIError) -> dict[str, Any]:
    kind = "invalid_request_error" if error.status < 500 else "server_error"
    return {"error": {"message": str(error), "type": kind, "param": error.param, "code": error.code}}


def _error(error: APIError) -> JSONResponse:
    return JSONResponse(_error_body(error), status_code=error.status)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _max_tokens(server: Server, asked: int | None) -> int:
    return server.max_tokens if asked is None else min(asked, server.max_tokens)


class TokenizeRequest(BaseModel):
    """POST /tokenize (vLLM's shape): text → token ids."""

    prompt: str
    add_special_tokens: bool = True


class DetokenizeRequest(BaseModel):
    """POST /detokenize (vLLM's shape): token ids → text."""

    tokens: list[int]


def create_app(server: Server) -> FastAPI:
    """The FastAPI application serving `server`'s model."""
    app = FastAPI(title="nevermind", docs_url=None, redoc_url=None)
    engine = server.engine

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return _error(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if loc[:1] == ["prompt"]:  # a union of four forms: pydantic's first complaint names one at random
            return _error(APIError(PROMPT_FORMS, param="prompt"))
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        return _error(APIError(f"{'.'.join(loc)}: {message}" if loc else message))

    @app.exception_handler(NevermindError)
    async def user_error(_: Request, error: NevermindError) -> JSONResponse:
        return _error(APIError(str(error)))

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "nevermind"}
            ],
        }

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> dict[str, Any]:
        server.check_model(model_id)
        return {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "nevermind"}

    # ---------------------------------------------------------------- chat
    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        server.check_model(body.model)
        if body.streaming and body.logprobs:
            raise APIError("logprobs are not available with stream=true; send stream=false", param="logprobs")
        asked = body.max_completion_tokens or body.max_tokens
        job = Job(
            GenerateRequest(body.chat_messages(), chat=True),
            max_tokens=_max_tokens(server, asked),
            stop=body.stop_strings(),
            sampling=body.sampling(),
            logprobs=(body.top_logprobs or 0) if body.logprobs else None,
            clamp_to_context=asked is None,
            stream=body.streaming,
        )
        answer = _Answer([job])
        engine.submit([job])
        await answer.accepted(request)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": ident, "created": created, "model": server.model_id}
        if body.streaming:
            return _EventStream(_chat_events(answer, head, body, request), answer.cancel)
        await answer.finished(request)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": job.text},
            "finish_reason": _finish(job.finish_reason),
            "logprobs": None,
        }
        if job.rows is not None:
            choice["logprobs"] = {"content": [_chat_logprob(row) for row in job.rows]}
        return {
            **head,
            "object": "chat.completion",
            "choices": [choice],
            "usage": _usage(len(job.prompt_ids), len(job.token_ids)),
        }

    async def _chat_events(
        answer: _Answer, head: dict[str, Any], body: ChatCompletionRequest, request: Request
    ) -> AsyncIterator[str]:
        job = answer.jobs[0]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**head, "object": "chat.completion.chunk", "choices": [choice]})

        yield chunk({"role": "assistant", "content": ""})
        try:
            while True:
                event = await answer.next_event(request)
                if event[0] == "delta":
                    yield chunk({"content": event[2]})
                elif event[0] == "done":
                    break
                elif event[0] == "error":
                    yield _sse(_error_body(event[2]))
                    yield _sse("[DONE]")
                    return
        except ClientGone:
            return
        yield chunk({}, _finish(job.finish_reason))
        if body.include_usage:
            usage = _usage(len(job.prompt_ids), len(job.token_ids))
            yield _sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield _sse("[DONE]")

    # ---------------------------------------------------------------- completions
    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest, request: Request) -> Any:
        server.check_model(body.model)
        if body.streaming and body.logprobs is not None:
            raise APIError("logprobs are not available with stream=true; send stream=false", param="logprobs")
        max_tokens = _max_tokens(server, body.max_tokens)
        if max_tokens == 0 and not body.echo:
            raise APIError("max_tokens=0 only makes sense with echo=true", param="max_tokens")
        jobs = []
        for index, prompt in enumerate(body.prompts()):
            if isinstance(prompt, str):
                if not prompt:
                    raise APIError(
                        f"prompt {index} is empty: give at least one token of text", param="prompt"
                    )
                generate_request = GenerateRequest(prompt, chat=False)
            else:
                if not prompt:
                    raise APIError(f"prompt {index} is an empty list of token ids", param="prompt")
                generate_request = GenerateRequest(TokensPrompt(prompt))
            jobs.append(
                Job(
                    generate_request,
                    max_tokens=max_tokens,
                    stop=body.stop_strings(),
                    sampling=body.sampling(),
                    logprobs=body.logprobs,
                    echo=bool(body.echo),
                    stream=body.streaming,
                    index=index,
                )
            )
        answer = _Answer(jobs)
        engine.submit(jobs)
        await answer.accepted(request)
        ident, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        head = {"id": ident, "object": "text_completion", "created": created, "model": server.model_id}
        if body.streaming:
            return _EventStream(_completion_events(answer, head, body, request), answer.cancel)
        await answer.finished(request)
        choices = []
        for job in jobs:
            echoed = job.echo_text if body.echo else ""
            choice: dict[str, Any] = {
                "index": job.index,
                "text": echoed + job.text,
                "finish_reason": _finish(job.finish_reason),
                "logprobs": None,
            }
            if job.rows is not None:
                choice["logprobs"] = _completion_logprobs(job.rows)
            choices.append(choice)
        prompt_total = sum(len(j.prompt_ids) for j in jobs)
        return {
            **head,
            "choices": choices,
            "usage": _usage(prompt_total, sum(len(j.token_ids) for j in jobs)),
        }

    async def _completion_events(
        answer: _Answer, head: dict[str, Any], body: CompletionRequest, request: Request
    ) -> AsyncIterator[str]:
        def chunk(index: int, text: str, finish: str | None = None) -> str:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
            return _sse({**head, "choices": [choice]})

        if body.echo:
            for job in answer.jobs:
                yield chunk(job.index, job.echo_text)
        left = len(answer.jobs)
        try:
            while left:
                event = await answer.next_event(request)
                if event[0] == "delta":
                    yield chunk(event[1].index, event[2])
                elif event[0] == "done":
                    left -= 1
                    yield chunk(event[1].index, "", _finish(event[1].finish_reason))
                elif event[0] == "error":
                    yield _sse(_error_body(event[2]))
                    yield _sse("[DONE]")
                    return
        except ClientGone:
            return
        if body.include_usage:
            jobs = answer.jobs
            usage = _usage(sum(len(j.prompt_ids) for j in jobs), sum(len(j.token_ids) for j in jobs))
            yield _sse({**head, "choices": [], "usage": usage})
        yield _sse("[DONE]")

    # ---------------------------------------------------------------- tokenizer (vLLM's endpoints)
    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> dict[str, Any]:
        ids = await run_in_threadpool(
            engine.call, lambda m: m.encode(body.prompt, prefix=body.add_special_tokens)
        )
        return {"tokens": ids, "count": len(ids), "max_model_len": engine.context_length}

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> dict[str, Any]:
        return {"prompt": await run_in_threadpool(engine.call, lambda m: m.decode(body.tokens))}

    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict[str, Any]:
        return await run_in_threadpool(engine.call, _tokenizer_info)

    return app


def _tokenizer_info(model: Any) -> dict[str, Any]:
    """The special tokens and chat template, read from the model's tokenizer (the interface's
    `tokenizer` attribute: a transformers tokenizer of its vocabulary, or None)."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise APIError(f"backend {model.backend} has no local tokenizer to describe", 404)
    info: dict[str, Any] = {
        key: getattr(tokenizer, key, None) for key in ("eos_token", "bos_token", "pad_token", "unk_token")
    }
    info["chat_template"] = getattr(tokenizer, "chat_template", None)
    info["model_max_length"] = model.info().get("context_length")
    return info


def _chat_logprob(row: TokenRow) -> dict[str, Any]:
    return {
        "token": row.text,
        "logprob": row.logprob,
        "bytes": list(row.text.encode("utf-8")),
        "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))} for t, v in row.top],
    }


def _completion_logprobs(rows: list[TokenRow]) -> dict[str, Any]:
    """The legacy completions logprobs object; text_offset indexes the returned text."""
    offsets, position = [], 0
    for row in rows:
        offsets.append(position)
        position += len(row.text)
    top: list[dict[str, float] | None] = []
    for row in rows:
        alternatives: dict[str, float] = {}
        for text, value in row.top:
            alternatives.setdefault(text, value)
        top.append(alternatives or None)
    return {
        "tokens": [row.text for row in rows],
        "token_logprobs": [row.logprob for row in rows],
        "top_logprobs": top,
        "text_offset": offsets,
    }
