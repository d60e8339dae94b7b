"""Bad-input corpus, model side: hand-edited or damaged model directories (multitask.json,
config.json), encoders with pickle weights, windows longer than the encoder's position table.
Each case is replayed through the CLI (`predict` and `evaluate`, in-process through run_cli, and
a few as real `python -m pipeline` processes) and must end in exactly one line `error: ...` and
exit status 1: no traceback, nothing written. One tiny model is trained for the whole module."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    evaluate_args,
    prepare,
    run_stage,
    subprocess_env,
    toy_set,
    train,
    train_args,
    write_project,
    write_toy_params,
)

from pipeline.stages import evaluate as evaluate_mod
from pipeline.stages import featurize as featurize_mod
from pipeline.stages import predict as predict_mod
from pipeline.stages import train as train_mod

MAX_LENGTH, STRIDE = 32, 4


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo) -> Path:
    """The toy set, featurized, and a model trained on it for one epoch (tiny GPT-Neo: 512 positions)."""
    root = write_project(tmp_path_factory.mktemp("bad_models"), tiny_gpt_neo, toy_set(16, 4, 4),
                         **{"train.epochs": 1, "tokenize.max_length": MAX_LENGTH, "tokenize.stride": STRIDE})
    prepare(root)
    train(root, "model")
    return root


def one_line(code: int, err: str) -> str:
    """The one `error: ...` line of a failed run (exit status 1, nothing else on stderr)."""
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def edited_copy(project: Path, name: str, edit) -> Path:
    """A copy of the trained model directory with edit(directory) applied."""
    target = project / f"bad_{name}"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(project / "model", target)
    edit(target)
    return target


def edit_json(file: str, change):
    def edit(directory: Path) -> None:
        data = json.loads((directory / file).read_text())
        change(data)
        (directory / file).write_text(json.dumps(data))
    return edit


def meta(**values):
    return edit_json("multitask.json", lambda m: m.update(values))


def config(**values):
    return edit_json("config.json", lambda c: c.update(values))


def drop(key: str):
    return edit_json("multitask.json", lambda m: m.pop(key))


def text(file: str, old: str, new: str):
    def edit(directory: Path) -> None:
        (directory / file).write_text((directory / file).read_text().replace(old, new, 1))
    return edit


def flip_byte(directory: Path) -> None:
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01
    weights.write_bytes(bytes(data))


def delete_checksum_and_flip_a_byte(directory: Path) -> None:
    drop("weights_sha256")(directory)
    flip_byte(directory)


TAGS = ["O", "B-PERSON", "I-PERSON", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-DATE", "I-DATE"]
CASES = {  # name: (edit of the model directory, the error after "error: model directory 'DIR': ")
    # the integrity check cannot be switched off
    "no_checksum": (delete_checksum_and_flip_a_byte,
                    "multitask.json lacks weights_sha256 (restore it, e.g. `dvc checkout`, or re-train)"),
    "checksum_int": (meta(weights_sha256=123),
                     ("multitask.json: weights_sha256 must be the 64-digit hex sha256 of model.safetensors, got "
                     "integer 123 (restore multitask.json, e.g. `dvc checkout`, or re-train)")),
    "checksum_short": (meta(weights_sha256="abc"),
                       ("multitask.json: weights_sha256 must be the 64-digit hex sha256 of model.safetensors, got "
                       "string 'abc' (restore multitask.json, e.g. `dvc checkout`, or re-train)")),
    "checksum_null": (meta(weights_sha256=None),
                      ("multitask.json: weights_sha256 must be the 64-digit hex sha256 of model.safetensors, got "
                      "null (restore multitask.json, e.g. `dvc checkout`, or re-train)")),
    "flipped_byte": (flip_byte, ("corrupted model.safetensors: its checksum does not match the one recorded at "
                                "training time (re-train or restore it, e.g. `dvc checkout`)")),
    # the tokenize settings: params' own rules and words
    "max_length_0": (meta(max_length=0), "multitask.json: 'max_length' must be >= 8 (got 0)"),
    "max_length_string": (meta(max_length="32"),
                          "multitask.json: 'max_length' must be an integer, got string '32' (remove the quotes)"),
    "max_length_float": (meta(max_length=32.0), "multitask.json: 'max_length' must be an integer, got number 32.0"),
    "stride_equal": (meta(stride=MAX_LENGTH),
                     "multitask.json: 'stride' must be < max_length / 2 (got 32 with max_length 32)"),
    "stride_above": (meta(stride=100), "multitask.json: 'stride' must be < max_length / 2 (got 100 with max_length 32)"),
    "stride_negative": (meta(stride=-1), "multitask.json: 'stride' must be >= 0 (got -1)"),
    "label_subwords": (meta(label_subwords="middle"),
                       "multitask.json: 'label_subwords' must be one of first, last, all (got 'middle')"),
    "misaligned_null": (meta(misaligned=None), "multitask.json: 'misaligned' must be a string, got null"),
    "max_length_over_positions": (meta(max_length=600),
                                  ("multitask.json: max_length 600 is above the position limit of the encoder in "
                                  "config.json (512 tokens, special tokens included)")),
    # labels
    "topics_string": (meta(topics="travel"), "multitask.json: 'topics' must be a list, got string 'travel'"),
    "topics_ints": (meta(topics=[1, 2, 3, 4]),
                    "multitask.json: 'topics' must be a non-empty list of non-empty strings (got [1, 2, 3, 4])"),
    "topics_empty": (meta(topics=[]), "multitask.json: 'topics' must be a non-empty list of non-empty strings (got [])"),
    "entities_duplicate": (meta(entities=["PERSON", "LOC", "ORG", "LOC"]),
                           "multitask.json: 'entities' has duplicates: LOC (got ['PERSON', 'LOC', 'ORG', 'LOC'])"),
    "tags_reordered": (meta(tags=["O", *reversed(TAGS[1:])]),
                       ("multitask.json: tags array ['O', 'I-DATE', 'B-DATE', 'I-ORG', 'B-ORG', 'I-LOC', 'B-LOC'... "
                       "(25 more characters) do not match entities array ['PERSON', 'LOC', 'ORG', 'DATE'] (expected "
                       "O, B-PERSON, I-PERSON, B-LOC, I-LOC, B-ORG, I-ORG, B-DATE, I-DATE)")),
    "entities_without_tags": (meta(entities=["PERSON", "LOC"]),
                              ("multitask.json: tags array ['O', 'B-PERSON', 'I-PERSON', 'B-LOC', 'I-LOC', 'B-ORG', "
                              "'I-... (25 more characters) do not match entities array ['PERSON', 'LOC'] (expected O, "
                              "B-PERSON, I-PERSON, B-LOC, I-LOC)")),
    "tags_string": (meta(tags="O"),
                    ("multitask.json: tags string 'O' do not match entities array ['PERSON', 'LOC', 'ORG', 'DATE'] "
                    "(expected O, B-PERSON, I-PERSON, B-LOC, I-LOC, B-ORG, I-ORG, B-DATE, I-DATE)")),
    # the rest of the layout
    "n_prefix_negative": (meta(n_prefix=-1), "multitask.json: n_prefix must be a non-negative integer, got integer -1"),
    "n_prefix_string": (meta(n_prefix="0"), "multitask.json: n_prefix must be a non-negative integer, got string '0'"),
    "n_prefix_bool": (meta(n_prefix=False), "multitask.json: n_prefix must be a non-negative integer, got boolean False"),
    "n_prefix_wrong": (meta(n_prefix=1), "the tokenizer's special tokens differ from training (n_prefix 1)"),
    "pooling_unknown": (meta(pooling="max"),
                        "multitask.json: pooling must be one of mean, last, weighted_mean, got string 'max'"),
    "pooling_list": (meta(pooling=["mean"]),
                     "multitask.json: pooling must be one of mean, last, weighted_mean, got array ['mean']"),
    "ner_decode": (meta(ner_decode="crf"),
                   "multitask.json: ner_decode must be one of greedy, viterbi, got string 'crf'"),
    "best_epoch": (meta(best_epoch=-3),
                   "multitask.json: best_epoch must be a non-negative integer or null, got integer -3"),
    "encoder_name": (meta(encoder_name=7), "multitask.json: encoder_name must be a string, got integer 7"),
    "no_stride": (drop("stride"), "multitask.json lacks stride (restore it, e.g. `dvc checkout`, or re-train)"),
    "format_version": (meta(format_version=2), "multitask.json format_version 2, expected 1"),
    "not_an_object": (lambda d: (d / "multitask.json").write_text("[1, 2]"),
                      "multitask.json format_version None, expected 1"),
    "duplicate_key": (text("multitask.json", "{", '{"stride": 4, '),
                      ("unreadable config: multitask.json: invalid JSON: duplicate key 'stride' in one object (only "
                      "one value can be kept)")),
    "nan": (text("multitask.json", '"stride": 4', '"stride": NaN'),
            "unreadable config: multitask.json: invalid JSON: NaN is not a JSON value (use null, or a number)"),
    "truncated_json": (lambda d: (d / "multitask.json").write_text('{"format_version": 1,'),
                       ("unreadable config: multitask.json: invalid JSON: Expecting property name enclosed in double "
                       "quotes at column 22")),
    # config.json against the weights
    "more_layers": (config(num_layers=4, attention_types=[[["global", "local"], 2]],
                           attention_layers=["global", "local"] * 2),
                    ("model.safetensors does not match config.json (26 missing, 0 unexpected tensors; e.g. "
                    "encoder.h.2.ln_1.weight is missing): was config.json edited or replaced? Restore it (e.g. "
                    "`dvc checkout`) or re-train")),
    "fewer_layers": (config(num_layers=1, attention_types=[[["global"], 1]], attention_layers=["global"]),
                     ("model.safetensors does not match config.json (0 missing, 13 unexpected tensors; e.g. "
                     "encoder.h.1.attn.attention.k_proj.weight is not in the config): was config.json edited or "
                     "replaced? Restore it (e.g. `dvc checkout`) or re-train")),
    "hidden_size": (config(hidden_size=64),
                    ("model.safetensors does not match the config: encoder.h.0.attn.attention.k_proj.weight has shape "
                    "[32, 32], multitask.json/config.json need [64, 64]")),
    "vocab_size": (config(vocab_size=10),
                   ("model.safetensors does not match the config: encoder.wte.weight has shape [600, 32], "
                   "multitask.json/config.json need [10, 32]")),
    "positions": (config(max_position_embeddings=16),
                  ("model.safetensors does not match the config: encoder.wpe.weight has shape [512, 32], "
                  "multitask.json/config.json need [16, 32]")),
    "heads": (config(num_heads=3),
              ("config.json describes no model this transformers can build (ValueError: embed_dim must be divisible "
              "by num_heads (got `embed_dim`: 32 and `num_heads`: 3).)")),
    "layers_vs_attention_types": (config(num_layers=3),
                                  ("unreadable config: config.json: Configuration for convolutional module is "
                                  "incorrect. It is required that `len(config.attention_layers)` == "
                                  "`config.num_layers` but is `len(config.attention_layers) = 2`, "
                                  "`config.num_layers = 3`. `conf... (126 more characters)")),
    "model_type": (config(model_type="no-such-model"),
                   ("unreadable config: config.json: The checkpoint you are trying to load has model type "
                   "`no-such-model` but Transformers does not recognize this architecture.")),
    "config_json": (lambda d: (d / "config.json").write_text("{not json"),
                    "unreadable config: config.json: It looks like the config file at "),
    "topics_vs_weights": (meta(topics=["travel", "technology", "politics", "other", "sports"]),
                          ("model.safetensors does not match the config: topic_head.1.bias has shape [4], "
                          "multitask.json/config.json need [5]")),
}


PREFIX_ONLY = {"model_type", "config_json"}  # the rest of the line is transformers' words (version-dependent)


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_model_directory_is_one_line_in_predict_and_evaluate(project, capsys, name):
    edit, message = CASES[name]
    bad = edited_copy(project, name, edit)
    before = {p.name: p.read_bytes() for p in bad.iterdir()}
    capsys.readouterr()
    code = run_stage(predict_mod, project, "--params", "params.yaml", "--model", bad.name,
                     "--output", f"pred_{name}.jsonl", "Tim Cook flew to Paris.")
    line = one_line(code, capsys.readouterr().err)
    assert line.startswith(f"error: model directory '{bad.name}': {message}"), line
    if name not in PREFIX_ONLY:
        assert line == f"error: model directory '{bad.name}': {message}"
    assert not (project / f"pred_{name}.jsonl").exists()
    args = evaluate_args(bad.name, out=f"eval_{name}")
    code = run_stage(evaluate_mod, project, *args)
    assert one_line(code, capsys.readouterr().err) == line  # the same line: one loader, one check
    assert not (project / "metrics" / f"eval_{name}.json").exists()
    assert {p.name: p.read_bytes() for p in bad.iterdir()} == before  # the directory is left as it was


def test_the_unedited_model_loads(project, capsys):
    """The corpus's baseline: the same commands on the trained model succeed."""
    capsys.readouterr()
    assert run_stage(predict_mod, project, "--params", "params.yaml", "--model", "model", "Tim Cook flew to Paris.") == 0
    assert json.loads(capsys.readouterr().out)["sentence"] == "Tim Cook flew to Paris."
    assert run_stage(evaluate_mod, project, *evaluate_args("model", out="eval_good")) == 0


