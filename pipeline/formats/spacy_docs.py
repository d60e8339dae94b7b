"""spaCy-style JSONL: {"text", "spans" | "entities" | "ents": [[start, end, label]] or
[{"start", "end", "label"}], "cats": {label: score}} with Python code-point offsets, as spaCy's;
also doccano's {"text", "label": [[s, e, L]]} and Prodigy's "answer": "reject"/"ignore"."""
from __future__ import annotations

from collections import Counter

from pipeline.core.records import describe
from pipeline.formats.common import Batch, Item, checked_span, jsonl_objects, sentence_or_error
from pipeline.storage.errors import PipelineError

_SPAN_KEYS = ("spans", "entities", "ents")


def _cats_topic(cats, where: str):
    if not isinstance(cats, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in cats.values()):
        raise PipelineError(f"{where}: cats must be an object of label: score, got {describe(cats)}")
    if not cats:
        return None
    best = max(cats.values())
    top = [k for k, v in cats.items() if v == best]
    if best <= 0:
        raise PipelineError(f"{where}: cats has no category with a score above 0")
    if len(top) > 1:
        raise PipelineError(f"{where}: cats is ambiguous: {', '.join(top)} all score {best}")
    return top[0]


def parse_spacy_record(obj, where: str, notes: Counter) -> dict | None:
    """One spaCy / Prodigy / doccano-style object -> a record (None: skipped)."""
    if not isinstance(obj, dict):
        raise PipelineError(f"{where}: expected an object with \"text\", got {describe(obj)}")
    if obj.get("answer") in ("reject", "ignore"):
        notes[f"records with answer {obj['answer']!r} skipped"] += 1
        return None
    if "text" not in obj:
        raise PipelineError(f"{where}: missing \"text\"")
    sentence = sentence_or_error(obj["text"], f"{where}: text")
    keys = [k for k in _SPAN_KEYS if isinstance(obj.get(k), list)]
    label = obj.get("label")
    doccano = isinstance(label, list) and label and all(isinstance(x, list) for x in label)
    if len(keys) > 1:
        raise PipelineError(f"{where}: both {keys[0]!r} and {keys[1]!r} given; keep one")
    raw_spans = obj[keys[0]] if keys else label if doccano else None
    spans = None
    if raw_spans is not None:
        spans = []
        for k, sp in enumerate(raw_spans):
            at = f"{where}: {keys[0] if keys else 'label'}[{k}]"
            if isinstance(sp, (list, tuple)) and len(sp) == 3:
                spans.append(checked_span(sentence, sp[0], sp[1], sp[2], at, notes))
            elif isinstance(sp, dict) and {"start", "end"} <= sp.keys() and ("label" in sp or "type" in sp):
                spans.append(checked_span(sentence, sp["start"], sp["end"], sp.get("label", sp.get("type")), at, notes,
                                   text=sp.get("text")))
            else:
                raise PipelineError(f"{at}: expected [start, end, label] or {{\"start\", \"end\", \"label\"}}, "
                                    f"got {describe(sp)}")
        spans = [s for s in spans if s is not None]
    topic = None
    if obj.get("cats") is not None:
        topic = _cats_topic(obj["cats"], f"{where}: cats")
    elif isinstance(label, str):
        topic = label
    elif isinstance(label, list) and not doccano and label:
        if len(label) != 1 or not isinstance(label[0], str):
            raise PipelineError(f"{where}: label must be one topic, got {describe(label)}")
        topic = label[0]
    rec = {"sentence": sentence, "task_A": topic, "task_B": spans}
    if isinstance(obj.get("id"), str) and obj["id"].strip():
        rec["id"] = obj["id"]
    return rec


def parse_spacy(text: str, source: str = "<spacy>") -> Batch:
    """spaCy-style JSONL text -> records."""
    batch = Batch()
    for where, obj in jsonl_objects(text, source):
        rec = parse_spacy_record(obj, where, batch.notes)
        if rec is not None:
            batch.items.append(Item(where, rec))
    return batch
