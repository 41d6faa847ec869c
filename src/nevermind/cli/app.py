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

from nevermind.cli import models_cmd  # noqa: E402  (commands register themselves on `app`)
from nevermind.cli import train_cmd  # noqa: E402,F401
from nevermind.cli import eval_cmd  # noqa: E402,F401
from nevermind.cli import sweep_cmd  # noqa: E402,F401
from nevermind.cli import perplexity_cmd  # noqa: E402,F401
from nevermind.cli import experiment_cmd, rank_cmd, serve_cmd, winrate_cmd  # noqa: E402,F401

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
