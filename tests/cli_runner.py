"""Run the `nevermind` CLI as a user does: a real subprocess, its exit code and output captured."""

import subprocess
import sys


def run_cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m nevermind.cli ARGS...` (arguments turned into strings); never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "nevermind.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False,
    )  # fmt: skip
