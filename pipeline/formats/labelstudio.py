"""Label Studio: reading its JSON export (tasks with annotations or predictions) into records,
and writing records as tasks with pre-annotations in its predictions import format. Offsets
convert between Python code points and UTF-16 code units (they differ after a character outside
the BMP, such as an emoji)."""
from __future__ import annotations

from collections import Counter

from pipeline.core.records import describe, is_int
from pipeline.formats.common import Batch, Item, checked_span, sentence_or_error
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
    return f"{source}: task[{i}]" + (f" (id={tid})" if tid is not None else "")


def _pick(task: dict, loc: str, use_predictions: bool, notes: Counter) -> list | None:
    """The result list to import: the last non-cancelled annotation, else (flag) the last prediction."""
    anns = task.get("annotations") or task.get("completions") or []
    if not isinstance(anns, list):
        raise PipelineError(f"{loc}: annotations must be a list, got {describe(anns)}")
    anns = [a for a in anns if isinstance(a, dict) and not a.get("was_cancelled")]
    if anns:
        chosen = anns[-1]
    elif use_predictions and task.get("predictions"):
        preds = task["predictions"]
        if not isinstance(preds, list) or not isinstance(preds[-1], dict):
            raise PipelineError(f"{loc}: predictions must be a list of objects")
        chosen = preds[-1]
        notes["tasks imported from predictions (no annotation)"] += 1
    else:
        return None
    result = chosen.get("result")
    if not isinstance(result, list):
        raise PipelineError(f"{loc}: result must be a list, got {describe(result)}")
    return result


def parse_labelstudio(data, source: str = "<labelstudio>", text_key: str = "text", use_predictions: bool = False,
                      offsets: str = "utf16", labels_from_name: str | None = None,
                      choices_from_name: str | None = None) -> Batch:
    """A parsed Label Studio JSON export (list of tasks, or one task) -> records."""
    batch = Batch()
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise PipelineError(f"{source}: expected a Label Studio JSON export (a list of tasks), got {describe(data)}")
    picked = []
    for i, task in enumerate(data):
        loc = _task_loc(source, i, task)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise PipelineError(f"{loc}: expected a task object with \"data\" (a Label Studio JSON export), "
                                f"got {describe(task)}")
        if text_key not in task["data"]:
            keys = ", ".join(map(str, task["data"])) or "none"
            raise PipelineError(f"{loc}: data has no {text_key!r} field (data keys: {keys}); use --text-key")
        sentence = sentence_or_error(task["data"][text_key], f"{loc}: data.{text_key}")
        result = _pick(task, loc, use_predictions, batch.notes)
        if result is None:
            batch.notes["tasks without annotations skipped"
                        + ("" if use_predictions else " (--use-predictions imports predictions)")] += 1
            continue
        picked.append((loc, task, sentence, result))
    has_labels = any(isinstance(r, dict) and r.get("type") == "labels"
                     and (labels_from_name is None or r.get("from_name") == labels_from_name)
                     for _, _, _, result in picked for r in result)
    for loc, task, sentence, result in picked:
        spans, topics = [], []
        for k, r in enumerate(result):
            where = f"{loc}: result[{k}]"
            if not isinstance(r, dict):
                raise PipelineError(f"{where}: must be an object, got {describe(r)}")
            kind, value = r.get("type"), r.get("value")
            if kind == "labels" and (labels_from_name is None or r.get("from_name") == labels_from_name):
                spans.append(_ls_span(sentence, value, where, offsets, batch.notes))
            elif kind == "choices" and (choices_from_name is None or r.get("from_name") == choices_from_name):
                choices = value.get("choices") if isinstance(value, dict) else None
                if not isinstance(choices, list) or len(choices) != 1:
                    raise PipelineError(f"{where}: value.choices must hold exactly one topic, got {describe(choices)}")
                topics.append((choices[0], r.get("from_name")))
            else:
                batch.notes[f"results of type {kind!r} ignored"] += 1
        if len(topics) > 1:
            names = sorted({str(n) for _, n in topics})
            raise PipelineError(f"{loc}: {len(topics)} choices results (from_name {', '.join(names)}); "
                                f"pick one with --choices-from-name")
        rec = {"sentence": sentence, "task_A": topics[0][0] if topics else None,
               "task_B": [s for s in spans if s is not None] if has_labels else None}
        rid = task["data"].get("record_id")
        if isinstance(rid, str) and rid.strip():
            rec["id"] = rid
        batch.items.append(Item(loc, rec))
    return batch


def _ls_span(sentence: str, value, where: str, offsets: str, notes: Counter) -> dict | None:
    if not isinstance(value, dict):
        raise PipelineError(f"{where}: value must be an object, got {describe(value)}")
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not (is_int(start) and is_int(end)):
        raise PipelineError(f"{where}: value.start/end must be integers, got {describe(start)}, {describe(end)}")
    if not isinstance(labels, list) or len(labels) != 1:
        raise PipelineError(f"{where}: value.labels must hold exactly one label, got {describe(labels)}")
    if offsets == "utf16":
        s, e = to_codepoint(sentence, [start, end])
        if s is None or e is None:
            bad, n16 = (start if s is None else end), utf16_len(sentence)
            why = ("beyond the text" if not 0 <= bad <= n16
                   else "inside a surrogate pair (a character outside the BMP, e.g. an emoji)")
            raise PipelineError(f"{where}: UTF-16 offset {bad} is {why}; text has {n16} "
                                f"UTF-16 code units (use --offsets codepoints if these are Python offsets)")
    else:
        s, e = start, end
    given = value.get("text")
    if isinstance(given, str) and 0 <= s < e <= len(sentence) and sentence[s:e] != given:
        hint = ""
        other = sentence[start:end] if offsets == "utf16" else None
        if other == given:
            hint = "; the offsets look like code points: use --offsets codepoints"
        elif offsets == "codepoints":
            s16 = to_codepoint(sentence, [start, end])
            if None not in s16 and sentence[s16[0]:s16[1]] == given:
                hint = "; the offsets look like UTF-16 units: drop --offsets codepoints"
        raise PipelineError(f"{where}: value.text {given!r} != text[{s}:{e}] {sentence[s:e]!r} "
                            f"(from {offsets} offsets {start}:{end}){hint}")
    return checked_span(sentence, s, e, labels[0], where, notes)


def _score(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def to_labelstudio_task(raw: dict, record: dict, model_version: str, labels_from_name: str = "label",
                        choices_from_name: str = "topic", to_name: str = "text", text_key: str = "text") -> dict:
    """One checked record (and its raw form, for the scores) -> a Label Studio task with a prediction."""
    sentence = record["sentence"]
    result, scores = [], []
    spans = record["task_B"] or []
    raw_scores = {(s.get("start"), s.get("end"), s.get("type")): s.get("score")
                  for s in (raw.get("task_B") or []) if isinstance(s, dict)}
    offsets16 = to_utf16(sentence, [o for s in spans for o in (s["start"], s["end"])])
    for k, span in enumerate(spans):
        s16, e16 = offsets16[2 * k], offsets16[2 * k + 1]
        item = {"from_name": labels_from_name, "to_name": to_name, "type": "labels",
                "value": {"start": s16, "end": e16, "text": span["text"], "labels": [span["type"]]}}
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
