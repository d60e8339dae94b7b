"""What every import format shares: the imported record with its location, notes on what was
skipped or changed, span and text checks worded for the input's location, JSONL lines, and the
final check of each record against the data contract."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from pipeline.core.records import check_record, describe, is_int, shorten
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import json_problem, loads


@dataclass
class Item:
    """One imported record (labels as found in the input) and where it came from."""
    loc: str        # "file:line" or "file: task[3]" for messages
    record: dict    # {"sentence", "task_A", "task_B", optional "id"}


@dataclass
class Batch:
    items: list[Item] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)   # "what happened" -> how often


def is_finite_number(value) -> bool:
    """A JSON number that arithmetic can use: not a boolean, not inf (1e999 parses as inf)."""
    return is_int(value) or isinstance(value, float) and math.isfinite(value)


def number(value: int) -> str:
    """An integer from the input as a message shows it (a 4000-digit offset would bury the line)."""
    return shorten(str(value), 20)


def checked_span(sentence: str, start, end, label, where: str, notes: Counter, text=None) -> dict | None:
    """A span from code-point offsets: checked, trimmed of edge whitespace; None if only whitespace."""
    if not (is_int(start) and is_int(end)):
        raise PipelineError(f"{where}: offsets must be integers, got start {describe(start)}, end {describe(end)}")
    if not 0 <= start < end <= len(sentence):
        raise PipelineError(f"{where}: bad offsets {number(start)}:{number(end)} for a text of length {len(sentence)}")
    if not isinstance(label, str) or not label.strip():
        raise PipelineError(f"{where}: label must be a non-empty string, got {describe(label)}")
    actual = sentence[start:end]
    if text is not None and text != actual:
        raise PipelineError(f"{where}: text {shorten(repr(text), 80)} != text[{start}:{end}] {shorten(repr(actual), 80)}")
    stripped = actual.strip()
    if not stripped:
        notes["spans covering only whitespace dropped"] += 1
        return None
    if stripped != actual:
        start += len(actual) - len(actual.lstrip())
        end -= len(actual) - len(actual.rstrip())
        notes["spans trimmed of leading/trailing whitespace"] += 1
    return {"text": sentence[start:end], "type": label, "start": start, "end": end}


def sentence_or_error(text, where: str) -> str:
    """The text of a record, or one clear error if it is not a non-empty string."""
    if not isinstance(text, str):
        raise PipelineError(f"{where}: text must be a string, got {describe(text)}")
    if not text.strip():
        raise PipelineError(f"{where}: text is empty")
    return text


def jsonl_objects(text: str, source: str):
    """Yield ("file:line", parsed object) per non-blank JSONL line; bad JSON (a key given twice and
    NaN/Infinity included: files.loads) is one clear error."""
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            yield where, loads(line)
        except (ValueError, RecursionError) as exc:
            raise PipelineError(f"{where}: {json_problem(exc)}") from None


def checked_or_error(record: dict, loc: str, topics: list[str], entities: list[str]) -> dict:
    """The record through check_record; a failure is one clear line naming its location."""
    checked = check_record(record, topics, entities)
    if checked.record is None:
        more = f" (and {len(checked.errors) - 1} more)" if len(checked.errors) > 1 else ""
        raise PipelineError(f"{loc}: {checked.errors[0]}{more}")
    return checked.record


def check_items(items: list[Item], topics: list[str], entities: list[str]) -> list[dict]:
    return [checked_or_error(item.record, item.loc, topics, entities) for item in items]
