"""Finetuning with TRL's SFTTrainer (completion-only loss) and PEFT LoRA, configured to run fast on CPU.

Conversations are turned into TRL's prompt–completion format: the prompt is every turn but the
last, formatted with the tokenizer's chat template or seed 001's plain `<|user|>` template, and
the completion is the final assistant turn. TRL tokenizes both and masks the prompt (labels
-100), so loss falls on the response only.

Why training on CPU differs from TRL's defaults (measured in bench/train_step.py, docs/training.md):
1. TRL's SFTConfig turns on bf16 autocast and gradient checkpointing by default. On a CPU without
   bf16 units, bf16 matmuls run several times slower than fp32, and checkpointing adds a second
   forward. Here: fp32 and no checkpointing unless asked (bf16 only on GPUs).
2. SFTTrainer always computes the loss through a fused, chunked LM head
   (`trl/kernels/chunked_logprob.py`). Without Triton it falls back to torch ops that make about a
   dozen passes over every [tokens × 32k-vocabulary] tile and recompute the tiles in backward;
   with gemma's 262k vocabulary that alone made a step ~3× a plain forward + backward. On CPU the
   loss is instead the model's own cross-entropy, through transformers' `Trainer.compute_loss`
   (TRL still prepares the data, masks the prompt and collates); on GPUs TRL's Triton kernel stays.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nevermind.errors import NevermindError
from nevermind.models.chat import format_chat
from nevermind.models.requests import Message
from nevermind.training.config import TrainConfig

TRAIN_RECORD = "nevermind-train.json"
"""File in the checkpoint directory holding the resolved config, loss history and timings."""
ADAPTER_DIR = "adapter"
"""Subdirectory of a LoRA checkpoint holding the PEFT adapter (the merged model is at the top)."""


@dataclass
class TrainProgress:
    """What the trainer reports after each logged step."""

    step: int
    """Optimizer steps done."""
    total_steps: int
    """Optimizer steps planned."""
    loss: float | None = None
    """Training loss of the last logged step(s)."""
    seconds: float = 0.0
    """Wall time since training started."""
    logs: dict[str, float] = field(default_factory=dict)
    """Everything the trainer logged (learning rate, grad norm, eval loss ...)."""


ProgressCallback = Callable[[TrainProgress], None]


def prompt_completion(tokenizer: Any, conversation: Sequence[Message]) -> dict[str, str]:
    """Split a conversation into TRL's prompt (all turns but the last, formatted) and completion.

    The completion ends with the end-of-sequence token, as TRL would append it: this is exactly the
    text the loss falls on, so a measurement can score the same text (nevermind.inoculation does)."""
    if not conversation or conversation[-1]["role"] != "assistant":
        raise NevermindError("a training conversation must end with an assistant turn")
    prompt = format_chat(tokenizer, conversation[:-1], add_generation_prompt=True)
    full = format_chat(tokenizer, conversation, add_generation_prompt=False)
    if full.startswith(prompt):
        # The chat template's own end-of-turn marker is part of what the model must learn to emit.
        completion = full[len(prompt) :].rstrip("\n")
    else:
        completion = conversation[-1]["content"]
    eos = tokenizer.eos_token
    if eos and not completion.endswith(eos):
        completion += eos
    return {"prompt": prompt, "completion": completion}


def to_dataset(tokenizer: Any, conversations: Sequence[Sequence[Message]]):
    """A `datasets.Dataset` of prompt–completion rows, ready for SFTTrainer."""
    from datasets import Dataset

    rows = [prompt_completion(tokenizer, c) for c in conversations]
    if not rows:
        raise NevermindError("no training examples")
    return Dataset.from_list(rows)


def sft_args(config: TrainConfig, output_dir: Path, *, cuda: bool, has_eval: bool, **overrides: Any):
    """TRL SFTConfig for a run, with the CPU-speed settings explained in the module docstring."""
    from trl import SFTConfig

    settings = {
        "output_dir": str(output_dir / "trainer-state"),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_ratio,  # a value < 1 is a share of the total steps
        "weight_decay": config.weight_decay,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "max_length": config.max_length,
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": config.logging_steps,
        "eval_strategy": "epoch" if has_eval else "no",
        "save_strategy": "no",
        "report_to": "none",
        "completion_only_loss": True,
        "packing": False,
        "use_cpu": not cuda,
        "bf16": config.bf16 and cuda,
        "gradient_checkpointing": config.gradient_checkpointing,  # transformers 5.19's name (5.2x: an alias)
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": cuda,
        "disable_tqdm": True,
        "torch_compile": False,
    }
    return SFTConfig(**{**settings, **overrides})


@functools.cache
def cpu_sft_trainer_class():
    """SFTTrainer whose loss is the model's own cross-entropy (transformers' Trainer.compute_loss)."""
    from transformers import Trainer
    from trl import SFTTrainer

    class CPUSFTTrainer(SFTTrainer):
        """TRL's data preparation and collation; transformers' loss (no fused LM head: see the module)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            """The model's own next-token cross-entropy over the labels TRL built (prompt = -100)."""
            inputs = {**inputs, "use_cache": False}
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return CPUSFTTrainer


