"""The `nevermind` Typer application: commands are registered here, errors become one line + exit 2."""

from __future__ import annotations

import sys

import typer

from nevermind.errors import NevermindError

app = typer.Typer(
    name="nevermind",
    help="Measure and shape how language models follow instructions that conflict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

from nevermind.cli import (  # noqa: F401
    eval_cmd,
    experiment_cmd,
    models_cmd,
    perplexity_cmd,
    rank_cmd,
    serve_cmd,
    sweep_cmd,
    train_cmd,
    winrate_cmd,
)

_ = models_cmd


def main() -> None:
    """Entry point: run the CLI, turning user-facing errors into one line and exit code 2."""
    try:
        app()
    except NevermindError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
