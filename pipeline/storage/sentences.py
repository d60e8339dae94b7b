"""Sentences to predict on: from a file, a directory of .txt/.jsonl files, or stdin, read lazily
(a wrong path fails before the model loads), with one clear line naming file:line for bad input."""
from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from pipeline.storage.errors import PipelineError
from pipeline.storage.files import json_problem


def input_files(source: str) -> list[Path] | None:
    """The files a source names (None: stdin), found at once so a wrong path fails before the
    model loads."""
    if source == "-":
        return None
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix in (".txt", ".jsonl") and f.is_file())
        if not files:
            raise PipelineError(f"{path}: no .txt or .jsonl files to predict on")
        return files
    if path.is_file():
        return [path]
    raise PipelineError(f"{path}: input not found")


def read_inputs(source: str, fmt: str = "auto") -> Iterator[tuple[str, dict]]:
    """(location, {"sentence", optional "id"}) from a file, a directory or stdin, read lazily."""
    files = input_files(source)
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
