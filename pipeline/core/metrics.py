"""Scores, computed the standard way. Pure: lists in, dicts out.

Topic: accuracy, macro-F1 (scikit-learn's default: over the classes that occur in gold or
predictions), per-class P/R/F1. NER: exact character-span matches (type, start and end all equal;
a boundary or type error is one false positive and one false negative), micro and per type, plus
seqeval's strict IOB2 entity F1 on token tags. Each task is scored only on records annotated for
it; absent (None, or no key) means "nothing to score", never a fake zero: a task with no annotated
records is None, a class or entity type that occurs in neither gold nor predictions has no entry,
and NER P/R/F1 are None when there are no entities in gold or predictions at all.
"""
from __future__ import annotations

from collections import Counter


def _prf(tp: int, fp: int, fn: int) -> dict:
    if not tp + fp + fn:  # no entity in gold or predictions: nothing to score
        return {"precision": None, "recall": None, "f1": None}
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def topic_metrics(gold: list[str | None], pred: list[str], labels: list[str]) -> dict | None:
    ids: dict[str, int] = {lab: i for i, lab in enumerate(labels)}  # a label outside `labels` gets an id past them
    pairs = [(ids.setdefault(g, len(ids)), ids.setdefault(p, len(ids))) for g, p in zip(gold, pred, strict=True)
             if g is not None]
    return topic_metrics_from_ids([g for g, _ in pairs], [p for _, p in pairs], labels)


def topic_metrics_from_ids(gold, pred, labels: list[str]) -> dict | None:
    """topic_metrics over annotated records given as label ids (index into `labels`; larger: a
    label outside them), e.g. compact arrays of a long split: scikit-learn gets integers, never
    millions of strings."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    y, yhat = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if not len(y):
        return None
    seen = set(np.unique(y).tolist()) | set(np.unique(yhat).tolist())
    present = [i for i in range(len(labels)) if i in seen]
    p, r, f, s = precision_recall_fscore_support(y, yhat, labels=present, zero_division=0)
    out = {"n": len(y), "accuracy": round(float(accuracy_score(y, yhat)), 4),
           "macro_f1": round(float(f1_score(y, yhat, labels=present, average="macro", zero_division=0)), 4)}
    for k, i in enumerate(present):
        out[labels[i]] = {"precision": round(float(p[k]), 4), "recall": round(float(r[k]), 4),
                          "f1": round(float(f[k]), 4), "support": int(s[k])}
    return out


def _key(span: dict) -> tuple:
    return (span["type"], span["start"], span["end"])


class SpanTally:
    """Exact-span true positives, false positives and false negatives per type, added one record at
    a time: span_metrics over a stream of any length in constant memory."""

    def __init__(self):
        self.tp, self.fp, self.fn, self.n = Counter(), Counter(), Counter(), 0

    def add(self, gold: list[dict] | None, pred: list[dict]) -> None:
        """One record's gold and predicted spans (gold None: not annotated for NER, not scored)."""
        if gold is None:
            return
        self.n += 1
        gs, ps = {_key(s) for s in gold}, {_key(s) for s in pred}
        for k in gs & ps:
            self.tp[k[0]] += 1
        for k in ps - gs:
            self.fp[k[0]] += 1
        for k in gs - ps:
            self.fn[k[0]] += 1

    def result(self, types: list[str]) -> dict | None:
        if not self.n:
            return None
        tp, fp, fn = self.tp, self.fp, self.fn
        out = {"n": self.n, **_prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
               "gold_entities": sum(tp.values()) + sum(fn.values())}
        for t in types:
            if tp[t] + fp[t] + fn[t]:
                out[t] = {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t]}
        return out


def span_metrics(gold: list[list[dict] | None], pred: list[list[dict]], types: list[str]) -> dict | None:
    """Exact character-span P/R/F1, micro and per type, over records with gold task_B."""
    tally = SpanTally()
    for g, p in zip(gold, pred, strict=True):
        tally.add(g, p)
    return tally.result(types)


class EntityTally:
    """seqeval's strict IOB2 entity counts (gold, predicted, matching), summed over sentences. Its
    entities are per sentence, so the sums over a stream, in chunks of any size, are the counts
    seqeval finds in the whole list, and result() is its micro F1 (zero_division=0) on them, by
    its own formula: constant memory where seqeval.metrics.f1_score needs every sequence at once."""

    def __init__(self):
        self.tp = self.n_pred = self.n_gold = 0
        self.tagged = False  # any tag other than O in gold or predictions

    def add(self, gold_tags: list[list[str]], pred_tags: list[list[str]]) -> None:
        """A chunk of sentences' token tags, gold and predicted."""
        from seqeval.scheme import IOB2, Entities

        if len(gold_tags) != len(pred_tags) or list(map(len, gold_tags)) != list(map(len, pred_tags)):
            raise ValueError("gold and predicted tag sequences differ in number or length")
        self.tagged = self.tagged or any(t != "O" for seq in (*gold_tags, *pred_tags) for t in seq)
        gold = {e for sentence in Entities(gold_tags, IOB2).entities for e in sentence} if gold_tags else set()
        pred = {e for sentence in Entities(pred_tags, IOB2).entities for e in sentence} if pred_tags else set()
        self.tp += len(gold & pred)
        self.n_pred += len(pred)
        self.n_gold += len(gold)

    def result(self) -> float | None:
        if not self.tagged:
            return None  # no entity in gold or predictions: nothing to score
        precision = self.tp / self.n_pred if self.n_pred else 0.0
        recall = self.tp / self.n_gold if self.n_gold else 0.0
        return round(2.0 * precision * recall / (precision + recall) if precision + recall else 0.0, 4)


def seqeval_f1(gold_tags: list[list[str]], pred_tags: list[list[str]]) -> float | None:
    """Strict IOB2 entity F1 on token tag sequences (seqeval's entities and micro F1)."""
    tally = EntityTally()
    tally.add(gold_tags, pred_tags)
    return tally.result()


def span_errors(gold: list[dict], pred: list[dict]) -> list[dict]:
    """Classify span disagreements for annotators: missed, spurious, wrong_type, wrong_boundary."""
    gold_keys, pred_keys = {_key(s) for s in gold}, {_key(s) for s in pred}
    errors, used = [], set()
    for p in pred:
        if _key(p) in gold_keys:
            continue
        same_range = [g for g in gold if (g["start"], g["end"]) == (p["start"], p["end"])]
        overlap = [g for g in gold if g["start"] < p["end"] and p["start"] < g["end"] and _key(g) not in pred_keys]
        if same_range:
            errors.append({"kind": "wrong_type", "gold": same_range[0], "pred": p})
            used.add(_key(same_range[0]))
        elif overlap:
            errors.append({"kind": "wrong_boundary", "gold": overlap[0], "pred": p})
            used.add(_key(overlap[0]))
        else:
            errors.append({"kind": "spurious", "gold": None, "pred": p})
    for g in gold:
        if _key(g) not in pred_keys and _key(g) not in used:
            errors.append({"kind": "missed", "gold": g, "pred": None})
    return errors


def select_score(topic: dict | None, ner: dict | None, metric: str) -> float | None:
    """The dev score for early stopping (higher is better)."""
    parts = {"topic_macro_f1": topic and topic["macro_f1"], "ner_f1": ner and ner["f1"]}
    if metric in parts:
        return parts[metric]
    values = [v for v in parts.values() if v is not None]
    return round(sum(values) / len(values), 4) if values else None
