"""Label Studio: reading its JSON export (tasks with annotations or predictions, with or without
the "data" wrapper) into records, and writing records as tasks with pre-annotations in its
predictions import format. Offsets are code points by default, as Label Studio's frontend and its
Python converter (label_studio_sdk.converter) count them; UTF-16 code units (as other tools in a
browser count, differing after a character outside the BMP such as an emoji) on request."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from pipeline.core.records import describe, is_int, shorten
from pipeline.formats.common import Batch, Item, checked_span, number, sentence_or_error
from pipeline.storage.errors import PipelineError


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _has_astral(text: str) -> bool:
    return any(ord(c) > 0xFFFF for c in text)


def utf16_positions(text: str) -> list[int]:
    """pos[i] = UTF-16 offset of code point i; pos[len(text)] = UTF-16 length."""
    pos, n = [0], 0
    for c in text:
        n += 2 if ord(c) > 0xFFFF else 1
        pos.append(n)
    return pos


def to_codepoint(text: str, offsets16: list[int]) -> list[int | None]:
    """UTF-16 offsets -> code-point offsets (None for one inside a surrogate pair or out of range)."""
    if not _has_astral(text):
        return [o if 0 <= o <= len(text) else None for o in offsets16]
    back = {u: i for i, u in enumerate(utf16_positions(text))}
    return [back.get(o) for o in offsets16]


def to_utf16(text: str, offsets: list[int]) -> list[int]:
    """Code-point offsets -> UTF-16 offsets."""
    if not _has_astral(text):
        return list(offsets)
    pos = utf16_positions(text)
    return [pos[o] for o in offsets]


def _task_loc(source: str, i: int, task: dict) -> str:
    tid = task.get("id") if isinstance(task, dict) else None
    return f"{source}: task[{i}]" + (f" (id={shorten(str(tid), 40)})" if tid is not None else "")


# A task's own fields in Label Studio's export and import formats; in a task without the "data"
# wrapper (which Label Studio's import accepts) every other field is data.
TASK_FIELDS = frozenset({
    "id", "annotations", "completions", "predictions", "drafts", "meta", "created_at", "updated_at", "inner_id",
    "total_annotations", "cancelled_annotations", "total_predictions", "comment_count", "unresolved_comment_count",
    "last_comment_updated_at", "project", "updated_by", "file_upload", "comment_authors", "annotators",
    "is_labeled", "overlap", "agreement"})


def _task_data(task, loc: str, text_key: str, notes: Counter) -> tuple[dict, str]:
    """(the task's data, its text): task["data"], or the task's own fields when it has no wrapper."""
    if not isinstance(task, dict):
        raise PipelineError(f"{loc}: expected a task object (a Label Studio JSON export), got {describe(task)}")
    if "data" in task:
        data, name = task["data"], "data"
        if not isinstance(data, dict):
            raise PipelineError(f"{loc}: data: expected an object, got {describe(data)}")
    else:
        data, name = {k: v for k, v in task.items() if k not in TASK_FIELDS}, "task"
        notes["tasks without the \"data\" wrapper (their own fields taken as data)"] += 1
    if text_key not in data:
        keys = ", ".join(shorten(str(k), 40) for k in data) or "none"
        raise PipelineError(f"{loc}: {name} has no {text_key!r} field ({name} keys: {keys}); use --text-key")
    return data, sentence_or_error(data[text_key], f"{loc}: {name}.{text_key}")


def _pick(task: dict, loc: str, use_predictions: bool, notes: Counter) -> list | None:
    """The result list to import: the last non-cancelled annotation, else (flag) the last prediction."""
    anns = task.get("annotations") or task.get("completions") or []
    if not isinstance(anns, list):
        raise PipelineError(f"{loc}: annotations: must be a list, got {describe(anns)}")
    anns = [a for a in anns if isinstance(a, dict) and not a.get("was_cancelled")]
    if anns:
        chosen = anns[-1]
    elif use_predictions and task.get("predictions"):
        preds = task["predictions"]
        if not isinstance(preds, list) or not isinstance(preds[-1], dict):
            raise PipelineError(f"{loc}: predictions: must be a list of objects")
        chosen = preds[-1]
        notes["tasks imported from predictions (no annotation)"] += 1
    else:
        return None
    result = chosen.get("result")
    if not isinstance(result, list):
        raise PipelineError(f"{loc}: result: must be a list, got {describe(result)}")
    return result


@dataclass
class _Options:
    offsets: str
    labels_from_name: str | None
    choices_from_name: str | None

    def labels(self, r: dict) -> bool:
        return r.get("type") == "labels" and self.labels_from_name in (None, r.get("from_name"))

    def choices(self, r: dict) -> bool:
        return r.get("type") == "choices" and self.choices_from_name in (None, r.get("from_name"))


def _task_labels(loc: str, sentence: str, result: list, opts: _Options, notes: Counter) -> tuple[list, object]:
    """(spans, topic or None) of one task's chosen result list."""
    spans, topics = [], []
    for k, r in enumerate(result):
        where = f"{loc}: result[{k}]"
        if not isinstance(r, dict):
            raise PipelineError(f"{where}: must be an object, got {describe(r)}")
        value = r.get("value")
        if opts.labels(r):
            spans.append(_ls_span(sentence, value, where, opts.offsets, notes))
        elif opts.choices(r):
            choices = value.get("choices") if isinstance(value, dict) else None
            if not isinstance(choices, list) or len(choices) != 1:
                raise PipelineError(f"{where}: value.choices must hold exactly one topic, got {describe(choices)}")
            topics.append((choices[0], r.get("from_name")))
        else:
            notes[f"results of type {shorten(repr(r.get('type')), 40)} ignored"] += 1
    if len(topics) > 1:
        names = sorted({shorten(str(n), 40) for _, n in topics})
        raise PipelineError(f"{loc}: {len(topics)} choices results (from_name {', '.join(names)}); "
                            f"pick one with --choices-from-name")
    return [s for s in spans if s is not None], topics[0][0] if topics else None


def parse_labelstudio(data, source: str = "<labelstudio>", text_key: str = "text", use_predictions: bool = False,
                      offsets: str = "codepoints", labels_from_name: str | None = None,
                      choices_from_name: str | None = None) -> Batch:
    """A parsed Label Studio JSON export (list of tasks, or one task) -> records. offsets: the unit
    of value.start/end, "codepoints" (Label Studio's own) or "utf16"."""
    batch = Batch()
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise PipelineError(f"{source}: expected a Label Studio JSON export (a list of tasks), got {describe(data)}")
    opts = _Options(offsets, labels_from_name, choices_from_name)
    picked = []
    for i, task in enumerate(data):
        loc = _task_loc(source, i, task)
        task_data, sentence = _task_data(task, loc, text_key, batch.notes)
        result = _pick(task, loc, use_predictions, batch.notes)
        if result is None:
            batch.notes["tasks without annotations skipped"
                        + ("" if use_predictions else " (--use-predictions imports predictions)")] += 1
            continue
        picked.append((loc, task_data, sentence, result))
    # a project that labels entities: a task without a labels result is "annotated, no entities"
    has_labels = any(isinstance(r, dict) and opts.labels(r) for *_, result in picked for r in result)
    for loc, task_data, sentence, result in picked:
        spans, topic = _task_labels(loc, sentence, result, opts, batch.notes)
        rec = {"sentence": sentence, "task_A": topic, "task_B": spans if has_labels else None}
        rid = task_data.get("record_id")
        if isinstance(rid, str) and rid.strip():
            rec["id"] = rid
        batch.items.append(Item(loc, rec))
    return batch


_UNITS = {"codepoints": "code point", "utf16": "UTF-16"}
_COUNTS = {"codepoints": "code points", "utf16": "UTF-16 units"}
_OTHER = {"codepoints": "utf16", "utf16": "codepoints"}


def _as_codepoints(sentence: str, start: int, end: int, unit: str) -> tuple[int, int] | None:
    """Offsets counted in `unit` as code-point offsets; None where they do not fit the text (outside
    it, or inside a surrogate pair)."""
    s, e = to_codepoint(sentence, [start, end]) if unit == "utf16" else (start, end)
    return (s, e) if s is not None and e is not None and 0 <= s <= len(sentence) and 0 <= e <= len(sentence) \
        else None


def _other_unit_hint(sentence: str, start: int, end: int, unit: str, given: str | None) -> str:
    """'; use --offsets OTHER' when the offsets read in the other unit fit (and match value.text)."""
    other = _OTHER[unit]
    span = _as_codepoints(sentence, start, end, other) if _has_astral(sentence) else None
    if span is None or span[0] >= span[1] or given is not None and sentence[span[0]:span[1]] != given:
        return ""
    return f"; the offsets look like {_COUNTS[other]}: use --offsets {other}"


def _unfit_offsets(sentence: str, start: int, end: int, unit: str) -> str:
    """Why offsets in `unit` do not fit the text."""
    if unit == "codepoints":
        return f"offsets {number(start)}:{number(end)} are outside the text ({len(sentence)} code points)"
    bad = start if to_codepoint(sentence, [start])[0] is None else end
    n16 = utf16_len(sentence)
    why = ("outside the text" if not 0 <= bad <= n16
           else "inside a surrogate pair (a character outside the BMP, e.g. an emoji)")
    return f"UTF-16 offset {number(bad)} is {why}; text has {n16} UTF-16 code units"


def _ls_span(sentence: str, value, where: str, offsets: str, notes: Counter) -> dict | None:
    """A `labels` result's value -> a span in code points, checked against value.text when present."""
    if not isinstance(value, dict):
        raise PipelineError(f"{where}: value must be an object, got {describe(value)}")
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not (is_int(start) and is_int(end)):
        raise PipelineError(f"{where}: value.start/end must be integers, got {describe(start)}, {describe(end)}")
    if not isinstance(labels, list) or len(labels) != 1:
        raise PipelineError(f"{where}: value.labels must hold exactly one label, got {describe(labels)}")
    given = value.get("text") if isinstance(value.get("text"), str) else None
    hint = _other_unit_hint(sentence, start, end, offsets, given)
    span = _as_codepoints(sentence, start, end, offsets)
    if span is None:
        raise PipelineError(f"{where}: value.start/end: {_unfit_offsets(sentence, start, end, offsets)}{hint}")
    s, e = span
    if given is not None and s < e and sentence[s:e] != given:
        raise PipelineError(f"{where}: value.text {shorten(repr(given), 80)} != text[{s}:{e}] "
                            f"{shorten(repr(sentence[s:e]), 80)} (from {_UNITS[offsets]} offsets {start}:{end}){hint}")
    return checked_span(sentence, s, e, labels[0], where, notes)


def _score(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def to_labelstudio_task(raw: dict, record: dict, model_version: str, labels_from_name: str = "label",
                        choices_from_name: str = "topic", to_name: str = "text", text_key: str = "text",
                        offsets: str = "codepoints") -> dict:
    """One checked record (and its raw form, for the scores) -> a Label Studio task with a prediction;
    offsets: the unit of value.start/end, "codepoints" (Label Studio's own) or "utf16"."""
    sentence = record["sentence"]
    result, scores = [], []
    spans = record["task_B"] or []
    raw_scores = {(s.get("start"), s.get("end"), s.get("type")): s.get("score")
                  for s in (raw.get("task_B") or []) if isinstance(s, dict)}
    flat = [o for s in spans for o in (s["start"], s["end"])]
    written = to_utf16(sentence, flat) if offsets == "utf16" else flat
    for k, span in enumerate(spans):
        item = {"from_name": labels_from_name, "to_name": to_name, "type": "labels",
                "value": {"start": written[2 * k], "end": written[2 * k + 1], "text": span["text"],
                          "labels": [span["type"]]}}
        score = _score(raw_scores.get((span["start"], span["end"], span["type"])))
        if score is not None:
            item["score"] = score
            scores.append(score)
        result.append(item)
    if record["task_A"] is not None:
        item = {"from_name": choices_from_name, "to_name": to_name, "type": "choices",
                "value": {"choices": [record["task_A"]]}}
        topic_scores = raw.get("topic_scores")
        score = _score(topic_scores.get(record["task_A"])) if isinstance(topic_scores, dict) else None
        if score is not None:
            item["score"] = score
            scores.append(score)
        result.append(item)
    prediction = {"model_version": model_version}
    if scores:
        prediction["score"] = min(scores)
    prediction["result"] = result
    data = {text_key: sentence}
    if "id" in record:
        data["record_id"] = record["id"]
    return {"data": data, "predictions": [prediction]}


def labeling_config(topics: list[str], entities: list[str], labels_from_name: str = "label",
                    choices_from_name: str = "topic", to_name: str = "text", text_key: str = "text") -> str:
    """The Label Studio labeling config (XML) that takes to_labelstudio_task's tasks as they are: the
    entity types as <Labels>, the topics as single-choice <Choices>, both on one <Text>."""
    q = quoteattr
    lines = ["<View>", f"  <Labels name={q(labels_from_name)} toName={q(to_name)}>"]
    lines += [f"    <Label value={q(e)}/>" for e in entities]
    lines += ["  </Labels>", f"  <Text name={q(to_name)} value={q('$' + text_key)}/>",
              f'  <Choices name={q(choices_from_name)} toName={q(to_name)} choice="single" showInline="true">']
    lines += [f"    <Choice value={q(t)}/>" for t in topics]
    lines += ["  </Choices>", "</View>"]
    return "\n".join(lines) + "\n"
