"""Response ranking: negatives, scores consistent with the model's own scoring, the CLI."""

from __future__ import annotations

import json

import pytest

from nevermind.errors import NevermindError
from nevermind.evals.rank import RankPair, draw_negatives, response_rank, truncate_tokens
from nevermind.models.requests import GenerateRequest, ScoreRequest
from tests.cli_runner import run_cli

PAIRS = [
    RankPair(
        "Give me a recipe for tiramisu.",
        "Tiramisu is made by layering coffee-soaked ladyfingers with mascarpone.",
    ),
    RankPair(
        "Write a haiku about rain.",
        "Soft rain on the roof / the garden drinks in silence / puddles hold the sky",
    ),
    RankPair("What is 12 times 12?", "12 times 12 is 144."),
    RankPair("Name three primary colours.", "Red, yellow and blue."),
    RankPair("Translate 'good morning' to French.", "Bonjour."),
    RankPair("Who wrote Hamlet?", "William Shakespeare wrote Hamlet around 1600."),
    RankPair("Suggest a name for a cat.", "How about Miso? It is short, warm and easy to call."),
    RankPair("Explain what a prime number is.", "A prime number has exactly two divisors: one and itself."),
]


def test_negatives_are_distinct_others_and_reproducible():
    drawn = draw_negatives(30, 5, seed=3)
    assert drawn == draw_negatives(30, 5, seed=3) and drawn != draw_negatives(30, 5, seed=4)
    for i, others in enumerate(drawn):
        assert len(set(others)) == 5 and i not in others and all(0 <= j < 30 for j in others)
    with pytest.raises(NevermindError, match="more than 5"):
        draw_negatives(5, 5, seed=0)


def test_scores_are_the_models_mean_logprobs(tiny_model):
    tiny_llama = tiny_model  # both architectures: the shared-context path must equal plain scoring
    result = response_rank(tiny_llama, PAIRS, negatives=3, seed=1, max_response_tokens=12, batch_size=5)
    assert result.instructions == len(PAIRS) and 0.0 <= result.accuracy <= 1.0 and result.se >= 0
    record = result.records[2]
    prompt = tiny_llama.format_prompt(GenerateRequest(PAIRS[2].instruction, chat=True))
    assert prompt.count(PAIRS[2].instruction) == 1 and prompt != PAIRS[2].instruction  # chat-formatted
    others = [truncate_tokens(tiny_llama.tokenizer, PAIRS[j].response, 12) for j in record.random_sources]
    direct = tiny_llama.score(
        [ScoreRequest(prompt, PAIRS[2].response)] + [ScoreRequest(prompt, o) for o in others]
    )
    assert record.real_logprob == pytest.approx(direct[0].mean_logprob, abs=1e-5)
    assert record.random_logprobs == pytest.approx([d.mean_logprob for d in direct[1:]], abs=1e-5)
    wins = sum(record.real_logprob > r for r in record.random_logprobs)
    assert record.wins == wins
    assert result.accuracy == pytest.approx(sum(r.wins for r in result.records) / (3 * len(PAIRS)))
    again = response_rank(tiny_llama, PAIRS, negatives=3, seed=1, max_response_tokens=12, batch_size=2)
    assert again.accuracy == result.accuracy


def test_truncation_cuts_to_token_count(tiny_gemma):
    text = "one two three four five six seven eight nine ten eleven twelve"
    cut = truncate_tokens(tiny_gemma.tokenizer, text, 4)
    assert text.startswith(cut) and len(tiny_gemma.tokenizer(cut, add_special_tokens=False).input_ids) == 4
    assert truncate_tokens(tiny_gemma.tokenizer, "short", 4) == "short"


def test_rank_cli_on_a_jsonl_file(tiny_llama_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"instruction": p.instruction, "response": p.response}) + "\n" for p in PAIRS)
    )
    out = tmp_path / "rank.json"
    result = run_cli(
        "rank", "-m", str(tiny_llama_dir), "--pairs", str(pairs), "--negatives", "2", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    saved = json.loads(out.read_text())
    assert saved["instructions"] == len(PAIRS) and len(saved["records"][0]["random_logprobs"]) == 2
    assert "P(real > random)" in result.stdout
    pairs.write_text('{"instruction": "x", "response": "y"}\n{"instruction": "x"}\n')
    result = run_cli("rank", "-m", str(tiny_llama_dir), "--pairs", str(pairs))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{pairs}:2: missing string field 'response'" in result.stderr


def test_records_file_resumes(tiny_llama, tmp_path):
    records = tmp_path / "rank.records.jsonl"
    first = response_rank(tiny_llama, PAIRS, negatives=2, seed=0, max_response_tokens=6, records_path=records)
    lines = records.read_text().splitlines(keepends=True)
    assert len(lines) == len(PAIRS)
    records.write_text("".join(lines[:3]) + lines[3][:10])  # killed while writing the fourth
    again = response_rank(tiny_llama, PAIRS, negatives=2, seed=0, max_response_tokens=6, records_path=records)
    assert again.accuracy == first.accuracy and len(records.read_text().splitlines()) == len(PAIRS)
