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
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    pairs = [(g, p) for g, p in zip(gold, pred, strict=True) if g is not None]
    if not pairs:
        return None
    y, yhat = [g for g, _ in pairs], [p for _, p in pairs]
    present = [lab for lab in labels if lab in set(y) | set(yhat)]
    p, r, f, s = precision_recall_fscore_support(y, yhat, labels=present, zero_division=0)
    out = {"n": len(y), "accuracy": round(float(accuracy_score(y, yhat)), 4),
           "macro_f1": round(float(f1_score(y, yhat, labels=present, average="macro", zero_division=0)), 4)}
    for i, lab in enumerate(present):
        out[lab] = {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                    "f1": round(float(f[i]), 4), "support": int(s[i])}
    return out


def _key(span: dict) -> tuple:
    return (span["type"], span["start"], span["end"])


def span_metrics(gold: list[list[dict] | None], pred: list[list[dict]], types: list[str]) -> dict | None:
    """Exact character-span P/R/F1, micro and per type, over records with gold task_B."""
    tp, fp, fn = Counter(), Counter(), Counter()
    n = 0
    for g, p in zip(gold, pred, strict=True):
        if g is None:
            continue
        n += 1
        gs, ps = {_key(s) for s in g}, {_key(s) for s in p}
        for k in gs & ps:
            tp[k[0]] += 1
        for k in ps - gs:
            fp[k[0]] += 1
        for k in gs - ps:
            fn[k[0]] += 1
    if not n:
        return None
    out = {"n": n, **_prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
           "gold_entities": sum(tp.values()) + sum(fn.values())}
    for t in types:
        if tp[t] + fp[t] + fn[t]:
            out[t] = {**_prf(tp[t], fp[t], fn[t]), "support": tp[t] + fn[t]}
    return out


def seqeval_f1(gold_tags: list[list[str]], pred_tags: list[list[str]]) -> float | None:
    """Strict IOB2 entity F1 on token tag sequences (seqeval)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    if not any(t != "O" for seq in (*gold_tags, *pred_tags) for t in seq):
        return None  # no entity in gold or predictions: nothing to score
    return round(float(f1_score(gold_tags, pred_tags, mode="strict", scheme=IOB2, zero_division=0)), 4)


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
