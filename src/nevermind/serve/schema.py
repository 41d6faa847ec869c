"""Request bodies of the OpenAI-compatible API, as pydantic models (unknown OpenAI fields are accepted
and ignored unless they would change the answer, which is refused rather than silently dropped)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nevermind.serve.engine import APIError, Sampling

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


class StreamOptions(BaseModel):
    """`stream_options`: with include_usage, a last chunk carries the token counts."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class SamplingFields(BaseModel):
    """Fields shared by chat and text completions."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    temperature: float | None = Field(1.0, ge=0.0, le=2.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    n: int | None = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    @model_validator(mode="after")
    def _supported(self) -> SamplingFields:
        if (self.n or 1) != 1:
            raise ValueError("only n=1 is supported")
        if self.presence_penalty or self.frequency_penalty:
            raise ValueError("presence_penalty and frequency_penalty are not supported")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported")
        if any(s == "" for s in self.stop_strings()):
            raise ValueError("stop: an empty stop string would end every answer at once")
        return self

    def stop_strings(self) -> tuple[str, ...]:
        """The stop strings as a tuple."""
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def sampling(self) -> Sampling:
        """The sampling settings that decide which requests share a batch."""
        temperature = 1.0 if self.temperature is None else self.temperature
        return Sampling(
            temperature=temperature, top_p=1.0 if self.top_p is None else self.top_p, seed=self.seed
        )

    @property
    def streaming(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)

    def chat_messages(self) -> list[dict[str, str]]:
        """The messages as the model's chat template takes them ("developer" is a system turn)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


TokenIds = list[int]


class CompletionRequest(SamplingFields):
    """POST /v1/completions. `prompt` takes every form of the OpenAI API: a string, a list of strings,
    a list of token ids, or a list of token-id lists (what lm-evaluation-harness sends by default)."""

    prompt: str | list[str] | TokenIds | list[TokenIds]
    max_tokens: int | None = Field(16, ge=0)
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool | None = False
    suffix: str | None = None
    best_of: int | None = None

    @model_validator(mode="after")
    def _completion_supported(self) -> CompletionRequest:
        if self.suffix:
            raise ValueError("suffix is not supported")
        if (self.best_of or 1) != 1:
            raise ValueError("only best_of=1 is supported")
        return self

    def prompts(self) -> list[str | list[int]]:
        """Each prompt: a string or a list of token ids."""
        prompt: Any = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if not prompt:
            raise APIError("prompt: an empty list holds no prompt", param="prompt")
        if all(isinstance(p, int) for p in prompt):
            return [list(prompt)]
        return list(prompt)
