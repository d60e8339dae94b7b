"""Featurize-stage benchmark: Featurizer.encode (the stage's code: tokenizer call, effective
offsets, span alignment, BIO labels, windows, rows) against the bare batched tokenizer call

    tok(sentences, add_special_tokens=False, return_offsets_mapping=True)

over the same sentences, in the same process, interleaved; both in chunks of
pipeline.stages.featurize.CHUNK records, as the stage calls it. Acceptance: encode time / bare
time <= 1.15 (alignment adds at most 15%; issue 20, was 1.25). Then peak memory of the real stage
(`python -m pipeline featurize`) on generated validated directories of two sizes (default 100k and
1M records): bounded memory means the larger run's peak RSS is about the smaller one's.

    python benchmarks/featurize.py --quick
    python benchmarks/featurize.py --encoder PATH --data a.jsonl b.jsonl
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import tempfile
from pathlib import Path

import _common as C

TARGET = 1.15


def throughput(encoder: str, args, records: list[dict]) -> dict:
    from pipeline.core.features import Featurizer
    from pipeline.stages.featurize import CHUNK
    from pipeline.storage import params as params_mod
    from pipeline.storage.feature_store import feature_config
    from pipeline.storage.hub import load_tokenizer

    p = params_mod.load(args.params)
    tok = load_tokenizer(encoder, p.encoder.trust_remote_code)
    fe = Featurizer(tok, feature_config(p))
    chunks = [records[i:i + CHUNK] for i in range(0, len(records), CHUNK)]
    sentence_chunks = [[r["sentence"] for r in c] for c in chunks]
    n = len(records)

    def bare():
        for s in sentence_chunks:
            tok(s, add_special_tokens=False, return_offsets_mapping=True)

    def encode():
        for c in chunks:
            fe.encode(c)

    bare(), encode()  # warm-up (tokenizer caches, allocator)
    C.freeze_heap()
    try:
        t = C.interleave({"bare tokenizer call": bare, "Featurizer.encode": encode}, args.repeats, C.log)
    finally:
        gc.unfreeze()
    b, e = t["bare tokenizer call"], t["Featurizer.encode"]
    res = {"encoder": encoder, "tokenizer": type(tok).__name__, "sentences": n, "chunk": CHUNK,
           "repeats": args.repeats,
           "bare_best_s": C.best(b), "encode_best_s": C.best(e), "bare_median_s": C.median(b),
           "encode_median_s": C.median(e), "bare_cpu_best_s": C.best(b, 1), "encode_cpu_best_s": C.best(e, 1)}
    res["ratio_best"] = res["encode_best_s"] / res["bare_best_s"]
    res["ratio_median"] = res["encode_median_s"] / res["bare_median_s"]
    res["ratio_cpu_best"] = res["encode_cpu_best_s"] / res["bare_cpu_best_s"]
    res["verdict"] = C.verdict(res["ratio_best"], TARGET, higher_is_better=False)
    return res


def stage_memory(encoder: str, args, records: list[dict], n: int, work: Path) -> dict:
    """Run the real featurize stage on n train records; peak RSS of that child process."""
    d = work / f"n{n}"
    C.write_validated(d / "validated", records, n)
    params = C.write_params(args.params, d / "params.yaml", {"encoder.name": encoder})
    cmd = C.stage_cmd("featurize", "--params", params, "--in-dir", d / "validated", "--out-dir", d / "features",
                      "--metrics", d / "featurize.json", "--details", d / "featurize_details.json", "--report", d / "misaligned.jsonl")
    C.log(f"  stage on {n:,} records: {' '.join(cmd)}")
    run = C.run_measured(cmd, d, "featurize")
    wall = run.wall_s
    if run.returncode != 0:
        raise SystemExit(f"featurize stage failed ({run.returncode}):\n{(d / 'featurize.err').read_text()[-2000:]}")
    last_line = (d / "featurize.out").read_text().strip().splitlines()[-1:]
    metrics = json.loads((d / "featurize.json").read_text())
    size = sum(f.stat().st_size for f in (d / "features").glob("*.arrow"))
    shutil.rmtree(d, ignore_errors=True)
    return {"records": n, "peak_rss_mib": run.peak_rss_mib, "wall_s": wall,
            "records_per_s": metrics["records"] / wall, "windows": metrics["windows"],
            "features_mib": size / 2**20, "stdout": last_line}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--sentences", type=int, help="sentences per timed run (default: 20000; quick: 4000)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds (default: 9; quick: 5)")
    ap.add_argument("--memory-sizes", type=int, nargs="*",
                    help="train records for the stage peak-RSS runs (default: 100000 1000000; "
                         "quick: 10000 100000; none: skip)")
    ap.add_argument("--work-dir", help="where the generated data goes (default: a temporary directory)")
    args = ap.parse_args()
    args.sentences = args.sentences or (4000 if args.quick else 20000)
    args.repeats = args.repeats or (5 if args.quick else 9)
    if args.memory_sizes is None:
        args.memory_sizes = [10000, 100000] if args.quick else [100000, 1000000]

    C.apply_threads(args)
    info = C.machine()
    C.log(f"machine: {info}")
    results = {"machine": info, "throughput": [], "memory": []}
    for enc in C.encoders(args):
        C.log(f"throughput, {enc}: {args.sentences:,} sentences x {args.repeats} rounds")
        results["throughput"].append(throughput(enc, args, C.load_records(args.data, args.sentences)))
    base = C.load_records(args.data)
    for enc in C.encoders(args):
        with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="bench-featurize-") as work:
            for n in args.memory_sizes:
                results["memory"].append({"encoder": enc, **stage_memory(enc, args, base, n, Path(work))})

    print(f"\nFeaturize stage: Featurizer.encode vs bare tokenizer call ({info['cpus']} CPUs, "
          f"{info['date']}; best of {args.repeats} interleaved rounds; target encode/bare <= {TARGET})")
    print(C.table(
        ["encoder", "sentences", "bare sent/s", "encode sent/s", "ratio best (wall)", "ratio median", "ratio CPU",
         "verdict"],
        [[C.short(r["encoder"]), r["sentences"], round(r["sentences"] / r["bare_best_s"]),
          round(r["sentences"] / r["encode_best_s"]), round(r["ratio_best"], 3), round(r["ratio_median"], 3),
          round(r["ratio_cpu_best"], 3), r["verdict"]] for r in results["throughput"]]))
    if results["memory"]:
        print("\nReal stage (python -m pipeline featurize), peak RSS of the stage process")
        print(C.table(["encoder", "train records", "peak RSS MiB", "wall s", "records/s", "features MiB"],
                      [[C.short(m["encoder"]), m["records"], round(m["peak_rss_mib"], 1), round(m["wall_s"], 1),
                        round(m["records_per_s"]), round(m["features_mib"], 1)] for m in results["memory"]]))
        for enc in C.encoders(args):
            ms = [m for m in results["memory"] if m["encoder"] == enc]
            if len(ms) >= 2:
                growth = ms[-1]["peak_rss_mib"] / ms[0]["peak_rss_mib"]
                print(f"{enc}: peak RSS x{growth:.2f} for x{ms[-1]['records'] / ms[0]['records']:.0f} records "
                      f"({'bounded' if growth < 1.5 else 'GROWS with input'})")
    C.dump_json(args.json, results)


if __name__ == "__main__":
    main()
