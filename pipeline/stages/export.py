"""Stage export: predictions for other tools.

    python -m pipeline export labelstudio predictions.jsonl --output tasks.json --model-version run-7

labelstudio: records in the data schema as written by `python -m pipeline predict` (spans with a
"score", "topic_scores") become Label Studio tasks with pre-annotations, in its predictions
import format:

    [{"data": {"text": SENTENCE},
      "predictions": [{"model_version": NAME, "score": S,
                       "result": [{"from_name": "label", "to_name": "text", "type": "labels",
                                   "value": {"start": S, "end": E, "text": ..., "labels": [TYPE]},
                                   "score": ...},
                                  {"from_name": "topic", "to_name": "text", "type": "choices",
                                   "value": {"choices": [TOPIC]}, "score": ...}]}]}]

Offsets are code points (Python string indices), as Label Studio counts them: its frontend and its
Python converter (label_studio_sdk.converter) both slice text[start:end] by code point. --offsets
utf16 writes UTF-16 code units instead, for tools that count those (the two differ after an emoji
or other character outside the BMP). Scores must be finite numbers (the tasks are standard JSON).

The names must match the project's labeling config. The defaults assume

    <View>
      <Labels name="label" toName="text"> <Label value="PERSON"/> ... </Labels>
      <Text name="text" value="$text"/>
      <Choices name="topic" toName="text" choice="single"> <Choice value="travel"/> ... </Choices>
    </View>

--labels-from-name is the <Labels name>, --choices-from-name the <Choices name>, --to-name the
<Text name>, and --text-key the data field in <Text value="$text">. The prediction's "score" is
the least confident part of it (the lowest of the topic score and the entity scores), so sorting
tasks by it in Label Studio puts the most doubtful first; it is left out when the input has no
scores. A record's "id" is kept as data.record_id, which `python -m pipeline import
labelstudio` reads back. Records with task_A / task_B null get no choices / labels result.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.records import describe, shorten
from pipeline.formats.common import checked_or_error, is_finite_number, jsonl_objects
from pipeline.formats.labelstudio import to_labelstudio_task
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import distinct_from_inputs, output_target, read_text, write_json


def check_scores(raw: dict, where: str) -> None:
    """Scores are copied into the tasks: each must be a finite number (1e999 parses as inf, which
    standard JSON cannot hold; a string would be dropped without a word)."""
    for k, span in enumerate(raw.get("task_B") or []):
        if span.get("score") is not None and not is_finite_number(span["score"]):
            raise PipelineError(f"{where}: task_B[{k}].score: must be a finite number, got {describe(span['score'])}")
    scores = raw.get("topic_scores")
    if scores is None:
        return
    if not isinstance(scores, dict):
        raise PipelineError(f"{where}: topic_scores: must be an object, got {describe(scores)}")
    for topic, score in scores.items():
        if not is_finite_number(score):
            raise PipelineError(f"{where}: topic_scores.{shorten(topic, 40)}: must be a finite number, "
                                f"got {describe(score)}")


def read_predictions(path: Path, topics: list[str], entities: list[str]):
    """Yield (raw, checked record) per JSONL line; a bad line is one error naming file:line."""
    for where, raw in jsonl_objects(read_text(path), str(path)):
        record = checked_or_error(raw, where, topics, entities)
        check_scores(raw, where)
        yield raw, record


EPILOG = """examples:
  python -m pipeline predict --input data/unlabeled --output predictions.jsonl
  python -m pipeline export labelstudio predictions.jsonl --output tasks.json --model-version run-7
  python -m pipeline export labelstudio predictions.jsonl --output tasks.json \\
      --labels-from-name ner --choices-from-name category --to-name sentence --text-key sentence
then import tasks.json in Label Studio; correct; export JSON; and
  python -m pipeline import labelstudio export.json --output data/raw/reviewed.jsonl
"""


def main(argv: list[str] | None = None) -> None:
    ap = stage_parser("export", __doc__, params_help="labels come from here", epilog=EPILOG)
    ap.add_argument("format", choices=("labelstudio",), metavar="FORMAT", help="labelstudio")
    ap.add_argument("input", metavar="PREDICTIONS", help="JSONL records (python -m pipeline predict output)")
    ap.add_argument("--output", required=True, help="Label Studio tasks JSON to write")
    ap.add_argument("--model-version", default="pipeline", help="prediction model_version (default: %(default)s)")
    ap.add_argument("--labels-from-name", default="label", help="<Labels name=...> (default: %(default)s)")
    ap.add_argument("--choices-from-name", default="topic", help="<Choices name=...> (default: %(default)s)")
    ap.add_argument("--to-name", default="text", help="<Text name=...> (default: %(default)s)")
    ap.add_argument("--text-key", default="text", help="task data field, <Text value=\"$...\"> (default: %(default)s)")
    ap.add_argument("--offsets", choices=("codepoints", "utf16"), default="codepoints",
                    help="unit of value.start/end: codepoints, as Label Studio counts them (default), or utf16 "
                         "for tools that count UTF-16 code units")
    args = ap.parse_args(argv)
    distinct_from_inputs(args.output, [args.input])
    output_target(args.output)   # a device, FIFO or directory is refused before any work
    p = params_mod.load(args.params)
    topics, entities = p.labels.topics, p.labels.entities
    tasks = [to_labelstudio_task(raw, rec, args.model_version, args.labels_from_name, args.choices_from_name,
                                 args.to_name, args.text_key, args.offsets)
             for raw, rec in read_predictions(Path(args.input), topics, entities)]
    if not tasks:
        raise PipelineError(f"{args.input}: no records")
    write_json(args.output, tasks)
    n_spans = sum(1 for t in tasks for r in t["predictions"][0]["result"] if r["type"] == "labels")
    print(f"export: wrote {len(tasks)} Label Studio tasks ({n_spans} entity pre-annotations, "
          f"model_version {args.model_version!r}) to {args.output}")


if __name__ == "__main__":
    run_cli(main)
