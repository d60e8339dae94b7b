"""Shared helpers for the benchmarks: arguments, data, interleaved timing, tables.

The benchmarks run as files from the repository root (`python benchmarks/train.py ...`), so this
folder is first on sys.path and they import this module as a sibling (`import _common as C`);
`pipeline` comes from the editable install. Nothing here reads outside the repository at import
time: encoders and data come in as arguments.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ENCODER = "EleutherAI/gpt-neo-125m"
DEFAULT_DATA = [str(REPO / "data" / "raw" / "corpus.jsonl")]
VALIDATED_KEYS = ("id", "sentence", "task_A", "task_B")


def add_common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--encoder", action="append", metavar="PATH_OR_HUB_ID",
                    help="encoder directory or hub id; repeat for several "
                         f"(default: {DEFAULT_ENCODER})")
    ap.add_argument("--data", nargs="+", metavar="JSONL", default=DEFAULT_DATA,
                    help="records {sentence, task_A, task_B} to draw sentences from, cycled as needed "
                         "(default: the repository's sample corpus data/raw/corpus.jsonl)")
    ap.add_argument("--params", default=str(REPO / "params.yaml"),
                    help="params file for labels / tokenize / train / predict settings (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (a few minutes)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's default, one per core). "
                    "On a machine shared with other busy processes use 1: OpenMP threads that wait for a "
                    "descheduled sibling make multi-threaded steps several times slower and very noisy")


def apply_threads(args) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for stage subprocesses


def encoders(args) -> list[str]:
    return args.encoder or [DEFAULT_ENCODER]


def short(name: str) -> str:
    """A table-friendly encoder name: a hub id as is, a directory as its last two components."""
    path = Path(name)
    return "/".join(path.parts[-2:]) if path.exists() else name


def load_records(paths: list[str], n: int | None = None, seed: int = 0) -> list[dict]:
    """Records from JSONL files (validated-schema keys only), shuffled deterministically and cycled
    up to n with unique ids (copies get a #k suffix)."""
    import random

    recs = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    r = json.loads(line)
                    recs.append({k: r.get(k) for k in VALIDATED_KEYS})
    if not recs:
        raise SystemExit(f"no records in {paths}")
    for i, r in enumerate(recs):
        r["id"] = r["id"] or f"rec-{i}"
    random.Random(seed).shuffle(recs)
    if n is None:
        return recs
    out = []
    for k, r in zip(range(n), itertools.cycle(recs)):
        copy = k // len(recs)
        out.append(r if copy == 0 else {**r, "id": f"{r['id']}#{copy}"})
    return out


def write_validated(out: Path, records: list[dict], n_train: int, n_other: int = 200) -> None:
    """A validated-data directory (what `python -m pipeline validate` writes): n_train train
    records (the input cycled, ids made unique), n_other each for dev and test."""
    out.mkdir(parents=True)
    sizes = {"train": n_train, "dev": n_other, "test": n_other}
    k = 0
    for split, size in sizes.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(size):
                r = records[k % len(records)]
                fh.write(json.dumps({**r, "id": f"{r['id']}#{k}", "split": split}, ensure_ascii=False) + "\n")
                k += 1


def stage_cmd(stage: str, *args) -> list[str]:
    """The command line of one pipeline stage, as DVC runs it: `python -m pipeline STAGE ...`."""
    return [sys.executable, "-m", "pipeline", stage, *map(str, args)]


def write_params(src: str, dst: Path, overrides: dict) -> Path:
    """A copy of the params file with dotted keys overridden (e.g. {"encoder.name": path})."""
    import yaml

    from pipeline.storage.params import with_overrides

    tree = yaml.safe_load(Path(src).read_text(encoding="utf-8"))
    dst.write_text(yaml.safe_dump(with_overrides(tree, overrides), sort_keys=False), encoding="utf-8")
    return dst


class Measured(NamedTuple):
    returncode: int
    launched_at: float  # unix time
    wall_s: float
    peak_rss_mib: float  # the child's own ru_maxrss


def run_measured(cmd: list[str], logs: Path, name: str) -> Measured:
    """Run a stage command from the repository root, stdout/stderr into logs/name.{out,err}; its
    wall time and peak RSS (the child's own rusage, from wait4: not this process's)."""
    with open(logs / f"{name}.out", "w") as out, open(logs / f"{name}.err", "w") as err:
        launched, t = time.time(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    return Measured(os.waitstatus_to_exitcode(status), launched, time.perf_counter() - t, usage.ru_maxrss / 1024)


def freeze_heap() -> None:
    """Move everything alive now out of the cyclic GC's sight. The benchmark holds all its input
    in memory (the stages stream it); without this, every full collection during a timed call
    would walk that input and the cost would grow with N, for both arms alike."""
    gc.collect()
    gc.freeze()


def interleave(arms: dict, repeats: int, log=None) -> dict[str, list[tuple[float, float]]]:
    """Run every arm once per round, rounds `repeats` times, alternating the order each round.
    Returns per arm the (wall seconds, process CPU seconds) of every run."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            w, c = time.perf_counter(), time.process_time()
            arms[name]()
            out[name].append((time.perf_counter() - w, time.process_time() - c))
            if log:
                log(f"  round {r + 1}/{repeats} {name}: {out[name][-1][0]:.3f}s wall")
    return out


def best(times: list[tuple[float, float]], which: int = 0) -> float:
    return min(t[which] for t in times)


def median(times: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(t[which] for t in times)


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else (f"{c:,.3f}" if abs(c) < 10 else f"{c:,.1f}") if isinstance(c, float)
                                            else f"{c:,}" if isinstance(c, int) else str(c) for c in row]
                                           for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells[1:]])


def machine() -> dict:
    import torch
    import transformers

    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "load_avg": os.getloadavg()}


def verdict(ratio: float, target: float, higher_is_better: bool) -> str:
    ok = ratio >= target if higher_is_better else ratio <= target
    return ("PASS" if ok else "FAIL") + f" ({'>=' if higher_is_better else '<='} {target})"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dump_json(path: str | None, obj) -> None:
    if path:
        Path(path).write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