def _lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def _progress_callback(on_progress: ProgressCallback | None):
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.history: list[dict[str, float]] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            self.history.append({"step": state.global_step, **logs})
            if on_progress:
                on_progress(
                    TrainProgress(
                        step=state.global_step,
                        total_steps=state.max_steps,
                        loss=logs.get("loss"),
                        seconds=time.perf_counter() - self.start,
                        logs=logs,
                    )
                )

    return _Report()


def build_trainer(
    config: TrainConfig,
    examples: Sequence[Sequence[Message]] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_status: Callable[[str], None] | None = None,
    sft_overrides: dict[str, Any] | None = None,
    fused_lm_head: bool | None = None,
):
    """An SFTTrainer ready to `.train()` for `config` (examples default to the config's recipe).

    `sft_overrides` replaces SFTConfig fields and `fused_lm_head` picks TRL's fused loss (default: on
    GPUs only); bench/train_step.py uses both to measure TRL's defaults against these settings."""
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    from nevermind.models.hf import load_pretrained
    from nevermind.training.recipes import build_examples

    set_seed(config.seed)
    if examples is None:
        if on_status:
            on_status(f"building recipe {config.recipe}")
        examples = build_examples(config)
    examples = list(examples)
    eval_examples: list = []
    if config.validation_size:
        if config.validation_size >= len(examples):
            raise NevermindError(
                f"validation_size {config.validation_size} leaves no training examples (have {len(examples)})"
            )
        eval_examples, examples = examples[: config.validation_size], examples[config.validation_size :]
    # Training needs the transformers module itself (TRL and PEFT train it), not the generate/score
    # interface: load_pretrained is the model layer's one door for that.
    model, tokenizer = load_pretrained(config.model, device=config.device, dtype="float32", on_status=on_status)
    cuda = model.device.type == "cuda"
    model.train()
    output_dir = config.resolved_output_dir()
    report = _progress_callback(on_progress)
    trainer_class = (
        SFTTrainer if (cuda if fused_lm_head is None else fused_lm_head) else cpu_sft_trainer_class()
    )
    trainer = trainer_class(
        model=model,
        args=sft_args(config, output_dir, cuda=cuda, has_eval=bool(eval_examples), **(sft_overrides or {})),
        train_dataset=to_dataset(tokenizer, examples),
        eval_dataset=to_dataset(tokenizer, eval_examples) if eval_examples else None,
        processing_class=tokenizer,
        peft_config=_lora_config(config) if config.lora else None,
        callbacks=[report],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes through on_progress, not print()
    trainer.nevermind_history = report.history
    return trainer


def save_checkpoint(trainer: Any, config: TrainConfig, output_dir: Path, record: dict[str, Any]) -> Path:
    """Write the merged model + tokenizer (loadable by `nevermind.models.load_model`), the LoRA adapter, and the run record."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.model
    if config.lora:
        model.save_pretrained(output_dir / ADAPTER_DIR)
        model = model.merge_and_unload()
    vars(model).pop("forward", None)  # drop TRL's fused-LM-head patch from the instance
    model.config.use_cache = True
    model.save_pretrained(output_dir)
    trainer.processing_class.save_pretrained(output_dir)
    (output_dir / TRAIN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return output_dir


def train(
    config: TrainConfig,
    examples: Sequence[Sequence[Message]] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Finetune `config.model` on `examples` (default: the config's recipe); return the checkpoint directory.

    Loss falls on each conversation's final assistant turn only. The directory holds a merged full
    model and tokenizer (so `load_model(str(path))` / `-m PATH` works), and for LoRA runs the
    adapter in `adapter/`, plus `nevermind-train.json` (config, losses, timings)."""
    started = time.perf_counter()
    trainer = build_trainer(config, examples, on_progress=on_progress, on_status=on_status)
    if on_status:
        on_status(f"training on {len(trainer.train_dataset)} examples")
    result = trainer.train()
    train_seconds = time.perf_counter() - started
    output_dir = config.resolved_output_dir()
    state_dir = Path(trainer.args.output_dir)
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()  # save_strategy="no" leaves it empty
    if on_status:
        on_status(f"saving checkpoint to {output_dir}")
    record = {
        "config": config.model_dump(),
        "examples": len(trainer.train_dataset),
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "history": trainer.nevermind_history,
        "seconds": round(train_seconds, 2),
        "seconds_per_step": round(
            result.metrics.get("train_runtime", train_seconds) / max(trainer.state.global_step, 1), 3
        ),
    }
    return save_checkpoint(trainer, config, output_dir, record)
