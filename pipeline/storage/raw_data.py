"""Reading raw annotated data: every *.json (a JSON array of records) and *.jsonl (one record per
line) file below a directory, with each record's location (file:line, or file:line:col where
several records share a line). Bytes that cannot be trusted are never read: broken or looping
symlinks, FIFOs and other non-regular files are skipped with a note."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.records import json_type
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import json_problem


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
