"""The `nevermind` Typer application: commands are registered here, errors become one line + exit 2."""

from __future__ import annotations

import os
import sys
import warnings

import typer

from nevermind.errors import NevermindError, NevermindWarning

try:  # typer >= 0.2x carries its own copy of click; older ones use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

app = typer.Typer(
    name="nevermind",
    help="Measure and shape how language models follow instructions that conflict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Commands register themselves on `app` when imported; this order is the order of `--help`.
# isort: off
from nevermind.cli import models_cmd, train_cmd, eval_cmd, sweep_cmd, perplexity_cmd  # noqa: F401
from nevermind.cli import experiment_cmd, rank_cmd, serve_cmd, winrate_cmd  # noqa: F401
# isort: on


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """nevermind's own warnings as one line on stderr; other libraries' keep Python's format."""
    if issubclass(category, NevermindWarning):
        from nevermind.cli.console import err_console  # above a live progress bar, on one line

        err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def _check_arguments(arguments: list[str]) -> None:
    """Arguments whose bytes are not UTF-8 reach Python as lone surrogates, which fail far later
    (inside a tokenizer, or when a file name is printed): refuse them here, in one line."""
    for position, argument in enumerate(arguments, 1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            raw = os.fsencode(argument)
            raise NevermindError(f"argument {position} ({str(raw)[2:-1][:60]}) is not UTF-8 text; pass UTF-8 text") from None


def main() -> None:
    """Entry point: run the CLI, turning user-facing errors into one line and exit code 2."""
    warnings.showwarning = _show_warning
    arguments = sys.argv[1:]
    try:
        _check_arguments(arguments)
        command = typer.main.get_command(app)
        status = command.main(arguments, prog_name="nevermind", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:  # bare `nevermind`: the help, as before
        print(error.ctx.get_help() if error.ctx else error.format_message(), file=sys.stderr)
        sys.exit(2)
    except click_errors.UsageError as error:  # a bad flag or value: one line and where to read more
        where = f" (see {error.ctx.command_path} --help)" if error.ctx else ""
        print(f"error: {' '.join(error.format_message().split())}{where}", file=sys.stderr)
        sys.exit(2)
    except click_errors.ClickException as error:
        print(f"error: {' '.join(error.format_message().split())}", file=sys.stderr)
        sys.exit(error.exit_code)
    except typer.Abort:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except NevermindError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)
