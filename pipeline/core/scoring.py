"""Score a model on one split: inference + metrics, shared by train (dev, per epoch) and evaluate;
and the error report that puts gold and predicted side by side for annotators."""
from __future__ import annotations

from pipeline.core.align import fill_tags
from pipeline.core.inference import predict_rows
from pipeline.core.metrics import seqeval_f1, span_errors, span_metrics, topic_metrics
from pipeline.core.model import ModelMeta


def score_split(model, rows: list[dict], records: list[dict], meta: ModelMeta, batch_size: int,
                pad_id: int, device, progress=None) -> tuple[dict, list[dict]]:
    """Metrics for a split (absent keys for a task with nothing to score) and per-record predictions."""
    if not records:
        return {}, []
    preds = predict_rows(model, rows, [r["sentence"] for r in records], meta, batch_size, pad_id, device, progress)
    topic = topic_metrics([r["task_A"] for r in records], [p["topic"] for p in preds], meta.topics)
    ner = span_metrics([r["task_B"] for r in records], [p["spans"] for p in preds], meta.entities)
    result = {}
    if topic is not None:
        result["topic"] = topic
    if ner is not None:
        strategy = meta.label_subwords
        annotated = [(r, p) for r, p in zip(records, preds) if r["task_B"] is not None]
        gold = [fill_tags(p["tokens"].word_ids, p["gold_tags"], strategy) for _, p in annotated]
        pred = [fill_tags(p["tokens"].word_ids, p["pred_tags"], strategy) for _, p in annotated]
        ner["seqeval_f1"] = seqeval_f1(gold, pred)
        result["ner"] = ner
    return result, preds


def error_report(records: list[dict], preds: list[dict]) -> list[dict]:
    """Every record with a wrong topic or a span error: gold and predicted side by side."""
    out = []
    for rec, pred in zip(records, preds):
        topic_wrong = rec["task_A"] is not None and rec["task_A"] != pred["topic"]
        spans = span_errors(rec["task_B"], pred["spans"]) if rec["task_B"] is not None else []
        if topic_wrong or spans:
            out.append({"id": rec["id"], "sentence": rec["sentence"],
                        "topic": {"gold": rec["task_A"], "pred": pred["topic"]} if topic_wrong else None,
                        "span_errors": spans})
    return out
