"""Checks shared by the vllm and llamacpp backend tests: an optional library that must be there in CI,
agreement of greedy texts up to near-ties, and the conflict suite's scores on one backend (computed once
per test session and backend)."""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch

from nevermind.models import ScoreRequest
from tests.cli_runner import run_cli

SUITE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "suite-small.yaml"
SUITE_MODEL = "smollm2-135m-instruct"
SUITE_LIMIT = 6
"""Samples per task the tests run (needle: every length x depth cell once): three backends' suites stay
a few minutes of CI. The full suite's numbers (24 per task) are in docs/backends.md."""


def require_library(module: str, extra: str) -> None:
    """Skip when an optional backend library is missing, except in CI, where that is a failure."""
    try:
        __import__(module)
    except ModuleNotFoundError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing in CI: scripts/test.sh installs the {extra} extra")
        pytest.skip(f"{module} is not installed (EXTRAS=...,{extra} bash scripts/setup.sh); CI runs this test")


def tie_gap(reference, prompt_ids: list[int], ref_tokens: list[int], other_tokens: list[int]) -> float:
    """0 when two greedy token rows agree; else, under `reference`, how much more likely (nats) its own
    token is than the other row's at the first place they differ: a near-tie gives ~0."""
    for k, (a, b) in enumerate(zip(ref_tokens, other_tokens)):
        if a != b:
            ids = prompt_ids + ref_tokens[:k]
            rows = reference.sequence_logprobs([ids + [a], ids + [b]], positions=[len(ids)])
            return rows[0].logprobs[-1] - rows[1].logprobs[-1]
    return 0.0


@functools.cache
def suite_scores(backend: str, adapters: str = "", limit: int | None = SUITE_LIMIT) -> dict:
    """`nevermind eval -m smollm2-135m-instruct --backend BACKEND --config configs/suite-small.yaml
    [--limit N]` through the CLI: {task: {metric: {mean, se, n}}} and the per-sample records."""
    out = Path(tempfile.mkdtemp(prefix=f"suite-{backend}-"))
    args = ["eval", "-m", SUITE_MODEL, "--backend", backend, "--config", SUITE_CONFIG, "--out", out]
    if limit is not None:
        args += ["--limit", limit]
    if adapters:
        args += ["--adapters", adapters]
    result = run_cli(*args, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    [summary] = list(out.glob("*/summary.json"))
    records = [json.loads(line) for line in summary.with_name("samples.jsonl").read_text().splitlines() if line]
    return {"tasks": json.loads(summary.read_text())["tasks"], "records": records, "stderr": result.stderr}


def assert_scores_agree(reference: dict, other: dict, *, z: float = 2.0) -> list[str]:
    """Every task metric of `other` within z combined standard errors of `reference`; returns the table."""
    lines = []
    for task, entry in reference["tasks"].items():
        for metric, ref in entry["metrics"].items():
            got = other["tasks"][task]["metrics"][metric]
            assert got["n"] == ref["n"], (task, metric)
            se = math.hypot(ref["se"], got["se"])
            lines.append(f"{task}.{metric}: {ref['mean']:.3f} ± {ref['se']:.3f} vs {got['mean']:.3f} ± {got['se']:.3f}")
            assert abs(got["mean"] - ref["mean"]) <= z * se + 1e-9, lines[-1]
    return lines


def scoring_requests(model) -> list[ScoreRequest]:
    """A shared ~200-token context with four continuations (ranking-shaped) and three lone requests."""
    context = model.format_prompt(
        "Read the notes and answer in one sentence. " + " ".join(
            f"Note {i}: the meeting about the {w} budget moved to room {i + 3}." for i, w in enumerate(
                ["garden", "library", "harbour", "bakery", "museum", "railway", "school", "bridge", "market",
                 "theatre", "stadium", "clinic"]
            )
        ) + " Where is the meeting about the museum budget?"
    )  # fmt: skip
    shared = [ScoreRequest(context, c) for c in (
        "It is in room 7.", "Room 7, on the second floor.", "The museum budget meeting is in room 7.", "I don't know.",
    )]  # fmt: skip
    lone = [ScoreRequest("The capital of France is", " Paris."), ScoreRequest("1, 2, 3,", " 4, 5"),
            ScoreRequest(model.format_prompt("Say hi."), "Hello!")]  # fmt: skip
    return shared[:2] + lone[:1] + shared[2:] + lone[1:]


class EndAfter:
    """A logits processor that forces the end-of-sequence token once `n` tokens were generated."""

    def __init__(self, n: int, eos: int) -> None:
        self.n, self.eos, self.prompt_length = n, eos, 0

    def start_batch(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] - self.prompt_length < self.n:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.eos] = 0.0
        return forced
