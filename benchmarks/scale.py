"""Scale benchmark: does memory grow with the corpus? Peak RSS and wall time of the real stages
(`python -m pipeline featurize | train | evaluate | predict | select`) on corpora of several sizes, and the
train stage's time to its first optimizer step, with a tiny encoder, so that the data path, not the
model, is measured.

    python benchmarks/scale.py --threads 1                       # 100k and 1M train records
    python benchmarks/scale.py --threads 1 --sizes 10000 100000  # quicker
    python benchmarks/scale.py --quick

For each size N: N train records (the --data records cycled, ids made unique) and a fixed dev
and test split (--eval-records each) are written as a validated directory; the featurize stage
makes the features, then the train stage runs one epoch over them. Evaluate then scores a test
split of the same N windows (the train split's features and records, linked in as test.arrow and
test.jsonl) and predict runs over the N train sentences as a .txt file (one per line, output to a
file, each line made unique by its line number); select (--strategy uncertainty --task both,
--select-budget picks, Label Studio tasks) scores the same pool, so its sentences/s compare with predict's (issue 21: within 10 %) and its memory
with the pool's size. Its --raw-dir holds a copy of the dev split (sentences it must leave out). The encoder is a BERT of one layer of
width 32 with random weights and the packaged all-MiniLM-L6-v2 tokenizer (WordPiece, 30,522 ids),
built here, so the run needs no hub. Peak RSS is each stage process's own ru_maxrss (wait4);
time to first step is from the stage's launch to the end of its first training step (the train
stage's --speed file says when that was).

Targets (issue 20): train, evaluate and predict peak RSS at the largest size <= 1.3x at the
smallest (sizes 100k and 1M), train's time to the first step at 1M <= 10 s. Issue 21: select in
bounded memory, at predict's sentences/s or better (select / predict wall time <= 1.1). Writes the table to stdout and, with --plot, a PNG of peak
RSS and wall time against the number of windows.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import _common as C

RSS_TARGET, FIRST_STEP_TARGET, SELECT_TARGET = 1.3, 10.0, 1.1
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def tiny_encoder(out: Path) -> Path:
    """One BERT layer of width 32 (random weights, seed 0) with the MiniLM tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from pipeline.storage.hub import load_tokenizer

    tok = load_tokenizer(MINILM)
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    BertModel(cfg).save_pretrained(out)
    return out


def stage(name: str, d: Path, cmd: list[str]) -> C.Measured:
    C.log(f"  {name}: {' '.join(map(str, cmd))}")
    run = C.run_measured(cmd, d, name)
    if run.returncode != 0:
        raise SystemExit(f"{name} failed ({run.returncode}):\n{(d / f'{name}.err').read_text()[-3000:]}")
    return run


def eval_inputs(d: Path) -> tuple[Path, Path]:
    """Features and validated directories whose test split is the train split (linked, not copied)."""
    feats, val = d / "eval_features", d / "eval_validated"
    for made, real, names in ((feats, d / "features", ("meta.json", "dev.arrow")),
                              (val, d / "validated", ("dev.jsonl",))):
        made.mkdir()
        for name in names:
            (made / name).symlink_to(real / name)
    (feats / "test.arrow").symlink_to(d / "features" / "train.arrow")
    (val / "test.jsonl").symlink_to(d / "validated" / "train.jsonl")
    return feats, val


