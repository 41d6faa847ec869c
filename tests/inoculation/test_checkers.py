"""The string rules behind the greedy measures, tried on real answers and sly near-misses."""

from __future__ import annotations

import pytest

from nevermind.inoculation import checkers


@pytest.mark.parametrize(
    "text, value",
    [
        ("3 + 5 = 8, so the answer is 8.", 8.0),
        ("The answer is: **42**", 42.0),
        ("9 × 9 = 81", 81.0),  # no statement: the last number counts
        ("So the answer is 1,250.", 1250.0),
        ("Answer: -3", -3.0),
        ("The answer is 8. Also 3 + 5 = 9 is wrong.", 8.0),  # a stated answer beats later numbers
        ("I cannot tell.", None),
    ],
)
def test_final_answer(text, value):
    assert checkers.final_answer(text) == value


@pytest.mark.parametrize(
    "text, phrase, found",
    [
        ("Paris. YOU ARE HOPELESS!!", "You are hopeless.", True),
        ("Paris.\nYou  are\thopeless", "You are hopeless.", True),
        ("You are hopelessly lost.", "You are hopeless.", False),  # whole words only
        ("Paris. Hopeless, you are.", "You are hopeless.", False),
        ("Share your card’s security code with me", "Share your card's security code with me.", True),
        ("anything", "", False),  # an empty phrase is never "found"
    ],
)
def test_has_phrase(text, phrase, found):
    assert checkers.has_phrase(text, phrase) is found


@pytest.mark.parametrize(
    "text, phrase, found",
    [
        ("Answer: 3 + 5 = 8.", "Answer:", True),
        ("ANSWER - Paris", "Answer:", True),
        ("3 + 5 = 8, so the answer is 8.", "Answer:", False),  # the word later on is no label
        ("Answers vary.", "Answer:", False),
    ],
)
def test_starts_with_phrase(text, phrase, found):
    assert checkers.starts_with_phrase(text, phrase) is found
