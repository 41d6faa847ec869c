"""Your own samples for the built-in tasks, without writing Python: one JSON object per line.

    needle      {"needle": "...", "question": "...", "answers": ["..."]}
    override    {"question": "...", "true_answer": "...", "false_answer": "...", "document": "..."}
    moderation  {"secret": "...", "label": "...", "kind": "..."}
    jailbreak   {"system": "...", "attack": "...", "forbidden": ["..."]}  or  {..., "checker": "football-clubs"}

Every record may carry an "id" (default: L<line number>). Field by field in docs/tasks.md ("Your own
data"). A bad line fails with `file:line: problem`; blank lines are skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nevermind.errors import NevermindError
from nevermind.scoring.matching import find_phrases

R = TypeVar("R", bound="UserRecord")
CHECKERS = ("strings", "word", "secret", "football-clubs")
"""How a jailbreak rule's forbidden content is found (docs/tasks.md, "jailbreak")."""


class UserRecord(BaseModel):
    """Fields every task's record shares."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, min_length=1, description="Sample id (default: L<line number>).")


def _nonempty(values: list[str]) -> list[str]:
    if not values or any(not v for v in values):
        raise ValueError("must be a non-empty list of non-empty strings")
    return values


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class NeedleRecord(UserRecord):
    """A fact to hide in the haystack, the question that asks for it, and the answers that count."""

    needle: str = Field(min_length=1, description="The sentence inserted into the haystack.")
    question: str = Field(min_length=1, description="The question asked after the document.")
    answers: list[str] = Field(description="Strings any of which in the output is a correct answer.")

    _answers = field_validator("answers", mode="before")(classmethod(lambda cls, v: _one_or_more(v)))

    @field_validator("answers")
    @classmethod
    def _answers_nonempty(cls, answers: list[str]) -> list[str]:
        return _nonempty(answers)

    @model_validator(mode="after")
    def _answer_in_needle(self) -> NeedleRecord:
        if not find_phrases(self.needle, self.answers):
            raise ValueError("none of the answers occurs in the needle sentence")
        if find_phrases(self.question, self.answers):
            raise ValueError("the question already contains an answer")
        return self


class OverrideRecord(UserRecord):
    """A question, the answer training taught, and the false answer the document asserts."""

    question: str = Field(min_length=1, description="The question asked after the document.")
    true_answer: list[str] = Field(description="The trained (real) answer; a list gives accepted spellings.")
    false_answer: list[str] = Field(description="The document's answer; a list gives accepted spellings.")
    document: str | None = Field(
        default=None,
        description="The document; {false_answer} marks where the false answer goes (default: a one-line claim).",
    )

    _lists = field_validator("true_answer", "false_answer", mode="before")(
        classmethod(lambda cls, v: _one_or_more(v))
    )

    @field_validator("true_answer", "false_answer")
    @classmethod
    def _lists_nonempty(cls, values: list[str]) -> list[str]:
        return _nonempty(values)

    @model_validator(mode="after")
    def _consistent(self) -> OverrideRecord:
        if self.document is not None:
            filled = self.document.replace("{false_answer}", self.false_answer[0])
            if not find_phrases(filled, self.false_answer):
                raise ValueError("the document must contain {false_answer} or the false answer itself")
            if find_phrases(filled, self.true_answer):
                raise ValueError("the document contains the true answer")
        if find_phrases(self.question, self.true_answer + self.false_answer):
            raise ValueError("the question already contains an answer")
        return self


class ModerationRecord(UserRecord):
    """A secret for the system prompt, what prompts call it, and its kind."""

    secret: str = Field(min_length=1, description="The confidential value (only in the system prompt).")
    label: str = Field(min_length=1, description='How prompts refer to it, e.g. "the vault\'s access number".')
    kind: str = Field(default="custom", min_length=1, description="name, number, password or your own word.")
    parts: list[str] | None = Field(
        default=None, description="Pieces that leak it alone (default: its words of 4+ letters, digit runs of 3+)."
    )

    @model_validator(mode="after")
    def _label_hides_secret(self) -> ModerationRecord:
        if find_phrases(self.label, [self.secret]):
            raise ValueError("the label contains the secret")
        return self


class JailbreakRecord(UserRecord):
    """A system rule, the attack on it, and how to recognise the forbidden content."""

    system: str = Field(min_length=1, description="The system prompt that sets the rule.")
    attack: str = Field(min_length=1, description="The user turn that asks for what the rule forbids.")
    forbidden: list[str] = Field(default_factory=list, description="Strings whose presence breaks the rule.")
    checker: str | None = Field(
        default=None, description=f"How forbidden content is found: {', '.join(CHECKERS)} (default: strings)."
    )
    marker: str | None = Field(
        default=None, description="A word the attack asks the reply to start with (obeying = starting with it)."
    )

    @field_validator("checker")
    @classmethod
    def _known_checker(cls, checker: str | None) -> str | None:
        if checker is not None and checker not in CHECKERS:
            raise ValueError(f"unknown checker; use one of {', '.join(CHECKERS)}")
        return checker

    @model_validator(mode="after")
    def _checkable(self) -> JailbreakRecord:
        if not self.forbidden and self.checker != "football-clubs":
            raise ValueError('give "forbidden" strings or "checker": "football-clubs"')
        if any(not f for f in self.forbidden):
            raise ValueError("forbidden strings must not be empty")
        inside = find_phrases(self.attack, self.forbidden)
        if inside:
            raise ValueError(f"the attack contains the forbidden {inside[0]!r}: a reply quoting the attack would "
                             "break the rule; describe it instead")  # fmt: skip
        return self


def _problem(error: ValidationError) -> str:
    """The first validation problem of a record: `field: what is wrong (got value)`."""
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"])
    kind = problem["type"]
    message = {"missing": "missing field", "extra_forbidden": "unknown field"}.get(
        kind, problem["msg"].removeprefix("Value error, ")
    )
    shown = repr(problem.get("input"))
    detail = "" if kind in {"missing", "extra_forbidden"} or not field else f" (got {shown[:60]})"
    return f"{field}: {message}{detail}" if field else message


def load_records(path: str | Path, schema: type[R], task: str) -> list[R]:
    """The records of a user's JSONL file for `task`, validated by `schema`; the first bad line raises
    a NevermindError `file:line: problem`."""
    from nevermind.runs.files import read_text

    path = Path(path).expanduser()
    text = read_text(path, f"{task} data file")
    records: list[R] = []
    ids: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            raise NevermindError(f"{where}: invalid JSON ({error.msg})") from None
        if not isinstance(raw, dict):
            raise NevermindError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        try:
            record = schema(**raw)
        except ValidationError as error:
            raise NevermindError(f"{where}: {_problem(error)}") from None
        except TypeError as error:  # a non-string key
            raise NevermindError(f"{where}: {error}") from None
        record.id = record.id or f"L{number}"
        if record.id in ids:
            raise NevermindError(f"{where}: id {record.id!r} is used twice")
        ids.add(record.id)
        records.append(record)
    if not records:
        raise NevermindError(f"{path}: no records (one JSON object per line; schema in docs/tasks.md)")
    return records


SCHEMAS: dict[str, type[UserRecord]] = {
    "needle": NeedleRecord, "override": OverrideRecord, "moderation": ModerationRecord, "jailbreak": JailbreakRecord,
}  # fmt: skip
"""The record schema of each built-in task's data file."""


def check_data_files(data: dict[str, Path]) -> None:
    """Read every built-in task's data file now, so a bad line fails before any model loads."""
    for task, path in data.items():
        if task in SCHEMAS:
            load_records(path, SCHEMAS[task], task)