@pytest.mark.parametrize("name, stage", [("more_layers", "predict"), ("no_checksum", "evaluate")])
def test_real_processes_print_one_line_and_no_traceback(project, name, stage):
    bad = edited_copy(project, f"proc_{name}", CASES[name][0])
    args = (["--params", "params.yaml", "--model", bad.name, "hello"] if stage == "predict"
            else evaluate_args(bad.name, out=f"proc_{name}"))
    proc = subprocess.run([sys.executable, "-m", "pipeline", stage, *args], cwd=project, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"error: model directory '{bad.name}': {CASES[name][1]}\n"


# windows longer than the encoder's position table --------------------------------------------------

def test_featurize_refuses_max_length_above_the_position_limit_before_any_work(project, tiny_gpt_neo, capsys):
    write_toy_params(project / "params_long.yaml", tiny_gpt_neo, **{"tokenize.max_length": 600})
    capsys.readouterr()
    code = run_stage(featurize_mod, project, "--params", "params_long.yaml", "--in-dir", "val", "--out-dir", "tok_long",
                     "--metrics", "metrics/featurize_long.json", "--details", "reports/featurize_long.json",
                     "--report", "reports/misaligned_long.jsonl")
    assert one_line(code, capsys.readouterr().err) == (
        f"error: params_long.yaml: 'tokenize.max_length' 600 is above the position limit of encoder "
        f"'{tiny_gpt_neo}' (512 tokens, special tokens included); set tokenize.max_length <= 512")
    assert not any((project / p).exists() for p in ("tok_long", "metrics/featurize_long.json",
                                                     "reports/misaligned_long.jsonl"))


def test_featurize_at_the_position_limit_runs(project, tiny_gpt_neo, capsys):
    write_toy_params(project / "params_512.yaml", tiny_gpt_neo, **{"tokenize.max_length": 512})
    assert run_stage(featurize_mod, project, "--params", "params_512.yaml", "--in-dir", "val", "--out-dir", "tok_512",
                     "--metrics", "metrics/featurize_512.json", "--details", "reports/featurize_512.json",
                     "--report", "reports/misaligned_512.jsonl") == 0
    assert json.loads((project / "tok_512" / "meta.json").read_text())["max_length"] == 512


def test_train_refuses_features_longer_than_the_encoders_positions(project, tiny_gpt_neo, capsys):
    """Features made for another encoder config (here: meta.json says 600) stop train before its first step."""
    shutil.copytree(project / "tok", project / "tok_600", dirs_exist_ok=True)
    meta_path = project / "tok_600" / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "max_length": 600}))
    args = train_args("long")
    args[args.index("tok")] = "tok_600"
    capsys.readouterr()
    assert one_line(run_stage(train_mod, project, *args), capsys.readouterr().err) == (
        f"error: tok_600/meta.json: max_length 600 is above the position limit of encoder '{tiny_gpt_neo}' "
        f"(512 tokens, special tokens included); set tokenize.max_length <= 512 and re-run featurize (`dvc repro`)")
    assert not (project / "long").exists() and not (project / "ckpt_long").exists()


