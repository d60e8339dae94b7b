"""Import annotated data from other tools into the data schema (one record per sentence).

    python -m pipeline.importers conll train.conll --output data/raw/conll_train.jsonl --map PER=PERSON,MISC=
    python -m pipeline.importers labelstudio export.json --output data/raw/ls.jsonl
    python -m pipeline.importers spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC

Formats:
  conll        CoNLL / IOB column files: one token per line, the tag in the LAST column (so
               CoNLL-2003 `word POS chunk TAG` works as is), a blank line between sentences,
               `-DOCSTART-` lines skipped. IOB2, IOB1 and BIOES (also BILOU) tags are all read by
               one decoder: B- (or an I- that does not continue an entity of its type) opens a
               span, E-/L- closes one, S-/U- is a one-token span. The sentence text is rebuilt
               from the tokens (--join) and offsets are computed from it. Records get task_A
               null (no topic) and task_B the spans.
  labelstudio  A Label Studio JSON export (a list of tasks). The text is data.<--text-key>;
               the last non-cancelled annotation is used (with --use-predictions, the last
               prediction of a task that has no annotation). `labels` results become entities,
               a `choices` result the topic. Label Studio counts offsets in UTF-16 code units
               (as browsers do): they are converted to Python code-point offsets, and checked
               against value.text where present. If any annotation in the file has a `labels`
               result, a task without one is taken as "annotated, no entities" (task_B []);
               otherwise task_B is null (a topic-only project). Tasks with neither an
               annotation nor (with --use-predictions) a prediction are skipped and counted.
  spacy        JSONL: {"text", "spans" | "entities" | "ents": [[start, end, label]] or
               [{"start", "end", "label"}], "cats": {label: score}} (Python code-point
               offsets, as spaCy's). The topic is the highest scoring cat (ties are an error),
               or "label" when it is a string. Doccano's {"text", "label": [[s, e, L]]} and
               Prodigy's "answer": "reject"/"ignore" (skipped) are understood too.

Labels: --map renames labels of either task (`--map PER=PERSON,GPE=LOC` or `--map mapping.yaml`
holding {PER: PERSON, MISC: null}); mapping a label to nothing (`MISC=`) drops it on purpose.
A label that is still not in params labels.topics / labels.entities is an error listing every
unknown label with its count; --drop-unknown drops those spans (and topics) and says how many.
Spans with leading/trailing whitespace (common in hand-made selections) are trimmed and counted.

Every record written passes the same check as the validate stage (pipeline.records.check_record)
with the labels of --params; the first that does not stops the import with `file:line: problem`.
The output is written atomically. Each record carries "source" (input file and line or task index),
which the validate stage ignores.
"""
from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import params as params_mod
from pipeline.align import Tokens, tags_to_spans
from pipeline.files import PipelineError, json_problem, run_cli, write_jsonl
from pipeline.records import _got, _is_int, check_record, split_stats

FORMATS = ("conll", "labelstudio", "spacy")


@dataclass
class Item:
    """One imported record (labels as found in the input) and where it came from."""
    loc: str        # "file:line" or "file: task[3]" for messages
    record: dict    # {"sentence", "task_A", "task_B", optional "id"}


@dataclass
class Batch:
    items: list[Item] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)   # "what happened" -> how often


# ---------------------------------------------------------------------------------------------
# UTF-16 offsets (Label Studio, browsers) <-> Python code-point offsets

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


# ---------------------------------------------------------------------------------------------
# shared helpers

def _span(sentence: str, start, end, label, where: str, notes: Counter, text=None) -> dict | None:
    """A span from code-point offsets: checked, trimmed of edge whitespace; None if only whitespace."""
    if not (_is_int(start) and _is_int(end)):
        raise PipelineError(f"{where}: offsets must be integers, got start {_got(start)}, end {_got(end)}")
    if not 0 <= start < end <= len(sentence):
        raise PipelineError(f"{where}: bad offsets {start}:{end} for a text of length {len(sentence)}")
    if not isinstance(label, str) or not label.strip():
        raise PipelineError(f"{where}: label must be a non-empty string, got {_got(label)}")
    actual = sentence[start:end]
    if text is not None and text != actual:
        raise PipelineError(f"{where}: text {text!r} != text[{start}:{end}] {actual!r}")
    stripped = actual.strip()
    if not stripped:
        notes["spans covering only whitespace dropped"] += 1
        return None
    if stripped != actual:
        start += len(actual) - len(actual.lstrip())
        end -= len(actual) - len(actual.rstrip())
        notes["spans trimmed of leading/trailing whitespace"] += 1
    return {"text": sentence[start:end], "type": label, "start": start, "end": end}