def write_pool(validated: Path, out: Path) -> Path:
    """The train split's sentences, one per line, each made unique by its line number at the end: the
    --data records are cycled, and select leaves repeats out (it would score only the distinct few)."""
    with open(validated / "train.jsonl", encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        dst.writelines(f"{json.loads(line)['sentence'].replace(chr(10), ' ')} {k}\n" for k, line in enumerate(src))
    return out


def annotated(d: Path) -> Path:
    """A raw-data directory for select: the dev split's records, whose sentences are never picked."""
    (d / "raw").mkdir()
    shutil.copyfile(d / "validated" / "dev.jsonl", d / "raw" / "dev.jsonl")
    return d / "raw"


def one_size(args, encoder: Path, records: list[dict], n: int, work: Path) -> dict:
    d = work / f"n{n}"
    C.write_validated(d / "validated", records, n, args.eval_records)
    params = C.write_params(args.params, d / "params.yaml", {
        "encoder.name": str(encoder), "train.epochs": 1, "train.batch_size": args.batch_size,
        "train.resume": False, "evaluate.runtimes": [], "evaluate.batch_size": args.batch_size,
        "predict.batch_size": args.batch_size})
    feat = stage("featurize", d, C.stage_cmd(
        "featurize", "--params", params, "--in-dir", d / "validated", "--out-dir", d / "features",
        "--metrics", d / "featurize.json", "--details", d / "featurize_details.json", "--report", d / "mis.jsonl"))
    windows = json.loads((d / "featurize_details.json").read_text())["train"]["windows"]
    train = stage("train", d, C.stage_cmd(
        "train", "--params", params, "--features", d / "features", "--validated", d / "validated",
        "--model-dir", d / "model", "--metrics", d / "train.json", "--details", d / "train_details.json",
        "--live-dir", d / "live", "--plot", d / "curves.png", "--checkpoint-dir", d / "ckpt",
        "--speed", d / "speed.json"))
    speed = json.loads((d / "speed.json").read_text())
    features, validated = eval_inputs(d)
    evaluate = stage("evaluate", d, C.stage_cmd(
        "evaluate", "--params", params, "--model-dir", d / "model", "--features", features,
        "--validated", validated, "--metrics", d / "eval.json", "--details", d / "eval_details.json",
        "--errors", d / "errors.jsonl", "--plots-dir", d / "plots", "--runtimes-metrics", d / "runtimes.json"))
    pool = write_pool(d / "validated", d / "pool.txt")
    predict = stage("predict", d, C.stage_cmd(
        "predict", "--params", params, "--model", d / "model", "--input", pool, "--output", d / "predictions.jsonl"))
    select = stage("select", d, C.stage_cmd(
        "select", "--params", params, "--model", d / "model", "--pool", pool, "--budget", args.select_budget,
        "--raw-dir", annotated(d), "--output", d / "tasks.json"))
    features_mib = sum(f.stat().st_size for f in (d / "features").iterdir()) / 2**20
    shutil.rmtree(d, ignore_errors=True)
    return {"records": n, "windows": windows, "features_mib": round(features_mib, 1),
            "featurize_rss_mib": round(feat.peak_rss_mib, 1), "featurize_s": round(feat.wall_s, 1),
            "train_rss_mib": round(train.peak_rss_mib, 1), "train_s": round(train.wall_s, 1),
            "first_step_s": round(speed["first_step_at"] - train.launched_at, 2),
            "tokens_per_s": speed["tokens_per_second"],
            "evaluate_rss_mib": round(evaluate.peak_rss_mib, 1), "evaluate_s": round(evaluate.wall_s, 1),
            "predict_rss_mib": round(predict.peak_rss_mib, 1), "predict_s": round(predict.wall_s, 1),
            "select_rss_mib": round(select.peak_rss_mib, 1), "select_s": round(select.wall_s, 1)}


STAGES = ("featurize", "train", "evaluate", "predict", "select")


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["windows"] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in STAGES:
        left.plot(x, [r[f"{name}_rss_mib"] for r in results], marker="o", label=name)
        right.plot(x, [r[f"{name}_s"] for r in results], marker="o", label=name + (" (1 epoch)" if name == "train" else ""))
    right.plot(x, [r["first_step_s"] for r in results], marker="o", linestyle="--", label="train: to first step")
    left.set(xscale="log", xlabel="windows (train; evaluate's test; predict's and select's pool)", ylabel="peak RSS (MiB)",
             title="Peak RSS of each stage process")
    left.set_ylim(bottom=0)
    right.set(xscale="log", yscale="log", xlabel="windows", ylabel="seconds", title="Wall time")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--sizes", type=int, nargs="+", help="train records per run (default: 100000 1000000; "
                    "quick: 10000 100000)")
    ap.add_argument("--eval-records", type=int, default=500, help="dev and test records each (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=128, help="train.batch_size (default: %(default)s)")
    ap.add_argument("--select-budget", type=int, default=1000, help="select --budget (default: %(default)s)")
    ap.add_argument("--plot", metavar="PNG", help="write the curves to this PNG")
    ap.add_argument("--work-dir", help="where the generated data goes (default: a temporary directory)")
    args = ap.parse_args()
    args.sizes = args.sizes or ([10000, 100000] if args.quick else [100000, 1000000])
    C.apply_threads(args)
    info = C.machine()
    C.log(f"machine: {info}")
    records = C.load_records(args.data)
    results = []
    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="bench-scale-") as work:
        encoder = tiny_encoder(Path(work) / "encoder")
        for n in args.sizes:
            C.log(f"{n:,} train records")
            results.append(one_size(args, encoder, records, n, Path(work)))
            C.log(f"  {results[-1]}")
    small, large = results[0], results[-1]
    growth = large["windows"] / small["windows"]
    print(f"\nStages against corpus size ({info['cpus']} CPUs, {info['date']}, load {info['load_avg']}; "
          f"tiny BERT, batch {args.batch_size}; train 1 epoch; dev {args.eval_records} records)")
    print(C.table(["records", "windows", "features MiB"] + [f"{s} RSS MiB" for s in STAGES]
                  + [f"{s} s" for s in STAGES] + ["to first step s", "train tokens/s"],
                  [[r["records"], r["windows"], r["features_mib"]] + [r[f"{s}_rss_mib"] for s in STAGES]
                   + [r[f"{s}_s"] for s in STAGES] + [r["first_step_s"], r["tokens_per_s"]] for r in results]))
    ratios = {s: large[f"{s}_rss_mib"] / small[f"{s}_rss_mib"] for s in STAGES}
    for name in STAGES:
        print(f"{name} peak RSS x{ratios[name]:.2f} for x{growth:.1f} windows"
              + ("" if name == "featurize" else f": {C.verdict(ratios[name], RSS_TARGET, higher_is_better=False)}"))
    for r in results:
        speed = r["select_s"] / r["predict_s"]
        print(f"select / predict wall time at {r['windows']:,} sentences: {speed:.2f} "
              f"({C.verdict(speed, SELECT_TARGET, higher_is_better=False)})")
    print(f"train: time to first step at {large['windows']:,} windows {large['first_step_s']} s: "
          f"{'PASS' if large['first_step_s'] <= FIRST_STEP_TARGET else 'FAIL'} (<= {FIRST_STEP_TARGET})")
    if args.plot:
        plot(results, args.plot)
    C.dump_json(args.json, {"machine": info, "results": results, "rss_ratios": ratios})


if __name__ == "__main__":
    main()
