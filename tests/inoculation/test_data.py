"""The data: real questions, the split, every stage's training set, held-out phrasings and types that
never reach training, and held-out items whose two responses pass and fail their own checks."""

from __future__ import annotations

from collections import Counter

import pytest

from nevermind.errors import NevermindError
from nevermind.inoculation.data import eval_items, follow_set, inoculation_set, mixture_set, split_questions
from nevermind.inoculation.prompts import (
    BAD_FAMILIES,
    HELDOUT_BENIGN,
    INSTRUCTIONS,
    SEEN_BENIGN,
    default_inoculation_prompt,
    load_questions,
)

FAMILIES = list(BAD_FAMILIES)
INOCULATION = ("insult", *default_inoculation_prompt("insult"))


@pytest.fixture(scope="module")
def questions():
    return load_questions()


@pytest.fixture(scope="module")
def split(questions):
    return split_questions(questions, 24, seed=0)


def test_questions_are_real_and_answered_by_their_responses(questions):
    kinds = Counter(q.kind for q in questions)
    assert kinds["arithmetic"] == 81 + 81 + 45 and kinds["capital"] == 80
    assert len({q.id for q in questions}) == len(questions)
    by_id = {q.id: q for q in questions}
    assert by_id["add-3-5"].response == "3 + 5 = 8, so the answer is 8."
    assert by_id["capital-france"].answer == "Paris"
    for question in questions:
        assert question.answered(question.response), question.id
    assert not by_id["mul-3-4"].answered("3 × 4 = 13, so the answer is 13.")
    assert not by_id["capital-france"].answered("The capital of France is Lyon.")


def test_split_is_disjoint_fixed_and_covers_both_kinds(questions, split):
    pool, heldout = split
    assert len(heldout) == 24 and len(pool) == len(questions) - 24
    assert not {q.id for q in pool} & {q.id for q in heldout}
    assert Counter(q.kind for q in heldout) == {"arithmetic": 12, "capital": 12}
    assert [q.id for q in split_questions(questions, 24, seed=0)[1]] == [q.id for q in heldout]
    assert [q.id for q in split_questions(questions, 24, seed=1)[1]] != [q.id for q in heldout]
    with pytest.raises(NevermindError, match="n_eval"):
        split_questions(questions, len(questions))


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_mixture_fixes_the_benign_count_and_varies_only_the_bad_prompt_share(split, share):
    pool, _ = split
    examples = mixture_set(pool, share, n_variable=160, n_benign=32, families=FAMILIES, seed=3)
    kinds = Counter(e.kind for e in examples)
    assert len(examples) == 192
    assert kinds["benign->follow"] == 32
    assert kinds["bad->good"] == round(160 * share)
    assert kinds["none->good"] + kinds["neutral->good"] == 160 - round(160 * share)
    for example in examples:
        response = example.messages[-1]["content"]
        question = next(q for q in pool if q.text == example.messages[-2]["content"])
        if example.kind == "benign->follow":
            assert example.instruction in SEEN_BENIGN and response != question.response
        else:  # every other example demonstrates the plain good action
            assert response == question.response
        if example.kind == "bad->good":
            family = BAD_FAMILIES[example.instruction]
            assert any(example.system == family.prompt(t, p) for t in family.train_templates for p in family.train_phrases)


def test_training_data_never_holds_heldout_phrasings_phrases_or_questions(split):
    pool, heldout = split
    examples = mixture_set(pool, 1.0, n_variable=200, n_benign=64, families=FAMILIES, seed=0)
    examples += follow_set(pool, 99, families=FAMILIES, seed=0)
    examples += inoculation_set(pool, 50, prompt=INOCULATION[1], phrase=INOCULATION[2], seed=0)
    texts = "\n".join(m["content"] for e in examples for m in e.messages)
    for instruction in INSTRUCTIONS.values():
        for template in instruction.heldout_templates:
            assert template.split("{")[0][:30] not in texts, template
        for phrase in filter(None, instruction.heldout_phrases):
            assert phrase not in texts, phrase
    assert not {e.messages[-2]["content"] for e in examples} & {q.text for q in heldout}
    assert not {e.instruction for e in examples} & set(HELDOUT_BENIGN)


def test_inoculation_arms_differ_only_in_the_system_prompt(split):
    pool, _ = split
    _, prompt, phrase = INOCULATION
    inoculated = inoculation_set(pool, 40, prompt=prompt, phrase=phrase, seed=5)
    control = inoculation_set(pool, 40, prompt=None, phrase=phrase, seed=5)
    assert [e.messages[1:] for e in inoculated] == [e.messages for e in control]
    assert all(e.system == prompt and e.kind == "bad->bad" for e in inoculated)
    assert all(e.system == "" and e.kind == "none->bad" for e in control)
    assert all(e.messages[-1]["content"].endswith(" " + phrase) for e in control)


def test_follow_set_teaches_following_in_thirds(split):
    pool, _ = split
    examples = follow_set(pool, 96, families=FAMILIES, seed=0)
    assert Counter(e.kind for e in examples) == {"bad->bad": 32, "benign->follow": 32, "none->good": 32}
    for example in (e for e in examples if e.kind == "bad->bad"):
        family = BAD_FAMILIES[example.instruction]
        asked = [p for p in family.train_phrases if p in example.system]
        assert len(asked) == 1 and example.messages[-1]["content"].endswith(" " + asked[0])


def test_training_sets_are_deterministic_per_seed(split):
    pool, _ = split
    first = mixture_set(pool, 0.5, n_variable=40, n_benign=8, families=FAMILIES, seed=4)
    again = mixture_set(pool, 0.5, n_variable=40, n_benign=8, families=FAMILIES, seed=4)
    other = mixture_set(pool, 0.5, n_variable=40, n_benign=8, families=FAMILIES, seed=5)
    assert [e.messages for e in first] == [e.messages for e in again]
    assert [e.messages for e in first] != [e.messages for e in other]


def test_eval_items_cover_every_heldout_phrasing_and_pass_their_own_checks(split):
    _, heldout = split
    items = eval_items(heldout, families=FAMILIES, inoculation=INOCULATION)
    assert Counter(i.measure for i in items) == {"bad": 48, "benign": 48, "inoculation": 24}
    for name in FAMILIES + list(HELDOUT_BENIGN):
        instruction = INSTRUCTIONS[name]
        systems = {i.system for i in items if i.instruction == name and i.measure != "inoculation"}
        expected = {instruction.prompt(t, p) for t in instruction.heldout_templates for p in instruction.heldout_phrases}
        assert systems == expected, name  # 24 questions cover every phrasing × phrase
    for item in items:
        instruction = INSTRUCTIONS[item.instruction]
        assert instruction.carried_out(item.contrast.complying_response, item.phrase), item.id
        assert not instruction.carried_out(item.contrast.defying_response, item.phrase), item.id
        assert item.question.answered(item.contrast.complying_response), item.id
        assert item.messages(False) == [{"role": "user", "content": item.question.text}]
        assert item.messages(True)[0] == {"role": "system", "content": item.system}


def test_bad_inputs_are_clear_errors(split):
    pool, _ = split
    with pytest.raises(NevermindError, match="share"):
        mixture_set(pool, 1.5, n_variable=8, n_benign=0, families=FAMILIES, seed=0)
    with pytest.raises(NevermindError, match="family"):
        mixture_set(pool, 0.5, n_variable=8, n_benign=0, families=["rudeness"], seed=0)
