"""`nevermind train`: finetune a base model on a seed-001 recipe (TRL SFT, LoRA by default)."""

from __future__ import annotations

from typing import Annotated

import typer

from nevermind.cli.app import app
from nevermind.cli.console import err_console


@app.command("train")
def train_command(
    model: Annotated[
        str | None,
        typer.Option("-m", "--model", help="Base model: bundled name, hub id, local dir or .gguf."),
    ] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="instruction, response, or single-task:NAME (gsm8k, mbpp, poems; others need --data)."
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="JSONL file or `datasets` folder of conversations (see docs/training.md)."),
    ] = None,
    lora: Annotated[
        bool | None, typer.Option("--lora/--full", help="LoRA adapter (default) or full finetuning.")
    ] = None,
    config_file: Annotated[
        str | None, typer.Option("--config", help="YAML file of TrainConfig keys.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="mini (CPU, < 15 min) or paper (seed 001, GPU).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (overrides epochs).", min=1)
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data.", min=0.0)] = None,
    limit: Annotated[int | None, typer.Option(help="Examples drawn from the recipe.", min=1)] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", help="Peak learning rate.", min=0.0)
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per forward pass.", min=1)] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Forward passes per optimizer step.", min=1)
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Tokens per example (truncated beyond).", min=8)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data sampling and training.")] = None,
    output_dir: Annotated[
        str | None, typer.Option("-o", "--output-dir", help="Checkpoint directory.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
) -> None:
    """Finetune MODEL on a recipe; the checkpoint directory then works wherever a model is named (-m DIR)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from nevermind.extras import require
    from nevermind.training import TrainProgress, build_config, train

    for module in ("trl", "peft", "datasets"):  # before any work: one line naming the extra
        require("train", module, purpose="nevermind train")

    _quiet_libraries()

    config = build_config(
        preset,
        config_file,
        dict(
            model=model,
            recipe=recipe,
            data=data,
            lora=lora,
            max_steps=max_steps,
            epochs=epochs,
            limit=limit,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accum=grad_accum,
            max_length=max_length,
            seed=seed,
            output_dir=output_dir,
            device=device,
        ),
    )
    mode = f"LoRA r={config.lora_r}" if config.lora else "full finetuning"
    err_console.print(
        f"[bold]train[/bold] {config.model} · recipe {config.recipe} · {mode} · "
        f"lr {config.learning_rate:g} · "
        f"batch {config.batch_size}×{config.grad_accum} · max length {config.max_length} · seed {config.seed}"
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task("preparing", total=None, loss="")

        def on_status(message: str) -> None:
            progress.update(task, description=message)

        def on_progress(update: TrainProgress) -> None:
            loss = f"loss {update.loss:.4f}" if update.loss is not None else ""
            if "eval_loss" in update.logs:
                loss = f"eval loss {update.logs['eval_loss']:.4f}"
            progress.update(
                task,
                description="training",
                total=update.total_steps,
                completed=update.step,
                loss=loss or progress.tasks[0].fields["loss"],
            )
            if "loss" in update.logs or "eval_loss" in update.logs:
                progress.console.print(f"[dim]step {update.step}/{update.total_steps} {loss}[/dim]")

        path = train(config, on_progress=on_progress, on_status=on_status)
    err_console.print(f"checkpoint: {path}  (use it with -m {path})")
    typer.echo(str(path))


def _quiet_libraries() -> None:
    """Progress goes through one rich bar: silence the libraries' own bars and deprecation chatter."""
    import warnings

    from nevermind.extras import require

    require("train", "datasets").disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft)\.")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|peft)\.")
