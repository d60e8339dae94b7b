"""The data contract: one annotated sentence per record. Pure functions, no file I/O.

    {"sentence": str, "task_A": topic | null, "task_B": [{"text", "type", "start", "end"}] | null,
     "id": str (optional, unique), "split": "train" | "dev" | "test" (optional)}

Offsets are Python string (code point) indices, end exclusive. task_A / task_B null or absent
means "not annotated"; task_B == [] means "annotated, no entities".
"""
from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

SPLITS = ("train", "dev", "test")
KNOWN_FIELDS = {"id", "sentence", "task_A", "task_B", "split"}
SPAN_FIELDS = {"text", "type", "start", "end"}
# Extra fields that our own tools write (predict, importers, public datasets); kept, not warned about.
QUIET_FIELDS = {"topic_scores", "score", "source", "meta"}
_ALLOWED_FIELDS = KNOWN_FIELDS | QUIET_FIELDS
QUIET_SPAN_FIELDS = {"score"}  # written by predict, so corrected predictions validate without noise


@dataclass
class Checked:
    record: dict | None                          # the clean record, or None if it has errors
    errors: list[str] = field(default_factory=list)   # "field: what is wrong"
    warnings: list[str] = field(default_factory=list)


def shorten(text: str, limit: int = 200) -> str:
    """Text as a message may show it: at most `limit` characters, then how many were left out (a
    4000-digit number or a 1 MB string in a message would bury the line it is in)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _short(value, limit: int = 60) -> str:
    return shorten(repr(value), limit)


def _num(value: int) -> str:
    """An integer from the input as a message shows it: a 4000-digit offset would bury the line."""
    return shorten(str(value), 20)


def name_shown(value) -> str:
    """A key or id as a message shows it: as written when it is short printable text, else its
    (capped) repr, so a newline, a control character or a lone surrogate never breaks the line."""
    if isinstance(value, str) and value.isprintable() and value == value.strip():
        return shorten(value, 60)
    return _short(value)


def located(loc: str, raw) -> str:
    """`file:line (id=...)`: the location of a record, with its id where it has a string one."""
    rid = raw.get("id") if isinstance(raw, dict) else None
    return f"{loc} (id={name_shown(rid)})" if isinstance(rid, str) else loc


def _label_problem(value, allowed: list[str], what: str) -> str:
    hint = ""
    if isinstance(value, str):
        for a in allowed:
            if a.casefold() == value.strip().casefold():
                hint = f" (did you mean {a!r}? labels are case-sensitive)"
    return f"unknown {what} {_short(value)}{hint}; allowed: {', '.join(allowed)}"


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


JSON_TYPES = {dict: "object", list: "array", str: "string", int: "integer", float: "number"}


def type_name(v, names: dict[type, str] = JSON_TYPES) -> str:
    """The name of a parsed value's type in the language its writer used (JSON by default; params
    pass YAML's names), for messages read by people who wrote that file."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    return names.get(type(v), type(v).__name__)


def json_type(v) -> str:
    return type_name(v)


def describe(v) -> str:
    """'string \'17\'', 'number 2.0', 'null': the JSON type and (short) value of what was found."""
    return "null" if v is None else f"{json_type(v)} {_short(v)}"


def _surrogate(text: str) -> str | None:
    """Describe the first unpaired surrogate (from a JSON "\\ud800" escape; not encodable as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains an unpaired surrogate {text[exc.start]!r} at index {exc.start} "
                f"(not valid Unicode text)")
    return None


def _offset_errors(where: str, start, end, sentence: str) -> list[str]:
    """Problems with a span's start/end: types, range, order (empty: both usable)."""
    errors = []
    for name, v in (("start", start), ("end", end)):
        if not is_int(v):
            errors.append(f"{where}.{name}: offset must be an integer, got {describe(v)}")
        elif v < 0:
            errors.append(f"{where}.{name}: offset {_num(v)} is negative")
        elif v > len(sentence):
            errors.append(f"{where}.{name}: offset {_num(v)} is beyond the sentence (length {len(sentence)})")
    if not errors and start >= end:
        errors.append(f"{where}: start {_num(start)} must be < end {_num(end)}")
    return errors


