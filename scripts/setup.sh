#!/usr/bin/env bash
# Fresh-machine setup: a virtualenv in .venv with a CPU build of torch (not the multi-GB CUDA
# build) and the pinned, tested versions of everything else. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
TORCH=$(grep '^torch==' constraints.txt)
# The CPU wheel index first; where it is unreachable, whatever the configured index offers.
.venv/bin/python -m pip install -q "$TORCH" --index-url https://download.pytorch.org/whl/cpu --timeout 15 --retries 0 2>/dev/null \
  || .venv/bin/python -m pip install -q "$TORCH"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
echo "setup: done (.venv); activate with: . .venv/bin/activate"
