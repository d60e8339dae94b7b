"""Stage 5 and CLI, predict: topic and entities for new sentences, in the training-data schema.

    python -m pipeline.predict "Fetch Rewards is America's number one app"
    python -m pipeline.predict --input notes.txt --output out.jsonl
    python -m pipeline.predict --input - --format pretty < sentences.txt

Input: SENTENCE arguments, or --input FILE|DIR|- (.txt: one sentence per line; .jsonl: records
with "sentence"; a directory: every .txt/.jsonl in it; -: stdin as text lines). Without either,
params predict.input. Output JSONL (one record per input: sentence, task_A, task_B spans with
text/type/start/end and a score, topic_scores), or --format pretty. The JSONL passes the
validate stage as is, so corrected predictions can become training data.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

from pipeline import params as params_mod
from pipeline.features import FeatureConfig, FeatureEncoder
from pipeline.files import PipelineError, atomic_path, json_problem, run_cli
from pipeline.inference import pick_device, predict_rows
from pipeline.model import load as load_model

CHUNK = 1024


def read_inputs(source: str, fmt: str = "auto") -> Iterator[tuple[str, dict]]:
    """(location, {"sentence", optional "id"}) from a file, a directory or stdin. The files are
    found at once (so a wrong path fails before the model loads), then read lazily."""
    if source == "-":
        return _read_stdin("jsonl" if fmt == "jsonl" else "txt")
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix in (".txt", ".jsonl") and f.is_file())
        if not files:
            raise PipelineError(f"{path}: no .txt or .jsonl files to predict on")
    elif path.is_file():
        files = [path]
    else:
        raise PipelineError(f"{path}: input not found")
    return _read_files(files, fmt)


def _read_stdin(kind: str) -> Iterator[tuple[str, dict]]:
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="strict")
    try:
        yield from _read_stream(stdin, "<stdin>", kind)
    except UnicodeDecodeError as exc:
        raise PipelineError(f"<stdin>: invalid UTF-8 ({exc.reason})") from None


def _read_files(files: list[Path], fmt: str) -> Iterator[tuple[str, dict]]:
    for f in files:
        kind = fmt if fmt != "auto" else ("jsonl" if f.suffix == ".jsonl" else "txt")
        try:
            with open(f, encoding="utf-8-sig") as fh:
                yield from _read_stream(fh, str(f), kind)
        except UnicodeDecodeError as exc:
            raise PipelineError(f"{f}: invalid UTF-8 ({exc.reason})") from None
        except OSError as exc:
            raise PipelineError(f"{f}: cannot read ({exc.strerror or exc})") from None


def _read_stream(fh, name: str, kind: str) -> Iterator[tuple[str, dict]]:
    for lineno, line in enumerate(fh, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        loc = f"{name}:{lineno}"
        if kind == "txt":
            yield loc, {"sentence": line}
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise PipelineError(f"{loc}: {json_problem(exc)}") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("sentence"), str) or not rec["sentence"].strip():
            raise PipelineError(f"{loc}: sentence: each record needs a non-empty string 'sentence'")
        if rec.get("id") is not None and (not isinstance(rec["id"], str) or not rec["id"].strip()):
            raise PipelineError(f"{loc}: id: must be a non-empty string (as in the training data), got {rec['id']!r}")
        yield loc, {k: rec[k] for k in ("sentence", "id") if rec.get(k) is not None}


def capped(items: Iterator[tuple[str, dict]], max_chars: int, max_records: int) -> Iterator[dict]:
    """Enforce predict.max_chars / predict.max_records with clear errors."""
    for n, (loc, rec) in enumerate(items, 1):
        if n > max_records:
            raise PipelineError(f"{loc}: more than predict.max_records={max_records} inputs; split the input")
        if not rec["sentence"].strip():
            raise PipelineError(f"{loc}: sentence: empty")
        if len(rec["sentence"]) > max_chars:
            raise PipelineError(f"{loc}: sentence: {len(rec['sentence'])} characters exceeds "
                                f"predict.max_chars={max_chars}")
        yield rec


def to_record(inp: dict, pred: dict) -> dict:
    out = {"id": inp["id"]} if "id" in inp else {}
    return {**out, "sentence": inp["sentence"], "task_A": pred["topic"], "task_B": pred["spans"],
            "topic_scores": pred["topic_scores"]}


def pretty(rec: dict) -> str:
    lines = [f"Sentence: {rec['sentence']}",
             f"[Task A] Predicted category: {rec['task_A']} ({rec['topic_scores'][rec['task_A']]:.2f})",
             "[Task B] Predicted entities:"]
    lines += [f"  - {s['text']} ({s['type']}), characters {s['start']}–{s['end']}" for s in rec["task_B"]]
    return "\n".join(lines) + "\n"


class Predictor:
    """A loaded model ready for sentences: encode (with windows), run both heads, decode spans."""

    def __init__(self, model_dir: str, batch_size: int = 32, device: str | None = None,
                 trust_remote_code: bool = False):
        self.device = pick_device(device)
        self.model, self.tokenizer, self.meta = load_model(model_dir, str(self.device), trust_remote_code)
        m = self.meta
        self.encoder = FeatureEncoder(self.tokenizer, FeatureConfig(
            m["max_length"], m["stride"], m["label_subwords"], m["misaligned"], m["topics"], m["tags"]))
        self.batch_size = batch_size

    def predict(self, inputs: list[dict], progress=None) -> list[dict]:
        rows = self.encoder.encode([{"sentence": r["sentence"]} for r in inputs]).rows
        preds = predict_rows(self.model, rows, [r["sentence"] for r in inputs], self.meta, self.batch_size,
                             self.tokenizer.pad_token_id, self.device, progress)
        return [to_record(i, p) for i, p in zip(inputs, preds)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to predict on")
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--model", default="models/multitask", help="trained model directory (default: %(default)s)")
    ap.add_argument("--input", help="file, directory or - for stdin (default: params predict.input)")
    ap.add_argument("--input-format", choices=("auto", "txt", "jsonl"), default="auto",
                    help="auto: by file extension, stdin as text (default: %(default)s)")
    ap.add_argument("--output", default="-", help="output file, or - for stdout (default: %(default)s)")
    ap.add_argument("--format", choices=("jsonl", "pretty"), default="jsonl", help="output format (default: %(default)s)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    args = ap.parse_args()
    p = params_mod.load(args.params)
    pp = p["predict"]
    if args.sentences and args.input:
        raise PipelineError("give either SENTENCE arguments or --input, not both")
    items = ((f"argument {i}", {"sentence": s}) for i, s in enumerate(args.sentences, 1)) if args.sentences \
        else read_inputs(args.input or pp["input"], args.input_format)
    inputs = capped(items, pp["max_chars"], pp["max_records"])
    predictor = Predictor(args.model, pp["batch_size"], args.device, p["encoder"]["trust_remote_code"])
    render = pretty if args.format == "pretty" else (lambda r: json.dumps(r, ensure_ascii=False) + "\n")
    to_file = args.output != "-"
    n = 0
    try:
        with ExitStack() as stack:  # a file output is closed, then renamed into place; on error, removed
            out = (stack.enter_context(open(stack.enter_context(atomic_path(args.output)), "w", encoding="utf-8"))
                   if to_file else sys.stdout)
            with tqdm(desc="predict", unit=" sent", disable=not to_file, mininterval=1.0) as bar:
                while chunk := [rec for _, rec in zip(range(CHUNK), inputs)]:
                    for rec in predictor.predict(chunk):
                        out.write(render(rec))
                    n += len(chunk)
                    bar.update(len(chunk))
            out.flush()
    except BrokenPipeError:  # stdout closed early (`... | head`): stop quietly, as other CLI tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    if to_file:
        print(f"predict: {n} predictions written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
