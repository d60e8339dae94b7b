"""The train and evaluate stages (pipeline/stages/) and the training loop's pieces
(pipeline/core/training.py) on the tiny GPT-Neo fixture: learning a separable toy set, partial
labels, freezing, determinism, resume, DDP on CPU (torchrun, 2 processes), and what evaluate writes.

The stages run in-process (their CLI entry, `run_cli(main, argv)`) where that is
enough, which saves the few seconds each interpreter needs to import torch and transformers;
the checks that must see a real process (torchrun, the one-line error) run as subprocesses."""
from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    evaluate_args,
    prepare,
    run_stage,
    subprocess_env,
    toy_record,
    toy_set,
    train,
    train_args,
    write_project,
    write_toy_params,
)

from pipeline.core import training
from pipeline.stages import evaluate as evaluate_mod
from pipeline.stages import train as train_mod
from pipeline.storage import checkpoints, feature_store
from pipeline.storage import params as params_mod


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


def history(root: Path, name: str = "model") -> list[dict]:
    return json.loads((root / f"ckpt_{name}" / "state.json").read_text())["history"]


# fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo) -> Path:
    """The toy set (40 train, 12 dev, 12 test), validated and tokenized once for this module."""
    root = write_project(tmp_path_factory.mktemp("toy"), tiny_gpt_neo, toy_set())
    prepare(root)
    write_toy_params(root / "params_fit.yaml", tiny_gpt_neo, **{"train.epochs": 12})
    return root


@pytest.fixture(scope="module")
def fit_run(project) -> Path:
    """12 epochs on the toy set: enough for the tiny model to learn it (also the DDP reference)."""
    return train(project, "fit", "params_fit.yaml")


@pytest.fixture(scope="module")
def two_epochs(project) -> Path:
    """A plain 2-epoch run with the default test params."""
    return train(project, "det_a")


def score(model_dir: Path, root: Path, split: str) -> tuple[dict, list[dict], list[dict]]:
    from pipeline.core.scoring import SplitScorer, scored_predictions
    from pipeline.storage.files import read_jsonl
    from pipeline.storage.model_dir import load

    model, tok, meta = load(model_dir)
    rows = feature_store.FeatureRows(feature_store.split_path(root / "tok", split))
    pairs = list(scored_predictions(model, rows, read_jsonl(root / "val" / f"{split}.jsonl"), meta, 16,
                                    tok.pad_token_id, torch.device("cpu")))
    scorer = SplitScorer(meta)
    for record, pred in pairs:
        scorer.add(record, pred)
    return scorer.result(), [pred for _, pred in pairs], [record for record, _ in pairs]


# learning ----------------------------------------------------------------------------------------

def test_fits_a_separable_toy_set(project, fit_run):
    result, _, records = score(fit_run, project, "train")
    assert len(records) == 40
    assert result["topic"]["accuracy"] > 0.9, result["topic"]
    assert result["ner"]["f1"] > 0.8, result["ner"]
    hist = history(project, "fit")
    assert len(hist) == 12
    assert hist[-1]["loss_ner"] < 0.5 * hist[0]["loss_ner"]
    assert hist[-1]["loss_topic"] < 0.5 * hist[0]["loss_topic"]
    summary = json.loads((project / "reports" / "train_fit.json").read_text())
    assert json.loads((project / "metrics" / "train_fit.json").read_text()) == {
        "best_epoch": summary["best_epoch"], "epochs_run": 12}
    assert summary["epochs_run"] == 12 and summary["world_size"] == 1
    assert summary["best_epoch"] == json.loads((fit_run / "multitask.json").read_text())["best_epoch"]


