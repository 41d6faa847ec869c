"""Helpers shared by the benchmarks: timing and a real-prose corpus."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def timer() -> Iterator[list[float]]:
    """Yields a list that holds the elapsed seconds once the block ends."""
    elapsed: list[float] = []
    start = time.perf_counter()
    yield elapsed
    elapsed.append(time.perf_counter() - start)


def matmul_peak_gflops(size: int = 1024, repeats: int = 20, dtype: torch.dtype = torch.float32) -> float:
    """Best-of-`repeats` GFLOP/s of a square matmul: the machine's practical peak right now."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


PROMPTS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain photosynthesis in two sentences.",
    "Give me three tips for learning a new language.",
    "What is 12 times 7?",
    "Name the planets of the solar system.",
    "Summarize the plot of Romeo and Juliet.",
    "How do I boil an egg?",
    "Translate 'good morning' into Spanish.",
    "Why is the sky blue?",
    "List three benefits of exercise.",
    "What does a CPU do?",
    "Describe a cat to someone who has never seen one.",
    "Write a haiku about autumn leaves.",
    "What is the difference between weather and climate?",
    "Suggest a name for a coffee shop.",
]
"""Sixteen everyday instructions for generation benchmarks."""
