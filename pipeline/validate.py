"""Stage 1, validate: check every raw record, assign stable splits, write data/validated/.

Reads every *.json (a JSON array of records) and *.jsonl (one record per line) file under
data.raw_dir, recursively. Each problem is reported as `file:line (id=...): field: what` (for a
record in a .json array, the line it starts on, plus `:column` where several records share a line).
Bytes that cannot be trusted are never read: broken or looping symlinks, FIFOs and other
non-regular files are skipped with a warning, and so is a second path to a file already read.
validate.on_error=fail stops with every problem listed; =drop writes rejected records with
their reasons to the rejects file. Either way, read = kept + rejected in metrics/data.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline import params as params_mod
from pipeline.files import PipelineError, atomic_path, json_problem, run_cli, write_json
from pipeline.records import (
    SPLITS,
    check_record,
    hash_normalised,
    json_type,
    normalise,
    record_id,
    split_stats,
)


def find_raw_files(raw_dir: Path) -> tuple[list[Path], list[str]]:
    """All .json/.jsonl files below raw_dir (symlinks followed, loops reported, not followed)."""
    if not raw_dir.is_dir():
        what = "is not a directory" if raw_dir.exists() else "not found"
        raise PipelineError(f"{raw_dir}: raw data directory {what} (params.yaml data.raw_dir)")
    found, notes, seen_dirs, seen_files = [], [], set(), {}

    def unreadable(exc: OSError) -> None:
        notes.append(f"{exc.filename}: cannot read directory ({exc.strerror}), skipped")

    for root, dirs, files in os.walk(raw_dir, followlinks=True, onerror=unreadable):
        real = os.path.realpath(root)
        if real in seen_dirs:
            notes.append(f"{root}: symlink loop or repeated directory, skipped")
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                continue
            if not name.lower().endswith((".json", ".jsonl")):
                notes.append(f"{path}: not a .json/.jsonl file, skipped")
            elif not path.is_file():  # broken symlink, symlink loop, FIFO, socket: never open (could hang)
                notes.append(f"{path}: broken symlink or not a regular file, skipped")
            elif os.path.realpath(path) in seen_files:
                notes.append(f"{path}: same file as {seen_files[os.path.realpath(path)]}, skipped")
            else:
                seen_files[os.path.realpath(path)] = path
                found.append(path)
    return found, notes


def _utf8_problem(data: bytes, start: int, where: str) -> str:
    hint = ""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        hint = "; the file looks like UTF-16: save it as UTF-8"
    return f"invalid UTF-8 (byte {data[start]:#04x} at {where}){hint}"


_WS = re.compile(r"[ \t\n\r]*")


def _array_items(text: str, path: Path) -> Iterator[tuple[str, object]]:
    """Yield (path:line, element) for a JSON array already known to parse; path:line:col where
    several records start on one line (minified files)."""
    decoder = json.JSONDecoder()
    pos = _WS.match(text, text.index("[") + 1).end()
    items, line, counted, last_nl = [], 1, 0, -1
    while text[pos] != "]":
        line += text.count("\n", counted, pos)   # incremental: linear even for one-line files
        last_nl = max(last_nl, text.rfind("\n", counted, pos))
        counted = pos
        col = pos - last_nl
        obj, pos = decoder.raw_decode(text, pos)
        items.append((line, col, obj))
        pos = _WS.match(text, pos).end()
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()
    per_line = Counter(line for line, _, _ in items)
    for line, col, obj in items:
        yield (f"{path}:{line}" if per_line[line] == 1 else f"{path}:{line}:{col}"), obj


def read_records(path: Path) -> Iterator[tuple[str, object, str | None, str | None]]:
    """Yield (location, raw record or None, parse error or None, raw text of an unparsable line).
    JSONL is streamed line by line."""
    try:
        if path.suffix.lower() == ".jsonl":
            with open(path, "rb") as fh:
                for lineno, data in enumerate(fh, 1):
                    loc = f"{path}:{lineno}"
                    if lineno == 1 and data.startswith(b"\xef\xbb\xbf"):
                        data = data[3:]
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        yield (loc, None, _utf8_problem(data, exc.start, f"column {exc.start + 1}"),
                               data.decode("utf-8", "backslashreplace"))
                        continue
                    if not text.strip():
                        continue
                    try:
                        # without the line ending, so an unterminated string is reported as such
                        yield loc, json.loads(text.rstrip("\r\n")), None, None
                    except (ValueError, RecursionError) as exc:
                        yield loc, None, json_problem(exc), text.rstrip("\r\n")
            return
        data = path.read_bytes()
    except OSError as exc:
        yield str(path), None, f"cannot read file: {exc.strerror or exc}", None
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        yield f"{path}:{line}", None, _utf8_problem(data, exc.start, f"offset {exc.start}"), None
        return
    if not text.strip():
        return
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        yield f"{path}:{exc.lineno}", None, json_problem(exc), None
        return
    except (ValueError, RecursionError) as exc:
        yield str(path), None, json_problem(exc), None
        return
    if not isinstance(parsed, list):
        line = text.count("\n", 0, _WS.match(text).end()) + 1
        kind = "object" if isinstance(parsed, dict) else json_type(parsed)
        yield (f"{path}:{line}", None, (f"expected a JSON array of records, got a JSON {kind} "
               f"(a .json file holds [record, ...]; use .jsonl for one record per line)"), None)
        return
    del parsed
    for loc, raw in _array_items(text, path):
        yield loc, raw, None, None


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


def validate(raw_dir: Path, p: dict) -> dict:
    """Check and split every record. Returns kept records per split, rejects, problems, counts."""
    topics, entities = p["labels"]["topics"], p["labels"]["entities"]
    files, notes = find_raw_files(raw_dir)
    by_sentence: dict[str, dict] = {}
    ids: dict[str, tuple[str, str]] = {}           # id -> (location, sentence)
    pinned: dict[str, tuple[str, str]] = {}        # normalised text -> (explicit split, location)
    problems, warnings, rejects = [], list(notes), []
    read = merged = 0

    def reject(loc: str, raw, reasons: list[str], text: str | None = None) -> None:
        problems.extend(f"{loc}: {r}" for r in reasons)
        entry = {"location": loc, "errors": reasons, "record": raw}
        if text is not None:
            entry["text"] = text
        rejects.append(entry)

    for path in files:
        n_before = read
        for loc, raw, parse_error, text in read_records(path):
            read += 1
            if parse_error:
                reject(loc, None, [parse_error], text)
                continue
            checked = check_record(raw, topics, entities)
            rid = raw.get("id") if isinstance(raw, dict) else None
            if isinstance(rid, str):
                loc = f"{loc} (id={rid})"
            warnings.extend(f"{loc}: {w}" for w in checked.warnings)
            if checked.record is None:
                reject(loc, raw, checked.errors)
                continue
            rec = checked.record
            sentence = rec["sentence"]
            if "id" in rec and rec["id"] in ids and ids[rec["id"]][1] != sentence:
                reject(loc, raw, [(f"id: duplicate id {rec['id']!r} (first at {ids[rec['id']][0]}, "
                                  f"with a different sentence)")])
                continue
            norm = normalise(sentence)
            if rec.get("split") and norm in pinned and pinned[norm][0] != rec["split"]:
                reject(loc, raw, [(f"split: {rec['split']!r} conflicts with the same text pinned to "
                                  f"{pinned[norm][0]!r} at {pinned[norm][1]}")])
                continue
            earlier = by_sentence.get(sentence)
            if earlier is not None:
                conflicts = _merge(earlier, rec)
                if conflicts:
                    reject(loc, raw, conflicts)
                    continue
                merged += 1
                warnings.append(f"{loc}: duplicate of the sentence at {earlier['_loc']}, merged")
            else:
                rec["_loc"], rec["_norm"] = loc, norm
                by_sentence[sentence] = rec
            if "id" in rec:
                ids.setdefault(rec["id"], (loc, sentence))
            if rec.get("split"):
                pinned.setdefault(norm, (rec["split"], loc))
        if read == n_before:
            warnings.append(f"{path}: no records (empty file or empty array)")

    split_cfg = p["data"]["split"]
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for rec in by_sentence.values():
        norm = rec["_norm"]
        split = pinned[norm][0] if norm in pinned else hash_normalised(
            norm, split_cfg["dev"], split_cfg["test"], split_cfg["seed"])
        out = {"id": rec.get("id") or record_id(rec["sentence"]), "sentence": rec["sentence"],
               "task_A": rec["task_A"], "task_B": rec["task_B"], "split": split}
        splits[split].append(out)
    kept = read - len(rejects)
    return {"splits": splits, "rejects": rejects, "problems": problems, "warnings": warnings,
            "counts": {"files": len(files), "read": read, "kept": kept, "rejected": len(rejects),
                       "merged_duplicates": merged, "unique": kept - merged}}


def _print_capped(kind: str, lines: list[str], cap: int) -> None:
    for line in lines[:cap]:
        print(f"{kind}: {line}", file=sys.stderr)
    if len(lines) > cap:
        print(f"{kind}: ... and {len(lines) - cap} more ({len(lines)} in total)", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--raw-dir", help="raw data directory (default: params data.raw_dir)")
    ap.add_argument("--out-dir", default="data/validated", help="validated records per split (default: %(default)s)")
    ap.add_argument("--metrics", default="metrics/data.json", help="data counts (default: %(default)s)")
    args = ap.parse_args()
    p = params_mod.load(args.params)
    raw_dir = Path(args.raw_dir or p["data"]["raw_dir"])
    result = validate(raw_dir, p)
    counts, cap = result["counts"], p["validate"]["max_errors_shown"]
    _print_capped("warning", result["warnings"], cap)
    if counts["files"] == 0:
        raise PipelineError(f"{raw_dir}: no .json or .jsonl files found (params.yaml data.raw_dir)")
    if result["problems"] and p["validate"]["on_error"] == "fail":
        _print_capped("error", result["problems"], cap)
        raise PipelineError(f"{len(result['problems'])} problem(s) in {counts['rejected']} of {counts['read']} "
                            f"records under {raw_dir}; fix them or set validate.on_error: drop")
    topics, entities = p["labels"]["topics"], p["labels"]["entities"]
    if counts["unique"] == 0:
        raise PipelineError(f"{raw_dir}: no usable records ({counts['read']} read, {counts['rejected']} rejected)")
    with atomic_path(args.out_dir, is_dir=True) as tmp:
        for split, records in result["splits"].items():
            with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in result["rejects"])
    metrics = dict(counts)
    for split, records in result["splits"].items():
        metrics[split] = split_stats(records, topics, entities)
        if not records:
            print(f"warning: the {split} split is empty (too little data); later stages skip it", file=sys.stderr)
    write_json(args.metrics, metrics)
    if result["rejects"]:
        _print_capped("dropped", result["problems"], cap)
        print(f"dropped {counts['rejected']} record(s): see {args.out_dir}/rejects.jsonl", file=sys.stderr)
    print(f"validate: read {counts['read']}, kept {counts['kept']} ({counts['merged_duplicates']} merged duplicates), "
          f"rejected {counts['rejected']}; " + ", ".join(f"{s} {len(r)}" for s, r in result["splits"].items()))


if __name__ == "__main__":
    run_cli(main)
