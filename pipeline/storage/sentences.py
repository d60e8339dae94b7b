"""Sentences to predict on: from a file, a directory of .txt/.jsonl files, or stdin, read lazily
(a wrong path fails before the model loads), with one clear line naming file:line for bad input:
bytes that are not UTF-8, text that is not valid Unicode (a lone surrogate, from a JSON escape or
an argument's undecodable bytes), malformed JSONL."""
from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.records import describe, shorten
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import json_problem, loads

SUFFIXES = (".txt", ".jsonl")  # compared case-insensitively: notes.TXT is read like notes.txt
SHOWN = 5  # skipped files named on stderr; the rest are counted


def unicode_problem(text: str, decoded: bool = True) -> str | None:
    """Why `text` cannot be tokenized or written as UTF-8 (None: it can). Where it was `decoded`
    from bytes (a file, stdin, argv: surrogateescape), a lone surrogate U+DC80..U+DCFF stands for a
    byte that is not UTF-8; in parsed JSON, a lone surrogate comes from a "\\ud800"-style escape."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code, column = ord(text[exc.start]), exc.start + 1
        if decoded and 0xDC80 <= code <= 0xDCFF:
            return f"invalid UTF-8 (byte {code - 0xDC00:#04x} at column {column})"
        return f"not valid Unicode: a lone surrogate \\u{code:04x} at column {column} (from a JSON escape?)"
    return None


def _walk(top: Path) -> tuple[list[Path], list[str]]:
    """(the input files below a directory, what was skipped: dot-files and dot-directories, other
    suffixes, symlinked directories, anything that is not a regular file), each sorted."""
    files, skipped = [], []
    for root, dirs, names in os.walk(top):
        here = Path(root)
        dirs.sort()
        for d in [d for d in dirs if d.startswith(".") or (here / d).is_symlink()]:
            skipped.append(f"{(here / d).relative_to(top)}/")
            dirs.remove(d)
        for name in sorted(names):
            f = here / name
            if name.startswith(".") or f.suffix.lower() not in SUFFIXES or not f.is_file():
                skipped.append(str(f.relative_to(top)))
            else:
                files.append(f)
    return sorted(files), skipped  # path order, as the directory's listing reads


def input_files(source: str, report: bool = False) -> list[Path] | None:
    """The files a source names (None: stdin), found at once so a wrong path fails before the
    model loads. In a directory, files that are not inputs are skipped; with `report`, they are
    counted on stderr with the first few names."""
    if source == "-":
        return None
    path = Path(source)
    if path.is_dir():
        files, skipped = _walk(path)
        if report and skipped:
            more = f" and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
            print(f"warning: {path}: {len(skipped)} path(s) skipped (only .txt and .jsonl files are read, no dot-files "
                  f"or dot-folders): {shorten(', '.join(skipped[:SHOWN]), 300)}{more}", file=sys.stderr)
        if not files:
            raise PipelineError(f"{path}: no .txt or .jsonl files to predict on")
        return files
    if path.is_file():
        return [path]
    if path.exists():
        raise PipelineError(f"{path}: not a regular file or directory (a FIFO or device is not read)")
    raise PipelineError(f"{path}: input not found")


def read_inputs(source: str, fmt: str = "auto") -> Iterator[tuple[str, dict]]:
    """(location, {"sentence", optional "id"}) from a file, a directory or stdin, read lazily."""
    files = input_files(source, report=True)
    if files is None:
        return _read_stdin("jsonl" if fmt == "jsonl" else "txt")
    return _read_files(files, fmt)


def count_inputs(source: str) -> int | None:
    """How many sentences a source holds (its non-blank lines), for a progress total; None for stdin."""
    files = input_files(source)
    if files is None:
        return None
    n = 0
    for f in files:
        with open(f, "rb") as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def _read_stdin(kind: str) -> Iterator[tuple[str, dict]]:
    # surrogateescape: an undecodable byte reaches _read_stream, which names its line
    yield from _read_stream(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape"),
                            "<stdin>", kind)


def _read_files(files: list[Path], fmt: str) -> Iterator[tuple[str, dict]]:
    for f in files:
        kind = fmt if fmt != "auto" else ("jsonl" if f.suffix.lower() == ".jsonl" else "txt")
        try:
            with open(f, encoding="utf-8-sig", errors="surrogateescape") as fh:
                yield from _read_stream(fh, str(f), kind)
        except OSError as exc:
            raise PipelineError(f"{f}: cannot read ({exc.strerror or exc})") from None


def _record(rec, loc: str) -> dict:
    """The sentence and id of one parsed JSONL record, checked."""
    if not isinstance(rec, dict) or not isinstance(rec.get("sentence"), str) or not rec["sentence"].strip():
        raise PipelineError(f"{loc}: sentence: each record needs a non-empty string 'sentence'")
    if rec.get("id") is not None and (not isinstance(rec["id"], str) or not rec["id"].strip()):
        raise PipelineError(f"{loc}: id: must be a non-empty string (as in the training data), got {describe(rec['id'])}")
    for key in ("sentence", "id"):
        problem = rec.get(key) is not None and unicode_problem(rec[key], decoded=False)
        if problem:
            raise PipelineError(f"{loc}: {key}: {problem}")
    return {k: rec[k] for k in ("sentence", "id") if rec.get(k) is not None}


def _read_stream(fh, name: str, kind: str) -> Iterator[tuple[str, dict]]:
    for lineno, line in enumerate(fh, 1):
        line = line.rstrip("\r\n")
        loc = f"{name}:{lineno}"
        problem = unicode_problem(line)
        if problem:  # a byte that is not UTF-8 (decoded with surrogateescape, so the line is known)
            raise PipelineError(f"{loc}: {problem}")
        if not line.strip():
            continue
        if kind == "txt":
            yield loc, {"sentence": line}
            continue
        try:
            rec = loads(line)
        except (ValueError, RecursionError) as exc:
            raise PipelineError(f"{loc}: {json_problem(exc)}") from None
        yield loc, _record(rec, loc)


def capped(items: Iterator[tuple[str, dict]], max_chars: int, max_records: int) -> Iterator[dict]:
    """Enforce predict.max_chars / predict.max_records with clear errors; text that is not valid
    Unicode (an argument's undecodable bytes) is refused here, before the tokenizer sees it."""
    for n, (loc, rec) in enumerate(items, 1):
        if n > max_records:
            raise PipelineError(f"{loc}: more than predict.max_records={max_records} inputs; split the input")
        if not rec["sentence"].strip():
            raise PipelineError(f"{loc}: sentence: empty")
        if len(rec["sentence"]) > max_chars:
            raise PipelineError(f"{loc}: sentence: {len(rec['sentence'])} characters exceeds "
                                f"predict.max_chars={max_chars}")
        problem = unicode_problem(rec["sentence"])
        if problem:
            raise PipelineError(f"{loc}: sentence: {problem}")
        yield rec
