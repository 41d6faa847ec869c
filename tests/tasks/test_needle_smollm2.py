"""Model-quality check: SmolLM2-135M-Instruct finds needles in short haystacks far above chance.

Chance is ~0: the answers (a 4-digit number, made-up names and places) cannot be guessed."""

import pytest

from nevermind.models.requests import GenerateRequest
from nevermind.tasks import TaskOptions, build_task


@pytest.mark.slow
def test_smollm2_retrieves_needles_at_the_shortest_length(smollm2):
    task = build_task("needle", TaskOptions(lengths=[100], depths=[0, 50, 100]), smollm2.tokenizer)
    samples = task.samples()
    assert len(samples) == 6 and len({s.metadata["needle"] for s in samples}) == 6
    outputs = smollm2.generate([GenerateRequest(s.messages) for s in samples], task.generation)
    scores = [task.score(s, g.text) for s, g in zip(samples, outputs)]
    passed = sum(score.value for score in scores)
    assert passed >= 4, [(s.id, g.text) for s, g in zip(samples, outputs)]
