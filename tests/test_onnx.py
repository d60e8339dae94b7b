"""ONNX export and the onnx runtimes (pipeline/storage/onnx_graph.py, `export onnx`, predict and
evaluate --runtime): on tiny trained models of both encoder families (causal GPT-Neo, BERT), the
fp32 graph gives the records PyTorch gives, the int8 graph stays within its measured agreement,
and a missing package, a tampered or stale graph and a failed self-check are one line each."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import evaluate_args, prepare, run_stage, toy_set, train_args, write_project

from pipeline.core.agreement import Agreement, compare
from pipeline.stages import evaluate as evaluate_mod
from pipeline.stages import export as export_mod
from pipeline.stages import predict as predict_mod
from pipeline.stages import train as train_mod
from pipeline.storage import onnx_graph

pytest.importorskip("onnxruntime")

SENTENCES = ["Tim Cook flew to Paris on 3 May.", "The election in Denver.", "A",
             ("Sarah Mitchell praised the software in Frankfurt while José Martínez discussed the election news "
              "from São Paulo with Zoë on day 2.")]  # the last one is longer than a window: merged from several


@pytest.fixture(scope="module", params=["tiny_gpt_neo", "tiny_bert"])
def exported(request, tmp_path_factory) -> Path:
    """A briefly trained model (windows of 16 tokens) and its fp32 and int8 graphs in model-onnx/."""
    encoder = request.getfixturevalue(request.param)
    root = write_project(tmp_path_factory.mktemp("onnx"), encoder, toy_set(40, 8, 8),
                         **{"train.epochs": 4, "tokenize.max_length": 16, "tokenize.stride": 4})
    prepare(root)
    assert run_stage(train_mod, root, *train_args("model")) == 0
    assert run_stage(export_mod, root, "onnx", "--model", "model", "--features", "tok", "--int8") == 0
    return root


def predict(root: Path, capsys, *args: str) -> tuple[int, list[dict], str]:
    capsys.readouterr()
    code = run_stage(predict_mod, root, "--model", "model", *args, *SENTENCES)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_the_manifest_records_each_graph_and_its_check(exported):
    manifest = json.loads((exported / "model-onnx" / onnx_graph.MANIFEST).read_text())
    assert set(manifest["graphs"]) == {"onnx", "onnx-int8"}
    fp32 = manifest["graphs"]["onnx"]["check"]
    assert fp32["rows"] > 0 and fp32["topic_agreement"] >= 0.999 and fp32["token_agreement"] >= 0.999
    assert max(fp32["max_abs_diff_topic"], fp32["max_abs_diff_ner"]) <= fp32["atol"]
    weights = json.loads((exported / "model" / "multitask.json").read_text())["weights_sha256"]
    assert manifest["source_weights_sha256"] == weights


def test_the_graphs_do_not_depend_on_where_the_code_is_checked_out(exported):
    """The exporter records each node's Python stack trace, with absolute source paths: kept, they
    made the graph's bytes (and its dvc.lock hash) differ between two clones of the repository."""
    source_root = str(Path(onnx_graph.__file__).resolve().parents[2]).encode()
    for name in ("model.onnx", "model.int8.onnx"):
        graph = (exported / "model-onnx" / name).read_bytes()
        assert source_root not in graph and onnx_graph.STACK_TRACE_KEY.encode() not in graph
        assert b"pkg.torch.onnx.class_hierarchy" in graph    # the rest of the node metadata stays


def test_fp32_graph_predicts_the_records_torch_predicts(exported, capsys):
    code, want, _ = predict(exported, capsys, "--runtime", "torch")
    assert code == 0 and len(want) == len(SENTENCES)
    code, got, _ = predict(exported, capsys, "--runtime", "onnx")
    assert code == 0
    for w, g in zip(want, got):
        assert (g["sentence"], g["task_A"]) == (w["sentence"], w["task_A"])
        assert [(s["start"], s["end"], s["type"]) for s in g["task_B"]] == \
               [(s["start"], s["end"], s["type"]) for s in w["task_B"]]
        for topic, score in w["topic_scores"].items():  # rounded to 4 places: a last-digit flip at most
            assert g["topic_scores"][topic] == pytest.approx(score, abs=2e-4)


def test_int8_graph_stays_within_its_measured_agreement(exported, capsys):
    manifest = json.loads((exported / "model-onnx" / onnx_graph.MANIFEST).read_text())
    check = manifest["graphs"]["onnx-int8"]["check"]
    assert check["token_agreement"] >= 0.9 and check["topic_agreement"] >= 0.9
    _, want, _ = predict(exported, capsys, "--runtime", "torch")
    code, got, _ = predict(exported, capsys, "--runtime", "onnx-int8", "--threads", "1")
    assert code == 0 and [g["sentence"] for g in got] == SENTENCES
    same = sum(g["task_A"] == w["task_A"] for g, w in zip(got, want))
    assert same >= len(SENTENCES) - 1   # quantization noise may flip a near-tie, not the model's answers


def test_evaluate_scores_each_runtime_next_to_torch(exported):
    assert run_stage(evaluate_mod, exported, *evaluate_args(), "--runtimes-metrics", "metrics/runtimes.json",
                     "--onnx-dir", "model-onnx") == 0
    runtimes = json.loads((exported / "metrics" / "runtimes.json").read_text())["test"]
    headline = json.loads((exported / "metrics" / "eval.json").read_text())["test"]
    assert set(runtimes) == {"onnx", "onnx-int8"}
    assert runtimes["onnx"] == headline   # fp32: the same decisions, the same scores as torch
    assert set(runtimes["onnx-int8"]) == set(headline)


