"""Score a model on one split: inference + metrics, shared by train (dev, per epoch) and evaluate;
and the error report that puts gold and predicted side by side for annotators.

A split is scored as a stream: its feature rows and records are read a chunk of whole records
at a time (CHUNK_WINDOWS windows), and SplitScorer keeps counts, not predictions, so memory does
not grow with the split (two bytes per topic-annotated record). Within a chunk rows are batched
by length as before; a split of up to CHUNK_WINDOWS windows is batched exactly as when it was
scored in one piece.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from itertools import islice

from pipeline.core.align import fill_tags
from pipeline.core.inference import group_windows, predict_rows, record_chunks
from pipeline.core.metrics import EntityTally, SpanTally, span_errors, topic_metrics_from_ids
from pipeline.core.model import ModelMeta

CHUNK_WINDOWS = 4096  # windows per chunk: well past a batch's length sorting, small next to any model


class SplitScorer:
    """A split's metrics, one (record, prediction) pair at a time: the topic pairs as label ids
    (scored by scikit-learn at the end, as integers), exact-span and seqeval counts as they come."""

    def __init__(self, meta: ModelMeta):
        self.meta = meta
        self.topic_id = {t: i for i, t in enumerate(meta.topics)}
        self.topic_gold, self.topic_pred = array("h"), array("h")  # over topic-annotated records
        self.spans, self.entities = SpanTally(), EntityTally()

    def add(self, record: dict, pred: dict) -> None:
        if record["task_A"] is not None:
            self.topic_gold.append(self.topic_id[record["task_A"]])
            self.topic_pred.append(self.topic_id[pred["topic"]])
        self.spans.add(record["task_B"], pred["spans"])
        if record["task_B"] is not None:
            words, strategy = pred["tokens"].word_ids, self.meta.label_subwords
            self.entities.add([fill_tags(words, pred["gold_tags"], strategy)],
                              [fill_tags(words, pred["pred_tags"], strategy)])

    def topic_pairs(self) -> Iterator[tuple[str, str]]:
        """(gold, predicted) topic of each topic-annotated record, in order."""
        topics = self.meta.topics
        return ((topics[g], topics[p]) for g, p in zip(self.topic_gold, self.topic_pred))

    def topic_confusion(self) -> list[list[int]]:
        """counts[gold][predicted] over the topic-annotated records (the topics in meta order)."""
        k = len(self.meta.topics)
        counts = [[0] * k for _ in range(k)]
        for g, p in zip(self.topic_gold, self.topic_pred):
            counts[g][p] += 1
        return counts

    def result(self) -> dict:
        """Metrics for the split (absent keys for a task with nothing to score)."""
        topic = topic_metrics_from_ids(self.topic_gold, self.topic_pred, self.meta.topics)
        ner = self.spans.result(self.meta.entities)
        result = {}
        if topic is not None:
            result["topic"] = topic
        if ner is not None:
            ner["seqeval_f1"] = self.entities.result()
            result["ner"] = ner
        return result


class SplitMismatch(ValueError):
    """A split's feature rows and validated records do not correspond (one was re-made without the other)."""


def scored_predictions(model, rows: Iterable[dict], records: Iterable[dict], meta: ModelMeta, batch_size: int,
                       pad_id: int, device, progress=None) -> Iterator[tuple[dict, dict]]:
    """(record, prediction) for each record of a split, in order, a chunk of whole records at a
    time. `rows` are the split's feature rows, `records` its validated records (the k-th record's
    windows are the k-th group of rows). Raises SplitMismatch when their counts differ."""
    records, seen = iter(records), 0
    for chunk in record_chunks(rows, CHUNK_WINDOWS):
        n_records = len(group_windows(chunk))
        part = list(islice(records, n_records))
        seen += len(part)
        if len(part) < n_records:
            raise SplitMismatch(f"the features hold more records than the {seen} validated records")
        preds = predict_rows(model, chunk, [r["sentence"] for r in part], meta, batch_size, pad_id, device, progress)
        yield from zip(part, preds, strict=True)
    if next(records, None) is not None:
        raise SplitMismatch(f"there are more validated records than the {seen} in the features")


def score_split(model, rows: Iterable[dict], records: Iterable[dict], meta: ModelMeta, batch_size: int,
                pad_id: int, device, progress=None) -> dict:
    """Metrics for a split (absent keys for a task with nothing to score)."""
    scorer = SplitScorer(meta)
    for record, pred in scored_predictions(model, rows, records, meta, batch_size, pad_id, device, progress):
        scorer.add(record, pred)
    return scorer.result()


def record_errors(rec: dict, pred: dict) -> dict | None:
    """A record with a wrong topic or a span error, gold and predicted side by side (None: right)."""
    topic_wrong = rec["task_A"] is not None and rec["task_A"] != pred["topic"]
    spans = span_errors(rec["task_B"], pred["spans"]) if rec["task_B"] is not None else []
    if not topic_wrong and not spans:
        return None
    return {"id": rec["id"], "sentence": rec["sentence"],
            "topic": {"gold": rec["task_A"], "pred": pred["topic"]} if topic_wrong else None,
            "span_errors": spans}
