"""Stage evaluate: score the trained model on the dev and test splits.

reports/eval.json: per split, topic accuracy / macro-F1 / per-class P/R/F1 and NER exact-span
micro P/R/F1, per type, and seqeval strict IOB2 F1; each task only over records annotated for
it (with the counts). metrics/eval.json: the headline of it (pipeline/core/headline.py): per
split topic macro-F1 and NER F1. An empty split or task is absent, not zero. Also writes the topic confusion
matrix and per-type F1 as DVC plot data and as PNG images, and reports/errors.jsonl: every test
record with a wrong topic or a span error, gold and predicted side by side.

metrics/runtimes.json: test topic macro-F1 and NER F1 of each exported graph named in
evaluate.runtimes (onnx, onnx-int8; from models/multitask-onnx, written by `export onnx`), the same
keys as metrics/eval.json's test scores of torch: what int8 costs per task. --threads (evaluate.threads): CPU threads, 0 for one per core.
"""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import torch

from pipeline.cli import run_cli, stage_parser
from pipeline.core.device import pick_device, set_threads
from pipeline.core.headline import eval_headline
from pipeline.core.model import ModelMeta
from pipeline.core.scoring import SplitMismatch, SplitScorer, record_errors, score_split, scored_predictions
from pipeline.storage import feature_store, model_dir, onnx_graph, plots, progress
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import jsonl_writer, read_jsonl, write_json, write_json_array


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
    feature_store.check_for_model(meta, features, model_path)


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
        "--plots-dir": ("plots", "plot data and images"),
        "--runtimes-metrics": ("metrics/runtimes.json", "test scores of each runtime in evaluate.runtimes"),
        "--onnx-dir": (None, "exported graphs (default: the model directory's name + '-onnx', beside it)")})
    ap.add_argument("--threads", type=int, help="CPU threads, 0: one per core (default: params evaluate.threads)")
    return ap.parse_args(argv)


def exported_runtimes(args, p, onnx_dir: Path) -> list[str]:
    """The runtimes of evaluate.runtimes whose graphs were exported (a graph not exported is left
    out with a note; one that is there but tampered with or stale is an error when loaded)."""
    if not p.evaluate.runtimes:
        return []
    found = onnx_graph.exported(onnx_dir, args.model_dir)
    missing = [rt for rt in p.evaluate.runtimes if rt not in found]
    if missing:
        print(f"evaluate: no {' / '.join(missing)} graph in {onnx_dir}, so not scored (`python -m pipeline "
              f"export onnx --model {args.model_dir} --int8` writes them)")
    return [rt for rt in p.evaluate.runtimes if rt in found]


def score_runtimes(args, p, meta: ModelMeta, pad_id: int, test_scored: bool) -> dict:
    """Test scores of each exported runtime in evaluate.runtimes, in the headline layout (torch's
    are in metrics/eval.json): the accuracy cost of an int8 graph, next to the model's own."""
    onnx_dir = Path(args.onnx_dir) if args.onnx_dir else onnx_graph.default_dir(args.model_dir)
    runtimes = exported_runtimes(args, p, onnx_dir) if test_scored else []
    if not runtimes:
        return {}
    rows = feature_store.FeatureRows(feature_store.split_path(args.features, "test"))
    scores = {}  # torch's are metrics/eval.json's test scores: not repeated, each is a column in `dvc exp show`
    for runtime in runtimes:
        graph = onnx_graph.load(onnx_dir, runtime,
                                model_dir.weights_checksum(args.model_dir), args.threads, args.model_dir)
        with progress.bar(len(rows), f"evaluate test ({runtime})", " window") as bar, mismatch_explained(args, "test"):
            scores[runtime] = score_split(graph, rows, read_jsonl(Path(args.validated) / "test.jsonl"), meta,
                                          p.evaluate.batch_size, pad_id, torch.device("cpu"), bar)
        print(summary_line(f"test ({runtime})", scores[runtime]))
    return {"test": eval_headline(scores)}


@contextmanager
def mismatch_explained(args, split: str):
    """A SplitMismatch as one line naming both files."""
    try:
        yield
    except SplitMismatch as exc:
        raise PipelineError(f"{feature_store.split_path(args.features, split)} and {Path(args.validated) / f'{split}.jsonl'}: "
                            f"{exc}; re-run featurize after validate (`dvc repro`)") from None


def score_splits(args, p, model, meta: ModelMeta, pad_id: int, device) -> tuple[dict, SplitScorer | None, int]:
    """(metrics per split, the test split's scorer, the number of test records with errors).
    Each split is streamed: test errors are written to --errors as they are found."""
    metrics, test, n_errors = {}, None, 0
    with jsonl_writer(args.errors) as write_error:
        for split in ("dev", "test"):
            rows = feature_store.FeatureRows(feature_store.split_path(args.features, split))
            records = read_jsonl(Path(args.validated) / f"{split}.jsonl")
            scorer = SplitScorer(meta)
            with progress.bar(len(rows), f"evaluate {split}", " window") as bar, mismatch_explained(args, split):
                for record, pred in scored_predictions(model, rows, records, meta, p.evaluate.batch_size, pad_id,
                                                       device, bar):
                    scorer.add(record, pred)
                    error = record_errors(record, pred) if split == "test" else None
                    if error is not None:
                        write_error(error)
                        n_errors += 1
            result = scorer.result()
            if not result:
                print(f"evaluate: {split} split is empty or unannotated; its metrics are absent")
                continue
            metrics[split] = result
            test = scorer if split == "test" else test
    return metrics, test, n_errors


def write_plots(plots_dir: Path, test: SplitScorer | None, metrics: dict, meta: ModelMeta) -> None:
    """The test topic confusion and NER F1 per type, as DVC plot data and as PNG images."""
    ner = metrics.get("test", {}).get("ner", {})
    per_type = [{"type": t, **ner[t]} for t in meta.entities if t in ner]
    pairs = test.topic_pairs() if test is not None else iter(())
    write_json_array(plots_dir / "topic_confusion.json", ({"actual": g, "predicted": q} for g, q in pairs))
    write_json(plots_dir / "ner_f1_per_type.json", [{"type": r["type"], "f1": r["f1"]} for r in per_type])
    k = len(meta.topics)
    confusion = test.topic_confusion() if test is not None else [[0] * k for _ in range(k)]
    plots.plot_images(confusion, meta.topics, per_type, plots_dir)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    p = params_mod.load(args.params)
    args.threads = p.evaluate.threads if args.threads is None else args.threads
    if args.threads < 0:
        raise PipelineError(f"--threads {args.threads}: must be 0 (one per core) or more")
    set_threads(args.threads)
    device = pick_device("auto")  # CUDA when present
    model, tokenizer, meta = model_dir.load(args.model_dir, str(device), p.encoder.trust_remote_code)
    check_labels(meta, p, args.model_dir)
    check_features(meta, Path(args.features), Path(args.validated), args.model_dir)
    torch.manual_seed(0)
    metrics, test, n_errors = score_splits(args, p, model, meta, tokenizer.pad_token_id, device)
    write_json(args.details, metrics)
    write_json(args.metrics, eval_headline(metrics))
    write_plots(Path(args.plots_dir), test, metrics, meta)
    write_json(args.runtimes_metrics, score_runtimes(args, p, meta, tokenizer.pad_token_id, "test" in metrics))
    for split, m in metrics.items():
        print(summary_line(split, m))
    print(f"evaluate: {n_errors} test records with errors in {args.errors}")


if __name__ == "__main__":
    run_cli(main)
