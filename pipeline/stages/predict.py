"""Stage predict: topic and entities for new sentences, in the training-data schema.

    python -m pipeline predict "Fetch Rewards is America's number one app"
    python -m pipeline predict --input notes.txt --output out.jsonl
    python -m pipeline predict --input - --format pretty < sentences.txt

Input: SENTENCE arguments, or --input FILE|DIR|- (.txt: one sentence per line; .jsonl: records
with "sentence"; a directory: every .txt/.jsonl in it, any case, others and dot-files skipped with
a warning; -: stdin as text lines). Without either, params predict.input. Text must be UTF-8. Output JSONL (one record per input: sentence, task_A, task_B spans with
text/type/start/end and a score, topic_scores), or --format pretty. The JSONL passes the
validate stage as is, so corrected predictions can become training data.

--runtime onnx | onnx-int8 (params predict.runtime) runs the graph `python -m pipeline export onnx`
wrote instead of PyTorch, on the CPU: only the forward pass changes. --threads (predict.threads):
CPU threads, 0 for one per core.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack

from pipeline.cli import run_cli, stage_parser
from pipeline.core.inference import Predictor
from pipeline.storage import onnx_graph, progress
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path, distinct_from_inputs, output_target
from pipeline.storage.predictor import load_predictor  # also the Python entry point the model card names
from pipeline.storage.sentences import capped, count_inputs, read_inputs

CHUNK = 1024


def pretty(rec: dict) -> str:
    lines = [f"Sentence: {rec['sentence']}",
             f"[Task A] Predicted category: {rec['task_A']} ({rec['topic_scores'][rec['task_A']]:.2f})",
             "[Task B] Predicted entities:"]
    lines += [f"  - {s['text']} ({s['type']}), characters {s['start']}–{s['end']}" for s in rec["task_B"]] or ["  none"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = stage_parser("predict", __doc__, {
        "--model": ("models/multitask", "trained model directory"),
        "--input": (None, "file, directory or - for stdin (default: params predict.input)")})
    ap.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to predict on")
    ap.add_argument("--input-format", choices=("auto", "txt", "jsonl"), default="auto",
                    help="auto: by file extension, stdin as text (default: %(default)s)")
    ap.add_argument("--output", default="-", help=("output file (a new path or a regular file, never one of the "
                                                   "inputs; a symlink is written through), or - for stdout "
                                                   "(default: %(default)s)"))
    ap.add_argument("--format", choices=("jsonl", "pretty"), default="jsonl", help="output format (default: %(default)s)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available; the onnx runtimes: cpu)")
    ap.add_argument("--runtime", choices=onnx_graph.RUNTIMES,
                    help="torch, or an exported graph: onnx (fp32), onnx-int8 (default: params predict.runtime)")
    ap.add_argument("--onnx-dir", help="exported graphs (default: the model directory's name + '-onnx', beside it)")
    ap.add_argument("--threads", type=int, help="CPU threads, 0: one per core (default: params predict.threads)")
    return ap.parse_args(argv)


def write_predictions(predictor: Predictor, inputs, output: str, render, total: int | None = None) -> int:
    """Predict in chunks and write as they come: to a file atomically (removed on error), or to stdout."""
    to_file, n = output != "-", 0
    with ExitStack() as stack:  # a file output is closed, then renamed into place; on error, removed
        out = (stack.enter_context(open(stack.enter_context(atomic_path(output)), "w", encoding="utf-8"))
               if to_file else sys.stdout)
        with progress.bar(total, "predict", " sent", disable=not to_file) as bar:
            while chunk := [rec for _, rec in zip(range(CHUNK), inputs)]:
                for rec in predictor.predict(chunk):
                    out.write(render(rec))
                n += len(chunk)
                bar.update(len(chunk))
        out.flush()
    return n


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    p = params_mod.load(args.params)
    pp = p.predict
    if args.sentences and args.input:
        raise PipelineError("give either SENTENCE arguments or --input, not both")
    source = args.input or pp.input
    items = ((f"argument {i}", {"sentence": s}) for i, s in enumerate(args.sentences, 1)) if args.sentences \
        else read_inputs(source, args.input_format)
    if args.output != "-":  # before the model loads: a refused output costs nothing and is left as it was
        output_target(args.output)  # a device, FIFO or directory is refused; a symlink is written through
        distinct_from_inputs(args.output, [] if args.sentences or source == "-" else [source])
    # a progress total only where a bar is drawn (a file output): counting is a second pass over the input
    total = None if args.output == "-" else len(args.sentences) if args.sentences else count_inputs(source)
    inputs = capped(items, pp.max_chars, pp.max_records)
    if args.sentences:  # in memory already: checked before the model loads
        inputs = iter(list(inputs))
    threads = pp.threads if args.threads is None else args.threads
    if threads < 0:
        raise PipelineError(f"--threads {threads}: must be 0 (one per core) or more")
    predictor = load_predictor(args.model, pp.batch_size, args.device, p.encoder.trust_remote_code,
                               args.runtime or pp.runtime, args.onnx_dir, threads)
    render = pretty if args.format == "pretty" else (lambda r: json.dumps(r, ensure_ascii=False) + "\n")
    try:
        n = write_predictions(predictor, inputs, args.output, render, total)
    except BrokenPipeError:  # stdout closed early (`... | head`): stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if args.output != "-":
        print(f"predict: {n} predictions written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
