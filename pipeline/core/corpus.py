"""Raw records -> the validated corpus: each record checked against the data contract, duplicate
sentences merged (or rejected where they conflict), ids and pinned splits kept consistent, and
every record given its split by a stable hash of its normalised text. Pure: records in, splits out.
"""
from __future__ import annotations

from pipeline.core.records import SPLITS, check_record, hash_normalised, normalise, record_id


def _merge(kept: dict, new: dict) -> list[str]:
    """Merge a record whose sentence is already kept; return conflicts (empty = merged)."""
    conflicts = []
    for key in ("task_A", "task_B", "split"):
        a, b = kept.get(key), new.get(key)
        if a is not None and b is not None and a != b:
            conflicts.append(f"{key}: conflicts with the same sentence at {kept['_loc']} ({a!r} vs {b!r})")
    if not conflicts:
        for key in ("task_A", "task_B", "split", "id"):
            if kept.get(key) is None and new.get(key) is not None:
                kept[key] = new[key]
    return conflicts


class Corpus:
    """Records added one by one (in file order), then split. Every record read is counted: it is
    kept, merged into an earlier one, or rejected with its reasons."""

    def __init__(self, topics: list[str], entities: list[str]):
        self.topics, self.entities = topics, entities
        self.by_sentence: dict[str, dict] = {}
        self.ids: dict[str, tuple[str, str]] = {}          # id -> (location, sentence)
        self.pinned: dict[str, tuple[str, str]] = {}       # normalised text -> (explicit split, location)
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.rejects: list[dict] = []
        self.read = self.merged = 0

    def reject(self, loc: str, raw, reasons: list[str], text: str | None = None) -> None:
        self.problems.extend(f"{loc}: {r}" for r in reasons)
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
        rid = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rid, str):
            loc = f"{loc} (id={rid})"
        self.warnings.extend(f"{loc}: {w}" for w in checked.warnings)
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
            return f"id: duplicate id {rec['id']!r} (first at {self.ids[rec['id']][0]}, with a different sentence)"
        norm = normalise(rec["sentence"])
        if rec.get("split") and norm in self.pinned and self.pinned[norm][0] != rec["split"]:
            return (f"split: {rec['split']!r} conflicts with the same text pinned to "
                    f"{self.pinned[norm][0]!r} at {self.pinned[norm][1]}")
        return None

    def _keep(self, loc: str, raw, rec: dict) -> None:
        sentence, norm = rec["sentence"], normalise(rec["sentence"])
        earlier = self.by_sentence.get(sentence)
        if earlier is not None:
            conflicts = _merge(earlier, rec)
            if conflicts:
                self.reject(loc, raw, conflicts)
                return
            self.merged += 1
            self.warnings.append(f"{loc}: duplicate of the sentence at {earlier['_loc']}, merged")
        else:
            rec["_loc"], rec["_norm"] = loc, norm
            self.by_sentence[sentence] = rec
        if "id" in rec:
            self.ids.setdefault(rec["id"], (loc, sentence))
        if rec.get("split"):
            self.pinned.setdefault(norm, (rec["split"], loc))

    def splits(self, dev: float, test: float, seed: int) -> dict[str, list[dict]]:
        """Kept records per split: a pinned split wins, else the hash of the normalised text."""
        out: dict[str, list[dict]] = {s: [] for s in SPLITS}
        for rec in self.by_sentence.values():
            norm = rec["_norm"]
            split = self.pinned[norm][0] if norm in self.pinned else hash_normalised(norm, dev, test, seed)
            out[split].append({"id": rec.get("id") or record_id(rec["sentence"]), "sentence": rec["sentence"],
                               "task_A": rec["task_A"], "task_B": rec["task_B"], "split": split})
        return out

    def counts(self, files: int) -> dict[str, int]:
        kept = self.read - len(self.rejects)
        return {"files": files, "read": self.read, "kept": kept, "rejected": len(self.rejects),
                "merged_duplicates": self.merged, "unique": kept - self.merged}