def test_a_tampered_graph_is_one_line(exported, capsys, tmp_path):
    import shutil

    copy = exported / "model-onnx-tampered"
    shutil.copytree(exported / "model-onnx", copy, dirs_exist_ok=True)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    code, out, err = predict(exported, capsys, "--runtime", "onnx", "--onnx-dir", str(copy))
    assert code == 1 and not out
    assert err == (f"error: {copy / 'model.onnx'}: changed since it was exported (sha256 differs from onnx.json); "
                   f"export it with `python -m pipeline export onnx --model model --int8` (or `dvc repro`)\n")


def test_a_graph_of_other_weights_is_refused(exported, capsys):
    import shutil

    other = exported / "model-retrained"
    shutil.copytree(exported / "model", other, dirs_exist_ok=True)
    meta = json.loads((other / "multitask.json").read_text())
    from safetensors.torch import load_file, save_file

    tensors = load_file(other / "model.safetensors")
    name = next(k for k in tensors if k.startswith("ner_head"))
    tensors[name] = tensors[name] + 1.0
    save_file(tensors, other / "model.safetensors")
    from pipeline.storage.files import sha256

    meta["weights_sha256"] = sha256(other / "model.safetensors")
    (other / "multitask.json").write_text(json.dumps(meta))
    capsys.readouterr()
    code = run_stage(predict_mod, exported, "--model", str(other), "--runtime", "onnx", "--onnx-dir", "model-onnx", "x")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "ONNX directory 'model-onnx' was exported from other weights than" in err


def test_a_missing_graph_names_the_export_command(exported, capsys):
    code, _, err = predict(exported, capsys, "--runtime", "onnx", "--onnx-dir", "nowhere")
    assert code == 1
    assert err == ("error: ONNX directory 'nowhere' not found; export it with "
                   "`python -m pipeline export onnx --model model --int8` (or `dvc repro`)\n")


def test_onnx_runtime_refuses_cuda(exported, capsys):
    code, _, err = predict(exported, capsys, "--runtime", "onnx", "--device", "cuda")
    assert code == 1 and err == "error: --runtime onnx runs on the CPU; leave out --device cuda\n"


def test_missing_onnxruntime_says_what_to_install(exported, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # importing it now fails, as when not installed
    code, _, err = predict(exported, capsys, "--runtime", "onnx-int8")
    assert code == 1
    assert err == f"error: --runtime onnx-int8: onnxruntime not installed; {onnx_graph.INSTALL}\n"
    capsys.readouterr()
    assert run_stage(export_mod, exported, "onnx", "--model", "model", "--features", "tok",
                     "--output", "again") == 1
    assert capsys.readouterr().err == f"error: export onnx: onnxruntime not installed; {onnx_graph.INSTALL}\n"
    assert not (exported / "again").exists()


def test_an_export_that_does_not_reproduce_the_model_fails_and_writes_nothing(exported, capsys, monkeypatch):
    real_call = onnx_graph.OnnxModel.__call__

    def drifting(self, input_ids, attention_mask):
        out = real_call(self, input_ids, attention_mask)
        return {**out, "ner_logits": out["ner_logits"] + 0.01}
    monkeypatch.setattr(onnx_graph.OnnxModel, "__call__", drifting)
    capsys.readouterr()
    assert run_stage(export_mod, exported, "onnx", "--model", "model", "--features", "tok", "--output", "bad") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: export onnx: the fp32 graph does not reproduce model on tok/dev.arrow: "
                          "logits differ from PyTorch by up to 1.00e-02 (tolerance 0.001)")
    assert not (exported / "bad").exists()


def test_export_refuses_to_write_into_the_model_directory(exported, capsys):
    capsys.readouterr()
    assert run_stage(export_mod, exported, "onnx", "--model", "model", "--features", "tok", "--output", "model/x") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --output model/x: would replace the input model") and err.count("\n") == 1


# ---------------------------------------------------------------------------- the core check

class Shifted(torch.nn.Module):
    """A stand-in model: fixed logits from the ids, optionally shifted or with one NER tag flipped."""

    def __init__(self, shift: float = 0.0, flip: bool = False):
        super().__init__()
        self.shift, self.flip = shift, flip

    def forward(self, input_ids, attention_mask):
        base = torch.stack([input_ids.float(), -input_ids.float(), input_ids.float() * 0.5], -1) / 10
        ner = base + self.shift
        if self.flip:
            ner[0, 0] = torch.tensor([-9.0, 9.0, 0.0])
        return {"topic_logits": base[:, 0] + self.shift, "ner_logits": ner}


ROWS = [{"input_ids": [3, 1, 4, 1, 5]}, {"input_ids": [9, 2]}, {"input_ids": [6, 5, 3]}]


def test_compare_finds_no_difference_between_equal_models():
    result = compare(Shifted(), Shifted(), ROWS, 2, 0)
    assert result == Agreement(3, 10, 0.0, 0.0, 1.0, 1.0) and result.problem() is None


def test_compare_reports_logit_drift_and_flipped_decisions():
    drift = compare(Shifted(), Shifted(shift=0.01), ROWS, 2, 0)
    assert drift.max_abs_diff_ner == pytest.approx(0.01) and drift.token_agreement == 1.0
    assert drift.problem() == "logits differ from PyTorch by up to 1.00e-02 (tolerance 0.001)"
    assert drift.problem(atol=0.1) is None
    flipped = compare(Shifted(), Shifted(flip=True), ROWS, 3, 0)
    assert flipped.tokens == 10 and flipped.token_agreement == 0.9
    assert "agree with PyTorch on 100.00% of sentences and 90.00% of tokens" in flipped.problem(atol=100)
