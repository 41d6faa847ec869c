"""Finetuning on the tiny models: prompts carry no loss, the loss falls, checkpoints load and generate."""

import json

import pytest
import torch

from nevermind.errors import NevermindError
from nevermind.models import load_model
from nevermind.models.hf import load_pretrained
from nevermind.models.requests import GenerateRequest, GenerationConfig
from nevermind.training import TrainConfig, build_config, build_trainer, prompt_completion, train
from nevermind.training.trainer import ADAPTER_DIR, TRAIN_RECORD
from tests.cli_runner import run_cli

WORDS = ["apple", "pear", "plum", "fig"]


def conversations(system: bool = False):
    out = []
    for word in WORDS * 2:
        turns = [
            {"role": "user", "content": f"Repeat the word {word}."},
            {"role": "assistant", "content": f"{word} " * 3},
        ]
        if system:
            turns.insert(0, {"role": "system", "content": "Answer tersely."})
        out.append(turns)
    return out


def tiny_config(model_dir, tmp_path, **overrides):
    values = dict(
        model=str(model_dir),
        output_dir=str(tmp_path / "ckpt"),
        max_steps=2,
        batch_size=4,
        learning_rate=5e-3,
        max_length=64,
        device="cpu",
        warmup_ratio=0.0,
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(params=["llama", "gemma3"])
def tiny_dir(request):
    return request.getfixturevalue("tiny_llama_dir" if request.param == "llama" else "tiny_gemma_dir")


def test_prompt_positions_are_masked_in_the_collated_batch(tiny_dir, tmp_path):
    trainer = build_trainer(tiny_config(tiny_dir, tmp_path), conversations(system=True))
    tokenizer = trainer.processing_class
    batch = next(iter(trainer.get_train_dataloader()))
    labels, ids, mask = batch["labels"], batch["input_ids"], batch["attention_mask"]
    for row in range(ids.shape[0]):
        real = ids[row][mask[row].bool()].tolist()
        row_labels = labels[row][mask[row].bool()].tolist()
        text = tokenizer.decode(real)
        # find this row's conversation and its prompt length in tokens
        conversation = next(c for c in conversations(system=True) if c[-2]["content"] in text)
        pc = prompt_completion(tokenizer, conversation)
        prompt_len = len(tokenizer(pc["prompt"]).input_ids)
        assert all(label == -100 for label in row_labels[:prompt_len]), "prompt tokens carry loss"
        assert row_labels[prompt_len:] == real[prompt_len:], "completion tokens must all carry loss"
        assert real[-1] == tokenizer.eos_token_id  # the model learns to stop
        assert tokenizer.decode(real[prompt_len:]).startswith(conversation[-1]["content"].strip()[:5])
    assert (labels[~mask.bool()] == -100).all(), "padding carries no loss"


def test_plain_template_prompt_is_seed_001_format(tiny_gemma_dir, tmp_path):
    trainer = build_trainer(tiny_config(tiny_gemma_dir, tmp_path), conversations())
    row = trainer.train_dataset[0]
    text = trainer.processing_class.decode(row["input_ids"])
    assert "<|user|>\nRepeat the word" in text and "\n<|assistant|>\n" in text
    prompt_len = text.index("<|assistant|>\n") + len("<|assistant|>\n")
    masked = sum(1 for label in row["labels"] if label == -100)
    assert trainer.processing_class.decode(row["input_ids"][:masked]) == text[:prompt_len]


def test_loss_decreases_and_checkpoint_loads_and_generates(tiny_llama_dir, tmp_path):
    # one batch holds all eight examples, so every step's loss is measured on the same data
    config = tiny_config(
        tiny_llama_dir, tmp_path, max_steps=8, batch_size=8, learning_rate=1e-2, lora_dropout=0.0
    )
    path = train(config, conversations())
    record = json.loads((path / TRAIN_RECORD).read_text())
    losses = [h["loss"] for h in record["history"] if "loss" in h]
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.3, losses
    assert all(later < earlier for earlier, later in zip(losses[1:], losses[2:])), losses
    assert (path / ADAPTER_DIR / "adapter_config.json").is_file()
    module, _ = load_pretrained(str(path), device="cpu")
    assert not any("lora" in name for name, _ in module.named_parameters())  # merged, plain model
    model = load_model(str(path), device="cpu")
    out = model.generate(
        [GenerateRequest([{"role": "user", "content": "Repeat the word fig."}])],
        GenerationConfig(max_new_tokens=6),
    )
    assert out[0].token_ids


def test_merged_checkpoint_equals_adapter_on_base(tiny_gemma_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    path = train(tiny_config(tiny_gemma_dir, tmp_path, learning_rate=5e-2), conversations())
    merged, _ = load_pretrained(str(path), device="cpu")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_gemma_dir), dtype=torch.float32).eval()
    ids = torch.tensor([[2, 100, 200, 300, 400]])
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, str(path / ADAPTER_DIR)).eval()  # wraps `base` in place
        merged_logits = merged(ids).logits
        assert torch.allclose(merged_logits, adapted(ids).logits, atol=1e-4)
        assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # training changed the model


