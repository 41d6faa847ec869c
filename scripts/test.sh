#!/usr/bin/env bash
# Set up from scratch (idempotent) and run the whole test suite, slow model-quality checks included.
# Pass pytest arguments through, e.g. `bash scripts/test.sh -m "not slow"` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-dev,train,serve,ray,clients,vllm,llamacpp} bash scripts/setup.sh
# The test that cross-checks alpaca_eval's length-controlled win rate imports its glm_winrate
# module, which needs patsy (alpaca-eval itself is installed --no-deps as a data carrier).
.venv/bin/python -m pip --disable-pip-version-check -q install -c constraints.txt patsy==1.0.3
bash scripts/install-chromium.sh
exec .venv/bin/python -m pytest "$@"