def check_span(span, i: int, sentence: str, entities: list[str]) -> list[str]:
    where = f"task_B[{i}]"
    if not isinstance(span, dict):
        return [f"{where}: must be an object with text, type, start, end, got {describe(span)}"]
    missing = [k for k in ("text", "type", "start", "end") if k not in span]
    if missing:
        return [f"{where}: missing field(s) {', '.join(missing)}"]
    errors = []
    if isinstance(span["type"], str) and _surrogate(span["type"]):
        errors.append(f"{where}.type: {_surrogate(span['type'])}")
    elif span["type"] not in entities:
        errors.append(f"{where}.type: " + _label_problem(span["type"], entities, "entity type"))
    start, end = span["start"], span["end"]
    offset_errors = _offset_errors(where, start, end, sentence)
    errors += offset_errors
    if not isinstance(span["text"], str):
        errors.append(f"{where}.text: must be a string, got {json_type(span['text'])}")
    elif _surrogate(span["text"]):
        errors.append(f"{where}.text: {_surrogate(span['text'])}")
    elif not offset_errors:
        actual = sentence[start:end]
        if actual != span["text"]:
            errors.append(f"{where}.text: {_short(span['text'])} != sentence[{start}:{end}] {_short(actual)}")
        elif actual != actual.strip():
            errors.append(f"{where}: span {_short(actual)} has leading/trailing whitespace")
    return errors


def _id_errors(rec_id) -> list[str]:
    if rec_id is not None and (not isinstance(rec_id, str) or not rec_id.strip()):
        return [f"id: must be a non-empty string, got {describe(rec_id)}"]
    if rec_id is not None and _surrogate(rec_id):
        return [f"id: {_surrogate(rec_id)}"]
    return []


def _sentence_errors(raw: dict) -> tuple[str | None, list[str]]:
    """(the sentence, if spans can be checked against it; its problems)."""
    sentence = raw.get("sentence")
    if not isinstance(sentence, str):
        return None, ["sentence: missing" if sentence is None and "sentence" not in raw
                      else f"sentence: must be a string, got {describe(sentence)}"]
    if not sentence.strip():
        return sentence, ["sentence: empty" if not sentence else f"sentence: empty (only whitespace {_short(sentence)})"]
    if _surrogate(sentence):
        return None, [f"sentence: {_surrogate(sentence)}"]
    return sentence, []


def _label_errors(raw: dict, topics: list[str]) -> list[str]:
    """task_A, the type of task_B, at least one task annotated, split."""
    errors = []
    topic, spans, split = raw.get("task_A"), raw.get("task_B"), raw.get("split")
    if isinstance(topic, str) and _surrogate(topic):
        errors.append(f"task_A: {_surrogate(topic)}")
    elif topic is not None and topic not in topics:
        errors.append("task_A: " + _label_problem(topic, topics, "topic")
                      if isinstance(topic, str) else
                      f"task_A: must be a topic string or null, got {describe(topic)}")
    if spans is not None and not isinstance(spans, list):
        errors.append(f"task_B: must be a list of spans or null, got {describe(spans)}")
    if topic is None and spans is None:
        errors.append("task_A/task_B: neither task is annotated")
    if split is not None and split not in SPLITS:
        hint = (f" (did you mean {split.strip().lower()!r}? splits are lower-case)"
                if isinstance(split, str) and split.strip().lower() in SPLITS else "")
        errors.append(f"split: must be one of {', '.join(SPLITS)}, got {_short(split)}{hint}")
    return errors


def _overlap_errors(good: list[dict]) -> list[str]:
    """Among spans that are fine on their own (sorted by start, longest first), any that overlap."""
    errors = []
    for a, b in itertools.pairwise(good):
        if b["start"] < a["end"]:
            kind = ("duplicate" if (a["start"], a["end"]) == (b["start"], b["end"])
                    else "nested" if b["end"] <= a["end"] else "overlapping")
            errors.append(f"task_B: {kind} spans {_short(a['text'])} [{a['start']}:{a['end']}] "
                          f"and {_short(b['text'])} [{b['start']}:{b['end']}]")
    return errors


