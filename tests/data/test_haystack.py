import re

from nevermind.data.haystack import clean_essay, haystack_text


def test_haystack_is_long_clean_prose():
    text = haystack_text()
    assert len(text) > 500_000
    assert "Get funded by" not in text
    assert text.count("\n\n") == 48  # 49 essays
    assert not re.search(r"[a-z][.!?][A-Z][a-z]", text)  # no sentences glued together
    assert "technological progress" in text


def test_clean_essay_undoes_the_scrape():
    raw = "\n\nWant to start a startup?  Get funded by\nY Combinator.\n\n\nNovember 2009I don't think\nso.The way it is."
    assert clean_essay(raw) == "I don't think so. The way it is."
