"""The one config loader: a YAML mapping validated by a pydantic model, CLI flags on top, and one
formatter that turns the first validation problem into a line naming where it came from
(`file:line: field: problem`, or `--flag: problem` for a command-line value).

Every pipeline (eval, experiment, sweep, train, perplexity) reads its YAML through here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from nevermind.errors import NevermindError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path, what: str = "config") -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping in a YAML file and the line (1-based) of each top-level key.

    Missing, unreadable, non-UTF-8 or malformed files, and files that are not a mapping, raise a
    NevermindError naming the file and line."""
    from nevermind.runs.files import read_text  # runs/ imports this module: import on use

    path = Path(path)
    text = read_text(path, what)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise NevermindError(f"{where}: malformed YAML: {problem}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise NevermindError(f"{path}:1: a {what} must be a mapping of option: value")
    lines = {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}
    return data, lines


def error_line(
    error: ValidationError,
    source: str | Path | None = None,
    lines: Mapping[str, int] | None = None,
    from_cli: set[str] | frozenset[str] = frozenset(),
    *,
    prefix: str = "",
) -> str:
    """The first validation problem as one line: `file:line: field: problem (got value)`,
    or `--flag: problem` when the value came from the command line."""
    problem = error.errors()[0]
    loc = [str(part) for part in problem["loc"]]
    key = loc[0] if loc else ""
    field = prefix + (".".join(loc) or "config")
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown option"
    shown = problem.get("input")
    detail = "" if problem["type"] in {"missing", "extra_forbidden"} else f" (got {_short(shown)})"
    if key in from_cli or source is None:
        return f"--{key.replace('_', '-')}: {message}{detail}" if key else f"{message}{detail}"
    line = (lines or {}).get(key)
    where = f"{source}:{line}" if line else str(source)
    return f"{where}: {field}: {message}{detail}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_config(
    model: type[M],
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    what: str = "config",
    prepare: Callable[[dict[str, Any], dict[str, int]], None] | None = None,
    explain: Callable[[ValidationError, set[str]], str | None] | None = None,
) -> M:
    """`model` validated from a YAML file (optional) with every override that is not None on top.

    `prepare(data, lines)` may rewrite the file's mapping in place before validation (aliases,
    shorthands); `explain(error, from_cli)` may return a friendlier line for known problems."""
    data, lines = read_yaml(path, what) if path is not None else ({}, {})
    if prepare is not None:
        prepare(data, lines)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    try:
        return model(**{**data, **given})
    except ValidationError as error:
        friendly = explain(error, set(given)) if explain else None
        raise NevermindError(friendly or error_line(error, path, lines, set(given))) from None
    except TypeError as error:  # e.g. a non-string key in the YAML mapping
        raise NevermindError(f"{path or what}: {error}") from None