def _sentence(text, where: str) -> str:
    if not isinstance(text, str):
        raise PipelineError(f"{where}: text must be a string, got {_got(text)}")
    if not text.strip():
        raise PipelineError(f"{where}: text is empty")
    return text


# ---------------------------------------------------------------------------------------------
# CoNLL / IOB

_TAG = re.compile(r"^([BIESLU])[-_](.+)$", re.IGNORECASE)
_CLOSING = re.compile(r"^[.,;:!?)\]}%]+$")
_CONTRACTIONS = {"'s", "n't", "'re", "'ve", "'ll", "'d", "'m", "’s", "n’t"}
_OPENING = {"(", "[", "{"}


def join_tokens(tokens: list[str], join: str = "smart") -> tuple[str, list[tuple[int, int]]]:
    """Rebuild a sentence from tokens; returns (text, [(start, end)] per token).

    join="spaces": single spaces. join="smart": no space before closing punctuation
    (. , ; : ! ? ) ] } %) or a clitic ('s n't 're 've 'll 'd 'm), none after ( [ {."""
    parts, offsets, pos = [], [], 0
    for i, tok in enumerate(tokens):
        if i:
            glue = join == "smart" and (_CLOSING.match(tok) or tok.lower() in _CONTRACTIONS
                                        or tokens[i - 1] in _OPENING)
            if not glue:
                parts.append(" ")
                pos += 1
        offsets.append((pos, pos + len(tok)))
        parts.append(tok)
        pos += len(tok)
    return "".join(parts), offsets


def to_iob2_decodable(tags: list[str]) -> list[str]:
    """Token tags (IOB2, IOB1, BIOES/BILOU, already checked) as B-/I- tags for align.tags_to_spans,
    whose repair rule (an I- after O or another type opens an entity) covers IOB1."""
    return [tag if tag == "O" else ("B-" if tag[0].upper() in "BSU" else "I-") + tag[2:] for tag in tags]


def parse_conll(text: str, source: str = "<conll>", join: str = "smart") -> Batch:
    """CoNLL column text -> records (task_A null, task_B from the tags in the last column)."""
    batch = Batch()
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush():
        if not tokens:
            return
        sentence, offsets = join_tokens(tokens, join)
        words = Tokens([s for s, _ in offsets], [e for _, e in offsets], list(range(len(offsets))))
        spans = tags_to_spans(sentence, words, to_iob2_decodable(tags))
        batch.items.append(Item(f"{source}:{first_line}", {"sentence": sentence, "task_A": None, "task_B": spans}))
        tokens.clear()
        tags.clear()

    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip()
        if not line:
            flush()
            continue
        cols = [c.strip() for c in line.split("\t")] if "\t" in line else line.split()
        if cols[0] == "-DOCSTART-":
            flush()
            batch.notes["-DOCSTART- lines skipped"] += 1
            continue
        tag = cols[-1]
        if len(cols) < 2 or not cols[0]:
            if line.lstrip().startswith("#"):
                batch.notes["comment lines skipped"] += 1
                continue
            raise PipelineError(f"{source}:{lineno}: expected TOKEN ... TAG columns, got {line.strip()!r}")
        if tag != "O" and not _TAG.match(tag):
            if cols[0].startswith("#") and not tokens:   # "# sent_id = 3" and similar comments
                batch.notes["comment lines skipped"] += 1
                continue
            raise PipelineError(f"{source}:{lineno}: tag {tag!r} in the last column is not O or "
                                f"B-/I-/E-/S-/L-/U-TYPE (IOB2, IOB1, BIOES)")
        if not tokens:
            first_line = lineno
        tokens.append(cols[0])
        tags.append(tag)
    flush()
    return batch


