"""Seed 002: inoculation prompting and system-prompt following — questions and instructions, the
training data of each stage, teacher-forced and greedy measures, the data-mixture sweep and its report."""

from nevermind.inoculation.data import (
    EvalItem,
    TrainingExample,
    eval_items,
    follow_set,
    inoculation_set,
    mixture_set,
    split_questions,
)
from nevermind.inoculation.measures import generate_items, paired_change, score_items, summarize
from nevermind.inoculation.prompts import (
    BAD_FAMILIES,
    HELDOUT_BENIGN,
    INSTRUCTIONS,
    NEUTRAL_PROMPTS,
    SEEN_BENIGN,
    Contrast,
    Instruction,
    Question,
    load_questions,
)
from nevermind.inoculation.sweep import Point, SweepConfig, SweepStore, load_config, run_point, run_sweep

__all__ = [
    "BAD_FAMILIES",
    "HELDOUT_BENIGN",
    "INSTRUCTIONS",
    "NEUTRAL_PROMPTS",
    "SEEN_BENIGN",
    "Contrast",
    "EvalItem",
    "Instruction",
    "Point",
    "Question",
    "SweepConfig",
    "SweepStore",
    "TrainingExample",
    "eval_items",
    "follow_set",
    "generate_items",
    "inoculation_set",
    "load_config",
    "load_questions",
    "mixture_set",
    "paired_change",
    "run_point",
    "run_sweep",
    "score_items",
    "split_questions",
    "summarize",
]
