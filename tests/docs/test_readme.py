"""The README's first Python example runs as written and prints an answer (issue 10: it printed ""
because a plain string was continued as raw text while the CLI formatted it as chat)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, "README has no python example"
    return match.group(1)


@pytest.mark.slow
def test_readme_python_example_prints_an_answer():
    code = first_python_block()
    assert "load_model(" in code and ".generate(" in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    lines = [line for line in printed.getvalue().splitlines() if line.strip()]
    answer = lines[0]
    assert answer.split()[-1] in {"eos", "length", "stop"}
    text = answer.rsplit(" ", 1)[0]
    assert len(text.split()) >= 2, f"the example printed no answer: {answer!r}"
    assert "paris" in text.lower()
    assert lines[1].startswith("True")  # " Paris" is more likely than " Berlin" after the context
