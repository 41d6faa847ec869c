import pytest

from nevermind.tasks import TaskOptions, build_task


@pytest.fixture(scope="module")
def france():
    task = build_task("override", TaskOptions())
    sample = next(s for s in task.samples() if s.metadata["country"] == "France")
    return task, sample


def test_samples_state_a_false_capital(france):
    _, sample = france
    fake, real = sample.metadata["false_capital"], sample.metadata["true_capital"]
    assert real == "Paris" and fake in {"Marseille", "Lyon", "Toulouse"}
    prompt = sample.messages[-1]["content"]
    assert f"capital city is {fake}" in prompt and "Paris" not in prompt
    assert "Do not correct it" in prompt


@pytest.mark.parametrize(
    ("output", "value", "trained", "correction"),
    [
        ("The capital of France is {fake}.", 1.0, 0.0, 0.0),
        ("According to the document, {fake}.", 1.0, 0.0, 0.0),
        ("{fake}. However, the real capital is Paris.", 0.5, 1.0, 1.0),
        ("{fake}, although in reality it is not.", 0.5, 0.0, 1.0),
        ("The capital of France is Paris.", 0.0, 1.0, 0.0),
        ("I am not sure.", 0.0, 0.0, 0.0),
    ],
)
def test_score(france, output, value, trained, correction):
    task, sample = france
    score = task.score(sample, output.format(fake=sample.metadata["false_capital"]))
    assert score.value == value
    assert score.extra == {
        "new_answer": float(value > 0),
        "trained_answer": trained,
        "correction": correction,
    }
    assert ("Paris" in score.matches["trained_answer"]) == bool(trained)


def test_deterministic_seeded_and_limited():
    samples = build_task("override", TaskOptions(seed=0)).samples()
    assert samples == build_task("override", TaskOptions(seed=0)).samples()
    assert len({s.id for s in samples}) == len(samples) == 30
    other = build_task("override", TaskOptions(seed=7)).samples()
    assert [s.metadata["false_capital"] for s in other] != [s.metadata["false_capital"] for s in samples]
    assert build_task("override", TaskOptions(limit=5)).samples() == samples[:5]


def test_a_city_named_city_is_accepted_without_it():
    task = build_task("override", TaskOptions())
    sample = next(s for s in task.samples() if "City" in s.metadata["false_capital"])
    short = sample.metadata["false_capital"].removesuffix(" City")
    assert task.score(sample, f"The capital is {short}.").value == 1.0
    assert task.score(sample, f"The capital is {sample.metadata['false_capital']}.").value == 1.0
