"""Stage featurize: validated records -> token ids, BIO tags and topic ids per window.

Writes data/features/{train,dev,test}.arrow (Arrow IPC files, read by row as training needs them;
unpadded: one row per window, padding happens per batch in training), data/features/meta.json, reports/featurize.json (every window, token and
alignment count; metrics/featurize.json holds its headline) and
reports/misaligned.jsonl (every span whose edge fell inside a token, with what was done; its
last line is a {"summary": counts} record, so a clean corpus gets a report that says so).
Streams records in chunks, so memory stays bounded for large inputs.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.features import COUNT_KEYS, Featurizer, chunk_counts, position_problem
from pipeline.core.headline import featurize_headline
from pipeline.core.records import SPLITS
from pipeline.storage import feature_store, progress
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path, read_jsonl, write_json
from pipeline.storage.hub import encoder_position_limit, load_tokenizer, resolve

CHUNK = 2000


def featurize_split(featurizer: Featurizer, in_path: Path, split: str, out_path: Path, report) -> dict[str, int]:
    """Stream one split's records into its feature file; misaligned spans go to the report."""
    totals = dict.fromkeys(COUNT_KEYS, 0)
    records = read_jsonl(in_path)
    with feature_store.writer(out_path) as writer, \
            progress.bar(progress.count_lines(in_path), f"featurize {split}", " rec") as bar:
        while chunk := list(itertools.islice(records, CHUNK)):
            encoded = featurizer.encode(chunk, first_index=totals["records"])
            writer.write_rows(encoded.rows)
            for key, n in chunk_counts(chunk, encoded).items():
                totals[key] += n
            for event in encoded.events:
                report.write(json.dumps({"split": split, **event}, ensure_ascii=False) + "\n")
            bar.update(len(chunk))
    return totals


def main(argv: list[str] | None = None) -> None:
    ap = stage_parser("featurize", __doc__, {
        "--in-dir": ("data/validated", "validated records"),
        "--out-dir": ("data/features", "features per split"),
        "--metrics": ("metrics/featurize.json", "headline counts (dvc metrics)"),
        "--details": ("reports/featurize.json", "every window, token and alignment count, per split"),
        "--report": ("reports/misaligned.jsonl", "misaligned spans")})
    args = ap.parse_args(argv)
    p = params_mod.load(args.params)
    tok = load_tokenizer(p.encoder.name, p.encoder.trust_remote_code)
    cfg = feature_store.feature_config(p)
    limit = encoder_position_limit(p.encoder.name, p.encoder.trust_remote_code)
    problem = position_problem(cfg.max_length, limit, f"encoder '{p.encoder.name}'")
    if problem:  # caught here, not as an IndexError in the embedding halfway through training
        raise PipelineError(f"{args.params}: 'tokenize.max_length' {problem}; set tokenize.max_length <= {limit}")
    try:
        featurizer = Featurizer(tok, cfg)
    except ValueError as exc:
        raise PipelineError(f"encoder '{p.encoder.name}': {exc}") from None
    metrics = {}
    with atomic_path(args.out_dir, is_dir=True) as out_dir, atomic_path(args.report) as report_path, \
            open(report_path, "w", encoding="utf-8") as report:
        for split in SPLITS:
            metrics[split] = featurize_split(featurizer, Path(args.in_dir) / f"{split}.jsonl", split,
                                             feature_store.split_path(out_dir, split), report)
        feature_store.write_meta(out_dir, feature_store.FeatureMeta(
            **cfg.settings(), encoder=p.encoder.name, tokenizer_class=type(tok).__name__, pad_token_id=tok.pad_token_id,
            n_prefix=len(featurizer.prefix), n_suffix=len(featurizer.suffix), entities=p.labels.entities))
        total = {k: sum(m[k] for m in metrics.values()) for k in COUNT_KEYS}
        # the last line sums up, so a clean corpus still gets a report that says so (not an empty file)
        report.write(json.dumps({"summary": {k: total[k] for k in ("spans", "aligned", "expanded", "contracted",
                                                                   "dropped")}, "policy": cfg.misaligned}) + "\n")
    source = resolve(p.encoder.name)
    write_json(args.details, {**total, **metrics, "encoder_source": source.describe()})
    write_json(args.metrics, featurize_headline(total, source.kind))
    print(f"featurize: {total['records']} records -> {total['windows']} windows "
          f"({total['windowed_records']} records windowed); spans: {total['aligned']} aligned, "
          f"{total['expanded']} expanded, {total['contracted']} contracted, {total['dropped']} dropped")


if __name__ == "__main__":
    run_cli(main)
