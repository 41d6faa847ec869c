"""`nevermind serve` on the command line: its help says what the server does, it needs the serve
extra only when it runs (one line naming the install command otherwise), and it takes --backend."""

from __future__ import annotations

import subprocess
import sys

from tests.cli_runner import run_cli

BLOCK_SERVE_EXTRA = "import sys; sys.modules['fastapi'] = sys.modules['uvicorn'] = None; "


def run_without_serve_extra(*args: str) -> subprocess.CompletedProcess:
    """The CLI with fastapi and uvicorn unimportable, as after the base install."""
    code = (
        BLOCK_SERVE_EXTRA
        + f"sys.argv = ['nevermind', *{list(args)!r}]; from nevermind.cli.app import main; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def test_help_names_the_batching_and_streaming_options():
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for option in ("--backend", "--max-batch", "--batch-window-ms", "--adapter", "--max-tokens"):
        assert option in result.stdout


def test_without_the_serve_extra_help_works_and_serving_names_the_install_command():
    assert run_without_serve_extra("serve", "--help").returncode == 0
    result = run_without_serve_extra("serve", "-m", "smollm2-135m-instruct")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: nevermind serve needs 'fastapi', which is not installed: pip install 'nevermind[serve]'"
    )


def test_an_unknown_backend_fails_before_loading_anything():
    result = run_cli("serve", "-m", "smollm2-135m-instruct", "--backend", "nope")
    assert result.returncode == 2
    assert "unknown backend 'nope'" in result.stderr and "Traceback" not in result.stderr
