"""Shared test helpers (the one module tests import besides conftest's fixtures): the repository
root and labels, the separable toy data set, params overrides, running stages in-process or as
subprocesses, and a scratch git copy of the project for end-to-end runs."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipeline.cli import run_cli
from pipeline.storage.params import with_overrides

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
TOPICS = ["travel", "technology", "politics", "other"]
ENTITIES = ["PERSON", "LOC", "ORG", "DATE"]
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


def make_project(root: Path, encoder_dir: Path | None, n_records: int = 160) -> Path:
    """A copy of the repository as a fresh git repo, with the first n_records of the sample corpus
    (for speed) and encoder.name pointing at a local tiny checkpoint (None: the default encoder)."""
    for name in TRACKED:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    corpus = (REPO / "data/raw/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "data/raw/corpus.jsonl").write_text("\n".join(corpus[:n_records]) + "\n", encoding="utf-8")
    # the offline plot template .dvc/config names is generated (scripts/setup.sh), not tracked
    run([sys.executable, str(REPO / "scripts/offline_plots.py"), "--repo", str(root)], root)
    set_params(root, tokenize={"max_length": 48, "stride": 8}, train={"epochs": 1, "batch_size": 16},
               **({"encoder": {"name": str(encoder_dir)}} if encoder_dir is not None else {}))
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "init"], root)
    return root


# ---- the toy set: the topic is fixed by one keyword, PERSON and LOC come from short lists -------

KEYWORDS = {"travel": "flight", "technology": "software", "politics": "election", "other": "soup"}
PEOPLE = ["Tim Cook", "Zoë", "José Martínez", "Sarah Mitchell", "Freja Andersen"]
PLACES = ["Paris", "Frankfurt", "Cupertino", "Denver", "São Paulo"]
TEMPLATES = [
    "{who} talked about the {kw} in {where} on day {i}.",
    "In {where}, {who} praised the {kw} for the {i}th time.",
    "The {kw} news from {where} surprised {who} again ({i}).",
]


def toy_record(i: int, split: str | None = None, topic: bool = True, ner: bool = True) -> dict:
    """Record i of the toy set (its text is unique per i); task_A/task_B left out on request."""
    rng = random.Random(i)
    label = list(KEYWORDS)[i % 4]
    who, where = rng.choice(PEOPLE), rng.choice(PLACES)
    sentence = rng.choice(TEMPLATES).format(who=who, where=where, kw=KEYWORDS[label], i=i)
    spans = sorted(({"text": who, "type": "PERSON", "start": sentence.index(who), "end": sentence.index(who) + len(who)},
                    {"text": where, "type": "LOC", "start": sentence.index(where),
                     "end": sentence.index(where) + len(where)}), key=lambda s: s["start"])
    rec = {"id": f"toy-{i}", "sentence": sentence, "task_A": label if topic else None,
           "task_B": spans if ner else None}
    if split:
        rec["split"] = split
    return rec


def toy_set(n_train: int = 40, n_dev: int = 12, n_test: int = 12) -> list[dict]:
    return ([toy_record(i, "train") for i in range(n_train)]
            + [toy_record(1000 + i, "dev") for i in range(n_dev)]
            + [toy_record(2000 + i, "test") for i in range(n_test)])


FAST = {"train.epochs": 2, "train.batch_size": 8, "train.lr_encoder": 1.0e-3, "train.lr_heads": 1.0e-2,
        "train.warmup_ratio": 0.0, "train.patience": 0}


def write_toy_params(path: Path, encoder: Path, **overrides) -> Path:
    """The repository's params with the toy project's paths, a local encoder and fast training."""
    return write_params(path, {"data.raw_dir": "raw", "encoder.name": str(encoder), **FAST, **overrides})


def write_project(root: Path, encoder: Path, records: list[dict], **overrides) -> Path:
    """A project dir: raw/toy.jsonl and a params.yaml (the repository's, with dotted overrides)."""
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "raw" / "toy.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    write_toy_params(root / "params.yaml", encoder, **overrides)
    return root


# ---- running stages ------------------------------------------------------------------------------

@contextmanager
def stage_env(cwd: Path):
    """cwd for an in-process stage run; restores what train changes process-wide (deterministic
    algorithms, the SIGTERM handler)."""
    import torch

    old = (os.getcwd(), signal.getsignal(signal.SIGTERM),
           torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old[0])
        signal.signal(signal.SIGTERM, old[1])
        torch.use_deterministic_algorithms(old[2], warn_only=old[3])


def run_stage(module, cwd: Path, *args: str) -> int:
    """Run a stage's main(argv) in-process, as the CLI does; the exit status (0, or run_cli's)."""
    with stage_env(cwd):
        try:
            run_cli(module.main, [str(a) for a in args])
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


def prepare(root: Path) -> None:
    """validate + featurize a project dir written by write_project."""
    from pipeline.stages import featurize, validate

    assert run_stage(validate, root, "--params", "params.yaml", "--raw-dir", "raw", "--out-dir", "val",
                     "--metrics", "metrics/data.json", "--details", "reports/data.json") == 0
    assert run_stage(featurize, root, "--params", "params.yaml", "--in-dir", "val", "--out-dir", "tok",
                     "--metrics", "metrics/featurize.json", "--details", "reports/featurize.json",
                     "--report", "reports/misaligned.jsonl") == 0


def train_args(name: str = "model", params: str = "params.yaml") -> list[str]:
    return ["--params", params, "--features", "tok", "--validated", "val", "--model-dir", name,
            "--checkpoint-dir", f"ckpt_{name}", "--metrics", f"metrics/train_{name}.json",
            "--speed", f"reports/speed_{name}.json", "--details", f"reports/train_{name}.json",
            "--live-dir", f"live_{name}", "--plot", f"plots/train_{name}.png"]


def train(root: Path, name: str = "model", params: str = "params.yaml") -> Path:
    from pipeline.stages import train as train_stage

    assert run_stage(train_stage, root, *train_args(name, params)) == 0
    return root / name


def evaluate_args(model: str = "model", params: str = "params.yaml", out: str = "eval") -> list[str]:
    return ["--params", params, "--model-dir", model, "--features", "tok", "--validated", "val",
            "--metrics", f"metrics/{out}.json", "--details", f"reports/{out}.json", "--errors", f"reports/{out}_errors.jsonl", "--plots-dir", f"plots_{out}"]


def subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

