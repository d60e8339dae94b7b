"""Atomic outputs: an interrupted writer never leaves a half-written file or directory behind."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pipeline.storage.errors import PipelineError
from pipeline.storage.files import (
    atomic_path,
    distinct_from_inputs,
    json_problem,
    jsonl_writer,
    loads,
    write_json,
    write_json_array,
    write_jsonl,
    write_text,
)

KILLED_WRITER = """
import os, signal, sys
from pipeline.storage.files import atomic_path
with atomic_path(sys.argv[1], is_dir=sys.argv[2] == "dir") as tmp:
    target = tmp / "part.txt" if sys.argv[2] == "dir" else tmp
    target.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_exception_inside_leaves_old_file_and_no_temp(tmp_path):
    out = tmp_path / "out.json"
    write_text(out, "old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("new, half written")
        raise RuntimeError("crash")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_sigkill_mid_write_keeps_old_output_and_next_write_cleans_up(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "dir":
        with atomic_path(out, is_dir=True) as tmp:
            (tmp / "part.txt").write_text("old")
    else:
        write_text(out, "old")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out), kind], capture_output=True, check=False)
    assert proc.returncode == -9
    assert (out / "part.txt" if kind == "dir" else out).read_text() == "old"
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the killed writer's leftovers
    if kind == "dir":
        with atomic_path(out, is_dir=True) as tmp:
            (tmp / "part.txt").write_text("new")
    else:
        write_text(out, "new")
    assert (out / "part.txt" if kind == "dir" else out).read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_write_jsonl_counts_and_round_trips(tmp_path):
    from pipeline.storage.files import read_jsonl

    records = [{"sentence": "naïve 🚀", "n": 1}, {"sentence": "北京", "n": 2}]
    assert write_jsonl(tmp_path / "a.jsonl", records) == 2
    assert list(read_jsonl(tmp_path / "a.jsonl")) == records


# ---- what is at the output path: written through, or refused and left as it was ------------------

def test_symlink_output_is_written_through_and_kept(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


def test_dangling_symlink_output_creates_its_target(tmp_path):
    (tmp_path / "link.json").symlink_to("made.json")
    write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "made.json").read_text() == "new"


@pytest.mark.parametrize("kind", ["fifo", "dir", "symlink_to_fifo", "socket"])
def test_non_regular_output_is_refused_and_left_alone(tmp_path, kind):
    import os
    import socket

    target = tmp_path / "out.json"
    expected = {"fifo": "is a FIFO (named pipe)", "dir": "is a directory", "symlink_to_fifo": "is a FIFO (named pipe)",
                "socket": "is a socket"}[kind]
    sock = None
    if kind == "dir":
        target.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
    else:
        os.mkfifo(tmp_path / "pipe")
        if kind == "fifo":
            os.rename(tmp_path / "pipe", target)
        else:
            target.symlink_to("pipe")
    before = os.lstat(target)
    try:
        with pytest.raises(PipelineError, match=re.escape(expected + "; an output must be a regular file or a new path")):
            write_text(target, "x")
    finally:
        if sock:
            sock.close()
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_dev_null_is_refused_not_replaced():
    import os

    before = os.stat("/dev/null")
    with pytest.raises(PipelineError, match="/dev/null: is a character device"):
        write_text("/dev/null", "x")
    assert os.stat("/dev/null").st_rdev == before.st_rdev and os.stat("/dev/null").st_ino == before.st_ino


def test_file_where_a_directory_output_goes_is_refused(tmp_path):
    (tmp_path / "models").write_text("not a dir")
    with pytest.raises(PipelineError, match="is a regular file; an output must be a directory or a new path"), \
            atomic_path(tmp_path / "models", is_dir=True):
        pass


def test_replaced_file_keeps_its_mode_and_new_directory_follows_umask(tmp_path):
    import os

    out = tmp_path / "out.txt"
    out.write_text("old")
    out.chmod(0o640)
    write_text(out, "new")
    assert (out.stat().st_mode & 0o777, out.read_text()) == (0o640, "new")
    old_mask = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "d", is_dir=True) as tmp:
            (tmp / "a").write_text("x")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_output_that_is_an_input_is_refused(tmp_path):
    (tmp_path / "in.jsonl").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("x")
    (tmp_path / "alias.jsonl").symlink_to("in.jsonl")
    cases = [("in.jsonl", ["in.jsonl"]), ("alias.jsonl", ["in.jsonl"]), ("dir/a.txt", ["dir"]), ("dir/new", ["dir"]),
             (".", ["dir"]), ("dir", ["dir/a.txt"])]
    for output, inputs in cases:
        with pytest.raises(PipelineError, match="would replace the input"):
            distinct_from_inputs(tmp_path / output, [tmp_path / i for i in inputs])
    distinct_from_inputs(tmp_path / "new.jsonl", [tmp_path / "in.jsonl"])  # a new path is fine


def test_json_output_is_standard_and_utf8_safe(tmp_path):
    import json

    write_jsonl(tmp_path / "a.jsonl", [{"s": "lone \udc80 surrogate", "t": "é"}])
    data = (tmp_path / "a.jsonl").read_bytes()
    data.decode("utf-8")  # valid UTF-8
    assert json.loads(data)["s"] == "lone \udc80 surrogate"
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_jsonl(tmp_path / "b.jsonl", [{"score": float("nan")}])
    assert not (tmp_path / "b.jsonl").exists()


@pytest.mark.parametrize("text, problem", [
    ('{"task_A": "travel", "task_A": "politics"}', "invalid JSON: duplicate key 'task_A' in one object"),
    ('{"score": NaN}', "invalid JSON: NaN is not a JSON value"),
    ('[-Infinity]', "invalid JSON: -Infinity is not a JSON value"),
])
def test_strict_loads_refuses_what_json_would_read_wrongly(text, problem):
    with pytest.raises(ValueError) as exc:
        loads(text)
    assert json_problem(exc.value).startswith(problem)


@pytest.mark.parametrize("items", [[], [1], [{"actual": "travel", "predicted": "other"}] * 3,
                                   [{"a": [1, {"b": []}], "é": "line\nbreak"}, [], {}, "x"]])
def test_write_json_array_writes_write_jsons_bytes_item_by_item(tmp_path, items):
    write_json(tmp_path / "whole.json", items)
    assert write_json_array(tmp_path / "streamed.json", iter(items)) == len(items)
    assert (tmp_path / "streamed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def test_jsonl_writer_leaves_nothing_when_the_block_fails(tmp_path):
    (tmp_path / "errors.jsonl").write_text("old\n")
    with pytest.raises(RuntimeError), jsonl_writer(tmp_path / "errors.jsonl") as write:
        write({"id": 1})
        raise RuntimeError("scoring failed half-way")
    assert (tmp_path / "errors.jsonl").read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["errors.jsonl"]
