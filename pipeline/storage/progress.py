"""Progress bars for long work: on a terminal, a bar with a total, a rate and an ETA, redrawn about
once a second; into a log file (DVC, CI: stderr is not a terminal), a line every 30 seconds at most
plus the last, so a log shows a few lines per epoch or split instead of one per step."""
from __future__ import annotations

import sys

from tqdm import tqdm


def bar(total: int | None, desc: str, unit: str = " it", disable: bool = False) -> tqdm:
    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, mininterval=1.0 if tty else 30.0, dynamic_ncols=tty,
                disable=disable)


def count_lines(path) -> int:
    """Lines of a text file (a cheap byte scan), for a bar's total."""
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return n
