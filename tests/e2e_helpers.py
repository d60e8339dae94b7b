"""Helpers for the end-to-end tests: a scratch git copy of the project, and running commands in it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.params import with_overrides

REPO = Path(__file__).resolve().parents[1]
TRACKED = ["pipeline", "data", "params.yaml", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
             DVC_NO_ANALYTICS="1", PYTHONPATH="", HF_HUB_OFFLINE="1")
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def stages_run(output: str) -> list[str]:
    """Stage names in the order `dvc repro` / `dvc exp run` ran them."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def write_params(path: Path, overrides: dict, src: Path = REPO / "params.yaml") -> Path:
    """A copy of `src` at `path` with dotted keys overridden: write_params(p, {"train.epochs": 1})."""
    tree = with_overrides(yaml.safe_load(Path(src).read_text(encoding="utf-8")), overrides)
    Path(path).write_text(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Path(path)


def set_params(root: Path, **updates) -> None:
    """set_params(root, train={"epochs": 1}) merges into root/params.yaml."""
    path = root / "params.yaml"
    write_params(path, {f"{section}.{key}": value for section, values in updates.items()
                        for key, value in values.items()}, src=path)


def make_project(root: Path, encoder_dir: Path, n_records: int = 160) -> Path:
    """A copy of the repository as a fresh git repo, with the first n_records of the sample corpus
    (for speed) and encoder.name pointing at a local tiny checkpoint."""
    for name in TRACKED:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    corpus = (REPO / "data/raw/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "data/raw/corpus.jsonl").write_text("\n".join(corpus[:n_records]) + "\n", encoding="utf-8")
    set_params(root, encoder={"name": str(encoder_dir)}, tokenize={"max_length": 48, "stride": 8},
               train={"epochs": 1, "batch_size": 16})
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root
