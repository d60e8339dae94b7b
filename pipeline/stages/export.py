"""Stage export: predictions as Label Studio tasks (and its labeling config); the model as ONNX graphs.

    python -m pipeline export labelstudio predictions.jsonl --output tasks.json --model-version run-7
    python -m pipeline export labelstudio-config > config.xml
    python -m pipeline export onnx --model models/multitask --int8

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
<Text name>, and --text-key the data field in <Text value="$text">. `export labelstudio-config`
prints this config with the labels of params.yaml (labels.entities, labels.topics), taking the
same four options: paste it into a new project's Labeling Interface (Code) and the tasks of
`export labelstudio` and `python -m pipeline select` import as they are. The prediction's "score" is
the least confident part of it (the lowest of the topic score and the entity scores), so sorting
tasks by it in Label Studio puts the most doubtful first; it is left out when the input has no
scores. A record's "id" is kept as data.record_id, which `python -m pipeline import
labelstudio` reads back. Records with task_A / task_B null get no choices / labels result.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.agreement import FP32_ATOL, MIN_AGREEMENT, compare
from pipeline.core.device import set_threads
from pipeline.core.records import describe, shorten
from pipeline.formats.common import checked_or_error, is_finite_number, jsonl_objects
from pipeline.formats.labelstudio import labeling_config, to_labelstudio_task
from pipeline.storage import feature_store, model_dir, onnx_graph
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path, distinct_from_inputs, output_target, read_text, write_json, write_text


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
  python -m pipeline export labelstudio-config --output config.xml   # the project's labeling config

  python -m pipeline export onnx --model models/multitask --int8     # -> models/multitask-onnx/
  python -m pipeline predict --runtime onnx-int8 --input notes.txt --output out.jsonl
"""

ONNX_HELP = f"""onnx: the trained model as one ONNX graph (the shared encoder and both heads; inputs input_ids
and attention_mask with dynamic batch and sequence axes; outputs topic_logits and ner_logits) in
--output (default: beside the model, models/multitask -> models/multitask-onnx), with --int8 also
an int8 graph (ONNX Runtime dynamic quantization), and onnx.json with their checksums. The export
checks itself on the dev features: the fp32 graph's logits must match PyTorch's within {FP32_ATOL:g} and its
topic and NER decisions agree on at least {MIN_AGREEMENT:.1%} of windows and tokens, or the command fails and
writes nothing. The int8 graph's agreement is measured and reported (onnx.json); its F1 cost is in
metrics/runtimes.json after evaluate. Needs the optional extra: {onnx_graph.INSTALL}.
"""


def add_name_options(sub: argparse.ArgumentParser) -> None:
    """The names of the labeling config's tags, shared by the tasks and the config."""
    sub.add_argument("--labels-from-name", default="label", help="<Labels name=...> (default: %(default)s)")
    sub.add_argument("--choices-from-name", default="topic", help="<Choices name=...> (default: %(default)s)")
    sub.add_argument("--to-name", default="text", help="<Text name=...> (default: %(default)s)")
    sub.add_argument("--text-key", default="text", help="task data field, <Text value=\"$...\"> (default: %(default)s)")


