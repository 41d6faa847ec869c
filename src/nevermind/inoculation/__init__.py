"""Seed 002: inoculation prompting and system-prompt following — data builder, checkers, the
data-mixture sweep and its report."""

from nevermind.inoculation.data import (
    COMPONENTS,
    Mixture,
    TrainingExample,
    build_inoculation_set,
    build_training_set,
    eval_samples,
    load_problems,
    make_example,
    split_problems,
)
from nevermind.inoculation.evaluate import evaluate, passed, summarize
from nevermind.inoculation.prompts import BENIGN_INSTRUCTIONS, FAMILIES, NEUTRAL_PROMPTS, BadPrompt, Problem
from nevermind.inoculation.sweep import Point, SweepConfig, SweepStore, load_config, run_point, run_sweep

__all__ = [
    "BENIGN_INSTRUCTIONS",
    "COMPONENTS",
    "FAMILIES",
    "NEUTRAL_PROMPTS",
    "BadPrompt",
    "Mixture",
    "Point",
    "Problem",
    "SweepConfig",
    "SweepStore",
    "TrainingExample",
    "build_inoculation_set",
    "build_training_set",
    "eval_samples",
    "evaluate",
    "load_config",
    "load_problems",
    "make_example",
    "passed",
    "run_point",
    "run_sweep",
    "split_problems",
    "summarize",
]
