"""Finetuning: data recipes → TRL SFT (completion-only loss) with PEFT LoRA or full weights → a checkpoint
that loads like any model (`-m PATH`)."""

from nevermind.training.config import PRESETS, TrainConfig, build_config
from nevermind.training.recipes import build_examples
from nevermind.training.trainer import TrainProgress, build_trainer, prompt_completion, to_dataset, train

__all__ = [
    "PRESETS",
    "TrainConfig",
    "TrainProgress",
    "build_config",
    "build_examples",
    "build_trainer",
    "prompt_completion",
    "to_dataset",
    "train",
]
