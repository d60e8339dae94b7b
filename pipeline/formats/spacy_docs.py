"""spaCy documents: JSONL lines {"text", "spans" | "entities" | "ents": [[start, end, label]] or
[{"start", "end", "label"}] (or spaCy's span groups, "spans": {"sc": [...]}), "cats": {label: score}}
with Python code-point offsets, as spaCy's; also doccano's {"text", "label": [[s, e, L]]} and
Prodigy's "answer": "reject"/"ignore". And spaCy's binary DocBin (`.spacy`) files, read with spaCy
itself when it is installed: doc.ents (or a span group) and doc.cats."""
from __future__ import annotations

import zlib
from collections import Counter

from pipeline.core.records import describe, shorten
from pipeline.formats.common import Batch, Item, checked_span, is_finite_number, jsonl_objects, sentence_or_error
from pipeline.storage.errors import PipelineError

_SPAN_KEYS = ("spans", "entities", "ents")
DEFAULT_GROUP = "sc"   # the span group spaCy's SpanCategorizer writes, and spaCy's own default key


def _cats_topic(cats, where: str):
    """The topic: the top scoring category (a tie or no score above 0 is an error)."""
    if not isinstance(cats, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in cats.values()):
        raise PipelineError(f"{where}: expected an object of label: score, got {describe(cats)}")
    bad = next((k for k, v in cats.items() if not is_finite_number(v)), None)
    if bad is not None:   # max() over inf/-inf picks a winner nobody scored; 1e999 parses as inf
        raise PipelineError(f"{where}: score of {shorten(repr(bad), 60)} is {cats[bad]}; scores must be finite numbers")
    if not cats:
        return None
    best = max(cats.values())
    top = [k for k, v in cats.items() if v == best]
    if best <= 0:
        raise PipelineError(f"{where}: no category has a score above 0")
    if len(top) > 1:
        raise PipelineError(f"{where}: ambiguous: {shorten(', '.join(map(str, top)))} all score {best}")
    return top[0]


def _span_group(groups: dict, where: str, group: str) -> list:
    """spans: {"NAME": [spans], ...} -> the chosen group's spans."""
    if not all(isinstance(v, list) for v in groups.values()):
        raise PipelineError(f"{where}: spans: expected a list of spans or span groups {{\"NAME\": [spans]}}, "
                            f"got {describe(groups)}")
    if group not in groups:
        present = ", ".join(shorten(repr(k), 40) for k in groups) or "none"
        raise PipelineError(f"{where}: spans: no span group {group!r} (groups: {present}); "
                            f"choose one with --span-group")
    return groups[group]


def _raw_spans(obj: dict, where: str, span_group: str | None, notes: Counter) -> tuple[str, list] | None:
    """(name for messages, the span list) of a line, or None when it has none (NER not annotated).
    An explicit span_group reads "spans" as span groups and sets other span keys aside."""
    given = [k for k in _SPAN_KEYS if obj.get(k) is not None]
    for key in given:
        value = obj[key]
        if not isinstance(value, list) and not (key == "spans" and isinstance(value, dict)):
            raise PipelineError(f"{where}: {key}: expected a list of spans"
                                + (" or span groups {\"NAME\": [spans]}" if key == "spans" else "")
                                + f", got {describe(value)}")
    if span_group is not None:   # asked for a span group: only "spans" is read, what else is there is counted
        for key in given:
            if key != "spans":
                notes[f"{key!r} lists set aside for the span group (--span-group {span_group})"] += 1
        if "spans" not in given:
            notes[f"lines without \"spans\" (--span-group {span_group}: entities taken as not annotated)"] += 1
            return None
        given = ["spans"]
    if len(given) > 1:
        raise PipelineError(f"{where}: both {given[0]!r} and {given[1]!r} given; keep one"
                            + (" (or choose a span group with --span-group)" if "spans" in given else ""))
    if given:
        value = obj[given[0]]
        if isinstance(value, dict):
            group = span_group or DEFAULT_GROUP
            return f"spans.{group}", _span_group(value, where, group)
        return given[0], value
    label = obj.get("label")
    if isinstance(label, list) and label and all(isinstance(x, list) for x in label):   # doccano
        return "label", label
    return None


def _checked_spans(sentence: str, name: str, raw: list, where: str, notes: Counter) -> list[dict]:
    spans = []
    for k, sp in enumerate(raw):
        at = f"{where}: {name}[{k}]"
        if isinstance(sp, (list, tuple)) and len(sp) == 3:
            spans.append(checked_span(sentence, sp[0], sp[1], sp[2], at, notes))
        elif isinstance(sp, dict) and {"start", "end"} <= sp.keys() and ("label" in sp or "type" in sp):
            spans.append(checked_span(sentence, sp["start"], sp["end"], sp.get("label", sp.get("type")), at, notes,
                                      text=sp.get("text")))
        else:
            raise PipelineError(f"{at}: expected [start, end, label] or {{\"start\", \"end\", \"label\"}}, "
                                f"got {describe(sp)}")
    return [s for s in spans if s is not None]


def _topic(obj: dict, where: str):
    label = obj.get("label")
    if obj.get("cats") is not None:
        return _cats_topic(obj["cats"], f"{where}: cats")
    if isinstance(label, str):
        return label
    if isinstance(label, list) and label and not all(isinstance(x, list) for x in label):
        if len(label) != 1 or not isinstance(label[0], str):
            raise PipelineError(f"{where}: label: must be one topic, got {describe(label)}")
        return label[0]
    return None


