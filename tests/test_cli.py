"""run_cli: what a stage raises becomes one line and an exit status, never a traceback."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import helpers
import pytest

from pipeline.cli import ERROR_LINE_CAP, run_cli
from pipeline.storage.errors import PipelineError


def _exit_and_stderr(main, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        run_cli(main, [])
    return stop.value.code, capsys.readouterr().err


def test_pipeline_error_is_one_capped_line(capsys):
    def main(argv):
        raise PipelineError("raw/a.jsonl:1: task_B[0].start: offset " + "9" * 4000 + " is beyond the sentence")

    code, err = _exit_and_stderr(main, capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: raw/a.jsonl:1: task_B[0].start: offset 999")
    assert err.rstrip().endswith("more characters)") and len(err) < ERROR_LINE_CAP + 100


def test_os_error_from_the_machine_is_one_line(capsys):
    def main(argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "models/multitask/model.safetensors")

    code, err = _exit_and_stderr(main, capsys)
    assert (code, err) == (1, "error: models/multitask/model.safetensors: No space left on device\n")


def test_a_closed_pipe_ends_quietly():
    code = ("import sys\nfrom pipeline.cli import run_cli\n"
            "def main(argv):\n    for i in range(10**6):\n        print('line', i)\n"
            "run_cli(main)")
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True, capture_output=True, text=True,
                          check=False, env={**os.environ, "PYTHONPATH": str(helpers.REPO)})
    assert proc.stdout == "line 0\n"
    assert proc.stderr == ""
