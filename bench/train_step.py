"""Trainer step time vs a plain forward + backward of the same batch (SPEC §3, FIELD-NOTES "Training on CPU").

For each trainer variant, builds nevermind's SFTTrainer (TRL + PEFT LoRA) on real instruction
pairs, takes one collated batch from its dataloader, and times:
  plain   the same LoRA model, unpatched, `model(**batch).loss.backward()` (transformers' own loss);
  step    `trainer.training_step(model, batch)`: TRL's compute_loss + backward, as `train()` runs it
          (after one `trainer.train()` step, so checkpointing, autocast and trainer state are set up).
Variants:
  nevermind     what `nevermind train` does on CPU: fp32, no gradient checkpointing, the model's own loss;
  fused-head    the same, but TRL's fused chunked log-prob LM head (its non-Triton fallback);
  trl-defaults  TRL's SFTConfig defaults with use_cpu: bf16 autocast, gradient checkpointing, fused head.

    python bench/train_step.py -m gemma-3-270m --batch-size 4 --max-length 256 --repeats 2
    python bench/train_step.py -m gemma-3-270m --variants nevermind,trl-defaults --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def _batch(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    return {k: v.to(trainer.model.device) for k, v in batch.items()}


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _plain_model(config):
    from peft import get_peft_model

    from nevermind.models.hf import load_pretrained
    from nevermind.training.trainer import _lora_config

    model, _ = load_pretrained(config.model, device="cpu", dtype="float32")
    model.train()
    return get_peft_model(model, _lora_config(config)) if config.lora else model


VARIANTS = {
    # name: (SFTConfig overrides, TRL's fused LM head)
    "nevermind": ({}, False),
    "fused-head": ({}, True),  # fp32, no checkpointing, but TRL's chunked log-prob loss
    "trl-defaults": (
        {"bf16": True, "activation_checkpointing": True},
        True,
    ),  # SFTConfig's defaults + use_cpu
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-m", "--model", default="gemma-3-270m")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up")
    parser.add_argument("--variants", default="nevermind", help="comma-separated: nevermind, trl-defaults")
    parser.add_argument("--full", action="store_true", help="full finetuning instead of LoRA")
    args = parser.parse_args()

    from nevermind.training import TrainConfig, build_examples, build_trainer

    config = TrainConfig(
        model=args.model,
        recipe="instruction",
        limit=args.batch_size,
        batch_size=args.batch_size,
        max_length=args.max_length,
        lora=not args.full,
        output_dir="/tmp/nevermind-bench-train",
        max_steps=1,
    )
    examples = build_examples(config)
    print(f"torch threads: {torch.get_num_threads()}; model {args.model}; lora={config.lora}")

    plain = _plain_model(config)
    results = []
    for variant in args.variants.split(","):
        overrides, fused = VARIANTS[variant]
        trainer = build_trainer(config, examples, sft_overrides=overrides, fused_lm_head=fused)
        batch = _batch(trainer)
        tokens = int(batch["attention_mask"].sum())
        print(
            f"[{variant}] batch {tuple(batch['input_ids'].shape)}, {tokens} tokens, "
            f"{int((batch['labels'] != -100).sum())} with loss"
        )

        def plain_step():
            loss = plain(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
            ).loss
            loss.backward()
            plain.zero_grad(set_to_none=True)

        def trainer_step():
            trainer.training_step(trainer.model, dict(batch))
            trainer.model.zero_grad(set_to_none=True)

        trainer.train()  # one real optimizer step: sets up gradient checkpointing, autocast and trainer state
        plain_step()
        trainer_step()  # warm-up both
        plain_times = _time(plain_step, args.repeats)
        step_times = _time(trainer_step, args.repeats)
        p, s = statistics.median(plain_times), statistics.median(step_times)
        results.append((variant, p, s))
        print(
            f"[{variant}] plain fwd+bwd {p:.2f} s {['%.2f' % t for t in plain_times]}; "
            f"trainer step {s:.2f} s {['%.2f' % t for t in step_times]}; ratio {s / p:.2f}"
        )
    print("\nvariant         plain fwd+bwd   trainer step   ratio")
    for variant, p, s in results:
        print(f"{variant:<15} {p:>10.2f} s   {s:>10.2f} s   {s / p:>5.2f}")


if __name__ == "__main__":
    main()
