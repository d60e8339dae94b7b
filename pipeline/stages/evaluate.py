"""Stage evaluate: score the trained model on the dev and test splits.

reports/eval.json: per split, topic accuracy / macro-F1 / per-class P/R/F1 and NER exact-span
micro P/R/F1, per type, and seqeval strict IOB2 F1; each task only over records annotated for
it (with the counts). metrics/eval.json: the headline of it (pipeline/core/headline.py): per
split topic macro-F1 and NER F1. An empty split or task is absent, not zero. Also writes the topic confusion
matrix and per-type F1 as DVC plot data and as PNG images, and reports/errors.jsonl: every test
record with a wrong topic or a span error, gold and predicted side by side.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.cli import run_cli, stage_parser
from pipeline.core.device import pick_device
from pipeline.core.headline import eval_headline
from pipeline.core.model import ModelMeta
from pipeline.core.scoring import error_report, score_split
from pipeline.storage import feature_store, model_dir, plots, progress
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import read_jsonl, write_json, write_jsonl


def check_labels(meta: ModelMeta, p, model_path) -> None:
    """The model must have been trained with the labels params.yaml names now."""
    for key, name in (("topics", "labels.topics"), ("entities", "labels.entities")):
        if getattr(meta, key) != getattr(p.labels, key):
            raise PipelineError(f"model '{model_path}' was trained with {key} {getattr(meta, key)} but params.yaml "
                                f"{name} is {getattr(p.labels, key)}; re-run training (`dvc repro`)")


def check_features(meta: ModelMeta, features: Path, validated: Path, model_path) -> None:
    """The features must be what the model was trained on: same labels, tokenizer and layout."""
    feature_store.require(features / feature_store.META, *(
        path for s in ("dev", "test") for path in (feature_store.split_path(features, s), validated / f"{s}.jsonl")))
    feature_store.check_compatible(
        feature_store.read_meta(features), features, f"model '{model_path}'", "re-run featurize and train (`dvc repro`)",
        topics=meta.topics, tags=meta.tags, encoder=meta.encoder_name, label_subwords=meta.label_subwords,
        n_prefix=meta.n_prefix)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_line(split: str, m: dict) -> str:
    t, n = m.get("topic"), m.get("ner")
    return f"evaluate {split}: " + "; ".join(filter(None, [
        t and f"topic acc {_fmt(t['accuracy'])} macro-F1 {_fmt(t['macro_f1'])} (n={t['n']})",
        n and f"NER P {_fmt(n['precision'])} R {_fmt(n['recall'])} F1 {_fmt(n['f1'])} (n={n['n']})"]))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = stage_parser("evaluate", __doc__, {
        "--model-dir": ("models/multitask", "trained model"),
        "--features": ("data/features", "featurized data"),
        "--validated": ("data/validated", "validated records"),
        "--metrics": ("metrics/eval.json", "headline scores (dvc metrics)"),
        "--details": ("reports/eval.json", "every score: per class, per type, P/R/F1, seqeval"),
        "--errors": ("reports/errors.jsonl", "test errors for review"),
        "--plots-dir": ("plots", "plot data and images")})
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    p = params_mod.load(args.params)
    device = pick_device("auto")  # CUDA when present
    model, tokenizer, meta = model_dir.load(args.model_dir, str(device), p.encoder.trust_remote_code)
    check_labels(meta, p, args.model_dir)
    check_features(meta, Path(args.features), Path(args.validated), args.model_dir)
    torch.manual_seed(0)
    metrics, errors, confusion, per_type = {}, [], [], []
    for split in ("dev", "test"):
        records = list(read_jsonl(Path(args.validated) / f"{split}.jsonl"))
        rows = feature_store.load_features(feature_store.split_path(args.features, split))
        with progress.bar(len(rows), f"evaluate {split}", " window") as bar:
            result, preds = score_split(model, rows, records, meta, p.evaluate.batch_size, tokenizer.pad_token_id,
                                        device, bar)
        if not result:
            print(f"evaluate: {split} split is empty or unannotated; its metrics are absent")
            continue
        metrics[split] = result
        if split == "test":
            errors = error_report(records, preds)
            confusion = [{"actual": r["task_A"], "predicted": q["topic"]}
                         for r, q in zip(records, preds) if r["task_A"] is not None]
            if "ner" in result:
                per_type = [{"type": t, **result["ner"][t]} for t in meta.entities if t in result["ner"]]
    write_json(args.details, metrics)
    write_json(args.metrics, eval_headline(metrics))
    write_jsonl(args.errors, errors)
    plots_dir = Path(args.plots_dir)
    write_json(plots_dir / "topic_confusion.json", confusion)
    write_json(plots_dir / "ner_f1_per_type.json", [{"type": r["type"], "f1": r["f1"]} for r in per_type])
    plots.plot_images(confusion, meta.topics, per_type, plots_dir)
    for split, m in metrics.items():
        print(summary_line(split, m))
    print(f"evaluate: {len(errors)} test records with errors in {args.errors}")


if __name__ == "__main__":
    run_cli(main)
