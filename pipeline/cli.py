"""The one entry point: `python -m pipeline STAGE [options]` (or the `pipeline` console script).

Every module of pipeline/stages/ is a stage with a `main(argv=None)`; its command is the module's
name (a trailing underscore, PEP 8's escape for a keyword, dropped: `import_` is `import`). The
stages are found on disk and their one-line summaries read from their docstrings without importing
them, so adding a stage never edits this file (which every stage's DVC deps name), and `--help`
of one stage never pays for another's imports.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.core.records import shorten
from pipeline.storage.errors import PipelineError, first_line

ERROR_LINE_CAP = 2000  # a message quoting a huge input stays one readable line

PROG = "python -m pipeline"
STAGES_DIR = Path(__file__).resolve().parent / "stages"


def run_cli(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> None:
    """Run a stage's main(argv); expected failures become one clear line on stderr and exit status 1."""
    try:
        main(argv)
    except PipelineError as exc:
        print(f"error: {shorten(str(exc), ERROR_LINE_CAP)}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # `predict ... | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except OSError as exc:  # the machine, not the code: disk full, permission denied, I/O error
        where = f"{exc.filename}: " if exc.filename else ""
        why = exc.strerror or first_line(exc)
        print(f"error: {shorten(where + why, ERROR_LINE_CAP)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def stage_parser(name: str, doc: str | None, paths: dict[str, tuple[str | None, str]] | None = None,
                 params_help: str = "params file", epilog: str | None = None) -> argparse.ArgumentParser:
    """A stage's argument parser: usage as the user types it, the module docstring as its help,
    --params, and one `--flag PATH` per entry of `paths` (flag -> (default, what it is))."""
    ap = argparse.ArgumentParser(prog=f"{PROG} {name}", description=doc, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help=f"{params_help} (default: %(default)s)")
    for flag, (default, what) in (paths or {}).items():
        ap.add_argument(flag, default=default, help=what if default is None else f"{what} (default: %(default)s)")
    return ap


def stages() -> dict[str, str]:
    """command -> module name under pipeline.stages, in pipeline order then by name."""
    order = ["validate", "featurize", "train", "evaluate", "predict"]
    found = {p.stem.rstrip("_"): p.stem for p in STAGES_DIR.glob("*.py") if not p.stem.startswith("__")}
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def summary(module: str) -> str:
    """The first line of a stage module's docstring, without its 'Stage NAME:' prefix."""
    doc = ast.get_docstring(ast.parse((STAGES_DIR / f"{module}.py").read_text(encoding="utf-8"))) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first.split(":", 1)[1].strip() if first.startswith("Stage ") and ":" in first else first


def usage() -> str:
    table = stages()
    width = max(map(len, table))
    lines = [f"usage: {PROG} STAGE [options]   ({PROG} STAGE --help: the stage's options)", "", "stages:"]
    lines += [f"  {name:<{width}}  {summary(module)}" for name, module in table.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        sys.exit(0 if args else 2)
    table = stages()
    if args[0] not in table:
        print(f"{PROG}: unknown stage {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"pipeline.stages.{table[args[0]]}")
    run_cli(module.main, args[1:])
