"""The README's everyday workflows, run as written: experiments, diffs, a queued sweep, adding
data; plus reproducibility and recovery from a killed stage."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from helpers import REPO, env, make_project, run, set_params, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo):
    root = make_project(tmp_path_factory.mktemp("workflows"), tiny_gpt_neo)
    run(["dvc", "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline run"], root)
    return root


def test_readme_lists_the_recipes_tested_here():
    readme = (REPO / "README.md").read_text()
    for recipe in ("dvc exp run -S train.lr_heads=3e-3", "dvc exp show", "dvc params diff", "dvc metrics diff",
                   "dvc plots diff", "dvc exp run --queue -S 'train.alpha=0.5,1.0' && dvc queue start"):
        assert recipe in readme


def test_experiment_then_show_and_diffs(project, tmp_path):
    exp = run(["dvc", "exp", "run", "-S", "train.lr_heads=3e-3"], project)
    assert stages_run(exp.stdout) == ["train", "export_onnx", "evaluate", "predict", "select"]
    shown = run(["dvc", "exp", "show", "--csv"], project).stdout
    assert "0.003" in shown and "test.topic.macro_f1" in shown
    params_diff = run(["dvc", "params", "diff"], project).stdout
    assert "train.lr_heads" in params_diff and "0.003" in params_diff
    metrics_diff = run(["dvc", "metrics", "diff"], project).stdout
    assert "metrics/train.json" in metrics_diff or "metrics/eval.json" in metrics_diff
    out_dir = tmp_path / "plots"
    run(["dvc", "plots", "diff", "-o", str(out_dir)], project)
    html = (out_dir / "index.html").read_text()
    assert "topic confusion" in html and "train_curves.png" in html
    assert "cdn.jsdelivr.net" not in html and "vegaEmbed" in html  # the offline template: Vega inline
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout", "-q"], project)


def test_queued_sweep(project):
    run(["dvc", "exp", "run", "--queue", "-S", "train.alpha=0.5,1.0"], project)
    run(["dvc", "queue", "start"], project)
    deadline = time.time() + 600
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], project).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    run(["dvc", "queue", "stop", "--kill"], project, check=False)
    assert "Failed" not in status, status
    assert status.count("Success") >= 2, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    alphas = {exp["data"]["params"]["params.yaml"]["data"]["train"]["alpha"]
              for rev in shown for exp in (rev.get("experiments") or []) for exp in exp["revs"]
              if exp.get("data")}
    assert {0.5, 1.0} <= alphas


def test_adding_a_data_file_reruns_from_validate(project):
    corpus = (REPO / "data/raw/corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (project / "data/raw/new_batch.jsonl").write_text("\n".join(corpus[200:210]) + "\n", encoding="utf-8")
    repro = run(["dvc", "repro"], project)
    assert stages_run(repro.stdout)[:2] == ["validate", "featurize"]
    diff = run(["dvc", "metrics", "diff", "--json"], project).stdout
    kept = json.loads(diff)["metrics/data.json"]["kept"]
    assert kept["new"] - kept["old"] == 10
    run(["git", "checkout", "--", "."], project)
    (project / "data/raw/new_batch.jsonl").unlink()
    run(["dvc", "checkout", "-q"], project)


def test_repro_force_twice_gives_identical_eval_metrics(project):
    run(["dvc", "repro", "--force"], project)
    first = (project / "metrics/eval.json").read_bytes()
    run(["dvc", "repro", "--force"], project)
    assert (project / "metrics/eval.json").read_bytes() == first
    run(["git", "checkout", "--", "."], project)
    run(["dvc", "checkout", "-q"], project)


def test_killed_train_leaves_nothing_half_written_and_rerun_recovers(project):
    # enough epochs, none skipped by early stopping, that the kill lands mid-training
    set_params(project, train={"epochs": 4, "patience": 0})
    proc = subprocess.Popen(["dvc", "repro"], cwd=project, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    state = project / "models/checkpoint/state.json"
    deadline = time.time() + 300
    before = state.stat().st_mtime if state.exists() else 0
    while time.time() < deadline and not (state.exists() and state.stat().st_mtime > before):
        time.sleep(0.05)
    assert proc.poll() is None, "dvc repro finished before it could be killed mid-train"
    assert state.exists() and state.stat().st_mtime > before, "no epoch checkpoint within 300 s"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # DVC removed the old model before the stage ran; the new one appears only by rename at the end
    assert not (project / "models/multitask").exists()
    assert not any(p.name.endswith(".tmp") for p in (project / "models").iterdir() if p.name.startswith(".multitask"))
    # DVC did not record the killed run: the lock still holds the baseline's params
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"] == 1
    repro = run(["dvc", "repro"], project)
    assert "train" in stages_run(repro.stdout)
    assert json.loads((project / "metrics/train.json").read_text())["epochs_run"] >= 1
    assert "test" in json.loads((project / "metrics/eval.json").read_text())
    run(["python", "-m", "pipeline", "predict", "--model", "models/multitask", "A sentence about Paris."], project)
