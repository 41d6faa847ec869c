"""`nevermind models` never cuts a model name: piped, in a narrow terminal or in a wide one."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from nevermind.models import BUNDLED
from tests.cli_runner import run_cli


def in_terminal(columns):
    """Run `nevermind models` with stdout on a real pseudo-terminal `columns` wide; return what it shows."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.run([sys.executable, "-m", "nevermind.cli", "models"], stdout=follower,
                             stderr=subprocess.DEVNULL, env=env, timeout=120, check=False)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal is closed once everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode()


def test_piped_output_keeps_whole_names_one_line_each():
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in BUNDLED:  # what `nevermind models | grep NAME` and `cut -f1` see
        [line] = [line for line in lines if name in line]
        assert line.split("\t")[0] == name


@pytest.mark.parametrize("columns", [30, 200])
def test_terminal_output_keeps_whole_names(columns):
    shown = in_terminal(columns)
    for name in BUNDLED:
        assert name in shown, shown
