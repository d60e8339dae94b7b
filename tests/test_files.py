"""Atomic outputs: an interrupted writer never leaves a half-written file or directory behind."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.storage.files import atomic_path, write_jsonl, write_text

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
