"""Files: atomic writes (a killed stage never leaves a half-written output), JSONL, text reading."""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.records import shorten
from pipeline.storage.errors import PipelineError

_KINDS = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "of an unknown file type")


def output_target(path: str | Path, is_dir: bool = False) -> Path:
    """Where an output at `path` is written: the path itself, or the file a symlink points to (it is
    written through, the link kept). Anything that is not absent or a regular file (a directory for
    is_dir) is refused in one line: replacing a device, a FIFO or a directory would destroy it."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise PipelineError(f"{path}: cannot write output ({exc.strerror or exc})") from None
    wanted = stat.S_ISDIR(mode) if is_dir else stat.S_ISREG(mode)
    if not wanted:
        via = f" (symlink to {target})" if target != path else ""
        expected = "a directory" if is_dir else "a regular file"
        raise PipelineError(f"{path}{via}: is {_kind(mode)}; an output must be {expected} or a new path, "
                            f"and is never replaced")
    return target


def distinct_from_inputs(output: str | Path, inputs: Iterable[str | Path], flag: str = "--output") -> None:
    """One line, before any work, when writing `output` would replace one of the command's inputs:
    the same file (by any path), a file inside an input directory, or a directory holding an input."""
    out = Path(output).resolve()
    for given in inputs:
        inp = Path(given).resolve()
        if out == inp or out.is_relative_to(inp) and inp.is_dir() or inp.is_relative_to(out):
            raise PipelineError(f"{flag} {output}: would replace the input {given}; write the output elsewhere")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it over `path` (so a kill never leaves
    a half-written output that DVC or a later stage would take as complete). A symlink is written
    through; a non-regular file is refused (output_target). A replaced file keeps its mode; a new
    directory gets the user's umask (mkdtemp would leave it 0700)."""
    path = output_target(path, is_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # left by a writer that was SIGKILLed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp if is_dir else tmp / path.name
    try:
        yield target
        if is_dir:
            tmp.chmod(0o777 & ~_umask())
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        else:
            if path.exists():
                target.chmod(stat.S_IMODE(path.stat().st_mode))
            os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256(path: str | Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class JSONValueError(ValueError):
    """Valid-looking JSON that would be read wrongly: a key given twice in one object (json keeps
    the last silently) or NaN/Infinity (not JSON, RFC 8259; Python's json reads them anyway)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise JSONValueError(f"duplicate key {shorten(repr(dup))} in one object (only one value can be kept)")
    return obj


def _no_constant(name: str):
    raise JSONValueError(f"{name} is not a JSON value (use null, or a number)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONValueError(f"number {shorten(text, 20)} is out of range (it would read as infinity)")
    return value


# So that no record read, kept or rejected, can hold a value that standard JSON cannot write.
STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite)


def loads(text: str):
    """json.loads for input from users: duplicate keys, NaN/Infinity and numbers that overflow to
    infinity (1e999) are errors (JSONValueError, a ValueError), worded by json_problem() like any
    other parse error."""
    return STRICT_DECODER.decode(text)


def dumps(obj, indent: int | None = None) -> str:
    """Standard JSON (NaN/Infinity raise ValueError: a bug in the writer, never written silently)
    that is valid UTF-8: a lone surrogate from a rejected input is kept as a \\uXXXX escape."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, allow_nan=False)
    return text


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj) -> None:
    write_text(path, dumps(obj, indent=2) + "\n")


@contextmanager
def _text_file(path: str | Path):
    """A UTF-8 text file written as it goes, which appears whole when the block ends without an error."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        yield fh


@contextmanager
def jsonl_writer(path: str | Path) -> Iterator:
    """A function that appends one record to a JSONL file as it is found; the file appears, whole,
    when the block ends without an error."""
    with _text_file(path) as fh:
        yield lambda rec: fh.write(dumps(rec) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    n = 0
    with jsonl_writer(path) as write:
        for rec in records:
            write(rec)
            n += 1
    return n


def write_json_array(path: str | Path, items: Iterable) -> int:
    """write_json of a list, byte for byte, written item by item: a long list (a plot's one row
    per record) is never held whole in memory or as one string."""
    n = 0
    with _text_file(path) as fh:
        for item in items:
            fh.write(("[\n  " if n == 0 else ",\n  ") + dumps(item, indent=2).replace("\n", "\n  "))
            n += 1
        fh.write("\n]\n" if n else "[]\n")
    return n


def json_problem(exc: Exception) -> str:
    """The one-line message for a json.loads failure (JSONDecodeError, RecursionError, ValueError)."""
    if isinstance(exc, json.JSONDecodeError):  # "Expecting value at column 5", "Extra data at column 9"
        return f"invalid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    if isinstance(exc, JSONValueError):
        return f"invalid JSON: {exc}"
    return f"invalid JSON: {exc or type(exc).__name__}"  # e.g. an integer with more digits than Python converts


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """Read a JSONL file written by an earlier stage (already validated, so errors are bugs)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_bytes(path: Path) -> bytes:
    """A whole file; a missing or unreadable one is one clear line."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_text(path: Path) -> str:
    """A whole UTF-8 text file (BOM allowed); a missing, unreadable or non-UTF-8 file is one clear line."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        hint = "; the file looks like UTF-16: save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise PipelineError(f"{path}:{line}: invalid UTF-8 (byte {data[exc.start]:#04x}){hint}") from None
