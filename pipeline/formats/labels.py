"""Label names across tools: --map renames (or drops) labels of either task, and a label that is
still unknown is an error listing each with its count and first location (or, on request, dropped
and counted)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.formats.common import Item
from pipeline.storage.errors import PipelineError
from pipeline.storage.params import read_yaml


def parse_mapping(specs: list[str]) -> dict[str, str | None]:
    """--map values: 'PER=PERSON,GPE=LOC' (empty target: drop) or a YAML/JSON file {PER: PERSON}."""
    mapping: dict[str, str | None] = {}
    for spec in specs or []:
        path = Path(spec)
        if path.suffix.lower() in (".yaml", ".yml", ".json") or (path.is_file() and "=" not in spec):
            try:
                tree = read_yaml(path, what="label maps")   # strict: a label mapped twice is an error
            except PipelineError as exc:
                raise PipelineError(f"--map {exc}") from None
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


class _Relabel:
    """One pass of --map over imported records, remembering each unknown label's count and first place."""

    def __init__(self, mapping: dict[str, str | None], topics: list[str], entities: list[str], notes: Counter):
        self.mapping, self.topics, self.entities, self.notes = mapping, topics, entities, notes
        self.unknown = {"entity": Counter(), "topic": Counter()}
        self.first: dict[tuple[str, str], str] = {}

    def _unknown(self, what: str, label: str, loc: str) -> None:
        self.unknown[what][label] += 1
        self.first.setdefault((what, label), loc)

    def topic(self, topic, loc: str):
        if topic in self.mapping:
            topic = self.mapping[topic]
            if topic is None:
                self.notes["topics dropped by --map"] += 1
        if topic is not None and topic not in self.topics:
            self._unknown("topic", topic, loc)
            topic = None
        return topic

    def spans(self, spans: list[dict], loc: str) -> list[dict]:
        out = []
        for sp in spans:
            kind = self.mapping[sp["type"]] if sp["type"] in self.mapping else sp["type"]
            if kind is None:
                self.notes["spans dropped by --map"] += 1
            elif kind not in self.entities:
                self._unknown("entity", kind, loc)
            else:
                out.append({**sp, "type": kind})
        return out

    def error(self) -> PipelineError:
        """Every unknown label with its count and first location, and a --map example."""
        parts, guesses = [], []
        for what, allowed in (("entity", self.entities), ("topic", self.topics)):
            if self.unknown[what]:
                listed = ", ".join(f"{k!r} ({n}, first at {self.first[(what, k)]})"
                                   for k, n in self.unknown[what].most_common())
                parts.append(f"unknown {what} label(s) {listed}; allowed: {', '.join(allowed)}")
                guesses += [f"{k}={_guess(k, allowed) or ''}" for k in self.unknown[what]]
        example = ",".join(g for g in guesses if not g.endswith("=")) or guesses[0]
        return PipelineError("; ".join(parts) + f". Rename them with --map (e.g. --map {example}; "
                             f"FROM= drops a label) or drop them with --drop-unknown")


def apply_labels(items: list[Item], mapping: dict[str, str | None], topics: list[str], entities: list[str],
                 drop_unknown: bool = False, notes: Counter | None = None) -> list[Item]:
    """Rename labels with mapping; unknown labels are an error (or, with drop_unknown, dropped)."""
    notes = notes if notes is not None else Counter()
    relabel = _Relabel(mapping, topics, entities, notes)
    out = []
    for item in items:
        rec = dict(item.record)
        if rec.get("task_A") is not None:
            rec["task_A"] = relabel.topic(rec["task_A"], item.loc)
        if rec.get("task_B") is not None:
            rec["task_B"] = relabel.spans(rec["task_B"], item.loc)
        if rec["task_A"] is None and rec.get("task_B") is None:
            notes["records left without any annotation skipped"] += 1
            continue
        out.append(Item(item.loc, rec))
    if any(relabel.unknown.values()) and not drop_unknown:
        raise relabel.error()
    for what, counts in relabel.unknown.items():
        for k, n in counts.most_common():
            notes[f"{'spans' if what == 'entity' else 'topics'} with unknown label {k!r} dropped"] += n
    return out
