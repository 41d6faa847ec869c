"""Turning chat messages into prompt text: the tokenizer's chat template, or seed 001's plain one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nevermind.models.requests import GenerateRequest, Message, TokensPrompt

PLAIN_TEMPLATE_ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
"""Role markers of the plain template used for base models without a chat template.

A single user turn reads `<|user|>\\n{instruction}\\n<|assistant|>\\n` (seed 001's format)."""


def plain_chat_format(messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """Format messages with the plain `<|role|>` template."""
    parts = []
    for message in messages:
        role = message["role"]
        if role not in PLAIN_TEMPLATE_ROLES:
            raise ValueError(f"unknown chat role {role!r}; expected one of {sorted(PLAIN_TEMPLATE_ROLES)}")
        parts.append(f"{PLAIN_TEMPLATE_ROLES[role]}\n{message['content']}\n")
    if add_generation_prompt:
        parts.append(f"{PLAIN_TEMPLATE_ROLES['assistant']}\n")
    return "".join(parts)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries its own chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_chat(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """Format messages with the tokenizer's template, or the plain template when it has none."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    return plain_chat_format(messages, add_generation_prompt)


def uses_chat(request: GenerateRequest) -> bool:
    """Whether a request is chat-formatted: always for messages, never for token ids, and for a
    string unless it asks for raw text (chat=False) — one default for the CLI and the API."""
    if isinstance(request.prompt, TokensPrompt):
        return False
    return request.chat is not False or not isinstance(request.prompt, str)


def prompt_text(tokenizer: Any, request: GenerateRequest) -> str:
    """The text a request asks the model to continue (token prompts are decoded, for display)."""
    prompt = request.prompt
    if isinstance(prompt, TokensPrompt):
        return tokenizer.decode(list(prompt.ids))
    if isinstance(prompt, str) and not uses_chat(request):
        return prompt
    messages: Sequence[Message] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return format_chat(tokenizer, messages)
