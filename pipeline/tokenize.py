"""Stage 2, tokenize: validated records -> token ids, BIO tags and topic ids per window.

Writes data/tokenized/{train,dev,test}.parquet (unpadded: one row per window, padding happens
per batch in training), data/tokenized/meta.json, metrics/tokenize.json (alignment counts) and
reports/misaligned.jsonl (every span whose edge fell inside a token, with what was done).
Streams records in chunks, so memory stays bounded for large inputs.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline import params as params_mod
from pipeline.encoder import load_tokenizer
from pipeline.features import FeatureConfig, FeatureEncoder
from pipeline.files import atomic_path, read_jsonl, run_cli, write_json
from pipeline.records import SPLITS

CHUNK = 2000
SCHEMA = pa.schema([
    ("record", pa.int32()), ("id", pa.string()), ("window", pa.int16()), ("token_start", pa.int32()),
    ("input_ids", pa.list_(pa.int32())), ("labels", pa.list_(pa.int16())), ("topic", pa.int16()),
    ("starts", pa.list_(pa.int32())), ("ends", pa.list_(pa.int32())), ("word_ids", pa.list_(pa.int32())),
])


def feature_config(p: dict) -> FeatureConfig:
    t = p["tokenize"]
    return FeatureConfig(t["max_length"], t["stride"], t["label_subwords"], t["misaligned"],
                         p["labels"]["topics"], params_mod.tag_names(p["labels"]["entities"]))


def load_features(path: str | Path) -> list[dict]:
    """A tokenized split as a list of rows (one per window)."""
    return pq.read_table(path).to_pylist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--in-dir", default="data/validated", help="validated records (default: %(default)s)")
    ap.add_argument("--out-dir", default="data/tokenized", help="features per split (default: %(default)s)")
    ap.add_argument("--metrics", default="metrics/tokenize.json", help="alignment counts (default: %(default)s)")
    ap.add_argument("--report", default="reports/misaligned.jsonl", help="misaligned spans (default: %(default)s)")
    args = ap.parse_args()
    p = params_mod.load(args.params)
    tok = load_tokenizer(p["encoder"]["name"], p["encoder"]["trust_remote_code"])
    cfg = feature_config(p)
    encoder = FeatureEncoder(tok, cfg)
    metrics = {}
    with atomic_path(args.out_dir, is_dir=True) as out_dir, atomic_path(args.report) as report_path, \
            open(report_path, "w", encoding="utf-8") as report:
        for split in SPLITS:
            counts = {"records": 0, "windows": 0, "windowed_records": 0, "tokens": 0, "spans": 0,
                      "aligned": 0, "expanded": 0, "contracted": 0, "dropped": 0}
            records = read_jsonl(Path(args.in_dir) / f"{split}.jsonl")
            with pq.ParquetWriter(out_dir / f"{split}.parquet", SCHEMA) as writer:
                bar = tqdm(desc=f"tokenize {split}", unit=" rec", mininterval=1.0)
                while chunk := list(itertools.islice(records, CHUNK)):
                    enc = encoder.encode(chunk, first_index=counts["records"])
                    writer.write_table(pa.Table.from_pylist(enc.rows, schema=SCHEMA))
                    counts["records"] += len(chunk)
                    counts["windows"] += len(enc.rows)
                    counts["windowed_records"] += sum(r["window"] == 1 for r in enc.rows)
                    n_tokens = {r["record"]: r["token_start"] + len(r["starts"]) for r in enc.rows}
                    counts["tokens"] += sum(n_tokens.values())
                    n_spans = sum(len(r["task_B"] or []) for r in chunk)
                    counts["spans"] += n_spans
                    for ev in enc.events:
                        counts[ev["action"]] += 1
                        report.write(json.dumps({"split": split, **ev}, ensure_ascii=False) + "\n")
                    counts["aligned"] += n_spans - len(enc.events)
                    bar.update(len(chunk))
                bar.close()
            metrics[split] = counts
        meta = {"encoder": p["encoder"]["name"], "tokenizer_class": type(tok).__name__,
                "pad_token_id": tok.pad_token_id, "n_prefix": len(encoder.prefix), "n_suffix": len(encoder.suffix),
                "entities": p["labels"]["entities"],
                **vars(cfg)}
        write_json(out_dir / "meta.json", meta)
    total = {k: sum(m[k] for m in metrics.values()) for k in metrics["train"]}
    write_json(args.metrics, {**total, **metrics})
    print(f"tokenize: {total['records']} records -> {total['windows']} windows "
          f"({total['windowed_records']} records windowed); spans: {total['aligned']} aligned, "
          f"{total['expanded']} expanded, {total['contracted']} contracted, {total['dropped']} dropped")


if __name__ == "__main__":
    run_cli(main)
