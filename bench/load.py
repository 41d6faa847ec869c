"""Cold (GGUF conversion) vs cached load time of both bundled models, each in a fresh process.

    .venv/bin/python bench/load.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

LOAD = "from nevermind.models import load_model; load_model({name!r}, device='cpu')"


def timed_load(name: str, cache: str) -> float:
    """Seconds for a new Python process to import nevermind and load `name` (import time excluded)."""
    code = (
        "import time, nevermind.models.hf; t = time.perf_counter(); "
        + LOAD.format(name=name)
        + "; print(time.perf_counter() - t)"
    )
    env = dict(os.environ, NEVERMIND_CACHE=cache, TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        print(f"{'model':<24}{'cold (convert)':>16}{'cached':>10}{'ratio':>8}")
        for name in ("smollm2-135m-instruct", "gemma-3-270m"):
            start = time.perf_counter()
            cold = timed_load(name, cache)
            cached = min(timed_load(name, cache) for _ in range(2))
            print(f"{name:<24}{cold:>14.1f} s{cached:>8.2f} s{cold / cached:>7.1f}x   (wall {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
