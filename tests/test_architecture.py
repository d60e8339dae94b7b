"""The structure stays what the README says: layers that import one way, stages that import no
stage, DVC deps that follow the imports, no module named like the standard library, one entry
point that runs every stage. All computed from the source with `ast`, nothing hand-listed."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, subprocess_env

from pipeline import cli

PACKAGE = REPO / "pipeline"
LAYERS = ("core", "storage", "formats", "stages")
# what each layer may import from the package (besides itself); the core nothing else at all
ALLOWED = {"core": set(), "storage": {"core"}, "formats": {"core", "storage"},
           "stages": {"core", "storage", "formats", "cli"}}
IO_MODULES = {"pathlib", "shutil", "tempfile", "glob", "io", "argparse", "yaml", "pyarrow", "safetensors", "dvclive",
              "matplotlib", "pipeline.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` in the file names (function-level ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return names


def package_imports(path: Path) -> set[str]:
    """The pipeline modules (files, not packages) a file imports."""
    return {n for n in imported(path) if n.split(".")[0] == "pipeline" and (p := module_path(n))
            and p.name != "__init__.py"}


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(package_imports(module_path(current)))
    return seen


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def test_every_module_is_in_a_layer_and_packages_hold_only_docstrings():
    for path in MODULES:
        assert layer(path) in (*LAYERS, "cli", "__main__", "__init__"), path
        if path.name == "__init__.py":  # so that leaving them out of the DVC deps loses nothing
            body = ast.parse(path.read_text(encoding="utf-8")).body
            assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), path


@pytest.mark.parametrize("path", [p for p in MODULES if layer(p) in LAYERS], ids=lambda p: module_name(p))
def test_layers_import_one_way(path):
    own = layer(path)
    for name in package_imports(path):
        other = layer(module_path(name))
        assert other == own or other in ALLOWED[own], f"{module_name(path)} ({own}) imports {name} ({other})"


@pytest.mark.parametrize("path", [p for p in MODULES if layer(p) == "core"], ids=lambda p: module_name(p))
def test_the_core_does_no_file_io(path):
    names = imported(path)
    assert not {n for n in names if n.split(".")[0] in IO_MODULES or n in IO_MODULES}, names
    calls = [node.func.id for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    assert "open" not in calls and "print" not in calls


def test_no_stage_imports_another_stage():
    for path in (PACKAGE / "stages").glob("*.py"):
        stages = {n for n in package_imports(path) if n.startswith("pipeline.stages.")}
        assert stages <= {module_name(path)}, (path.name, stages)


def test_no_module_is_named_like_the_standard_library():
    for path in [*MODULES, *(REPO / "benchmarks").glob("*.py"), *(REPO / "scripts").glob("*.py")]:
        assert path.stem not in sys.stdlib_module_names, path


def test_no_test_module_imports_another():
    for path in (REPO / "tests").glob("test_*.py"):
        local = {n.split(".")[0] for n in imported(path)} & {p.stem for p in (REPO / "tests").glob("*.py")}
        assert local <= {"helpers"}, (path.name, local)


def dvc_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", list(dvc_stages()))
def test_dvc_deps_are_exactly_the_code_each_stage_runs(name):
    stage = dvc_stages()[name]
    command = stage["cmd"].split()
    assert command[:3] == ["python", "-m", "pipeline"], stage["cmd"]  # the one entry point, never a module path
    module = f"pipeline.stages.{cli.stages()[command[3]]}"
    runs = closure(module) | closure("pipeline.__main__")
    listed = {d for d in stage["deps"] if d.startswith("pipeline/")}
    expected = {str(module_path(m).relative_to(REPO)) for m in runs}
    assert listed == expected, f"missing {sorted(expected - listed)}, not imported {sorted(listed - expected)}"


def test_the_entry_point_lists_every_stage_module():
    modules = {p.stem for p in (PACKAGE / "stages").glob("*.py") if p.name != "__init__.py"}
    assert set(cli.stages().values()) == modules
    assert set(cli.stages()) == {m.rstrip("_") for m in modules}
    assert {s["cmd"].split()[3] for s in dvc_stages().values()} <= set(cli.stages())
    for name, module in cli.stages().items():
        assert cli.summary(module), name  # a one-line summary for `python -m pipeline --help`


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.slow
def test_python_m_pipeline_help_lists_the_stages_and_rejects_unknown_ones():
    proc = run("-m", "pipeline", "--help")
    assert proc.returncode == 0
    for name in cli.stages():
        assert f"\n  {name} " in proc.stdout
    bad = run("-m", "pipeline", "tokenise")
    assert bad.returncode == 2 and "unknown stage 'tokenise'" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("name", list(cli.stages()))
def test_every_stage_has_help_as_a_module_command_and_as_a_file(name):
    module = cli.stages()[name]
    for args in (["-m", "pipeline", name, "--help"], [f"pipeline/stages/{module}.py", "--help"]):
        proc = run(*args)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert proc.stdout.startswith(f"usage: python -m pipeline {name} "), proc.stdout[:200]
        assert "Traceback" not in proc.stderr
