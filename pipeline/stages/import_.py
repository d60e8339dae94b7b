"""Stage import: annotated data from other tools into the data schema (one record per sentence).

    python -m pipeline import conll train.conll --output data/raw/conll_train.jsonl --map PER=PERSON,MISC=
    python -m pipeline import labelstudio export.json --output data/raw/ls.jsonl
    python -m pipeline import spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC

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

Every record written passes the same check as the validate stage (pipeline.core.records.check_record)
with the labels of --params; the first that does not stops the import with `file:line: problem`.
The output is written atomically. Each record carries "source" (input file and line or task index),
which the validate stage ignores.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.records import split_stats
from pipeline.formats.common import Batch, Item, check_items
from pipeline.formats.conll import parse_conll
from pipeline.formats.labels import apply_labels, parse_mapping
from pipeline.formats.labelstudio import parse_labelstudio
from pipeline.formats.spacy_docs import parse_spacy
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import json_problem, read_text, write_jsonl

FORMATS = ("conll", "labelstudio", "spacy")


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
  python -m pipeline import conll eng.train --output data/raw/conll_train.jsonl \\
      --map PER=PERSON,MISC= --split train
  python -m pipeline import conll a.iob b.iob --output data/raw/iob.jsonl --map labels.yaml --join spaces
  python -m pipeline import labelstudio project-1.json --output data/raw/ls.jsonl
  python -m pipeline import labelstudio tasks.json --output data/raw/pre.jsonl --use-predictions \\
      --text-key sentence
  python -m pipeline import spacy docs.jsonl --output data/raw/spacy.jsonl --map GPE=LOC --drop-unknown
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
    g.add_argument("--offsets", choices=("utf16", "codepoints"), default="utf16",
                   help="unit of value.start/end: utf16 as Label Studio's browser UI writes them "
                        "(default), or codepoints for tasks made by Python tools")
    g.add_argument("--labels-from-name", help="only `labels` results with this from_name (default: all)")
    g.add_argument("--choices-from-name", help="only `choices` results with this from_name (default: all)")
    args = ap.parse_args(argv)

    p = params_mod.load(args.params)
    topics, entities = p.labels.topics, p.labels.entities
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
