"""Raw records -> the validated corpus: each record checked against the data contract, duplicate
sentences merged, sentences labelled two ways resolved by a policy (validate.on_conflict), ids and
pinned splits kept consistent, and every record given its split by a stable hash of its normalised
text. Pure: records in, splits out; warnings and problems as Notes that summarise() groups by kind.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.records import SPLITS, check_record, hash_normalised, located, normalise, record_id, shorten

ON_CONFLICT = ("fail", "first", "majority", "drop")
LABELS = ("task_A", "task_B")


def _short(value) -> str:
    return shorten(repr(value), 60)


@dataclass(frozen=True)
class Note:
    """One warning or problem: its kind (the summary of many: a phrase with {n}, the count, and
    optionally {locs}, the first locations), where it is, and its full line."""
    kind: str
    loc: str
    line: str


def summarise(notes: list[Note], shown: int = 3, rest: str = "...") -> list[str]:
    """One line per kind, in order of first appearance: a kind seen once keeps its full line, more
    get the count and the first `shown` locations (then `rest`)."""
    groups: dict[str, list[Note]] = {}
    for note in notes:
        groups.setdefault(note.kind, []).append(note)
    lines = []
    for kind, group in groups.items():
        if len(group) == 1:
            lines.append(group[0].line)
            continue
        locs = ", ".join([n.loc for n in group[:shown]] + ([rest] if len(group) > shown else []))
        text = kind.replace("{n}", str(len(group)))
        lines.append(text.replace("{locs}", locs) if "{locs}" in kind else f"{text} ({locs})")
    return lines


def problem_kind(reason: str) -> str:
    """The kind of a problem, for summaries: its field and wording without the values
    ("task_B[3].start: offset 40 is beyond ..." -> "task_B[i].start: offset ...")."""
    if reason.startswith("invalid JSON"):   # json's own wording (values quoted), then " at column N"
        stem = re.split(r" at column|(?<=key) '", reason, maxsplit=1)[0]
    else:
        field, sep, rest = reason.partition(": ")
        if not sep or " " in field:           # "invalid UTF-8 (byte ...)": no field
            field, rest = "", reason
        stem = re.split(r"""['"\[{(]|(?<![\w-])\d""", rest, maxsplit=1)[0]
        if field:
            stem = re.sub(r"\[\d+\]", "[i]", field) + ": " + stem
    stem = stem.rstrip(" ,;:")
    return "{n} problems: " + stem + (" ..." if stem != reason else "")


def _label_key(value):
    """A hashable key for a label value (a topic string or a sorted list of span dicts)."""
    if isinstance(value, list):
        return tuple((s["start"], s["end"], s["type"], s["text"]) for s in value)
    return value


def _spans_shown(spans: list[dict], other: list[dict]) -> str:
    """The spans of one copy that the other copy lacks, short ('BIRMINGHAM' LOC [0:10]), or none."""
    only = [f"{_short(s['text'])} {s['type']} [{s['start']}:{s['end']}]" for s in spans if s not in other]
    return shorten(", ".join(only), 120) if only else "none"


def _conflicts(kept: dict, new: dict) -> list[str]:
    """The fields where a record disagrees with the kept copy of its sentence ("key: conflicts ...");
    for task_B, the spans where the two copies differ."""
    conflicts = []
    for key in (*LABELS, "split"):
        a, b = kept.get(key), new.get(key)
        if a is not None and b is not None and a != b:
            shown = (f"{_spans_shown(a, b)} vs {_spans_shown(b, a)}" if key == "task_B"
                     else f"{_short(a)} vs {_short(b)}")
            conflicts.append(f"{key}: conflicts with the same sentence at {kept['_loc']} ({shown})")
    return conflicts


def _fill(kept: dict, new: dict, skip: set[str]) -> None:
    """Fields the kept copy lacks, taken from a later copy (not those in conflict)."""
    for key in (*LABELS, "split", "id"):
        if key not in skip and kept.get(key) is None and new.get(key) is not None:
            kept[key] = new[key]


def _majority(votes: list[dict]) -> dict:
    """Per label field, the value most copies give (None: not annotated, no vote); ties: the first."""
    out = {}
    for key in LABELS:
        counts: dict = {}
        for copy in votes:
            if copy[key] is not None:
                entry = counts.setdefault(_label_key(copy[key]), [0, copy[key]])
                entry[0] += 1
        out[key] = max(counts.values(), key=lambda e: e[0])[1] if counts else None   # max keeps the first
    return out


_ACTION = {"first": "kept the first labelling", "majority": "kept the labelling most copies give",
           "drop": "dropped every copy"}


class Corpus:
    """Records added one by one (in file order), then split. Every record read is counted: it is
    kept, merged into an earlier one, or rejected with its reasons.

    A sentence labelled two ways (task_A or task_B differ between copies) is handled by on_conflict:
    fail: the later copy is a problem (rejected); first: the first labelling is kept, later copies
    are merged; majority: per field the labelling most copies give (ties: the first), later copies
    merged; drop: every copy is rejected. majority and drop need every copy, so they are resolved
    when the corpus is split; the copies of a sentence are kept only once it has a second one."""

    def __init__(self, topics: list[str], entities: list[str], on_conflict: str = "fail"):
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}")
        self.topics, self.entities, self.on_conflict = topics, entities, on_conflict
        self.by_sentence: dict[str, dict] = {}
        self.ids: dict[str, tuple[str, str]] = {}          # id -> (location, sentence)
        self.pinned: dict[str, tuple[str, str]] = {}       # normalised text -> (explicit split, location)
        self.problems: list[str] = []
        self.problem_notes: list[Note] = []
        self.notes: list[Note] = []
        self.rejects: list[dict] = []
        self.read = self.merged = 0
        self.conflicted: dict[str, tuple[str, str]] = {}   # sentence -> (location, wording) of its first conflict
        self.conflict_records = 0                          # copies of those sentences (known once resolved)
        self._resolved = False

    @property
    def warnings(self) -> list[str]:
        return [n.line for n in self.notes]

    def warn(self, kind: str, loc: str, text: str) -> None:
        self.notes.append(Note(kind, loc, f"{loc}: {text}"))

    def reject(self, loc: str, raw, reasons: list[str], text: str | None = None, problem: bool = True) -> None:
        if problem:
            self.problems.extend(f"{loc}: {r}" for r in reasons)
            self.problem_notes.extend(Note(problem_kind(r), loc, f"{loc}: {r}") for r in reasons)
        entry = {"location": loc, "errors": reasons, "record": raw}
        if text is not None:
            entry["text"] = text
        self.rejects.append(entry)

    def add(self, loc: str, raw, parse_error: str | None = None, text: str | None = None) -> None:
        """One raw record (or the parse error of an unreadable one) from `loc`."""
        self.read += 1
        if parse_error:
            self.reject(loc, None, [parse_error], text)
            return
        checked = check_record(raw, self.topics, self.entities)
        loc = located(loc, raw)
        for w in checked.warnings:
            kind = "{n} unknown fields ignored" if "unknown field" in w else problem_kind(w)
            self.warn(kind, loc, w)
        if checked.record is None:
            self.reject(loc, raw, checked.errors)
            return
        problem = self._conflict(checked.record)
        if problem:
            self.reject(loc, raw, [problem])
            return
        self._keep(loc, raw, checked.record)

    def _conflict(self, rec: dict) -> str | None:
        """An id or pinned split that contradicts an earlier record."""
        if "id" in rec and rec["id"] in self.ids and self.ids[rec["id"]][1] != rec["sentence"]:
            return (f"id: duplicate id {_short(rec['id'])} (first at {self.ids[rec['id']][0]}, "
                    f"with a different sentence)")
        norm = normalise(rec["sentence"])
        if rec.get("split") and norm in self.pinned and self.pinned[norm][0] != rec["split"]:
            return (f"split: {rec['split']!r} conflicts with the same text pinned to "
                    f"{self.pinned[norm][0]!r} at {self.pinned[norm][1]}")
        return None

    def _keep(self, loc: str, raw, rec: dict) -> None:
        sentence, norm = rec["sentence"], normalise(rec["sentence"])
        earlier = self.by_sentence.get(sentence)
        if earlier is None:
            rec["_loc"], rec["_norm"] = loc, norm
            if self.on_conflict == "drop":
                rec["_raw"] = raw
            self.by_sentence[sentence] = rec
        elif not self._merge(earlier, loc, raw, rec):
            return
        if "id" in rec:
            self.ids.setdefault(rec["id"], (loc, sentence))
        if rec.get("split"):
            self.pinned.setdefault(norm, (rec["split"], loc))

    def _merge(self, earlier: dict, loc: str, raw, rec: dict) -> bool:
        """A later copy of a kept sentence: merged (True) or, on_conflict fail, rejected (False)."""
        earlier["_copies"] = earlier.get("_copies", 1) + 1
        if self.on_conflict == "majority":
            earlier.setdefault("_votes", [{k: earlier[k] for k in LABELS}]).append({k: rec[k] for k in LABELS})
        elif self.on_conflict == "drop":
            earlier.setdefault("_others", []).append((loc, raw))
        conflicts = _conflicts(earlier, rec)
        if conflicts:
            self.conflicted.setdefault(rec["sentence"], (loc, conflicts[0]))
            if self.on_conflict == "fail":
                self.reject(loc, raw, conflicts)
                return False
        _fill(earlier, rec, {c.partition(":")[0] for c in conflicts})
        self.merged += 1
        if not conflicts:
            self.warn("{n} duplicate sentences merged", loc, f"duplicate of the sentence at {earlier['_loc']}, merged")
        return True

    def _resolve(self) -> None:
        """Apply on_conflict to every sentence labelled two ways (once, when every copy is in)."""
        if self._resolved:
            return
        self._resolved = True
        self.conflict_records = sum(self.by_sentence[s]["_copies"] for s in self.conflicted)
        if self.on_conflict == "fail" or not self.conflicted:
            return
        policy, action = self.on_conflict, _ACTION[self.on_conflict]
        kind = (f"{{n}} sentences labelled in conflicting ways (at {{locs}}; {self.conflict_records} records "
                f"in all): {action} (validate.on_conflict: {policy})")
        for sentence, (loc, first) in self.conflicted.items():
            rec = self.by_sentence[sentence]
            copies = rec["_copies"]
            self.notes.append(Note(kind, loc, f"{loc}: {first}; {copies} copies, {action} "
                                              f"(validate.on_conflict: {policy})"))
            if policy == "majority":
                rec.update(_majority(rec["_votes"]))
            elif policy == "drop":
                del self.by_sentence[sentence]
                self.merged -= copies - 1
                field = first.partition(":")[0]
                reason = (f"{field}: the same sentence is labelled in conflicting ways by {copies} records "
                          f"(first at {rec['_loc']}, conflict at {loc}); every copy dropped "
                          f"(validate.on_conflict: drop)")
                for where, raw in [(rec["_loc"], rec["_raw"]), *rec["_others"]]:
                    self.reject(where, raw, [reason], problem=False)

    def conflict_counts(self) -> dict:
        """Sentences labelled two ways, the records that are copies of them, and the policy applied."""
        self._resolve()
        return {"sentences": len(self.conflicted), "records": self.conflict_records, "policy": self.on_conflict}

    def splits(self, dev: float, test: float, seed: int) -> dict[str, list[dict]]:
        """Kept records per split: a pinned split wins, else the hash of the normalised text."""
        self._resolve()
        out: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for rec in self.by_sentence.values():
            norm = rec["_norm"]
            split = self.pinned[norm][0] if norm in self.pinned else hash_normalised(norm, dev, test, seed)
            out[split].append({"id": rec.get("id") or record_id(rec["sentence"]), "sentence": rec["sentence"],
                               "task_A": rec["task_A"], "task_B": rec["task_B"], "split": split})
        return out

    def counts(self, files: int) -> dict[str, int]:
        self._resolve()
        kept = self.read - len(self.rejects)
        return {"files": files, "read": self.read, "kept": kept, "rejected": len(self.rejects),
                "merged_duplicates": self.merged, "unique": kept - self.merged}
