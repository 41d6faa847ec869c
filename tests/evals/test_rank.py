"""Response ranking: negatives, scores consistent with the model's own scoring, the CLI."""

from __future__ import annotations

import json

import pytest

from nevermind.errors import NevermindError
from nevermind.evals.rank import RankPair, draw_negatives, end_of_turn, response_rank, truncate_tokens
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


def direct_scores(model, instruction, continuations):
    prompt = model.format_prompt(GenerateRequest(instruction, chat=True))
    return model.score([ScoreRequest(prompt, c) for c in continuations], batch_size=1)


def test_default_scores_whole_responses_with_the_end_of_turn_token(tiny_model):
    """The reference's setting: whole response, then the token that ends the assistant turn."""
    end = tiny_model.tokenizer.eos_token  # <|im_end|> closes a ChatML turn; <eos> the plain template's
    assert end_of_turn(tiny_model.tokenizer) == end
    result = response_rank(tiny_model, PAIRS, negatives=3, seed=1, batch_size=5)
    assert result.instructions == len(PAIRS) and 0.0 <= result.accuracy <= 1.0 and result.se >= 0
    assert (result.max_total_tokens, result.max_response_tokens, result.score_end) == (1024, None, True)
    record = result.records[2]
    texts = [PAIRS[2].response] + [PAIRS[j].response for j in record.random_sources]
    direct = direct_scores(tiny_model, PAIRS[2].instruction, [t + end for t in texts])
    assert direct[0].tokens[-1] in tiny_model.eos_token_ids  # the end token is scored
    assert record.real_logprob == pytest.approx(direct[0].mean_logprob, abs=1e-4)
    assert record.random_logprobs == pytest.approx([d.mean_logprob for d in direct[1:]], abs=1e-4)
    assert record.wins == sum(record.real_logprob > r for r in record.random_logprobs)
    assert result.accuracy == pytest.approx(sum(r.wins for r in result.records) / (3 * len(PAIRS)))
    again = response_rank(tiny_model, PAIRS, negatives=3, seed=1, batch_size=2)
    assert again.accuracy == result.accuracy


def test_total_length_bound_cuts_the_response_and_its_end_token(tiny_llama):
    prompt = tiny_llama.format_prompt(GenerateRequest(PAIRS[0].instruction, chat=True))
    room = 5
    total = len(tiny_llama.tokenizer(prompt).input_ids) + room
    result = response_rank(tiny_llama, PAIRS, negatives=2, seed=0, max_total_tokens=total)
    cut = truncate_tokens(tiny_llama.tokenizer, PAIRS[0].response, room)
    direct = direct_scores(tiny_llama, PAIRS[0].instruction, [cut])
    assert len(direct[0].tokens) == room and direct[0].tokens[-1] not in tiny_llama.eos_token_ids
    assert result.records[0].real_logprob == pytest.approx(direct[0].mean_logprob, abs=1e-4)


def test_token_cut_option_scores_the_first_tokens_only(tiny_gemma):
    result = response_rank(tiny_gemma, PAIRS, negatives=2, seed=0, max_response_tokens=4, score_end=False)
    record = result.records[1]
    texts = [PAIRS[1].response] + [PAIRS[j].response for j in record.random_sources]
    cut = [truncate_tokens(tiny_gemma.tokenizer, t, 4) for t in texts]
    direct = direct_scores(tiny_gemma, PAIRS[1].instruction, cut)
    # a decoded 4-token prefix may re-tokenize a token longer or shorter (digits, spaces): never the end token
    assert all(len(d.tokens) <= 5 and not set(d.tokens) & set(tiny_gemma.eos_token_ids) for d in direct)
    assert sum(len(d.tokens) == 4 for d in direct) >= 2
    assert [record.real_logprob, *record.random_logprobs] == pytest.approx([d.mean_logprob for d in direct], abs=1e-4)
    # a response shorter than the cut keeps its end token when asked to
    short = response_rank(tiny_gemma, PAIRS, negatives=2, seed=0, max_response_tokens=200)
    whole = response_rank(tiny_gemma, PAIRS, negatives=2, seed=0)
    assert short.accuracy == whole.accuracy and short.records[1].real_logprob == whole.records[1].real_logprob


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
    first = response_rank(tiny_llama, PAIRS, negatives=2, seed=0, records_path=records)
    lines = records.read_text().splitlines(keepends=True)
    assert len(lines) == len(PAIRS)
    records.write_text("".join(lines[:3]) + lines[3][:10])  # killed while writing the fourth
    again = response_rank(tiny_llama, PAIRS, negatives=2, seed=0, records_path=records)
    assert again.accuracy == first.accuracy and len(records.read_text().splitlines()) == len(PAIRS)
    # records are keyed by what was scored: other settings score anew, never reuse
    response_rank(tiny_llama, PAIRS, negatives=2, seed=0, max_response_tokens=3, records_path=records)
    assert len(records.read_text().splitlines()) == 2 * len(PAIRS)
