"""Credentials never leave the process: a `user:password@` inside a URL and API keys are masked
in everything nevermind prints or writes (messages, run configs, records, summaries)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|hf|key)[-_][A-Za-z0-9_\-]{8,}")

MASK = "***"
"""What a secret is replaced by."""


def redact_url(text: str) -> str:
    """`text` with the user-info part of every URL in it masked: http://u:pw@host → http://***@host."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with URL credentials, the given secrets and anything shaped like an API key masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:  # masking "a" would garble the message, not protect anything
            text = text.replace(secret, MASK)
    return _KEY_LIKE.sub(lambda match: f"{match.group(1)}-{MASK}", redact_url(text))