def test_model_card_says_what_the_model_is_with_the_best_epochs_dev_scores(project, fit_run, tiny_gpt_neo):
    from huggingface_hub import ModelCard

    card = ModelCard.load(fit_run / "README.md")
    best_epoch = json.loads((fit_run / "multitask.json").read_text())["best_epoch"]
    best = next(h for h in history(project, "fit") if h["epoch"] == best_epoch)
    scores = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert scores == {"topic macro-F1": best["dev_topic_macro_f1"], "NER exact-span F1": best["dev_ner_f1"]}
    assert all(r.dataset_split == "dev" for r in card.data.eval_results)
    assert card.data.library_name == "pytorch" and card.data.pipeline_tag == "token-classification"
    assert card.data.base_model is None  # a local directory is no hub model to point at
    assert f"Encoder weights: local directory {tiny_gpt_neo}." in card.text
    assert "40 training sentences: 40 annotated for topic, 40 for entities." in card.text
    assert "| travel | 10 |" in card.text and "PERSON, LOC, ORG, DATE" in card.text
    assert f"those of epoch {best_epoch} of 12, the best by the dev score" in card.text
    *events, summary = [json.loads(x) for x in (project / "reports" / "misaligned.jsonl").read_text().splitlines()]
    counts = summary["summary"]
    assert counts["spans"] == 2 * 64 == sum(counts[k] for k in ("aligned", "expanded", "contracted", "dropped"))
    assert len(events) == counts["spans"] - counts["aligned"] and summary["policy"] == "expand"
    featurize = json.loads((project / "reports" / "featurize.json").read_text())
    assert featurize["encoder_source"] == f"local directory {tiny_gpt_neo}"
    assert json.loads((project / "metrics" / "featurize.json").read_text()) == {
        "windowed_records": featurize["windowed_records"], "misaligned_spans": counts["spans"] - counts["aligned"],
        "encoder_source": "directory"}


def test_partial_label_batches_train_without_nan(tmp_path, tiny_gpt_neo):
    # batch_size 1: every batch holds one task only, so the other task's labels are all -100.
    records = ([toy_record(i, "train", ner=False) for i in range(6)]
               + [toy_record(100 + i, "train", topic=False) for i in range(6)]
               + [toy_record(1000 + i, "dev", ner=False) for i in range(4)])
    root = write_project(tmp_path, tiny_gpt_neo, records, **{"train.batch_size": 1})
    prepare(root)
    model_dir = train(root)
    for h in history(root):
        for key in ("loss", "loss_topic", "loss_ner"):
            assert h[key] == h[key] and abs(h[key]) != float("inf"), h  # not NaN, not inf
        assert h["dev_topic_macro_f1"] is not None
        assert h["dev_ner_f1"] is None  # dev has no NER annotations: absent, not zero
    assert all(torch.isfinite(t).all() for t in weights(model_dir).values())


@pytest.mark.parametrize("mode", ["encoder", "top_k"])
def test_freezing_leaves_frozen_weights_bit_identical(project, tiny_gpt_neo, mode):
    write_toy_params(project / f"params_{mode}.yaml", tiny_gpt_neo,
                 **{"train.epochs": 1, "train.freeze": mode, "train.unfreeze_top_layers": 1})
    trained = weights(train(project, f"freeze_{mode}", f"params_{mode}.yaml"))
    initial = weights(tiny_gpt_neo)

    def is_top(key: str) -> bool:  # GPT-Neo: the top block (of 2) and the final norm
        return key.startswith(("h.1.", "ln_f."))

    same = {k: torch.equal(trained[f"encoder.{k}"], v) for k, v in initial.items()}
    frozen = [k for k in initial if mode == "encoder" or not is_top(k)]
    assert frozen and all(same[k] for k in frozen), [k for k in frozen if not same[k]]
    if mode == "top_k":
        top = [k for k in initial if is_top(k)]
        assert top and not all(same[k] for k in top)  # the unfrozen block did train
    head = trained["topic_head.1.weight"]
    assert head.shape == (4, 32)


# determinism and resume ---------------------------------------------------------------------------

def test_two_runs_with_the_same_params_are_identical(project, two_epochs):
    other = train(project, "det_b")
    a, b = weights(two_epochs), weights(other)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert run_stage(evaluate_mod, project, *evaluate_args("det_a", out="det_a")) == 0
    assert run_stage(evaluate_mod, project, *evaluate_args("det_b", out="det_b")) == 0
    assert (project / "reports" / "det_a.json").read_bytes() == (project / "reports" / "det_b.json").read_bytes()


