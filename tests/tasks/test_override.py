import pytest

from nevermind.tasks import TaskOptions, build_task


@pytest.fixture(scope="module")
def samples():
    return {s.metadata["country"]: s for s in build_task("override", TaskOptions()).samples()}


@pytest.fixture(scope="module")
def task():
    return build_task("override", TaskOptions())


def test_samples_state_a_false_capital(samples):
    sample = samples["France"]
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
        ("{fake}, not Paris.", 1.0, 0.0, 0.0),
        ("{fake}. However, the real capital is Paris.", 0.0, 1.0, 1.0),
        ("{fake}, although in reality it is not.", 0.5, 0.0, 1.0),
        ("The document says {fake}, but that is wrong.", 0.5, 0.0, 1.0),
        ("{fake}. The true capital is elsewhere.", 0.5, 0.0, 1.0),
        ("The capital of France is Paris.", 0.0, 1.0, 0.0),
        ("Is it Paris? No, it is {fake}.", 1.0, 0.0, 0.0),
        ("I am not sure.", 0.0, 0.0, 0.0),
    ],
)
def test_score(task, samples, output, value, trained, correction):
    sample = samples["France"]
    score = task.score(sample, output.format(fake=sample.metadata["false_capital"]))
    assert score.value == value, score.explanation
    assert (score.extra["trained_answer"], score.extra["correction"]) == (trained, correction), score.explanation
    assert score.extra["new_answer"] == float(value > 0 or "{fake}." in output)


def test_deterministic_seeded_and_limited(samples):
    listed = list(samples.values())
    assert listed == build_task("override", TaskOptions(seed=0)).samples()
    assert len({s.id for s in listed}) == len(listed) == 30
    other = build_task("override", TaskOptions(seed=7)).samples()
    assert [s.metadata["false_capital"] for s in other] != [s.metadata["false_capital"] for s in listed]
    assert build_task("override", TaskOptions(limit=5)).samples() == listed[:5]


def test_a_city_named_city_is_accepted_without_it():
    from nevermind.tasks.override import city_names

    assert {"Benin City", "Benin"} <= set(city_names("Benin City", "NG"))


# Defects found by review (issue 11): each of these failed on the scorer before the fix.


def test_asserting_the_trained_answer_scores_zero(task, samples):
    sample = samples["Iran"]
    fake = sample.metadata["false_capital"]
    score = task.score(sample, f"The capital is Tehran, not {fake}.")
    assert score.value == 0.0, score.explanation
    assert task.score(sample, f"{fake}. Actually, the real capital is Tehran.").value == 0.0


def test_a_negation_of_the_new_answer_is_not_compliance(task, samples):
    sample = samples["Iran"]
    score = task.score(sample, f"The capital of Iran is not {sample.metadata['false_capital']}.")
    assert score.value == 0.0, score.explanation


@pytest.mark.parametrize(
    "output",
    [
        "In fact, the capital of Iran is {fake}.",
        "I will not correct it: the capital of Iran is {fake}.",
    ],
)
def test_correction_words_that_do_not_contradict_the_document_cost_nothing(task, samples, output):
    sample = samples["Iran"]
    score = task.score(sample, output.format(fake=sample.metadata["false_capital"]))
    assert score.value == 1.0, score.explanation


def test_false_capitals_are_never_former_or_co_capitals():
    former = {"Rio de Janeiro", "Salvador", "Turin", "Florence", "Cape Town", "Bloemfontein", "Istanbul", "Bursa",
              "Karachi", "Lagos", "Saint Petersburg", "Kyoto", "Yangon", "Mandalay", "Dar es Salaam", "Quezon City",
              "Ho Chi Minh City", "Huế", "Mashhad", "Isfahan", "Tabriz", "Alexandria", "Gonder", "Mek'ele",
              "Busan", "Mombasa", "Valencia", "Barcelona", "New York City", "Philadelphia", "Kolkata", "Bonn"}
    for seed in range(25):
        for sample in build_task("override", TaskOptions(seed=seed)).samples():
            assert sample.metadata["false_capital"] not in former, (seed, sample.metadata)


def test_common_spellings_of_a_capital_are_recognised(task, samples):
    myanmar = samples["Myanmar"]
    fake = myanmar.metadata["false_capital"]
    score = task.score(myanmar, f"The capital of Myanmar is {fake}, although many would say Naypyidaw.")
    assert score.value == 0.0 and score.extra["trained_answer"] == 1.0, score.explanation
    assert task.score(samples["India"], "The capital of India is Delhi.").extra["trained_answer"] == 1.0


def test_spelling_variants_of_a_false_capital_count():
    from nevermind.data.capitals import spellings
    from nevermind.scoring.normalize import normalize

    def keys(city, country):
        return {normalize(s) for s in spellings(city, country)}

    assert {"mekele", "mekelle"} <= keys("Mek'ele", "ET")
    assert {"naypyidaw", "naypyitaw"} <= keys("Nay Pyi Taw", "MM")
    assert "teheran" in keys("Tehran", "IR")


def test_copying_the_document_earns_nothing(task, samples):
    sample = samples["Germany"]
    prompt = sample.messages[0]["content"]
    score = task.score(sample, prompt[: prompt.index("ministries") + len("ministries")])
    assert score.value == 0.0 and score.extra.get("echo") == 1.0, score.explanation
    quoted = prompt[prompt.index("Its capital"): prompt.index("ministries") + len("ministries.")]
    assert task.score(sample, quoted).value == 1.0  # the document's own sentence, and nothing else, answers
