"""Tiny randomly initialised models of the bundled architectures, with their real tokenizers,
for fast tests: a few MB of weights, built in seconds, no network."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from nevermind.models.registry import BUNDLED, resolve_model

ARCHITECTURES = {"llama": "smollm2-135m-instruct", "gemma3": "gemma-3-270m"}
"""Tiny architecture → the bundled model whose tokenizer it borrows."""


def build_tiny_model(arch: Literal["llama", "gemma3"], out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a 2-layer, 64-wide model of `arch` with the real tokenizer into `out_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Gemma3TextConfig, LlamaConfig

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown tiny architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    source = resolve_model(BUNDLED[ARCHITECTURES[arch]].name).source
    tokenizer = AutoTokenizer.from_pretrained(source)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    if arch == "llama":
        config = LlamaConfig(**common)
    else:
        config = Gemma3TextConfig(**common, sliding_window=32, layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