def test_full_finetuning_changes_all_weights(tiny_llama_dir, tmp_path):
    path = train(
        tiny_config(tiny_llama_dir, tmp_path, lora=False, max_steps=1, learning_rate=1e-2), conversations()
    )
    assert not (path / ADAPTER_DIR).exists()
    tuned, _ = load_pretrained(str(path), device="cpu")
    base, _ = load_pretrained(str(tiny_llama_dir), device="cpu")
    layer = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(dict(tuned.named_parameters())[layer], dict(base.named_parameters())[layer])


def test_config_precedence_and_errors(tmp_path):
    file = tmp_path / "train.yaml"
    file.write_text("preset: mini\nlearning_rate: 0.001\nseed: 4\n")
    config = build_config(None, file, {"seed": 7})
    assert (config.preset, config.max_length, config.learning_rate, config.seed) == ("mini", 256, 0.001, 7)
    paper = build_config("paper")
    assert (
        paper.learning_rate,
        paper.effective_batch_size,
        paper.max_length,
        paper.lr_scheduler,
        paper.warmup_ratio,
    ) == (1e-5, 64, 2048, "linear", 0.03)
    file.write_text("learning_rate: [1\n")
    with pytest.raises(NevermindError, match=r"train.yaml:\d+: malformed YAML"):
        build_config(None, file)
    file.write_text("learning_rate: fast\n")
    with pytest.raises(NevermindError, match="learning_rate"):
        build_config(None, file)
    with pytest.raises(NevermindError, match="unknown recipe"):
        build_config(None, None, {"recipe": "poetry"})


def test_cli_malformed_data_is_one_line_exit_2(tiny_llama_dir, tmp_path):
    data = tmp_path / "recipes.jsonl"
    data.write_text('{"instruction": "Bake bread.", "response": "Knead."}\n{"instruction": 3}\n')
    result = run_cli(
        "train",
        "-m",
        str(tiny_llama_dir),
        "--recipe",
        "single-task:recipes",
        "--data",
        str(data),
        "-o",
        str(tmp_path / "out"),
        timeout=300,
    )
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [f'error: {data}:2: "instruction" and "response" must both be strings']
    assert "Traceback" not in result.stderr


def test_cli_trains_a_user_recipe(tiny_llama_dir, tmp_path):
    data = tmp_path / "chess.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": "Play chess.", "response": f"1. e4 e5 2. Nf3 Nc{i}"}) + "\n"
            for i in range(4)
        )
    )
    out = tmp_path / "out"
    result = run_cli(
        "train",
        "-m",
        str(tiny_llama_dir),
        "--recipe",
        "single-task:chess",
        "--data",
        str(data),
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "-o",
        str(out),
        "--device",
        "cpu",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(out)
    assert (out / "model.safetensors").is_file() and (out / TRAIN_RECORD).is_file()


def test_completion_text_ends_with_the_eos_the_loss_covers(tiny_dir, tmp_path):
    """prompt_completion's completion is exactly the text whose tokens carry loss (eos included), so
    a measurement that scores it scores what was trained (nevermind.inoculation relies on this)."""
    conversation = conversations(system=True)[0]
    trainer = build_trainer(tiny_config(tiny_dir, tmp_path), [conversation])
    tokenizer = trainer.processing_class
    completion = prompt_completion(tokenizer, conversation)["completion"]
    assert completion.endswith(tokenizer.eos_token) and completion.count(tokenizer.eos_token) == 1
    row = trainer.train_dataset[0]
    labelled = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    assert tokenizer.decode(labelled) == completion
