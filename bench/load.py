"""Cold (GGUF conversion) vs cached load time of both bundled models, each in a fresh process.

The model's load is timed after the libraries are imported (importing transformers alone takes
~3.4 s on 2 cores); the import is reported as its own column.

    .venv/bin/python bench/load.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

LOAD = "from nevermind.models import load_model; load_model({name!r}, device='cpu')"


def timed_load(name: str, cache: str) -> tuple[float, float]:
    """(library import seconds, model load seconds) in a new Python process."""
    code = (
        "import time; t0 = time.perf_counter(); import nevermind.models.hf, transformers; "
        "from transformers import AutoModelForCausalLM, AutoTokenizer; t = time.perf_counter(); "
        + LOAD.format(name=name)
        + "; print(t - t0, time.perf_counter() - t)"
    )
    env = dict(os.environ, NEVERMIND_CACHE=cache, TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    imported, loaded = out.stdout.strip().splitlines()[-1].split()
    return float(imported), float(loaded)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        print(f"{'model':<24}{'cold (convert)':>16}{'cached':>10}{'ratio':>8}{'import':>10}")
        for name in ("smollm2-135m-instruct", "gemma-3-270m"):
            start = time.perf_counter()
            _, cold = timed_load(name, cache)
            imported, cached = min(timed_load(name, cache) for _ in range(2))
            print(f"{name:<24}{cold:>14.1f} s{cached:>8.2f} s{cold / cached:>7.1f}x{imported:>8.1f} s"
                  f"   (wall {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