def _check_spans(spans: list, sentence: str, entities: list[str], warnings: list[str]) -> tuple[list[dict], list[str]]:
    """(the clean spans, sorted; every problem). Overlaps are checked among the spans that are fine
    on their own, so every problem shows at once."""
    good, errors = [], []
    for i, span in enumerate(spans):
        span_errors = check_span(span, i, sentence, entities)
        errors.extend(span_errors)
        if isinstance(span, dict):
            extra = [k for k in span if k not in SPAN_FIELDS | QUIET_SPAN_FIELDS]
            if extra:
                warnings.append(f"task_B[{i}]: unknown field(s) {shorten(', '.join(map(name_shown, extra)))} (ignored)")
            if not span_errors:
                good.append({k: span[k] for k in ("text", "type", "start", "end")})
    good.sort(key=lambda s: (s["start"], -s["end"]))
    return good, errors + _overlap_errors(good)


def check_record(raw, topics: list[str], entities: list[str]) -> Checked:
    """Check one record against the contract; return the clean record or the list of problems."""
    if not isinstance(raw, dict):
        return Checked(None, [f"record: must be a JSON object, got {describe(raw)}"])
    warnings = [f"{name_shown(k)}: unknown field (ignored)" for k in raw if k not in _ALLOWED_FIELDS]
    sentence, sentence_errors = _sentence_errors(raw)
    errors = _id_errors(raw.get("id")) + sentence_errors + _label_errors(raw, topics)
    spans = raw.get("task_B")
    clean_spans = None
    if isinstance(spans, list) and sentence is not None:
        clean_spans, span_errors = _check_spans(spans, sentence, entities, warnings)
        errors += span_errors
    if errors:
        return Checked(None, errors, warnings)
    record = {"sentence": sentence, "task_A": raw.get("task_A"), "task_B": clean_spans}
    for key in ("id", "split"):
        if raw.get(key) is not None:
            record[key] = raw[key]
    return Checked(record, [], warnings)


def normalise(sentence: str) -> str:
    """The text used for split hashing and duplicate detection: NFKC, case-folded, single spaces."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", sentence)).strip().casefold()


def hash_split(sentence: str, dev: float, test: float, seed: int) -> str:
    """Stable split from the sentence text alone: adding records never moves an existing one."""
    return hash_normalised(normalise(sentence), dev, test, seed)


def hash_normalised(norm: str, dev: float, test: float, seed: int) -> str:
    """hash_split for text already passed through normalise() (or any other grouping key)."""
    u = hash_unit(norm, seed)
    return "test" if u < test else "dev" if u < test + dev else "train"


def hash_unit(key: str, seed: int | str) -> float:
    """A stable pseudo-random number in [0, 1) from a key and a seed (salt)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def record_id(sentence: str) -> str:
    """Id for records that come without one: derived from the text, so it is stable."""
    return "s-" + hashlib.sha256(sentence.encode()).hexdigest()[:16]


def split_stats(records: Iterable[dict], topics: list[str], entities: list[str]) -> dict:
    """Record, annotation and label counts of checked records (metrics/data.json, importer summary).
    One pass: `records` may be a stream (a large split is never held in memory for this)."""
    topic_counts, entity_counts, n, ner_annotated = Counter(), Counter(), 0, 0
    for r in records:
        n += 1
        if r["task_A"] is not None:
            topic_counts[r["task_A"]] += 1
        if r["task_B"] is not None:
            ner_annotated += 1
            entity_counts.update(s["type"] for s in r["task_B"])
    return {
        "records": n,
        "topic_annotated": sum(topic_counts.values()),
        "ner_annotated": ner_annotated,
        "topics": {t: topic_counts[t] for t in topics},
        "entities": {e: entity_counts[e] for e in entities},
    }
