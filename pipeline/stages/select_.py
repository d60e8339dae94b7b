"""Stage select: what to annotate next, picked from an unlabelled pool (active learning).

    python -m pipeline select --output tasks.json             # the params' select.* settings
    python -m pipeline select --pool data/unlabeled --budget 50 --output tasks.json
    python -m pipeline select --pool pool.txt --budget 200 --strategy diverse --task ner --format jsonl \\
        --output picked.jsonl

Every option left out comes from params.yaml's select section (pool, budget, strategy, task, ner_score, seed);
the DVC stage `select` runs it that way and writes predictions/annotate_next.json.

Scores every sentence of --pool (.txt: one sentence per line; .jsonl: records with "sentence"; a
directory: every .txt/.jsonl in it) with the model in one pass, and picks --budget of them:

  uncertainty  the sentences the model is least sure of
  diverse      the least sure, spread out: farthest-first (cosine) on the model's pooled sentence
               embedding among the 5 x budget least sure, starting from the least sure
  random       a uniform draw, the same for the same --seed (the baseline)

How unsure, per --task: topic: the margin 1 - (p1 - p2) of the two likeliest topics; ner, by
--ner-score: mnlp, the mean -log p of each word's likeliest tag over log(number of tags)
(MNLP, length-normalised, in [0, 1]), or errors, the sum of 1 - p, the expected number of wrong tags in
the sentence (what an annotator paid per sentence corrects); both: the average of the two tasks' rank
percentiles over the pool. Higher = less sure.
Sentences already in --raw-dir (same normalised text, as validate compares them) are never picked,
and a sentence in the pool twice is picked at most once. Memory: 32 bytes per pool sentence (its
position, text key and two scores); a repeat is scored again and dropped after the pass.

--format labelstudio (default): Label Studio tasks with the model's pre-annotations, the topic
(Choices "topic") and the entities (Labels "label") in one task, for the labeling config that
`python -m pipeline export labelstudio-config` prints. The prediction's "score" is the pick order,
k / budget for the k-th pick (0 for the first): sort tasks by prediction score, ascending, and the
most useful comes first. data.selection_rank (1 = first) and data.selection_score (the
uncertainty; not for random) are shown as columns; model_version is the model directory's name
and the start of its weights' sha256. --format jsonl: records in the training-data schema, as
predict writes them, in pick order, with "score": the uncertainty (not for random). Either way
the corrected tasks come back with `python -m pipeline import labelstudio`.
"""
from __future__ import annotations

import argparse
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np

from pipeline.cli import run_cli, stage_parser
from pipeline.core.inference import Predictor
from pipeline.core.selection import (
    NER_SCORES,
    STRATEGIES,
    TASKS,
    candidates,
    farthest_first,
    first_occurrences,
    priorities,
    score_rows,
    sentence_embeddings,
    text_key,
)
from pipeline.formats.labelstudio import to_labelstudio_task
from pipeline.storage import model_dir
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import distinct_from_inputs, output_target, write_json, write_jsonl
from pipeline.storage.predictor import load_predictor
from pipeline.storage.raw_data import find_raw_files, read_records
from pipeline.storage.sentences import capped, input_files, read_inputs