def test_resume_continues_from_the_checkpoint_after_a_kill(project, two_epochs, monkeypatch, capsys):
    real_save = checkpoints.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # what SIGTERM becomes in train: killed right after epoch 1's checkpoint

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    assert run_stage(train_mod, project, *train_args("resumed")) == 130
    assert "error: interrupted" in capsys.readouterr().err
    assert not (project / "resumed").exists()
    assert [h["epoch"] for h in history(project, "resumed")] == [1]
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)

    write_toy_params(project / "params_resume.yaml", Path(json.loads(
        (two_epochs / "multitask.json").read_text())["encoder_name"]), **{"train.resume": True})
    assert run_stage(train_mod, project, *train_args("resumed", "params_resume.yaml")) == 0
    assert "resuming after epoch 1" in capsys.readouterr().out
    # the resumed run ends exactly where the uninterrupted 2-epoch run did
    assert history(project, "resumed") == history(project, "det_a")
    a, b = weights(two_epochs), weights(project / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_params_starts_afresh(project, two_epochs, tiny_gpt_neo, capsys):
    shutil.copytree(project / "ckpt_det_a", project / "ckpt_other", dirs_exist_ok=True)
    write_toy_params(project / "params_other.yaml", tiny_gpt_neo,
                 **{"train.resume": True, "train.epochs": 1, "train.lr_heads": 5.0e-3})
    train(project, "other", "params_other.yaml")
    assert "written with other params; starting afresh" in capsys.readouterr().out
    assert [h["epoch"] for h in history(project, "other")] == [1]


# task balancing, weight averaging, layer-wise lr decay, topic dropout ------------------------------

BALANCED = {"train.loss_weighting": "uncertainty", "train.task_sampling": "temperature", "train.ema_decay": 0.9,
            "train.lr_layer_decay": 0.8, "train.topic_dropout": 0.2}


@pytest.fixture(scope="module")
def balanced(project, tiny_gpt_neo) -> Path:
    """A 2-epoch run with every new option on (the toy rows are all labelled for both tasks)."""
    write_toy_params(project / "params_bal.yaml", tiny_gpt_neo, **BALANCED)
    return train(project, "bal", "params_bal.yaml")


def test_learned_loss_weights_are_logged_and_the_model_directory_is_unchanged(project, balanced, two_epochs):
    hist = history(project, "bal")
    assert [h["epoch"] for h in hist] == [1, 2]
    assert all(h["weight_topic"] != 1.0 and h["weight_ner"] != 1.0 for h in hist)   # learned away from s = 0
    assert hist[0]["weight_topic"] != hist[1]["weight_topic"]
    report = json.loads((project / "reports" / "train_bal.json").read_text())
    assert (report["weight_topic"], report["weight_ner"]) == (hist[-1]["weight_topic"], hist[-1]["weight_ner"])
    live = (project / "live_bal" / "plots" / "metrics" / "train" / "weight_topic.tsv").read_text().splitlines()
    assert len(live) == 3 and float(live[-1].split("\t")[-1]) == hist[-1]["weight_topic"]
    assert "weight_topic" not in history(project, "det_a")[0]                         # fixed: not logged
    assert weights(balanced).keys() == weights(two_epochs).keys()                      # training state stays out
    assert sorted(p.name for p in balanced.iterdir()) == sorted(p.name for p in two_epochs.iterdir())


def test_the_kept_and_saved_weights_are_the_weight_average(project, tiny_gpt_neo):
    from safetensors.torch import load_file

    write_toy_params(project / "params_ema.yaml", tiny_gpt_neo, **{"train.epochs": 1, "train.ema_decay": 0.5})
    saved = weights(train(project, "ema", "params_ema.yaml"))
    extra, raw = (load_file(str(project / "ckpt_ema" / name)) for name in ("extra.safetensors", "model.safetensors"))
    assert int(extra["ema.n_averaged"]) == 5                                          # 40 rows / batch 8: 5 steps
    assert all(torch.equal(saved[k], extra[f"ema.module.{k}"]) for k in saved)        # epoch 1 is the kept one
    assert any(not torch.equal(saved[k], raw[k]) for k in saved)                      # not the last step's weights
    result, _, _ = score(project / "ema", project, "dev")
    assert result["topic"]["macro_f1"] == history(project, "ema")[0]["dev_topic_macro_f1"]  # dev scored on them


def test_resume_restores_the_loss_weights_and_the_weight_average(project, balanced, tiny_gpt_neo, monkeypatch):
    real_save = checkpoints.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_checkpoint", save_then_die)
    assert run_stage(train_mod, project, *train_args("bal_resumed", "params_bal.yaml")) == 130
    monkeypatch.setattr(checkpoints, "save_checkpoint", real_save)
    write_toy_params(project / "params_bal_resume.yaml", tiny_gpt_neo, **BALANCED, **{"train.resume": True})
    train(project, "bal_resumed", "params_bal_resume.yaml")
    assert history(project, "bal_resumed") == history(project, "bal")    # the weights' path included
    a, b = weights(balanced), weights(project / "bal_resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_old_checkpoint_resumes_with_the_new_options_off(project, two_epochs):
    train_params = {**params_mod.load(project / "params.yaml").train.model_dump()}
    old = {k: v for k, v in train_params.items() if k not in checkpoints.ADDED_OFF}
    assert checkpoints.fingerprint(train_params, {}, {}) == checkpoints.fingerprint(old, {}, {})
    assert checkpoints.fingerprint({**train_params, "ema_decay": 0.5}, {}, {}) != checkpoints.fingerprint(old, {}, {})


def test_normalized_weighting_and_alternating_batches_on_partial_labels(tmp_path, tiny_gpt_neo):
    records = ([toy_record(i, "train", ner=False) for i in range(8)]
               + [toy_record(100 + i, "train", topic=False) for i in range(4)]
               + [toy_record(1000 + i, "dev") for i in range(4)])
    root = write_project(tmp_path, tiny_gpt_neo, records, **{
        "train.batch_size": 2, "train.loss_weighting": "normalized", "train.task_sampling": "alternating"})
    prepare(root)
    train(root)
    for h in history(root):
        assert 0 < h["weight_topic"] < 10 and 0 < h["weight_ner"] < 10, h     # 1 / a running cross-entropy
        assert h["loss"] == h["loss"] and h["dev_ner_f1"] is not None


# DDP ----------------------------------------------------------------------------------------------

# Tolerance for 2-process DDP vs 1 process (same params, same global batches, same optimizer
# steps). Not exact: each process averages its loss over its own half of the batch (per-rank
# means of the masked CE, combined by row count) and draws its own dropout masks, so weights
# drift apart slightly. On the tiny model the dev scores of the two runs stay within a few
# hundredths per epoch; 0.1 absolute is a margin that still catches a real break (e.g. DDP
# training on half the data, or ranks out of step), whose scores differ by far more.
DDP_TOLERANCE = 0.1


def test_torchrun_two_processes_on_cpu_matches_one_process(project, fit_run):
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "pipeline", "train",
                           *train_args("ddp", "params_fit.yaml")],
                          cwd=project, env=subprocess_env(), check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # written once, by rank 0: one summary line, one line per epoch, no temporary dirs left over
    assert proc.stdout.count("model card in ddp") == 1, proc.stdout
    assert proc.stdout.count("epoch 12:") == 1
    assert not [p.name for p in project.iterdir() if p.name.startswith((".ddp.", ".ckpt_ddp."))]
    summary = json.loads((project / "reports" / "train_ddp.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 12
    one, two = history(project, "fit"), history(project, "ddp")
    assert len(one) == len(two) == 12
    for key in ("dev_topic_macro_f1", "dev_ner_f1"):
        diffs = [abs(a[key] - b[key]) for a, b in zip(one, two)]
        assert max(diffs[-3:]) <= DDP_TOLERANCE, (key, diffs)
    assert abs(one[-1]["loss"] - two[-1]["loss"]) <= DDP_TOLERANCE
    result, _, _ = score(project / "ddp", project, "dev")
    reference, _, _ = score(fit_run, project, "dev")
    assert abs(result["topic"]["accuracy"] - reference["topic"]["accuracy"]) <= DDP_TOLERANCE + 1e-9
    assert abs(result["ner"]["f1"] - reference["ner"]["f1"]) <= DDP_TOLERANCE + 1e-9


def test_torchrun_two_processes_with_learned_loss_weights_and_a_weight_average(project, balanced):
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "pipeline", "train",
                           *train_args("ddp_bal", "params_bal.yaml")],
                          cwd=project, env=subprocess_env(), check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = history(project, "bal"), history(project, "ddp_bal")
    # The s gradients averaged over the ranks keep rank 0's weights on the 1-process path: measured
    # 2e-4 apart after 2 epochs (dropout and per-rank means differ), 1.3e-3 for the topic weight when
    # rank 0 steps on its own half-batch gradient alone (sync_grads left out).
    for key in ("weight_topic", "weight_ner"):
        assert abs(one[-1][key] - two[-1][key]) <= 5e-4, (key, one[-1][key], two[-1][key])
    assert weights(project / "ddp_bal").keys() == weights(balanced).keys()


# evaluate -----------------------------------------------------------------------------------------

def test_evaluate_writes_metrics_errors_and_plots(project, fit_run):
    assert run_stage(evaluate_mod, project, *evaluate_args("fit", out="fit")) == 0
    metrics = json.loads((project / "reports" / "fit.json").read_text())
    headline = json.loads((project / "metrics" / "fit.json").read_text())
    assert headline == {s: {"topic": {"macro_f1": metrics[s]["topic"]["macro_f1"]}, "ner": {"f1": metrics[s]["ner"]["f1"]}}
                        for s in ("dev", "test")}
    assert set(metrics) == {"dev", "test"}
    for split in ("dev", "test"):
        m = metrics[split]
        assert m["topic"]["n"] == 12 and m["ner"]["n"] == 12
        for key in ("accuracy", "macro_f1"):
            assert 0.0 <= m["topic"][key] <= 1.0
        for key in ("precision", "recall", "f1", "seqeval_f1"):
            assert 0.0 <= m["ner"][key] <= 1.0
        for kind in ("PERSON", "LOC"):  # the types in the toy data
            assert 0.0 <= m["ner"][kind]["f1"] <= 1.0 and m["ner"][kind]["support"] == 12
    # errors.jsonl: exactly the test records with a wrong topic or any span difference
    _, preds, records = score(fit_run, project, "test")
    wrong = {r["id"] for r, p in zip(records, preds)
             if r["task_A"] != p["topic"]
             or {(s["type"], s["start"], s["end"]) for s in r["task_B"]}
             != {(s["type"], s["start"], s["end"]) for s in p["spans"]}}
    lines = [json.loads(x) for x in (project / "reports" / "fit_errors.jsonl").read_text().splitlines()]
    assert {e["id"] for e in lines} == wrong
    for e in lines:
        assert e["topic"] is None or set(e["topic"]) == {"gold", "pred"}
        assert e["topic"] is not None or e["span_errors"]
        for err in e["span_errors"]:
            assert {"kind", "gold", "pred"} <= set(err)
    plots = project / "plots_fit"
    confusion = json.loads((plots / "topic_confusion.json").read_text())
    assert len(confusion) == 12 and all(set(c) == {"actual", "predicted"} for c in confusion)
    assert sum(c["actual"] == c["predicted"] for c in confusion) == round(metrics["test"]["topic"]["accuracy"] * 12)
    per_type = json.loads((plots / "ner_f1_per_type.json").read_text())
    assert {r["type"]: r["f1"] for r in per_type}["PERSON"] == metrics["test"]["ner"]["PERSON"]["f1"]
    for png in ("topic_confusion.png", "ner_f1.png"):
        assert (plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_leaves_an_empty_split_absent(project, fit_run):
    shutil.copytree(project / "val", project / "val_notest", dirs_exist_ok=True)
    shutil.copytree(project / "tok", project / "tok_notest", dirs_exist_ok=True)
    (project / "val_notest" / "test.jsonl").write_text("")
    with feature_store.writer(feature_store.split_path(project / "tok_notest", "test")) as writer:
        writer.write_rows([])
    args = evaluate_args("fit", out="notest")
    args[args.index("tok")], args[args.index("val")] = "tok_notest", "val_notest"
    assert run_stage(evaluate_mod, project, *args) == 0
    metrics = json.loads((project / "metrics" / "notest.json").read_text())
    assert list(json.loads((project / "reports" / "notest.json").read_text())) == ["dev"]
    assert list(metrics) == ["dev"]  # no test key at all, not zeros
    assert (project / "reports" / "notest_errors.jsonl").read_text() == ""
    assert json.loads((project / "plots_notest" / "topic_confusion.json").read_text()) == []


@pytest.mark.parametrize("lines", [slice(0, -1), slice(0, None)], ids=["a record fewer", "a record more"])
def test_evaluate_with_features_from_other_records_fails_in_one_line(project, fit_run, capsys, lines):
    out = f"mismatch_{lines.stop}"
    shutil.copytree(project / "val", project / out)
    test = (project / "val" / "test.jsonl").read_text().splitlines(keepends=True)
    extra = [test[0].replace('"id": "', '"id": "extra-')] if lines.stop is None else []
    (project / out / "test.jsonl").write_text("".join(test[lines] + extra))
    args = evaluate_args("fit", out=out)
    args[args.index("val")] = out
    capsys.readouterr()
    assert run_stage(evaluate_mod, project, *args) == 1
    err = capsys.readouterr().err  # the dev split's progress bar, then the one error line
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith(f"error: tok/test.arrow and {out}/test.jsonl: ") and "re-run featurize" in last
    assert err.count("error:") == 1 and "Traceback" not in err
    assert not (project / "reports" / f"{out}_errors.jsonl").exists()  # nothing half-written


def test_evaluate_with_other_topic_labels_fails_in_one_line(project, fit_run, tiny_gpt_neo):
    write_toy_params(project / "params_labels.yaml", tiny_gpt_neo,
                 **{"labels.topics": ["travel", "technology", "politics", "sports"]})
    proc = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", *evaluate_args("fit", "params_labels.yaml",
                                                                                     out="labels")],
                          cwd=project, env=subprocess_env(), check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "labels.topics" in proc.stderr and "sports" in proc.stderr
    assert not (project / "metrics" / "labels.json").exists()


# pieces -------------------------------------------------------------------------------------------

def test_shard_splits_every_global_batch_across_ranks():
    batches = [list(range(8)), list(range(8, 15)), [15]]
    parts = [training.shard(batches, rank, 2) for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == 3  # same number of steps on every rank
    for b, batch in enumerate(batches):
        (p0, w0), (p1, w1) = parts[0][b], parts[1][b]
        real = (p0 if w0 else []) + (p1 if w1 else [])
        assert sorted(real) == batch  # each row once, on one rank
        # DDP averages the ranks' gradients (1/world each), so rank r's batch-mean gradient must
        # count w/world = len(part)/len(batch): the whole batch's row-weighted mean
        for part, w in ((p0, w0), (p1, w1)):
            if w:
                assert w / 2 == pytest.approx(len(part) / len(batch))
    assert parts[1][2] == ([15], 0.0)  # a 1-row batch: rank 1 gets a stand-in row that counts for nothing
    assert training.shard(batches, 0, 1) == [(b, 1.0) for b in batches]


def test_top_k_larger_than_the_model_unfreezes_every_block(tiny_gpt_neo):
    from pipeline.core.model import MultiTaskModel
    from pipeline.storage.hub import load_encoder

    for k, trainable_blocks in ((0, set()), (1, {"1"}), (2, {"0", "1"}), (5, {"0", "1"})):
        model = MultiTaskModel(load_encoder(str(tiny_gpt_neo)), 4, 9)
        training.apply_freeze(model, "top_k", k)
        blocks = {n.split(".")[2] for n, p in model.named_parameters() if n.startswith("encoder.h.") and p.requires_grad}
        assert blocks == trainable_blocks, k
        assert not model.encoder.wte.weight.requires_grad and model.topic_head[1].weight.requires_grad


def test_parameters_without_gradient_are_frozen_for_ddp(tiny_bert):
    """BERT's pooler is computed but unused (we pool token states ourselves): DDP would stop with
    'parameters that were not used in producing loss' unless it is taken out of training."""
    from pipeline.core.model import MultiTaskModel
    from pipeline.storage.hub import load_encoder, load_tokenizer

    tok = load_tokenizer(str(tiny_bert))
    model = MultiTaskModel(load_encoder(str(tiny_bert)), 4, 9)
    ids = tok(["Tim Cook flew to Paris.", "Hello"])["input_ids"]
    rows = [{"input_ids": x, "labels": [-100] * len(x), "topic": 1} for x in ids]
    before = torch.get_rng_state()
    unused = training.freeze_unused(model, rows, tok.pad_token_id, torch.device("cpu"))
    assert torch.equal(before, torch.get_rng_state())  # the check leaves the run's randomness alone
    assert unused == ["encoder.pooler.dense.weight", "encoder.pooler.dense.bias"]
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("encoder.pooler."))
    assert all(p.grad is None for p in model.parameters())


def test_select_metric_loss_uses_the_dev_loss(project, tiny_gpt_neo):
    write_toy_params(project / "params_loss.yaml", tiny_gpt_neo, **{"train.select_metric": "loss"})
    train(project, "by_loss", "params_loss.yaml")
    hist = history(project, "by_loss")
    for h in hist:
        assert h["dev_loss"] > 0 and h["dev_score"] == -h["dev_loss"] and h["dev_loss"] != h["loss"]
    best = max(hist, key=lambda h: h["dev_score"])["epoch"]
    assert json.loads((project / "by_loss" / "multitask.json").read_text())["best_epoch"] == best


def test_missing_features_is_one_line(tmp_path, tiny_gpt_neo, capsys):
    write_toy_params(tmp_path / "params.yaml", tiny_gpt_neo)
    assert run_stage(train_mod, tmp_path, *train_args()) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: tok/meta.json: not found") and err.count("\n") == 1


# per-task model selection (train.select: per_task) ------------------------------------------------

def test_per_task_selection_keeps_the_best_ner_epoch_and_refits_the_topic_head(project, tiny_gpt_neo):
    """The kept epoch is the one with the best dev NER F1 (not the mean); the topic head is then
    re-fit on that encoder and the head epoch with the best dev topic macro-F1 is kept, which the
    saved model scores exactly."""
    write_toy_params(project / "params_pt.yaml", tiny_gpt_neo, **{
        "train.epochs": 6, "train.patience": 0, "train.select": "per_task", "train.topic_refit_epochs": 5})
    model_dir = train(project, "pt", "params_pt.yaml")
    hist = history(project, "pt")
    report = json.loads((project / "reports" / "train_pt.json").read_text())
    ner = [h["dev_ner_f1"] for h in hist]
    assert report["best_epoch"] == 1 + ner.index(max(ner))        # first epoch with the best NER F1
    refit = report["topic_refit"]
    scores = refit["dev_topic_macro_f1"]
    assert len(scores) == 6 and refit["best_epoch"] == scores.index(max(scores))
    assert scores[0] == hist[report["best_epoch"] - 1]["dev_topic_macro_f1"]   # epoch 0: the head as trained
    result, _, _ = score(model_dir, project, "dev")
    assert result["topic"]["macro_f1"] == max(scores)
    assert result["ner"]["f1"] == max(ner)
    card = (model_dir / "README.md").read_text()   # the model card says how the weights were chosen
    assert "the best by dev NER F1 (`train.select: per_task`), with the topic head then re-fit" in card


def test_refit_changes_only_the_topic_head(project, tiny_gpt_neo):
    for name, refit_epochs in (("pt1", 0), ("pt2", 6)):
        write_toy_params(project / f"params_{name}.yaml", tiny_gpt_neo, **{
            "train.select": "per_task", "train.topic_refit_epochs": refit_epochs, "train.lr_heads": 0.05})
    a, b = weights(train(project, "pt1", "params_pt1.yaml")), weights(train(project, "pt2", "params_pt2.yaml"))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    refit = json.loads((project / "reports" / "train_pt2.json").read_text())["topic_refit"]
    assert changed <= {"topic_head.1.weight", "topic_head.1.bias"}
    assert refit["best_epoch"] > 0 and refit["gain"] > 0   # the toy head has room to improve
    assert changed == {"topic_head.1.weight", "topic_head.1.bias"}


def test_label_smoothing_changes_the_topic_loss_only():
    from pipeline.core.model import masked_ce

    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1])
    plain, smooth = masked_ce(logits, labels), masked_ce(logits, labels, 0.1)
    assert smooth > plain   # confident right answers cost more: the head is kept from over-fitting
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.isclose(smooth, expected)


