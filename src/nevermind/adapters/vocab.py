"""What each token id spells: its text and its exact bytes, for any tokenizer (byte-level BPE such as
Llama 3 / SmolLM, SentencePiece with byte fallback such as Gemma / Llama 2, and others)."""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Any

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_CACHE: weakref.WeakKeyDictionary[Any, TokenSurfaces] = weakref.WeakKeyDictionary()


def _gpt2_byte_alphabet() -> dict[str, int]:
    """Byte-level BPE spells each byte as one printable character; this inverts that alphabet."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


@dataclass
class TokenSurfaces:
    """Per token id: `text` (as it reads after earlier text, leading space included) and `raw` bytes.

    Special tokens (eos, chat markers) spell nothing: decoding skips them."""

    text: list[str]
    raw: list[bytes]
    _sorted: dict[bool, tuple[list[int], list[bytes]]] = field(default_factory=dict, repr=False)

    def raw_folded(self, ignore_case: bool) -> list[bytes]:
        """Token bytes, ASCII-lowercased when `ignore_case`."""
        if not ignore_case:
            return self.raw
        if "folded" not in self.__dict__:
            self.__dict__["folded"] = [r.lower() for r in self.raw]
        return self.__dict__["folded"]

    def sorted_raw(self, ignore_case: bool = False) -> tuple[list[int], list[bytes]]:
        """(token ids, their bytes) sorted by bytes: tokens sharing a prefix form one run."""
        if ignore_case not in self._sorted:
            raw = self.raw_folded(ignore_case)
            order = sorted(range(len(raw)), key=raw.__getitem__)
            self._sorted[ignore_case] = (order, [raw[i] for i in order])
        return self._sorted[ignore_case]

    def ids_spelling(self, strings: set[str]) -> dict[str, list[int]]:
        """Token ids whose text is exactly one of `strings`, by string."""
        found: dict[str, list[int]] = {s: [] for s in strings}
        for token_id, text in enumerate(self.text):
            if text in found:
                found[text].append(token_id)
        return found


def token_surfaces(tokenizer: Any) -> TokenSurfaces:
    """Text and bytes of every token of `tokenizer` (computed once per tokenizer, < 1 s for 262k tokens)."""
    try:
        return _CACHE[tokenizer]
    except (KeyError, TypeError):
        pass
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(getattr(tokenizer, "all_special_ids", []))
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    byte_level = decoder is not None and type(decoder).__name__ == "ByteLevel"
    alphabet = _gpt2_byte_alphabet() if byte_level else {}
    text: list[str] = []
    raw: list[bytes] = []
    for token_id, token in enumerate(tokens):
        if token_id in special or token is None:
            text.append("")
            raw.append(b"")
            continue
        if decoder is not None:
            # decode after an anchor so a leading space marker is kept as a space
            spelled = decoder.decode(["a", token])[1:]
        else:
            spelled = tokenizer.convert_tokens_to_string(["a", token])[1:]
        text.append(spelled)
        if byte_level and all(c in alphabet for c in token):
            raw.append(bytes(alphabet[c] for c in token))
        elif match := _BYTE_TOKEN.match(token):
            raw.append(bytes([int(match.group(1), 16)]))
        else:
            raw.append(spelled.encode("utf-8"))
    surfaces = TokenSurfaces(text, raw)
    try:
        _CACHE[tokenizer] = surfaces
    except TypeError:
        pass
    return surfaces
