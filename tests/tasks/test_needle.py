import pytest

from nevermind.data.haystack import haystack_text
from nevermind.tasks import TaskOptions, build_task
from nevermind.tasks.loader import count_tokens
from nevermind.tasks.needle import NEEDLES, NEEDLES_PER_CELL, cut_to_tokens, insert_at_depth, sentence_starts

HAY = "First sentence here. Second one is longer than the first. Third! Fourth? Fifth ends it."
NEEDLE = "The magic number is 7481."


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (0, "The magic number is 7481. First sentence here."),
        (100, "Fifth ends it. The magic number is 7481."),
        (30, "First sentence here. The magic number is 7481. Second one"),
        (75, "Third! The magic number is 7481. Fourth?"),
    ],
)
def test_needle_goes_to_the_nearest_sentence_boundary(depth, expected):
    document, actual = insert_at_depth(HAY, NEEDLE, depth)
    assert expected in document
    assert document.replace(NEEDLE, "").split() == HAY.split()  # nothing lost, nothing split
    assert 0 <= actual <= 100


def test_sentence_starts_skip_initials():
    text = "He lived in the U.S. for years. Then he left."
    starts = sentence_starts(text)
    assert text[starts[1] :].startswith("Then")
    assert len(starts) == 3


def test_cut_to_tokens_respects_the_budget(tiny_llama):
    tok = tiny_llama.tokenizer
    text = haystack_text()[:5000]
    for n in (10, 100, 400):
        cut = cut_to_tokens(tok, text, n)
        assert n - 12 <= count_tokens(tok, cut) <= n
        assert text.startswith(cut)
    assert cut_to_tokens(tok, text, 0) == ""


def test_samples_cover_the_grid_with_several_needles(tiny_model):
    options = TaskOptions(lengths=[100, 300], depths=[0, 50, 100])
    task = build_task("needle", options, tiny_model.tokenizer)
    samples = task.samples()
    assert len(samples) == 6 * NEEDLES_PER_CELL
    assert len({s.id for s in samples}) == len(samples)
    assert len({s.metadata["needle"] for s in samples}) >= 4
    for sample in samples:
        needle = next(n for n in NEEDLES if n.key == sample.metadata["needle"])
        prompt = sample.messages[-1]["content"]
        assert needle.sentence in prompt and needle.question in prompt
        assert (
            sample.metadata["length"] - 15 <= sample.metadata["document_tokens"] <= sample.metadata["length"]
        )
    cells = {(s.metadata["length"], s.metadata["depth"]) for s in samples[:6]}
    assert len(cells) == 6  # the first pass covers every cell


def test_samples_are_deterministic_and_seeded(tiny_llama):
    options = TaskOptions(lengths=[100], depths=[0, 100])
    first = build_task("needle", options, tiny_llama.tokenizer).samples()
    again = build_task("needle", TaskOptions(lengths=[100], depths=[0, 100]), tiny_llama.tokenizer).samples()
    assert first == again
    other = build_task(
        "needle", TaskOptions(lengths=[100], depths=[0, 100], seed=1), tiny_llama.tokenizer
    ).samples()
    assert [s.messages for s in other] != [s.messages for s in first]


def test_limit_takes_a_prefix_spread_over_the_grid(tiny_llama):
    full = build_task(
        "needle", TaskOptions(lengths=[100, 200], depths=[0, 100]), tiny_llama.tokenizer
    ).samples()
    limited = build_task(
        "needle", TaskOptions(lengths=[100, 200], depths=[0, 100], limit=4), tiny_llama.tokenizer
    )
    assert limited.samples() == full[:4]
    assert len({(s.metadata["length"], s.metadata["depth"]) for s in full[:4]}) == 4


def test_score(tiny_llama):
    task = build_task("needle", TaskOptions(lengths=[100], depths=[0, 50]), tiny_llama.tokenizer)
    sample = next(s for s in task.samples() if s.metadata["needle"] == "orion-number")
    good = task.score(sample, "The special magic number is seven thousand four hundred eighty-one.")
    assert good.value == 1.0 and good.matches["answer"] == ["7481"]
    bad = task.score(sample, "The number is 7418.")
    assert bad.value == 0.0 and bad.matches["answer"] == [] and "no needle answer" in bad.explanation


def test_needle_needs_a_tokenizer():
    from nevermind.errors import NevermindError

    with pytest.raises(NevermindError, match="tokenizer"):
        build_task("needle", TaskOptions(lengths=[100], depths=[0])).samples()


# Defects found by review (issue 11): each of these failed on the scorer before the fix.


@pytest.fixture(scope="module")
def orion(tiny_llama):
    task = build_task("needle", TaskOptions(lengths=[200], depths=[0, 50]), tiny_llama.tokenizer)
    samples = [s for s in task.samples() if s.metadata["needle"] == "orion-number"]
    return task, samples


@pytest.mark.parametrize("answer", ["7,481", "The number is 7,481.", "seven thousand, four hundred and eighty-one"])
def test_a_number_with_a_thousands_separator_is_the_number(orion, answer):
    task, samples = orion
    assert task.score(samples[0], answer).value == 1.0


def test_quoting_the_needle_sentence_is_an_answer_not_an_echo(orion):
    task, samples = orion
    score = task.score(samples[0], "The special magic number for the Orion archive is 7481.")
    assert score.value == 1.0 and score.extra.get("echo") == 0.0


def test_copying_the_document_from_its_start_earns_nothing(tiny_llama):
    task = build_task("needle", TaskOptions(lengths=[200], depths=[0]), tiny_llama.tokenizer)
    sample = task.samples()[0]
    document = sample.messages[0]["content"].split("<document>\n", 1)[1]
    echo = "<document>\n" + " ".join(document.split()[:40])  # the needle sentence, then the haystack
    assert task.score(sample, " ".join(document.split()[:40])[:-1]).value == 0.0
    score = task.score(sample, echo)
    assert sample.target["answers"][0].split()[0] in echo
    assert score.value == 0.0 and score.extra.get("echo") == 1.0, score.explanation
