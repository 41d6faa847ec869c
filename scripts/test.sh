#!/usr/bin/env bash
# Set up from scratch (idempotent) and run the whole test suite, slow model-quality checks included.
# Pass pytest arguments through, e.g. `bash scripts/test.sh -m "not slow"` for the fast tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-dev,train,serve,ray,vllm,llamacpp} bash scripts/setup.sh
bash scripts/install-chromium.sh
exec .venv/bin/python -m pytest "$@"