def build_tiny_llama(out_dir: Path, tokenizer_dir: Path) -> Path:
    """A tiny rotary-position encoder (no position table): max_position_embeddings is no hard limit."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.save_pretrained(out_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaModel(cfg).save_pretrained(out_dir)
    return out_dir


def test_an_encoder_without_a_position_table_is_not_blocked(project, tmp_path, tiny_gpt_neo):
    from pipeline.storage.hub import encoder_position_limit

    llama = build_tiny_llama(tmp_path / "llama", tiny_gpt_neo)
    assert encoder_position_limit(str(llama)) is None
    write_toy_params(project / "params_llama.yaml", llama, **{"tokenize.max_length": 600})
    assert run_stage(featurize_mod, project, "--params", "params_llama.yaml", "--in-dir", "val",
                     "--out-dir", "tok_llama", "--metrics", "metrics/featurize_llama.json",
                     "--details", "reports/featurize_llama.json", "--report", "reports/misaligned_llama.jsonl") == 0


# encoders with pickle weights ---------------------------------------------------------------------

def pickle_only_copy(encoder: Path, target: Path) -> Path:
    """The encoder with its weights as pytorch_model.bin (torch.save of the state dict) and no
    model.safetensors: what `save_pretrained(safe_serialization=False)` wrote before transformers 5."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(encoder, target)
    torch.save(load_file(str(target / "model.safetensors")), target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()
    return target


def test_train_loads_pickle_weights_only_with_encoder_allow_pickle(tmp_path, tiny_gpt_neo, capsys):
    encoder = pickle_only_copy(tiny_gpt_neo, tmp_path / "enc_bin")
    root = write_project(tmp_path / "proj", encoder, toy_set(8, 2, 0), **{"train.epochs": 1,
                                                                          "tokenize.max_length": MAX_LENGTH,
                                                                          "tokenize.stride": STRIDE})
    prepare(root)  # featurize reads the tokenizer and the config, never the weights
    capsys.readouterr()
    assert one_line(run_stage(train_mod, root, *train_args()), capsys.readouterr().err) == (
        f"error: cannot load encoder from directory '{encoder}': its weights are only in pickle format "
        f"(pytorch_model.bin), and loading a pickle can run code hidden in the file; convert them to safetensors "
        f"(load the model once and `save_pretrained(dir)`), or set encoder.allow_pickle: true in params.yaml if "
        f"you trust the file")
    write_toy_params(root / "params_pickle.yaml", encoder, **{"train.epochs": 1, "tokenize.max_length": MAX_LENGTH,
                                                              "tokenize.stride": STRIDE, "encoder.allow_pickle": True})
    assert run_stage(train_mod, root, *train_args("model", "params_pickle.yaml")) == 0
    assert (root / "model" / "model.safetensors").is_file()  # the trained model is safetensors whatever came in
