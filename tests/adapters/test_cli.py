"""`nevermind generate --adapter`: as a user runs it (a real subprocess)."""

import json

from tests.cli_runner import run_cli


def test_generate_with_adapters(tiny_llama_dir, tiny_llama):
    free = tiny_llama.generate(["hello"], __import__("nevermind.models", fromlist=["x"]).GenerationConfig(max_new_tokens=8))
    banned = free[0].text.strip()[:3] or "x"
    result = run_cli(
        "generate", "-m", str(tiny_llama_dir), "--max-new-tokens", "8", "--json",
        "--adapter", "rules:eos_weight=1e6", "--adapter", f"keywords:banned={banned}", "hello",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["finish_reason"] == "eos" and record["tokens"] == 2 and banned not in record["text"]


def test_bad_adapter_spec_is_one_line_exit_2_before_loading():
    for spec, words in [("nope", "unknown adapter"), ("rules:eos_weight=lots", "eos_weight"), ("rules:x", "key=value")]:
        result = run_cli("generate", "-m", "not-a-model-either", "--adapter", spec, "hi")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
        assert words in result.stderr