# ---------------------------------------------------------------------------------------------
# Label Studio

def _task_loc(source: str, i: int, task: dict) -> str:
    tid = task.get("id") if isinstance(task, dict) else None
    return f"{source}: task[{i}]" + (f" (id={tid})" if tid is not None else "")


def _pick(task: dict, loc: str, use_predictions: bool, notes: Counter) -> list | None:
    """The result list to import: the last non-cancelled annotation, else (flag) the last prediction."""
    anns = task.get("annotations") or task.get("completions") or []
    if not isinstance(anns, list):
        raise PipelineError(f"{loc}: annotations must be a list, got {_got(anns)}")
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
        raise PipelineError(f"{loc}: result must be a list, got {_got(result)}")
    return result


def parse_labelstudio(data, source: str = "<labelstudio>", text_key: str = "text", use_predictions: bool = False,
                      offsets: str = "utf16", labels_from_name: str | None = None,
                      choices_from_name: str | None = None) -> Batch:
    """A parsed Label Studio JSON export (list of tasks, or one task) -> records."""
    batch = Batch()
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise PipelineError(f"{source}: expected a Label Studio JSON export (a list of tasks), got {_got(data)}")
    picked = []
    for i, task in enumerate(data):
        loc = _task_loc(source, i, task)
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise PipelineError(f"{loc}: expected a task object with \"data\" (a Label Studio JSON export), "
                                f"got {_got(task)}")
        if text_key not in task["data"]:
            keys = ", ".join(map(str, task["data"])) or "none"
            raise PipelineError(f"{loc}: data has no {text_key!r} field (data keys: {keys}); use --text-key")
        sentence = _sentence(task["data"][text_key], f"{loc}: data.{text_key}")
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
                raise PipelineError(f"{where}: must be an object, got {_got(r)}")
            kind, value = r.get("type"), r.get("value")
            if kind == "labels" and (labels_from_name is None or r.get("from_name") == labels_from_name):
                spans.append(_ls_span(sentence, value, where, offsets, batch.notes))
            elif kind == "choices" and (choices_from_name is None or r.get("from_name") == choices_from_name):
                choices = value.get("choices") if isinstance(value, dict) else None
                if not isinstance(choices, list) or len(choices) != 1:
                    raise PipelineError(f"{where}: value.choices must hold exactly one topic, got {_got(choices)}")
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
        raise PipelineError(f"{where}: value must be an object, got {_got(value)}")
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    if not (_is_int(start) and _is_int(end)):
        raise PipelineError(f"{where}: value.start/end must be integers, got {_got(start)}, {_got(end)}")
    if not isinstance(labels, list) or len(labels) != 1:
        raise PipelineError(f"{where}: value.labels must hold exactly one label, got {_got(labels)}")
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
    return _span(sentence, s, e, labels[0], where, notes)


# ---------------------------------------------------------------------------------------------
# spaCy-style JSONL

_SPAN_KEYS = ("spans", "entities", "ents")


def _cats_topic(cats, where: str):
    if not isinstance(cats, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in cats.values()):
        raise PipelineError(f"{where}: cats must be an object of label: score, got {_got(cats)}")
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
        raise PipelineError(f"{where}: expected an object with \"text\", got {_got(obj)}")
    if obj.get("answer") in ("reject", "ignore"):
        notes[f"records with answer {obj['answer']!r} skipped"] += 1
        return None
    if "text" not in obj:
        raise PipelineError(f"{where}: missing \"text\"")
    sentence = _sentence(obj["text"], f"{where}: text")
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
                spans.append(_span(sentence, sp[0], sp[1], sp[2], at, notes))
            elif isinstance(sp, dict) and {"start", "end"} <= sp.keys() and ("label" in sp or "type" in sp):
                spans.append(_span(sentence, sp["start"], sp["end"], sp.get("label", sp.get("type")), at, notes,
                                   text=sp.get("text")))
            else:
                raise PipelineError(f"{at}: expected [start, end, label] or {{\"start\", \"end\", \"label\"}}, "
                                    f"got {_got(sp)}")
        spans = [s for s in spans if s is not None]
    topic = None
    if obj.get("cats") is not None:
        topic = _cats_topic(obj["cats"], f"{where}: cats")
    elif isinstance(label, str):
        topic = label
    elif isinstance(label, list) and not doccano and label:
        if len(label) != 1 or not isinstance(label[0], str):
            raise PipelineError(f"{where}: label must be one topic, got {_got(label)}")
        topic = label[0]
    rec = {"sentence": sentence, "task_A": topic, "task_B": spans}
    if isinstance(obj.get("id"), str) and obj["id"].strip():
        rec["id"] = obj["id"]
    return rec