CHUNK = 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = stage_parser("select", __doc__, {
        "--model": ("models/multitask", "trained model directory"),
        "--raw-dir": (None, "annotated data: its sentences are never picked (default: params data.raw_dir)")})
    ap.add_argument("--pool", help="unlabelled sentences: a .txt/.jsonl file or a directory of them "
                    "(default: params select.pool)")
    ap.add_argument("--budget", type=int, help="how many sentences to pick (default: params select.budget)")
    ap.add_argument("--strategy", choices=STRATEGIES, help="(default: params select.strategy)")
    ap.add_argument("--task", choices=TASKS, help="whose uncertainty counts (default: params select.task)")
    ap.add_argument("--ner-score", choices=NER_SCORES, help="how NER uncertainty is measured: mnlp, the mean -log p "
                    "per token, or errors, the expected number of wrong tags (default: params select.ner_score)")
    ap.add_argument("--format", choices=("labelstudio", "jsonl"), default="labelstudio",
                    help="Label Studio tasks or JSONL records (default: %(default)s)")
    ap.add_argument("--output", required=True, help="file to write (never one of the inputs)")
    ap.add_argument("--seed", type=int, help="random's draw (default: params select.seed)")
    ap.add_argument("--model-version", help="Label Studio model_version (default: model directory name@sha256 prefix)")
    ap.add_argument("--batch-size", type=int, help="sentences per forward pass (default: params predict.batch_size)")
    ap.add_argument("--threads", type=int, help="CPU threads, 0: one per core (default: params predict.threads)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    return ap.parse_args(argv)


@dataclass
class Scan:
    """What one pass over the pool keeps: per eligible sentence, its position in the pool, its text
    key and (unless random) its two uncertainties, 32 bytes in flat arrays; and the counts of what
    was left out. Repeats are dropped after the pass (see distinct), so no set of keys grows with
    the pool."""
    positions: array = field(default_factory=lambda: array("q"))
    keys: array = field(default_factory=lambda: array("Q"))
    topic: array = field(default_factory=lambda: array("d"))
    ner: array = field(default_factory=lambda: array("d"))
    read: int = 0
    annotated: int = 0
    duplicates: int = 0

    def add_scores(self, scores: list[tuple[float, float]]) -> None:
        for topic, ner in scores:
            self.topic.append(topic)
            self.ner.append(ner)

    def distinct(self) -> Scan:
        """This scan with each repeated sentence kept at its first occurrence only."""
        keep = first_occurrences(np.frombuffer(self.keys, dtype=np.uint64))
        if len(keep) == len(self.keys):
            return self   # no repeats (the usual pool): no second copy of the arrays

        def take(a: array) -> array:
            return array(a.typecode, np.frombuffer(a, dtype=a.typecode)[keep].tobytes()) if len(a) else a
        return Scan(take(self.positions), take(self.keys), take(self.topic), take(self.ner), self.read,
                    self.annotated, self.duplicates + len(self.keys) - len(keep))


def annotated_keys(raw_dir: Path, allow_external_symlinks: bool) -> set[int]:
    """Text keys of every sentence in the raw data (any record with a sentence, valid or not)."""
    files, _ = find_raw_files(raw_dir, allow_external_symlinks)
    keys = set()
    for path in files:
        for _, raw, _, _ in read_records(path):
            if isinstance(raw, dict) and isinstance(raw.get("sentence"), str):
                keys.add(text_key(raw["sentence"]))
    return keys


def pool_items(files: list[str], p) -> Iterator[dict]:
    """The pool's sentences, streamed, with predict's caps (files from input_files: a directory's
    skipped paths are reported once, not on every pass)."""
    items = chain.from_iterable(read_inputs(f) for f in files)
    return capped(items, p.predict.max_chars, p.predict.max_records)


def scan_pool(items: Iterator[dict], annotated: set[int], score_chunk) -> Scan:
    """One pass: leave out annotated sentences, score the rest a chunk at a time, then drop repeats
    (a repeat costs its forward pass, not memory: no set of the pool's keys is kept)."""
    scan, chunk = Scan(), []
    for position, rec in enumerate(items):
        scan.read += 1
        key = text_key(rec["sentence"])
        if key in annotated:
            scan.annotated += 1
            continue
        scan.positions.append(position)
        scan.keys.append(key)
        if score_chunk is None:
            continue
        chunk.append(rec["sentence"])
        if len(chunk) == CHUNK:
            scan.add_scores(score_chunk(chunk))
            chunk = []
    if chunk:
        scan.add_scores(score_chunk(chunk))
    return scan.distinct()


def fetch(items: Iterator[dict], scan: Scan, wanted: list[int]) -> list[dict]:
    """The pool's input records of the wanted eligible indices, in that order (a second pass)."""
    by_position = {scan.positions[i]: i for i in wanted}
    found, last = {}, max(by_position, default=-1)
    for position, rec in enumerate(items):
        if position in by_position:
            i = by_position[position]
            if text_key(rec["sentence"]) != scan.keys[i]:
                raise PipelineError(f"--pool: changed while select read it (position {position}); run again")
            found[i] = rec
        if position >= last:
            break
    if len(found) != len(wanted):
        raise PipelineError("--pool: shorter on the second read than the first; it changed, run again")
    return [found[i] for i in wanted]


def predictor_for(args, p) -> Predictor:
    """The model as predict loads it (PyTorch), with the options or params predict.* settings."""
    threads = p.predict.threads if args.threads is None else args.threads
    batch_size = p.predict.batch_size if args.batch_size is None else args.batch_size
    if threads < 0 or batch_size < 1:
        raise PipelineError("--threads must be 0 (one per core) or more and --batch-size at least 1")
    return load_predictor(args.model, batch_size, args.device, p.encoder.trust_remote_code, threads=threads)


def chunk_scorer(predictor: Predictor, ner_score: str):
    """sentences -> (topic, ner) uncertainty each, with the predictor's model and featurization."""
    def score(sentences: list[str]) -> list[tuple[float, float]]:
        rows = predictor.featurizer.encode([{"sentence": s} for s in sentences]).rows
        return score_rows(predictor.model, rows, predictor.meta, predictor.batch_size,
                          predictor.tokenizer.pad_token_id, predictor.device, ner_score)
    return score


def diverse_order(predictor: Predictor, inputs: list[dict], budget: int) -> list[int]:
    """Farthest-first over the candidates' pooled embeddings (candidates most uncertain first)."""
    rows = predictor.featurizer.encode([{"sentence": r["sentence"]} for r in inputs]).rows
    emb = sentence_embeddings(predictor.model, rows, predictor.batch_size, predictor.tokenizer.pad_token_id,
                              predictor.device)
    return farthest_first(emb, budget)


def select(args, p, predictor: Predictor, annotated: set[int]) -> tuple[Scan, list[dict], list[float | None]]:
    """(the pool scan, the picked inputs in pick order, their uncertainty or None for random)."""
    scorer = None if args.strategy == "random" else chunk_scorer(predictor, args.ner_score)
    files = [str(f) for f in input_files(args.pool, report=True)]
    scan = scan_pool(pool_items(files, p), annotated, scorer)
    priority = None if scorer is None else priorities(np.frombuffer(scan.topic), np.frombuffer(scan.ner), args.task)
    picked = candidates(args.strategy, priority, len(scan.positions), args.budget, args.seed)
    inputs = fetch(pool_items(files, p), scan, picked)
    if args.strategy == "diverse":
        order = diverse_order(predictor, inputs, args.budget)
        picked, inputs = [picked[j] for j in order], [inputs[j] for j in order]
    return scan, inputs, [None if priority is None else round(float(priority[i]), 6) for i in picked]


def predicted(predictor: Predictor, inputs: list[dict]) -> list[dict]:
    out = []
    for b in range(0, len(inputs), CHUNK):
        out += predictor.predict(inputs[b:b + CHUNK])
    return out


def labelstudio_tasks(records: list[dict], scores: list[float | None], model_version: str) -> list[dict]:
    """Tasks in pick order; prediction score k / n for the k-th pick (ascending = pick order)."""
    tasks = []
    for k, (rec, score) in enumerate(zip(records, scores)):
        task = to_labelstudio_task(rec, rec, model_version)
        task["predictions"][0]["score"] = round(k / len(records), 6)
        task["data"]["selection_rank"] = k + 1
        if score is not None:
            task["data"]["selection_score"] = score
        tasks.append(task)
    return tasks


def write_output(args, records: list[dict], scores: list[float | None], model_version: str) -> None:
    if args.format == "jsonl":
        write_jsonl(args.output, [rec if s is None else {**rec, "score": s} for rec, s in zip(records, scores)])
    else:
        write_json(args.output, labelstudio_tasks(records, scores, model_version))


def check_args(args, raw_dir: str) -> None:
    """Refused in one line before any work: a budget below 1, stdin as the pool, an output that is
    not a writable file path or would replace an input."""
    if args.budget < 1:
        raise PipelineError(f"--budget {args.budget}: must be at least 1")
    if args.pool == "-":
        raise PipelineError("--pool -: the pool is read twice, so it must be a file or a directory, not stdin")
    output_target(args.output)
    distinct_from_inputs(args.output, [args.pool, args.model, raw_dir])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    p = params_mod.load(args.params)
    for key in ("pool", "budget", "strategy", "task", "ner_score", "seed"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(p.select, key))
    raw_dir = args.raw_dir or p.data.raw_dir
    check_args(args, raw_dir)
    input_files(args.pool)   # a missing pool, or a directory with nothing to read, fails before the model loads
    annotated = annotated_keys(Path(raw_dir), p.validate.allow_external_symlinks)
    predictor = predictor_for(args, p)
    scan, inputs, scores = select(args, p, predictor, annotated)
    if not inputs:
        raise PipelineError(f"--pool {args.pool}: no sentence left to pick ({scan.read} read, {scan.annotated} "
                            f"already in {raw_dir}, {scan.duplicates} repeats)")
    records = predicted(predictor, inputs)
    version = args.model_version or f"{Path(args.model).resolve().name}@{model_dir.weights_checksum(args.model)[:12]}"
    write_output(args, records, scores, version)
    short = f" (only {len(records)} eligible)" if len(records) < args.budget else ""
    print(f"select: {len(records)} of {scan.read} pool sentences picked{short} by {args.strategy} ({args.task}); "
          f"left out: {scan.annotated} already in {raw_dir}, {scan.duplicates} repeats; "
          f"wrote {args.output} ({args.format})", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
