"""Stage validate: check every raw record, assign stable splits, write data/validated/.

Reads every *.json (a JSON array of records) and *.jsonl (one record per line) file under
data.raw_dir, recursively. Each problem is reported as `file:line (id=...): field: what` (for a
record in a .json array, the line it starts on, plus `:column` where several records share a line).
Bytes that cannot be trusted are never read: broken or looping symlinks, FIFOs and other
non-regular files are skipped with a warning, and so is a second path to a file already read, and
hidden files and directories (name starting with '.'); a symlink resolving outside data.raw_dir is
refused unless validate.allow_external_symlinks is true. JSON is read strictly: a key given twice,
NaN/Infinity or a byte that is not UTF-8 rejects the record holding it.
validate.on_error=fail stops with every problem listed; =drop writes rejected records with
their reasons to the rejects file. A sentence labelled two ways is resolved by validate.on_conflict
(fail: a problem | first | majority | drop: every copy rejected). Either way, read = kept + rejected
in reports/data.json, which also holds the conflict counts and every warning in full (stderr shows
one line per kind of warning, with a count and the first locations; metrics/data.json holds the
headline counts).
"""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.cli import run_cli, stage_parser
from pipeline.core.corpus import Corpus, Note, summarise
from pipeline.core.headline import data_headline
from pipeline.core.records import split_stats
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path, dumps, write_json
from pipeline.storage.raw_data import find_raw_files, read_records


def validate(raw_dir: Path, p) -> dict:
    """Check and split every record. Returns kept records per split, rejects, problems, counts."""
    files, notes = find_raw_files(raw_dir, p.validate.allow_external_symlinks)
    corpus = Corpus(p.labels.topics, p.labels.entities, p.validate.on_conflict)
    corpus.notes.extend(notes)
    for path in files:
        n_before = corpus.read
        for loc, raw, parse_error, text in read_records(path):
            corpus.add(loc, raw, parse_error, text)
        if corpus.read == n_before:
            corpus.warn("{n} files with no records (empty files or empty arrays)", str(path),
                        "no records (empty file or empty array)")
    split = p.data.split
    splits = corpus.splits(split.dev, split.test, split.seed)   # resolves conflicts: before the counts
    return {"splits": splits, "rejects": corpus.rejects, "problems": corpus.problems,
            "problem_notes": corpus.problem_notes, "warnings": corpus.warnings, "notes": corpus.notes,
            "counts": corpus.counts(len(files)), "conflicts": corpus.conflict_counts()}


def _print_capped(kind: str, lines: list[str], cap: int) -> None:
    for line in lines[:cap]:
        print(f"{kind}: {line}", file=sys.stderr)
    if len(lines) > cap:
        print(f"{kind}: ... and {len(lines) - cap} more ({len(lines)} in total)", file=sys.stderr)


def _print_summary(kind: str, notes: list[Note], cap: int, full_list: str | None) -> None:
    """One line per kind of note (a count and the first locations where there are several)."""
    _print_capped(kind, summarise(notes, rest=f"... (all in {full_list})" if full_list else "..."), cap)


def _write_outputs(out_dir: str, result: dict) -> None:
    """The splits and the rejects, as standard UTF-8 JSON (a lone surrogate in a rejected record
    is written as an escape, never a crash)."""
    with atomic_path(out_dir, is_dir=True) as tmp:
        for split, records in result["splits"].items():
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as fh:
                fh.writelines(dumps(r) + "\n" for r in records)
        with open(tmp / "rejects.jsonl", "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(dumps(r) + "\n" for r in result["rejects"])


def main(argv: list[str] | None = None) -> None:
    ap = stage_parser("validate", __doc__, {
        "--raw-dir": (None, "raw data directory (default: params data.raw_dir)"),
        "--out-dir": ("data/validated", "validated records per split"),
        "--metrics": ("metrics/data.json", "headline data counts (dvc metrics)"),
        "--details": ("reports/data.json", "every count: per split, task, label")})
    args = ap.parse_args(argv)
    p = params_mod.load(args.params)
    raw_dir = Path(args.raw_dir or p.data.raw_dir)
    result = validate(raw_dir, p)
    counts, cap = result["counts"], p.validate.max_errors_shown
    fails = not counts["files"] or not counts["unique"] or result["problems"] and p.validate.on_error == "fail"
    _print_summary("warning", result["notes"], cap, None if fails else args.details)
    if counts["files"] == 0:
        raise PipelineError(f"{raw_dir}: no .json or .jsonl files found (params.yaml data.raw_dir)")
    if result["problems"] and p.validate.on_error == "fail":
        _print_capped("error", result["problems"], cap)
        raise PipelineError(f"{len(result['problems'])} problem(s) in {counts['rejected']} of {counts['read']} "
                            f"records under {raw_dir}; fix them or set validate.on_error: drop")
    topics, entities = p.labels.topics, p.labels.entities
    if counts["unique"] == 0:
        raise PipelineError(f"{raw_dir}: no usable records ({counts['read']} read, {counts['rejected']} rejected)")
    _write_outputs(args.out_dir, result)
    metrics = dict(counts)
    for split, records in result["splits"].items():
        metrics[split] = split_stats(records, topics, entities)
        if not records:
            print(f"warning: the {split} split is empty (too little data); later stages skip it", file=sys.stderr)
    write_json(args.details, {**metrics, "conflicts": result["conflicts"], "warnings": result["warnings"]})
    write_json(args.metrics, data_headline(metrics))
    if result["rejects"]:
        _print_summary("dropped", result["problem_notes"], cap, f"{args.out_dir}/rejects.jsonl")
        print(f"dropped {counts['rejected']} record(s): see {args.out_dir}/rejects.jsonl", file=sys.stderr)
    print(f"validate: read {counts['read']}, kept {counts['kept']} ({counts['merged_duplicates']} merged duplicates), "
          f"rejected {counts['rejected']}; " + ", ".join(f"{s} {len(r)}" for s, r in result["splits"].items()))


if __name__ == "__main__":
    run_cli(main)