def jsonl_objects(text: str, source: str):
    """Yield ("file:line", parsed object) per non-blank JSONL line; bad JSON is one clear error."""
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{source}:{lineno}"
        try:
            yield where, json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise PipelineError(f"{where}: {json_problem(exc)}") from None


def parse_spacy(text: str, source: str = "<spacy>") -> Batch:
    """spaCy-style JSONL text -> records."""
    batch = Batch()
    for where, obj in jsonl_objects(text, source):
        rec = parse_spacy_record(obj, where, batch.notes)
        if rec is not None:
            batch.items.append(Item(where, rec))
    return batch


# ---------------------------------------------------------------------------------------------
# label mapping, unknown labels, final check

def parse_mapping(specs: list[str]) -> dict[str, str | None]:
    """--map values: 'PER=PERSON,GPE=LOC' (empty target: drop) or a YAML/JSON file {PER: PERSON}."""
    mapping: dict[str, str | None] = {}
    for spec in specs or []:
        path = Path(spec)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or (path.is_file() and "=" not in spec):
            try:
                tree = yaml.safe_load(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise PipelineError(f"--map {spec}: cannot read ({exc.strerror or exc})") from None
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise PipelineError(f"--map {spec}: invalid YAML: {str(exc).splitlines()[0]}") from None
            if not isinstance(tree, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                     for k, v in tree.items()):
                raise PipelineError(f"--map {spec}: expected a mapping of label: new_label (or null to drop)")
            mapping.update({k: (v or None) for k, v in tree.items()})
            continue
        for pair in spec.split(","):
            if not pair.strip():
                continue
            src, eq, dst = pair.partition("=")
            if not eq or not src.strip():
                raise PipelineError(f"--map: expected FROM=TO pairs separated by commas (or a .yaml file), "
                                    f"got {pair!r}")
            mapping[src.strip()] = dst.strip() or None
    return mapping


_ALIASES = {"gpe": "loc", "fac": "loc", "per": "person", "pers": "person", "time": "date"}


def _guess(label: str, allowed: list[str]) -> str | None:
    """A likely target for an unknown label, for the error's --map example only (never applied)."""
    low = label.casefold()
    alias = _ALIASES.get(low)
    if alias:
        for a in allowed:
            if a.casefold() == alias:
                return a
    for a in allowed:
        al = a.casefold()
        if al == low or (len(low) >= 3 and (al.startswith(low) or low.startswith(al))):
            return a
    return None


def apply_labels(items: list[Item], mapping: dict[str, str | None], topics: list[str], entities: list[str],
                 drop_unknown: bool = False, notes: Counter | None = None) -> list[Item]:
    """Rename labels with mapping; unknown labels are an error (or, with drop_unknown, dropped)."""
    notes = notes if notes is not None else Counter()
    unknown = {"entity": Counter(), "topic": Counter()}
    first: dict[tuple[str, str], str] = {}
    out = []
    for item in items:
        rec = dict(item.record)
        topic = rec.get("task_A")
        if topic is not None:
            if topic in mapping:
                topic = mapping[topic]
                if topic is None:
                    notes["topics dropped by --map"] += 1
            if topic is not None and topic not in topics:
                unknown["topic"][topic] += 1
                first.setdefault(("topic", topic), item.loc)
                topic = None
            rec["task_A"] = topic
        if rec.get("task_B") is not None:
            spans = []
            for sp in rec["task_B"]:
                kind = mapping[sp["type"]] if sp["type"] in mapping else sp["type"]
                if kind is None:
                    notes["spans dropped by --map"] += 1
                    continue
                if kind not in entities:
                    unknown["entity"][kind] += 1
                    first.setdefault(("entity", kind), item.loc)
                    continue
                spans.append({**sp, "type": kind})
            rec["task_B"] = spans
        if rec["task_A"] is None and rec.get("task_B") is None:
            notes["records left without any annotation skipped"] += 1
            continue
        out.append(Item(item.loc, rec))
    if not any(unknown.values()):
        return out
    if not drop_unknown:
        parts, guesses = [], []
        for what, allowed in (("entity", entities), ("topic", topics)):
            if unknown[what]:
                listed = ", ".join(f"{k!r} ({n}, first at {first[(what, k)]})"
                                   for k, n in unknown[what].most_common())
                parts.append(f"unknown {what} label(s) {listed}; allowed: {', '.join(allowed)}")
                guesses += [f"{k}={_guess(k, allowed) or ''}" for k in unknown[what]]
        example = ",".join(g for g in guesses if not g.endswith("=")) or guesses[0]
        raise PipelineError("; ".join(parts) + f". Rename them with --map (e.g. --map {example}; "
                            f"FROM= drops a label) or drop them with --drop-unknown")
    for what, counts in unknown.items():
        for k, n in counts.most_common():
            notes[f"{'spans' if what == 'entity' else 'topics'} with unknown label {k!r} dropped"] += n
    return out


def checked_or_error(record: dict, loc: str, topics: list[str], entities: list[str]) -> dict:
    """The record through check_record; a failure is one clear line naming its location."""
    checked = check_record(record, topics, entities)
    if checked.record is None:
        more = f" (and {len(checked.errors) - 1} more)" if len(checked.errors) > 1 else ""
        raise PipelineError(f"{loc}: {checked.errors[0]}{more}")
    return checked.record


def check_items(items: list[Item], topics: list[str], entities: list[str]) -> list[dict]:
    return [checked_or_error(item.record, item.loc, topics, entities) for item in items]


# ---------------------------------------------------------------------------------------------
# files and CLI

def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = "; the file looks like UTF-16: save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise PipelineError(f"{path}:{line}: invalid UTF-8 (byte {data[exc.start]:#04x}){hint}") from None


def parse_file(fmt: str, path: Path, opts: dict) -> Batch:
    text = read_text(path)
    if fmt == "conll":
        return parse_conll(text, str(path), join=opts.get("join", "smart"))
    if fmt == "spacy":
        return parse_spacy(text, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (a Label Studio export is one JSON list; JSONL is read by the spacy format)" \
            if exc.msg == "Extra data" else ""
        raise PipelineError(f"{path}:{exc.lineno}: {json_problem(exc)}{hint}") from None
    except (ValueError, RecursionError) as exc:
        raise PipelineError(f"{path}: {json_problem(exc)}") from None
    return parse_labelstudio(data, str(path), text_key=opts.get("text_key", "text"),
                             use_predictions=opts.get("use_predictions", False),
                             offsets=opts.get("offsets", "utf16"),
                             labels_from_name=opts.get("labels_from_name"),
                             choices_from_name=opts.get("choices_from_name"))


def import_files(fmt: str, paths: list[Path], topics: list[str], entities: list[str], mapping=None,
                 drop_unknown: bool = False, split: str | None = None, **opts) -> tuple[list[dict], Counter]:
    """Parse, map, check: the records to write and the notes about what was skipped or changed."""
    notes: Counter = Counter()
    items: list[Item] = []
    for path in paths:
        batch = parse_file(fmt, Path(path), opts)
        notes.update(batch.notes)
        items.extend(batch.items)
    items = apply_labels(items, mapping or {}, topics, entities, drop_unknown, notes)
    if split:
        for item in items:
            item.record["split"] = split
    records = check_items(items, topics, entities)
    for item, rec in zip(items, records):
        rec["source"] = item.loc.replace(": ", ":", 1)
    return records, notes


def summary(records: list[dict], topics: list[str], entities: list[str]) -> list[str]:
    stats = split_stats(records, topics, entities)
    return [f"  entities ({stats['ner_annotated']} records annotated): "
            + ", ".join(f"{e} {n}" for e, n in stats["entities"].items()),
            f"  topics ({stats['topic_annotated']} records annotated): "
            + ", ".join(f"{t} {n}" for t, n in stats["topics"].items())]


EPILOG = """examples:
  python -m pipeline.importers conll eng.train --output data/raw/conll_train.jsonl \\
      --map PER=PERSON,MISC= --split train
  python -m pipeline.importers conll a.iob b.iob --output data/raw/iob.jsonl --map labels.yaml --join spaces
  python -m pipeline.importers labelstudio project-1.json --output data/raw/ls.jsonl
  python -m pipeline.importers labelstudio tasks.json --output data/raw/pre.jsonl --use-predictions \\
      --text-key sentence
  python -m pipeline.importers spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC --drop-unknown
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.importers", description=__doc__, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s)")
    ap.add_argument("--output", required=True, help="output JSONL, e.g. data/raw/NAME.jsonl")
    ap.add_argument("--params", default="params.yaml", help="labels come from here (default: %(default)s)")
    ap.add_argument("--map", action="append", default=[], metavar="FROM=TO,...|FILE",
                    help="rename labels: PER=PERSON,GPE=LOC (FROM= drops), or a YAML file; repeatable")
    ap.add_argument("--drop-unknown", action="store_true",
                    help="drop spans/topics whose label is not in params (default: error listing them)")
    ap.add_argument("--split", choices=("train", "dev", "test"), help="pin every record to this split")
    g = ap.add_argument_group("conll")
    g.add_argument("--join", choices=("smart", "spaces"), default="smart",
                   help="rebuild the text with single spaces, or without spaces before closing "
                        "punctuation / 's n't and after opening brackets (default: %(default)s)")
    g = ap.add_argument_group("labelstudio")
    g.add_argument("--text-key", default="text", help="task data field holding the text (default: %(default)s)")
    g.add_argument("--use-predictions", action="store_true",
                   help="import a task's last prediction when it has no annotation")
    g.add_argument("--offsets", choices=("utf16", "codepoints"), default="utf16",
                   help="unit of value.start/end: utf16 as Label Studio's browser UI writes them "
                        "(default), or codepoints for tasks made by Python tools")
    g.add_argument("--labels-from-name", help="only `labels` results with this from_name (default: all)")
    g.add_argument("--choices-from-name", help="only `choices` results with this from_name (default: all)")
    args = ap.parse_args(argv)

    p = params_mod.load(args.params)
    topics, entities = p["labels"]["topics"], p["labels"]["entities"]
    output = Path(args.output)
    if output.suffix.lower() != ".jsonl":
        raise PipelineError(f"--output {output}: must end in .jsonl (the validate stage reads .json/.jsonl)")
    paths = [Path(x) for x in args.inputs]
    for path in paths:
        if path.exists() and output.exists() and path.resolve() == output.resolve():
            raise PipelineError(f"--output {output}: is also an input")
    mapping = parse_mapping(args.map)
    records, notes = import_files(args.format, paths, topics, entities, mapping, args.drop_unknown, args.split,
                                  join=args.join, text_key=args.text_key, use_predictions=args.use_predictions,
                                  offsets=args.offsets, labels_from_name=args.labels_from_name,
                                  choices_from_name=args.choices_from_name)
    if not records:
        raise PipelineError(f"no records found in {', '.join(args.inputs)}"
                            + "".join(f"; {n} {what}" for what, n in notes.items()))
    n = write_jsonl(output, records)
    print(f"importers: wrote {n} records to {output} from {len(paths)} {args.format} file(s)")
    for line in summary(records, topics, entities):
        print(line)
    for what, count in notes.items():
        print(f"  note: {count} {what}")


if __name__ == "__main__":
    run_cli(main)