def parse_spacy_record(obj, where: str, notes: Counter, span_group: str | None = None) -> dict | None:
    """One spaCy / Prodigy / doccano-style object -> a record (None: skipped)."""
    if not isinstance(obj, dict):
        raise PipelineError(f"{where}: expected an object with \"text\", got {describe(obj)}")
    if obj.get("answer") in ("reject", "ignore"):
        notes[f"records with answer {obj['answer']!r} skipped"] += 1
        return None
    if "text" not in obj:
        raise PipelineError(f"{where}: missing \"text\"")
    sentence = sentence_or_error(obj["text"], f"{where}: text")
    found = _raw_spans(obj, where, span_group, notes)
    spans = _checked_spans(sentence, *found, where, notes) if found else None
    rec = {"sentence": sentence, "task_A": _topic(obj, where), "task_B": spans}
    if isinstance(obj.get("id"), str) and obj["id"].strip():
        rec["id"] = obj["id"]
    return rec


def parse_spacy(text: str, source: str = "<spacy>", span_group: str | None = None) -> Batch:
    """spaCy-style JSONL text -> records. span_group: read "spans" objects as span groups and take
    this one (default: "sc", and only when no other span key is given)."""
    batch = Batch()
    for where, obj in jsonl_objects(text, source):
        rec = parse_spacy_record(obj, where, batch.notes, span_group)
        if rec is not None:
            batch.items.append(Item(where, rec))
    return batch


# ------------------------------------------------------------------------------------ DocBin

def looks_like_docbin(data: bytes) -> bool:
    """A DocBin is zlib-compressed msgpack: its first byte is 0x78 and zlib can decompress its start
    (no UTF-8 text starts like that and inflates, so text files are never taken for one)."""
    if data[:1] != b"\x78":
        return False
    try:
        zlib.decompressobj().decompress(data[:4096], 64)
    except zlib.error:
        return False
    return True


def _load_docbin(data: bytes, source: str) -> list:
    try:   # imported here: spaCy is optional, and heavy
        from spacy.tokens import DocBin
        from spacy.vocab import Vocab
    except ImportError:
        raise PipelineError(f"{source}: a spaCy DocBin file; reading it needs spaCy, which is not installed: "
                            f"pip install spacy") from None
    try:
        return list(DocBin().from_bytes(data).get_docs(Vocab()))
    except Exception as exc:  # noqa: BLE001 -- zlib, msgpack, spaCy: many types for bytes that are not a DocBin
        first = str(exc).split(". ")[0]   # spaCy's E1014 goes on about spaCy v2 for three more sentences
        raise PipelineError(f"{source}: not a readable spaCy DocBin ({type(exc).__name__}: {shorten(first, 100)})") \
            from None


def _doc_spans(doc, loc: str, span_group: str | None, notes: Counter) -> list[dict] | None:
    """doc.ents, or the span group if one was asked; None when the doc has no such annotation (no
    NER at all, or no span groups: a doc with other groups but not this one is an error, as in JSONL)."""
    if span_group is not None:
        if not doc.spans:
            notes[f"docs without span groups (--span-group {span_group}: entities taken as not annotated)"] += 1
            return None
        if span_group not in doc.spans:
            present = ", ".join(shorten(repr(k), 40) for k in doc.spans)
            raise PipelineError(f"{loc}: spans: no span group {span_group!r} (groups: {present}); "
                                f"choose one with --span-group")
        if doc.ents:
            notes[f"docs whose doc.ents were set aside for the span group (--span-group {span_group})"] += 1
        name, raw = f"spans.{span_group}", doc.spans[span_group]
    elif doc.has_annotation("ENT_IOB"):
        name, raw = "ents", doc.ents
    else:
        return None
    spans = [checked_span(doc.text, sp.start_char, sp.end_char, sp.label_, f"{loc}: {name}[{k}]", notes)
             for k, sp in enumerate(raw)]
    return [s for s in spans if s is not None]


def parse_docbin(data: bytes, source: str = "<docbin>", span_group: str | None = None) -> Batch:
    """The bytes of a spaCy DocBin -> records: entities from doc.ents (or the span group asked for;
    a file where no doc has it is an error listing the groups there), the topic from doc.cats by the
    JSONL rule; locations are `file: doc[i]`."""
    batch = Batch()
    docs = _load_docbin(data, source)
    if span_group is not None and docs and not any(span_group in doc.spans for doc in docs):
        present = ", ".join(shorten(repr(k), 40) for k in dict.fromkeys(k for doc in docs for k in doc.spans))
        raise PipelineError(f"{source}: spans: no doc has span group {span_group!r} (groups: {present or 'none'}); "
                            f"choose one with --span-group")
    for i, doc in enumerate(docs):
        loc = f"{source}: doc[{i}]"
        sentence = sentence_or_error(doc.text, f"{loc}: text")
        spans = _doc_spans(doc, loc, span_group, batch.notes)
        topic = _cats_topic(dict(doc.cats), f"{loc}: cats") if doc.cats else None
        batch.items.append(Item(loc, {"sentence": sentence, "task_A": topic, "task_B": spans}))
    return batch