def test_training_materialises_rows_a_batch_at_a_time_never_a_split(tmp_path, tiny_gpt_neo, monkeypatch):
    """Issue 20: train reads its feature rows per batch. On a train split 8x the largest read, no
    read materialises more than one record batch (or one training/dev batch) of rows, and nothing
    loads a whole split: the run completes under that cap and every train row is read."""
    monkeypatch.setattr(feature_store, "ROWS_PER_BATCH", 8)  # record batches of 8 rows: a small corpus will do
    records = toy_set(n_train=72, n_dev=12, n_test=4)
    root = write_project(tmp_path, tiny_gpt_neo, records, **{"train.epochs": 1, "train.batch_size": 8})
    prepare(root)
    n_train = len(feature_store.FeatureRows(feature_store.split_path(root / "tok", "train")))
    assert n_train >= 8 * feature_store.ROWS_PER_BATCH
    reads = []
    materialise = feature_store.FeatureRows._to_rows

    def counted(part):
        rows = materialise(part)
        reads.append(len(rows))
        return rows

    def whole_split(path):
        raise AssertionError(f"train loaded a whole split: {path}")

    monkeypatch.setattr(feature_store.FeatureRows, "_to_rows", staticmethod(counted))
    monkeypatch.setattr(feature_store, "load_features", whole_split)
    assert (train(root, "capped") / "model.safetensors").is_file()
    assert max(reads) <= feature_store.ROWS_PER_BATCH < n_train / 8
    assert sum(reads) >= n_train  # every train row was read, by batch


def test_a_split_scored_in_chunks_gets_the_metrics_and_predictions_of_one_pass(project, fit_run, monkeypatch):
    from pipeline.core import scoring

    whole, whole_preds, records = score(fit_run, project, "test")
    monkeypatch.setattr(scoring, "CHUNK_WINDOWS", 2)  # 12 test records: 6 chunks instead of 1
    chunked, chunked_preds, chunked_records = score(fit_run, project, "test")
    assert chunked_records == records and len(records) == 12
    assert chunked == whole and whole["ner"]["seqeval_f1"] is not None
    assert [(p["topic"], p["spans"]) for p in chunked_preds] == [(p["topic"], p["spans"]) for p in whole_preds]


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_record_chunks_keep_each_records_windows_together(size):
    from pipeline.core.inference import record_chunks

    rows = [{"record": r, "window": w} for r, n in enumerate([2, 1, 3, 1, 1]) for w in range(n)]
    chunks = list(record_chunks(iter(rows), size))
    assert [row for chunk in chunks for row in chunk] == rows
    assert all(len(chunk) >= size for chunk in chunks[:-1])
    assert all(a[-1]["record"] != b[0]["record"] for a, b in itertools.pairwise(chunks))
