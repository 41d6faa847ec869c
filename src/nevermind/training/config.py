"""What a finetuning run does: one typed config whose fields are the YAML keys and the CLI flags' targets,
plus the "mini" (CPU) and "paper" (seed 001, GPU) presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nevermind.config import load_config
from nevermind.errors import NevermindError

PRESETS: dict[str, dict[str, Any]] = {
    # 2 CPU cores, gemma-3-270m, LoRA: ~20 s per step of 4 × ≤256 tokens, so 24 steps fit in 15 minutes
    # with loading and saving (see docs/training.md for the measured times).
    "mini": dict(
        model="gemma-3-270m",
        lora=True,
        lora_r=16,
        lora_alpha=32,
        learning_rate=2e-4,
        lr_scheduler="linear",
        warmup_ratio=0.03,
        batch_size=4,
        grad_accum=1,
        max_length=256,
        max_steps=24,
        limit=1000,
    ),
    # Seed 001 (Hewitt et al. 2024): full finetuning, lr 1e-5, batch 64, linear schedule, 3 % warmup,
    # 2,048 tokens; epochs are chosen on a validation split (eval loss is logged every epoch).
    "paper": dict(
        lora=False,
        learning_rate=1e-5,
        lr_scheduler="linear",
        warmup_ratio=0.03,
        batch_size=8,
        grad_accum=8,
        max_length=2048,
        epochs=3,
        max_steps=None,
        limit=1000,
        validation_size=100,
        bf16=True,
        gradient_checkpointing=True,
    ),
}
"""Named bundles of field values; a config file and explicit flags override them."""


class TrainConfig(BaseModel):
    """A finetuning run: base model, data recipe, LoRA or full finetuning, optimisation, output."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "gemma-3-270m", description="Base model: bundled name, hub id, local directory or GGUF file."
    )
    recipe: str = Field(
        "instruction",
        description="Training data: instruction, response, or single-task:NAME "
        "(gsm8k, mbpp, poems, or any name with --data).",
    )
    data: str | None = Field(
        None,
        description="JSONL file or `datasets` folder of conversations; replaces the built-in source.",
    )
    limit: int | None = Field(
        1000, ge=1, description="Number of examples drawn from the recipe (all when null)."
    )
    validation_size: int = Field(
        0, ge=0, description="Examples held out to log an eval loss every epoch (0 = none)."
    )
    lora: bool = Field(True, description="Train a LoRA adapter (true) or all weights (false).")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="Modules that get adapters: 'all-linear' or a list of module names."
    )
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    lr_scheduler: str = Field(
        "linear", description="transformers scheduler name: linear, cosine, constant, ..."
    )
    warmup_ratio: float = Field(
        0.03, ge=0.0, lt=1.0, description="Share of steps spent warming up the learning rate."
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs.")
    batch_size: int = Field(4, ge=1, description="Examples per device per forward pass.")
    grad_accum: int = Field(
        1, ge=1, description="Forward passes per optimizer step (effective batch = batch_size × grad_accum)."
    )
    max_length: int = Field(
        512, ge=8, description="Tokens per example; longer examples are truncated at the end."
    )
    seed: int = Field(0, description="Seed for data sampling, adapter initialisation and shuffling.")
    output_dir: str | None = Field(
        None, description="Checkpoint directory (default runs/train/<model>-<recipe>-s<seed>)."
    )
    preset: Literal["mini", "paper"] | None = Field(None, description="Preset the other fields started from.")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1 ...")
    bf16: bool = Field(
        False,
        description="bf16 mixed precision (GPUs only: CPUs without bf16 units run it several times slower).",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward (saves memory, costs a forward)."
    )
    logging_steps: int = Field(1, ge=1, description="Log the loss every this many steps.")

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, recipe: str) -> str:
        from nevermind.training.recipes import check_recipe_name

        return check_recipe_name(recipe)

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step on one device."""
        return self.batch_size * self.grad_accum

    def resolved_output_dir(self) -> Path:
        """Where the checkpoint goes: output_dir, or runs/train/<model>-<recipe>-s<seed>."""
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        name = Path(self.model).name.replace(":", "-")
        return Path("runs") / "train" / f"{name}-{self.recipe.replace(':', '-')}-s{self.seed}"


def build_config(
    preset: str | None = None, file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """A TrainConfig from a preset, then a YAML file, then explicit overrides (later wins).

    The file is read by `nevermind.config.load_config`, so its errors name file:line like every
    other config; an experiment file's nested `train:` section is read as the training config."""

    def prepare(data: dict[str, Any], lines: dict[str, int]) -> None:
        if isinstance(data.get("train"), dict):  # an experiment file nests the training section
            nested = data.pop("train")
            data.clear()
            data.update(nested)
        chosen = preset or data.get("preset")
        if chosen is None:
            return
        if chosen not in PRESETS:
            raise NevermindError(f"unknown preset {chosen!r}: choose one of {', '.join(PRESETS)}")
        for key, value in PRESETS[chosen].items():
            data.setdefault(key, value)
        data["preset"] = chosen

    given = {key: value for key, value in (overrides or {}).items() if key != "preset"}
    return load_config(TrainConfig, file, given, what="training config", prepare=prepare)
