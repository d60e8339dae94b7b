"""Reading raw annotated data: every *.json (a JSON array of records) and *.jsonl (one record per
line) file below a directory, with each record's location (file:line, or file:line:col where
several records share a line). Bytes that cannot be trusted are never read: broken or looping
symlinks, FIFOs and other non-regular files are skipped with a note, hidden files and directories
(name starting with '.') too, and a symlink that resolves outside the directory is refused unless
validate.allow_external_symlinks is set. JSON is read strictly (files.STRICT_DECODER): a key given
twice or NaN rejects that record, and so does a byte that is not UTF-8, record by record."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.corpus import Note
from pipeline.core.records import json_type, located
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import STRICT_DECODER, json_problem

_KINDS = {
    "hidden": "{n} hidden files or directories (name starting with '.') skipped",
    "unreadable": "{n} unreadable directories skipped",
    "loop": "{n} symlink loops or repeated directories skipped",
    "not json": "{n} files that are not .json/.jsonl skipped",
    "not regular": "{n} broken symlinks or non-regular files skipped",
    "same file": "{n} second paths to a file already read skipped",
}


def _note(kind: str, path, text: str) -> Note:
    return Note(_KINDS[kind], str(path), f"{path}: {text}")


def _outside(path: Path, base: str) -> str | None:
    """Where `path` resolves to, if that is outside the directory `base` (a real path)."""
    real = os.path.realpath(path)
    return None if Path(real).is_relative_to(base) else real


def _refuse_external(path: Path, target: str, raw_dir: Path) -> PipelineError:
    return PipelineError(f"{path}: symlink to {target}, outside the raw data directory {raw_dir}; not read "
                         f"(set validate.allow_external_symlinks: true in params.yaml to read it)")


def find_raw_files(raw_dir: Path, allow_external_symlinks: bool = False) -> tuple[list[Path], list[Note]]:
    """All .json/.jsonl files below raw_dir (symlinks followed, loops reported, not followed), and
    notes on what was skipped. A symlink resolving outside raw_dir is an error unless allowed."""
    if not raw_dir.is_dir():
        what = "is not a directory" if raw_dir.exists() else "not found"
        raise PipelineError(f"{raw_dir}: raw data directory {what} (params.yaml data.raw_dir)")
    base = os.path.realpath(raw_dir)
    found, notes, seen_dirs, seen_files = [], [], set(), {}

    def unreadable(exc: OSError) -> None:
        notes.append(_note("unreadable", exc.filename, f"cannot read directory ({exc.strerror}), skipped"))

    for root, dirs, files in os.walk(raw_dir, followlinks=True, onerror=unreadable):
        real = os.path.realpath(root)
        if real in seen_dirs:
            notes.append(_note("loop", root, "symlink loop or repeated directory, skipped"))
            dirs[:] = []
            continue
        seen_dirs.add(real)
        for name in sorted(dirs):
            path = Path(root) / name
            if name.startswith("."):
                notes.append(_note("hidden", path, "hidden directory (name starts with '.'), skipped"))
                dirs.remove(name)
            elif not allow_external_symlinks and (target := _outside(path, base)):
                raise _refuse_external(path, target, raw_dir)
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith("."):
                notes.append(_note("hidden", path, "hidden file (name starts with '.'), skipped"))
            elif not name.lower().endswith((".json", ".jsonl")):
                notes.append(_note("not json", path, "not a .json/.jsonl file, skipped"))
            elif not path.is_file():  # broken symlink, symlink loop, FIFO, socket: never open (could hang)
                notes.append(_note("not regular", path, "broken symlink or not a regular file, skipped"))
            elif not allow_external_symlinks and (target := _outside(path, base)):
                raise _refuse_external(path, target, raw_dir)
            elif os.path.realpath(path) in seen_files:
                notes.append(_note("same file", path, f"same file as {seen_files[os.path.realpath(path)]}, skipped"))
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
_BAD_BYTE = re.compile("[\udc80-\udcff]")   # a byte that is not UTF-8, as errors="surrogateescape" decodes it
_PLAIN = json.JSONDecoder()                   # only to find where a record the strict decoder refused ends


def _parse(text: str, loc: str, raw_text: str) -> tuple[str, object, str | None, str | None]:
    """One JSONL line: (location, record, None, None) or (location, None, parse error, the text)."""
    try:
        return loc, STRICT_DECODER.decode(text), None, None
    except ValueError as exc:
        try:                       # a key given twice, NaN: the record reads, so its id can be shown
            loc = located(loc, _PLAIN.decode(text))
        except (ValueError, RecursionError):
            pass
        return loc, None, json_problem(exc), raw_text
    except RecursionError as exc:
        return loc, None, json_problem(exc), raw_text


def _read_jsonl(path: Path) -> Iterator[tuple[str, object, str | None, str | None]]:
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
            if text.strip():
                # without the line ending, so an unterminated string is reported as such
                yield _parse(text.rstrip("\r\n"), loc, text.rstrip("\r\n"))


class _ByteOffsets:
    """Byte offsets of characters of a surrogateescape-decoded text, for positions met in order
    (linear over the file, not quadratic in its bad records)."""

    def __init__(self, text: str, skipped: int):
        self.text, self.char, self.byte = text, 0, skipped

    def __call__(self, pos: int) -> int:
        self.byte += len(self.text[self.char:pos].encode("utf-8", "surrogateescape"))
        self.char = pos
        return self.byte


def _as_text(escaped: str) -> str:
    """Text holding surrogateescape'd bytes as it can be written: each bad byte as \\xNN."""
    return escaped.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _array_items(text: str, path: Path, skipped: int) -> Iterator[tuple[str, object, str | None, str | None]]:
    """Each element of a JSON array whose structure is known to parse: (path:line, record, None,
    None), or (path:line, None, problem, its text) for an element holding a byte that is not UTF-8,
    a key given twice or NaN; path:line:col where several records start on one line (minified files)."""
    pos = _WS.match(text, text.index("[") + 1).end()
    items, line, counted, last_nl = [], 1, 0, -1
    offsets = _ByteOffsets(text, skipped)
    while text[pos] != "]":
        line += text.count("\n", counted, pos)   # incremental: linear even for one-line files
        last_nl = max(last_nl, text.rfind("\n", counted, pos))
        counted = pos
        col = pos - last_nl
        try:
            obj, end = STRICT_DECODER.raw_decode(text, pos)
            problem = None
        except ValueError as exc:
            obj, end = _PLAIN.raw_decode(text, pos)
            problem = json_problem(exc)
        bad = _BAD_BYTE.search(text, pos, end)
        if bad:
            problem = f"invalid UTF-8 (byte {ord(bad.group()) - 0xDC00:#04x} at offset {offsets(bad.start())})"
        items.append((line, col, obj, problem, (pos, end) if problem else None))
        pos = _WS.match(text, end).end()
        if text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()
    per_line = Counter(item[0] for item in items)
    for line, col, obj, problem, span in items:
        loc = f"{path}:{line}" if per_line[line] == 1 else f"{path}:{line}:{col}"
        if problem:
            rid = obj.get("id") if isinstance(obj, dict) else None   # its bad bytes shown as \xNN, not surrogates
            yield located(loc, {"id": _as_text(rid)} if isinstance(rid, str) else None), None, problem, \
                _as_text(text[slice(*span)])
        else:
            yield loc, obj, None, None


def _read_array(path: Path, data: bytes) -> Iterator[tuple[str, object, str | None, str | None]]:
    skipped = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    text = data[skipped:].decode("utf-8", "surrogateescape")
    if not text.strip():
        return
    try:   # the structure first, read leniently: a key given twice, NaN or a bad byte inside a record reject it alone
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        line = f"{path}:{exc.lineno}"
        if _BAD_BYTE.fullmatch(text, exc.pos, exc.pos + 1):   # a bad byte where JSON syntax was expected
            offset = _ByteOffsets(text, skipped)(exc.pos)
            yield line, None, _utf8_problem(data, offset, f"offset {offset}"), None
        else:
            yield line, None, json_problem(exc), None
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
    yield from _array_items(text, path, skipped)


def read_records(path: Path) -> Iterator[tuple[str, object, str | None, str | None]]:
    """Yield (location, raw record or None, parse error or None, raw text of an unparsable record).
    JSONL is streamed line by line; a .json array is read whole, then record by record."""
    try:
        if path.suffix.lower() == ".jsonl":
            yield from _read_jsonl(path)
            return
        data = path.read_bytes()
    except OSError as exc:
        yield str(path), None, f"cannot read file: {exc.strerror or exc}", None
        return
    yield from _read_array(path, data)
