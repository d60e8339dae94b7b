"""Stage 4, evaluate: score the trained model on the dev and test splits.

metrics/eval.json: per split, topic accuracy / macro-F1 / per-class P/R/F1 and NER exact-span
micro P/R/F1, per type, and seqeval strict IOB2 F1; each task only over records annotated for
it (with the counts). An empty split or task is absent, not zero. Also writes the topic confusion
matrix and per-type F1 as DVC plot data and as PNG images, and reports/errors.jsonl: every test
record with a wrong topic or a span error, gold and predicted side by side.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipeline import params as params_mod
from pipeline.files import PipelineError, atomic_path, read_jsonl, run_cli, write_json, write_jsonl
from pipeline.inference import pick_device
from pipeline.metrics import span_errors
from pipeline.model import load as load_model
from pipeline.scoring import score_split
from pipeline.tokenize import load_features


def check_labels(meta: dict, p: dict, model_dir) -> None:
    for key, name in (("topics", "labels.topics"), ("entities", "labels.entities")):
        if meta[key] != p["labels"][key]:
            raise PipelineError(f"model '{model_dir}' was trained with {key} {meta[key]} but params.yaml "
                                f"{name} is {p['labels'][key]}; re-run training (`dvc repro`)")


def check_features(meta: dict, features: Path, validated: Path, model_dir) -> None:
    """The features must be what the model was trained on: same labels, tokenizer and layout."""
    for path in [features / "meta.json"] + [d / f"{s}.{ext}" for s in ("dev", "test")
                                            for d, ext in ((features, "parquet"), (validated, "jsonl"))]:
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run the validate and tokenize stages first (`dvc repro`)")
    fmeta = json.loads((features / "meta.json").read_text(encoding="utf-8"))
    for key, model_key in (("topics", "topics"), ("tags", "tags"), ("encoder", "encoder_name"),
                           ("label_subwords", "label_subwords"), ("n_prefix", "n_prefix")):
        if fmeta.get(key) != meta.get(model_key):
            raise PipelineError(f"{features}/meta.json {key} {fmeta.get(key)!r} differs from model '{model_dir}' "
                                f"({meta.get(model_key)!r}); re-run tokenize and train (`dvc repro`)")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def error_report(records: list[dict], preds: list[dict]) -> list[dict]:
    out = []
    for rec, pred in zip(records, preds):
        topic_wrong = rec["task_A"] is not None and rec["task_A"] != pred["topic"]
        spans = span_errors(rec["task_B"], pred["spans"]) if rec["task_B"] is not None else []
        if topic_wrong or spans:
            out.append({"id": rec["id"], "sentence": rec["sentence"],
                        "topic": {"gold": rec["task_A"], "pred": pred["topic"]} if topic_wrong else None,
                        "span_errors": spans})
    return out


def plot_images(confusion: list[dict], topics: list[str], per_type: list[dict], out_dir: Path) -> None:
    """PNG versions of the plots: DVC's HTML loads Vega from a CDN and stays blank offline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    grid = [[sum(1 for c in confusion if c["actual"] == a and c["predicted"] == b) for b in topics] for a in topics]
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(topics)), topics, rotation=30)
    ax.set_yticks(range(len(topics)), topics)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xlabel="predicted", ylabel="actual", title="topic confusion (test)")
    fig.tight_layout()
    with atomic_path(out_dir / "topic_confusion.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([r["type"] for r in per_type], [r["f1"] for r in per_type], color="tab:orange")
    ax.set(ylim=(0, 1), ylabel="exact-span F1", title="NER F1 per type (test)")
    fig.tight_layout()
    with atomic_path(out_dir / "ner_f1.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--model-dir", default="models/multitask", help="trained model (default: %(default)s)")
    ap.add_argument("--features", default="data/tokenized", help="tokenized features (default: %(default)s)")
    ap.add_argument("--validated", default="data/validated", help="validated records (default: %(default)s)")
    ap.add_argument("--metrics", default="metrics/eval.json", help="scores (default: %(default)s)")
    ap.add_argument("--errors", default="reports/errors.jsonl", help="test errors for review (default: %(default)s)")
    ap.add_argument("--plots-dir", default="plots", help="plot data and images (default: %(default)s)")
    args = ap.parse_args()
    p = params_mod.load(args.params)
    device = pick_device(None)  # CUDA when present
    model, tokenizer, meta = load_model(args.model_dir, str(device), p["encoder"]["trust_remote_code"])
    check_labels(meta, p, args.model_dir)
    check_features(meta, Path(args.features), Path(args.validated), args.model_dir)
    torch.manual_seed(0)
    metrics, errors = {}, []
    confusion, per_type = [], []
    for split in ("dev", "test"):
        records = list(read_jsonl(Path(args.validated) / f"{split}.jsonl"))
        rows = load_features(Path(args.features) / f"{split}.parquet")
        result, preds = score_split(model, rows, records, meta, p["evaluate"]["batch_size"],
                                    tokenizer.pad_token_id, device)
        if not result:
            print(f"evaluate: {split} split is empty or unannotated; its metrics are absent")
            continue
        metrics[split] = result
        if split == "test":
            errors = error_report(records, preds)
            confusion = [{"actual": r["task_A"], "predicted": q["topic"]}
                         for r, q in zip(records, preds) if r["task_A"] is not None]
            if "ner" in result:
                per_type = [{"type": t, "f1": result["ner"][t]["f1"]} for t in meta["entities"] if t in result["ner"]]
    write_json(args.metrics, metrics)
    write_jsonl(args.errors, errors)
    plots = Path(args.plots_dir)
    write_json(plots / "topic_confusion.json", confusion)
    write_json(plots / "ner_f1_per_type.json", per_type)
    plot_images(confusion, meta["topics"], per_type, plots)
    for split, m in metrics.items():
        t, n = m.get("topic"), m.get("ner")
        print(f"evaluate {split}: " + "; ".join(filter(None, [
            t and f"topic acc {_fmt(t['accuracy'])} macro-F1 {_fmt(t['macro_f1'])} (n={t['n']})",
            n and f"NER P {_fmt(n['precision'])} R {_fmt(n['recall'])} F1 {_fmt(n['f1'])} (n={n['n']})"])))
    print(f"evaluate: {len(errors)} test records with errors in {args.errors}")


if __name__ == "__main__":
    run_cli(main)
