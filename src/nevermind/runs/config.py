"""What an eval run is asked to do: a typed config read from YAML, overridden by CLI flags.

The field descriptions are the documentation: they become the CLI help and name the YAML keys."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from nevermind.config import load_config
from nevermind.credentials import redact_url

SUITE = ("needle", "override", "moderation", "jailbreak")
"""The conflict suite's tasks: the default for `nevermind eval --tasks`."""


class SuiteOptions(BaseModel):
    """Options shared by every model of an eval: which tasks, which grid, how to decode."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[str] = Field(default=list(SUITE), min_length=1, description="Tasks to run, by registered name.")
    limit: int | None = Field(default=None, ge=1, description="At most this many samples per task (all if unset).")
    seed: int = Field(default=0, description="Seed for sampling the tasks' data (and for sampled decoding).")
    lengths: list[int] | None = Field(
        default=None, description="Haystack lengths in tokens for tasks with a context grid (task default if unset)."
    )
    depths: list[float] | None = Field(
        default=None, description="Needle depths in percent, 0 = start of the context, 100 = end (task default if unset)."
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Cap on generated tokens per answer (each task's own default if unset)."
    )
    batch_size: int = Field(default=16, ge=1, description="Prompts generated together in one batch.")
    backend: str = Field(
        default="auto", description="Model backend: auto (openai for an http URL, else hf), hf, vllm, llamacpp, openai."
    )
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1 ...")
    dtype: str = Field(default="auto", description="auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, float16.")
    adapters: list[str] = Field(
        default_factory=list, description="Decode-time adapters applied while generating (none by default)."
    )

    @field_validator("tasks", "lengths", "depths", "adapters", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list may be written "a, b" in YAML as on the command line."""
        return split_list(value) if isinstance(value, str) else value

    @field_validator("lengths")
    @classmethod
    def _positive_lengths(cls, lengths: list[int] | None) -> list[int] | None:
        if lengths is not None and any(n < 1 for n in lengths):
            raise ValueError("every length must be a positive number of tokens")
        return lengths

    @field_validator("depths")
    @classmethod
    def _percent_depths(cls, depths: list[float] | None) -> list[float] | None:
        if depths is not None and any(not 0 <= d <= 100 for d in depths):
            raise ValueError("every depth must be a percentage between 0 and 100")
        return depths

    @field_validator("tasks")
    @classmethod
    def _no_duplicate_tasks(cls, tasks: list[str]) -> list[str]:
        if len(set(tasks)) != len(tasks):
            raise ValueError("a task is listed twice")
        return tasks


class EvalConfig(SuiteOptions):
    """A whole `nevermind eval`: the suite options applied to each of several models."""

    models: list[str] = Field(min_length=1, description="Models to evaluate: bundled name, local path, .gguf or hub id.")
    out: Path = Field(default=Path("runs"), description="Directory holding one run directory per model and the index.")

    def run_specs(self, weights: Mapping[str, str | None] | None = None) -> list[RunSpec]:
        """One run per model, with the shared options; `weights` maps a model to its weights fingerprint."""
        options = self.model_dump(exclude={"models", "out"})
        return [RunSpec(model=model, weights=(weights or {}).get(model), **options) for model in self.models]

    @field_validator("device")
    @classmethod
    def _usable_device(cls, device: str) -> str:
        """Checked for a new eval only: a finished run's config stays readable on a machine without its GPU."""
        check_device(device)
        return device

    @field_validator("out", mode="before")
    @classmethod
    def _named_out(cls, out: Any) -> Any:
        """An empty string would silently mean the current directory."""
        if isinstance(out, str) and not out.strip():
            raise ValueError("name a directory (an empty path would write into the current one)")
        return out


class RunSpec(SuiteOptions):
    """One model's run: what `config.yaml` in a run directory holds."""

    model: str = Field(description="The model this run evaluates.")
    weights: str | None = Field(
        default=None,
        description="Fingerprint of the model's weight files (local directory or GGUF): retrained weights at "
        "the same path make a new run instead of reusing the old samples.",
    )

    # Fields that change outputs; batch size and device only change speed (up to float rounding).
    IDENTITY_FIELDS: ClassVar[tuple[str, ...]] = ("model", "weights", "tasks", "limit", "seed", "lengths", "depths",
                                                  "max_new_tokens", "dtype", "adapters", "backend")

    @field_serializer("model")
    def _without_credentials(self, model: str) -> str:
        """An endpoint URL's user:password never reaches config.yaml, the index or the run id."""
        return redact_url(model)

    @property
    def display_model(self) -> str:
        """The model name as printed and written: URL credentials masked."""
        return redact_url(self.model)

    @property
    def run_id(self) -> str:
        """Deterministic name: the model's short name and a hash of every option that changes outputs
        (the weights fingerprint included when there is one)."""
        identity = self.model_dump(include=set(self.IDENTITY_FIELDS), mode="json")
        identity["tasks"] = sorted(identity["tasks"])
        if identity["weights"] is None:  # keeps the ids of runs made before fingerprints existed
            del identity["weights"]
        if identity.get("backend") == "auto":  # the default keeps run ids of earlier versions
            identity.pop("backend")
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
        return f"{model_slug(self.display_model)}-{digest}"


def check_device(device: str) -> None:
    """Raise ValueError (one line) on a device torch does not know or this machine lacks ("cuda"
    without CUDA), so it fails before anything is loaded or written; "auto" and "cpu" always pass."""
    if device in ("auto", "cpu"):
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError("not a device: use auto, cpu, cuda, cuda:1 or mps") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA is not available on this machine: use cpu or auto")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError("MPS is not available on this machine: use cpu or auto")
    elif parsed.type != "cpu":
        raise ValueError("nevermind runs on auto, cpu, cuda or mps")


def model_slug(model: str) -> str:
    """A file-name-safe short form of a model name (its last path component)."""
    last = model.rstrip("/").split("/")[-1].removesuffix(".gguf") or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip("-.") or "model"


def split_list(text: str) -> list[str]:
    """"a, b,c" → ["a", "b", "c"]: how lists are written on the command line."""
    return [part.strip() for part in text.split(",") if part.strip()]


def resolve_config(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> EvalConfig:
    """The YAML file's options with every CLI override that was given (not None) on top."""

    def prepare(data: dict[str, Any], lines: dict[str, int]) -> None:
        if "model" in data and "models" not in data:  # a single model reads naturally in YAML
            data["models"] = data.pop("model")
            lines["models"] = lines.get("model", 0)
        if isinstance(data.get("models"), str):
            data["models"] = [data["models"]]

    def explain(error: ValidationError, from_cli: set[str]) -> str | None:
        problem = error.errors()[0]
        if problem["type"] == "missing" and problem["loc"][:1] == ("models",):
            return "no model given: pass -m MODEL (or `models:` in the config file)"
        return None

    return load_config(EvalConfig, config_file, overrides, prepare=prepare, explain=explain)
