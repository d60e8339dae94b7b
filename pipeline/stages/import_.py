"""Stage import: annotated data from other tools into the data schema (one record per sentence).

    python -m pipeline import conll train.conll --output data/raw/conll_train.jsonl --map PER=PERSON,MISC=
    python -m pipeline import labelstudio export.json --output data/raw/ls.jsonl
    python -m pipeline import spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC

Formats:
  conll        CoNLL / IOB column files: one token per line, the tag in the LAST column (so
               CoNLL-2003 `word POS chunk TAG` works as is), a blank line between sentences,
               `-DOCSTART-` lines skipped. IOB2, IOB1 and BIOES (also BILOU) tags are all read by
               one decoder: B- (or an I- that does not continue an entity of its type) opens a
               span, E-/L- closes one, S-/U- is a one-token span. Every token line has as many
               columns as the file's first one (a line with more is an error: a token with a
               space in it would otherwise be cut); in a tab-separated file only tabs separate
               columns, so a token may contain a space there. The sentence text is rebuilt from
               the tokens (--join) and offsets are computed from it. Records get task_A null (no
               topic) and task_B the spans.
  labelstudio  A Label Studio JSON export (a list of tasks). The text is data.<--text-key> (in a
               task without the "data" wrapper, which Label Studio's import accepts, the task's own
               fields other than annotations, predictions, id and the like); the last
               non-cancelled annotation is used (with --use-predictions, the last prediction of a
               task that has no annotation). `labels` results become entities, a `choices` result
               the topic. Offsets are code points by default, as Label Studio's frontend and its
               Python converter (label_studio_sdk.converter) count them; --offsets utf16 reads
               exports from tools that count UTF-16 code units (they differ after an emoji). They
               are checked against value.text where present, and a mismatch that the other unit
               explains says so. If any annotation in the file has a `labels` result, a task
               without one is taken as "annotated, no entities" (task_B []); otherwise task_B is
               null (a topic-only project). Tasks with neither an annotation nor (with
               --use-predictions) a prediction are skipped and counted.
  spacy        JSONL: {"text", "spans" | "entities" | "ents": [[start, end, label]] or
               [{"start", "end", "label"}], "cats": {label: score}} (Python code-point
               offsets, as spaCy's); "spans" may also hold spaCy's span groups {"sc": [...]}, the
               group chosen by --span-group (default sc). The topic is the highest scoring cat
               (ties and non-finite scores are errors), or "label" when it is a string. Doccano's
               {"text", "label": [[s, e, L]]} and Prodigy's "answer": "reject"/"ignore" (skipped)
               are understood too. A spaCy DocBin (`.spacy`, or any file whose bytes are one) is
               read with spaCy when it is installed (pip install spacy): doc.ents as the entities
               (or the span group --span-group names), doc.cats as the topic by the same rule;
               locations read `file: doc[i]`.

Labels: --map renames labels of either task (`--map PER=PERSON,GPE=LOC` or `--map mapping.yaml`
holding {PER: PERSON, MISC: null}); mapping a label to nothing (`MISC=`) drops it on purpose.
A label that is still not in params labels.topics / labels.entities is an error listing every
unknown label with its count; --drop-unknown drops those spans (and topics) and says how many.
Spans with leading/trailing whitespace (common in hand-made selections) are trimmed and counted.

Every record written passes the same check as the validate stage (pipeline.core.records.check_record)
with the labels of --params; the first that does not stops the import with `file:line: problem`.
The output (never one of the inputs) is written atomically. Each record carries "source" (input file and line or task index),
which the validate stage ignores.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.corpus import Corpus
from pipeline.core.records import split_stats
from pipeline.formats.common import Batch, Item, check_items
from pipeline.formats.conll import parse_conll
from pipeline.formats.labels import apply_labels, parse_mapping
from pipeline.formats.labelstudio import parse_labelstudio
from pipeline.formats.spacy_docs import DEFAULT_GROUP, looks_like_docbin, parse_docbin, parse_spacy
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import (
    distinct_from_inputs,
    json_problem,
    loads,
    output_target,
    read_bytes,
    read_text,
    write_jsonl,
)

FORMATS = ("conll", "labelstudio", "spacy")


def _read_input(fmt: str, path: Path) -> str | bytes:
    """The text of an input, or the bytes of a spaCy DocBin (by its .spacy suffix, or by its bytes
    whatever its name: else a DocBin named .jsonl would get "invalid UTF-8 (byte 0x9c)")."""
    if path.exists() and not (path.is_file() or path.is_dir()):   # reading a FIFO would wait forever
        raise PipelineError(f"{path}: not a regular file (a FIFO, socket or device); give a file")
    if fmt == "spacy" and path.suffix.lower() == ".spacy":
        return read_bytes(path)
    try:
        return read_text(path)
    except PipelineError:
        data = read_bytes(path) if path.is_file() else b""
        if not looks_like_docbin(data):
            raise
    if fmt != "spacy":
        raise PipelineError(f"{path}: a spaCy DocBin (binary) file, not {fmt} text; import it with "
                            f"`python -m pipeline import spacy {path} ...`")
    return data


def _parse_json(text: str, path: Path):
    """A Label Studio export: one JSON document (files.loads: a key given twice, NaN are errors)."""
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        hint = " (a Label Studio export is one JSON list; JSONL is read by the spacy format)" \
            if exc.msg == "Extra data" else ""
        raise PipelineError(f"{path}:{exc.lineno}: {json_problem(exc)}{hint}") from None
    except (ValueError, RecursionError) as exc:
        raise PipelineError(f"{path}: {json_problem(exc)}") from None


def parse_file(fmt: str, path: Path, opts: dict) -> Batch:
    content = _read_input(fmt, path)
    if isinstance(content, bytes):
        batch = parse_docbin(content, str(path), span_group=opts.get("span_group"))
        if path.suffix.lower() != ".spacy":
            batch.notes["files read as spaCy DocBin by their content (name not ending in .spacy)"] += 1
        return batch
    if fmt == "conll":
        return parse_conll(content, str(path), join=opts.get("join", "smart"))
    if fmt == "spacy":
        return parse_spacy(content, str(path), span_group=opts.get("span_group"))
    return parse_labelstudio(_parse_json(content, path), str(path), text_key=opts.get("text_key", "text"),
                             use_predictions=opts.get("use_predictions", False),
                             offsets=opts.get("offsets", "codepoints"),
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


def conflict_warning(records: list[dict], topics: list[str], entities: list[str], policy: str) -> str | None:
    """One line on sentences the input labels two ways, found now rather than by `dvc repro`
    (the validate stage's own Corpus finds them, so the two cannot disagree)."""
    corpus = Corpus(topics, entities, on_conflict="first")
    for rec in records:
        corpus.add(rec["source"], rec)
    found = corpus.conflict_counts()
    if not found["sentences"]:
        return None
    (loc, first), *more = corpus.conflicted.values()
    also = f"; also at {', '.join(loc for loc, _ in more[:3])}{', ...' if len(more) > 3 else ''}" if more else ""
    then = ("the validate stage will stop on them (validate.on_conflict: fail; first, majority or drop "
            "resolve them)" if policy == "fail" else f"the validate stage will resolve them (validate.on_conflict: "
            f"{policy})")
    return (f"warning: {found['sentences']} sentence(s) labelled in conflicting ways in the input "
            f"({found['records']} records; {loc}: {first}{also}): {then}")


def summary(records: list[dict], topics: list[str], entities: list[str]) -> list[str]:
    stats = split_stats(records, topics, entities)
    return [f"  entities ({stats['ner_annotated']} records annotated): "
            + ", ".join(f"{e} {n}" for e, n in stats["entities"].items()),
            f"  topics ({stats['topic_annotated']} records annotated): "
            + ", ".join(f"{t} {n}" for t, n in stats["topics"].items())]


EPILOG = """examples:
  python -m pipeline import conll eng.train --output data/raw/conll_train.jsonl \\
      --map PER=PERSON,MISC= --split train
  python -m pipeline import conll a.iob b.iob --output data/raw/iob.jsonl --map labels.yaml --join spaces
  python -m pipeline import labelstudio project-1.json --output data/raw/ls.jsonl
  python -m pipeline import labelstudio tasks.json --output data/raw/pre.jsonl --use-predictions \\
      --text-key sentence
  python -m pipeline import spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC --drop-unknown
  python -m pipeline import spacy train.spacy --output data/raw/spacy_train.jsonl --span-group sc
  python -m pipeline import labelstudio tools.json --output data/raw/ls.jsonl --offsets utf16
"""


def main(argv: list[str] | None = None) -> None:
    ap = stage_parser("import", __doc__, params_help="labels come from here", epilog=EPILOG)
    ap.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="input file(s)")
    ap.add_argument("--output", required=True, help="output JSONL, e.g. data/raw/NAME.jsonl")
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
    g.add_argument("--offsets", choices=("codepoints", "utf16"), default="codepoints",
                   help="unit of value.start/end: codepoints, as Label Studio writes them (default), or "
                        "utf16 for tasks made by tools that count UTF-16 code units")
    g.add_argument("--labels-from-name", help="only `labels` results with this from_name (default: all)")
    g.add_argument("--choices-from-name", help="only `choices` results with this from_name (default: all)")
    g = ap.add_argument_group("spacy")
    g.add_argument("--span-group", metavar="NAME",
                   help=f"take entities from this span group: JSONL \"spans\": {{NAME: [...]}} (default: "
                        f"{DEFAULT_GROUP!r}, when no other span key is given) or a DocBin's doc.spans[NAME] "
                        f"(default: doc.ents)")
    args = ap.parse_args(argv)

    output = Path(args.output)
    paths = [Path(x) for x in args.inputs]
    distinct_from_inputs(output, paths)
    if output.suffix.lower() != ".jsonl":
        raise PipelineError(f"--output {output}: must end in .jsonl (the validate stage reads .json/.jsonl)")
    output_target(output)   # a device, FIFO or directory is refused before any work
    p = params_mod.load(args.params)
    topics, entities = p.labels.topics, p.labels.entities
    mapping = parse_mapping(args.map)
    records, notes = import_files(args.format, paths, topics, entities, mapping, args.drop_unknown, args.split,
                                  join=args.join, text_key=args.text_key, use_predictions=args.use_predictions,
                                  offsets=args.offsets, labels_from_name=args.labels_from_name,
                                  choices_from_name=args.choices_from_name, span_group=args.span_group)
    if not records:
        raise PipelineError(f"no records found in {', '.join(args.inputs)}"
                            + "".join(f"; {n} {what}" for what, n in notes.items()))
    n = write_jsonl(output, records)
    print(f"importers: wrote {n} records to {output} from {len(paths)} {args.format} file(s)")
    for line in summary(records, topics, entities):
        print(line)
    for what, count in notes.items():
        print(f"  note: {count} {what}")
    warning = conflict_warning(records, topics, entities, p.validate.on_conflict)
    if warning:
        print(warning, file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