def parse_args(argv: list[str] | None):
    ap = stage_parser("export", __doc__ + "\n" + ONNX_HELP, params_help="labels come from here", epilog=EPILOG)
    formats = ap.add_subparsers(dest="format", metavar="FORMAT", required=True,
                                help="labelstudio | labelstudio-config | onnx")
    ls = formats.add_parser("labelstudio", help="predictions as Label Studio tasks", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ls.add_argument("input", metavar="PREDICTIONS", help="JSONL records (python -m pipeline predict output)")
    ls.add_argument("--output", required=True, help="Label Studio tasks JSON to write")
    ls.add_argument("--model-version", default="pipeline", help="prediction model_version (default: %(default)s)")
    ls.add_argument("--offsets", choices=("codepoints", "utf16"), default="codepoints",
                    help="unit of value.start/end: codepoints, as Label Studio counts them (default), or utf16 "
                         "for tools that count UTF-16 code units")
    cfg = formats.add_parser("labelstudio-config", help="the Label Studio labeling config (XML) for the tasks",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cfg.add_argument("--output", default="-", help="file to write, or - for stdout (default: %(default)s)")
    add_name_options(ls)
    add_name_options(cfg)
    ox = formats.add_parser("onnx", help="the model as ONNX graphs for CPU inference", description=ONNX_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ox.add_argument("--model", default="models/multitask", help="trained model directory (default: %(default)s)")
    ox.add_argument("--output", help="directory to write (default: the model directory's name + '-onnx', beside it)")
    ox.add_argument("--features", default="data/features", help="featurized data; dev is the check (default: %(default)s)")
    ox.add_argument("--int8", action="store_true", help="also write the int8 graph")
    ox.add_argument("--batch-size", type=int, default=32, help="batch size of the check (default: %(default)s)")
    ox.add_argument("--threads", type=int, default=0, help="CPU threads, 0: one per core (default: %(default)s)")
    for sub in (ls, cfg, ox):  # after the format as well as before it
        sub.add_argument("--params", default=argparse.SUPPRESS, help="params file (default: params.yaml)")
    return ap.parse_args(argv)


def export_labelstudio(args) -> None:
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


def export_labelstudio_config(args) -> None:
    p = params_mod.load(args.params)
    xml = labeling_config(p.labels.topics, p.labels.entities, args.labels_from_name, args.choices_from_name,
                          args.to_name, args.text_key)
    if args.output == "-":
        print(xml, end="")
        return
    distinct_from_inputs(args.output, [args.params])
    write_text(args.output, xml)
    print(f"export: Label Studio labeling config ({len(p.labels.entities)} entity types, "
          f"{len(p.labels.topics)} topics) written to {args.output}", file=sys.stderr)


def export_onnx(args) -> None:
    if args.batch_size < 1 or args.threads < 0:
        raise PipelineError("--batch-size must be at least 1 and --threads at least 0")
    p = params_mod.load(args.params)
    out = Path(args.output) if args.output else onnx_graph.default_dir(args.model)
    onnx_graph.require("onnx", "onnxscript", "onnxruntime")
    distinct_from_inputs(out, [args.model, args.features])
    set_threads(args.threads)
    model, tokenizer, meta = model_dir.load(args.model, "cpu", p.encoder.trust_remote_code)
    features, dev = Path(args.features), feature_store.split_path(args.features, "dev")
    feature_store.require(features / feature_store.META, dev)
    feature_store.check_for_model(meta, features, args.model)
    rows = feature_store.load_features(dev)
    if not rows:
        raise PipelineError(f"{dev}: no dev windows to check the exported graph against")
    pad_id, checks = tokenizer.pad_token_id, {}
    with atomic_path(out, is_dir=True) as tmp:
        onnx_graph.export_fp32(model, onnx_graph.trace_sample(rows, pad_id), tmp / onnx_graph.GRAPHS["onnx"])
        fp32 = compare(model, onnx_graph.OnnxModel(tmp / onnx_graph.GRAPHS["onnx"], args.threads), rows,
                       args.batch_size, pad_id)
        problem = fp32.problem()
        if problem:
            raise PipelineError(f"export onnx: the fp32 graph does not reproduce {args.model} on {dev}: {problem}")
        checks["onnx"] = {**dataclasses.asdict(fp32), "atol": FP32_ATOL, "min_agreement": MIN_AGREEMENT}
        print(f"export onnx: fp32 graph checked on {dev}: {fp32.summary()}")
        if args.int8:
            onnx_graph.quantize_int8(tmp / onnx_graph.GRAPHS["onnx"], tmp / onnx_graph.GRAPHS["onnx-int8"])
            int8 = compare(model, onnx_graph.OnnxModel(tmp / onnx_graph.GRAPHS["onnx-int8"], args.threads), rows,
                           args.batch_size, pad_id)
            checks["onnx-int8"] = dataclasses.asdict(int8)
            print(f"export onnx: int8 graph on {dev}: {int8.summary()}")
        onnx_graph.write_manifest(tmp, model_dir.weights_checksum(args.model), checks)
    print(f"export onnx: {', '.join(checks)} graph(s) and {onnx_graph.MANIFEST} written to {out}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if "params" not in args:
        args.params = "params.yaml"
    exports = {"labelstudio": export_labelstudio, "labelstudio-config": export_labelstudio_config,
               "onnx": export_onnx}
    exports[args.format](args)


if __name__ == "__main__":
    run_cli(main)
