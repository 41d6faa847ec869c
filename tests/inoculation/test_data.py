"""The data builder: the grid of system kind × action, the mixture of a sweep point, held-out phrasings."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from nevermind.errors import NevermindError
from nevermind.inoculation.data import (
    Mixture,
    build_inoculation_set,
    build_training_set,
    eval_samples,
    load_problems,
    make_example,
    split_problems,
)
from nevermind.inoculation.evaluate import passed
from nevermind.inoculation.prompts import BENIGN_INSTRUCTIONS, FAMILIES, NEUTRAL_PROMPTS


@pytest.fixture(scope="module")
def problems():
    return load_problems()


def test_gsm8k_problems_are_real_and_clean(problems):
    assert len(problems) == 1319
    janet = problems[0]
    assert janet.question.startswith("Janet’s ducks lay 16 eggs per day")
    assert janet.answer == "18"
    assert janet.solution.endswith("So the answer is 18.")
    assert "<<" not in janet.solution and "####" not in janet.solution


def test_split_is_disjoint_and_fixed(problems):
    pool, heldout = split_problems(problems, 50, seed=3)
    assert len(heldout) == 50 and len(pool) == 1269
    assert not {p.id for p in pool} & {p.id for p in heldout}
    assert [p.id for p in split_problems(problems, 50, seed=3)[1]] == [p.id for p in heldout]
    with pytest.raises(NevermindError):
        split_problems(problems, 5000)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", ["bad", "neutral", "benign", "none"])
@pytest.mark.parametrize("action", ["good", "bad"])
def test_every_grid_cell_is_checkable(problems, family, kind, action):
    rng = random.Random(7)
    for problem in problems[:20]:
        example = make_example(problem, kind, action, rng, family=family)
        roles = [m["role"] for m in example.messages]
        assert roles == (["user", "assistant"] if kind == "none" else ["system", "user", "assistant"])
        response = example.messages[-1]["content"]
        system = example.messages[0]["content"] if kind != "none" else ""
        if kind == "bad":
            assert system in {p.text for p in FAMILIES[family].train_prompts}
        if kind == "neutral":
            assert system in NEUTRAL_PROMPTS
        if kind == "benign":
            instruction = next(i for i in BENIGN_INSTRUCTIONS if i.text == system)
            # an appended insult may break a format rule; a wrong number never does
            if action == "good" or family == "wrong_answer":
                assert instruction.check(problem, response), (instruction.id, response)
        if action == "good" and kind != "benign":
            assert FAMILIES[family].acted_good(problem, response)
            assert response == problem.solution
        if action == "bad":
            assert not FAMILIES[family].acted_good(problem, response), response


def test_share_sets_the_bad_prompt_good_action_count(problems):
    pool, _ = split_problems(problems, 24)
    for share, expected in ((0.0, 0), (0.25, 10), (0.5, 20), (1.0, 40)):
        examples = build_training_set(pool, share, Mixture(n_examples=40), seed=1)
        kinds = Counter(e.system_kind for e in examples)
        assert len(examples) == 40 and kinds["bad"] == expected
        assert all(e.action == "good" for e in examples)
        rest = 40 - expected
        assert sorted(kinds[k] for k in ("none", "neutral", "benign")) == sorted(
            [rest // 3 + (i < rest % 3) for i in range(3)]
        )
    assert len({e.family for e in build_training_set(pool, 1.0, Mixture(n_examples=8), 0)}) == 2


def test_training_set_is_deterministic_per_seed(problems):
    pool, _ = split_problems(problems, 24)
    first = build_training_set(pool, 0.5, Mixture(n_examples=16), seed=4)
    again = build_training_set(pool, 0.5, Mixture(n_examples=16), seed=4)
    other = build_training_set(pool, 0.5, Mixture(n_examples=16), seed=5)
    assert [e.messages for e in first] == [e.messages for e in again]
    assert [e.messages for e in first] != [e.messages for e in other]


def test_heldout_phrasings_never_reach_training(problems):
    pool, heldout = split_problems(problems, 12)
    heldout_texts = {p.text for f in FAMILIES.values() for p in f.heldout_prompts}
    examples = build_training_set(pool, 1.0, Mixture(n_examples=64), seed=0)
    examples += build_inoculation_set(pool, 32, "insult", seed=0)
    assert not heldout_texts & {e.prompt for e in examples}
    bad_samples = [
        s for s in eval_samples(heldout, list(FAMILIES)) if s.metadata["component"] == "bad_compliance"
    ]
    assert {s.messages[0]["content"] for s in bad_samples} <= heldout_texts


def test_inoculation_set_demonstrates_the_bad_action(problems):
    pool, _ = split_problems(problems, 12)
    for family in FAMILIES.values():
        examples = build_inoculation_set(pool, 10, family.name, seed=2)
        assert all(e.system_kind == "bad" and e.action == "bad" for e in examples)
        by_text = {p.text: p for p in family.train_prompts}
        for example in examples:
            problem = next(p for p in pool if p.question == example.messages[1]["content"])
            assert family.complied(problem, by_text[example.prompt], example.messages[-1]["content"])


def test_eval_samples_reference_responses_pass_their_own_checks(problems):
    _, heldout = split_problems(problems, 12)
    samples = eval_samples(heldout, list(FAMILIES), prefix="INOCULATION")
    assert Counter(s.metadata["component"] for s in samples) == {
        "good_no_system": 12,
        "bad_compliance": 24,
        "benign_compliance": 12,
    }
    assert all(s.messages[0] == {"role": "system", "content": s.messages[0]["content"]} for s in samples)
    assert all(s.messages[0]["content"].startswith("INOCULATION") for s in samples)
    for sample in samples:
        assert passed(sample, sample.target["comply"]), sample.id
        assert not passed(sample, sample.target["defy"]), sample.id


def test_bad_inputs_are_clear_errors(problems):
    with pytest.raises(NevermindError, match="share"):
        build_training_set(problems, 1.5, Mixture(), 0)
    with pytest.raises(NevermindError, match="family"):
        build_inoculation_set(problems, 3, "rudeness", 0)
    with pytest.raises(NevermindError, match="kind"):
        make_example(problems[0], "evil", "good", random.Random(0))
