"""params.yaml typed models and check (pipeline/storage/params.py): every bad value fails in one clear line."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from pathlib import Path

import pydantic
import pytest
import yaml

from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.params import LEAF_KEYS, Params, TrainParams, check, load, tag_names, with_overrides

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def tree_with(**overrides):
    """A copy of the repository's params with dotted keys set (value DELETE removes the key)."""
    tree = copy.deepcopy(BASE)
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return tree


DELETE = object()


def error_of(tree) -> str:
    with pytest.raises(PipelineError) as info:
        check(tree, "params.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_repository_params_are_valid():
    assert check(copy.deepcopy(BASE)).tree() == BASE
    assert load(REPO / "params.yaml").tree() == BASE
    assert list(load(REPO / "params.yaml").tree()) == list(BASE)   # same section order as the file


def test_every_model_key_is_in_the_repository_params_and_back():
    def flat(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"
    assert list(flat(BASE)) == list(LEAF_KEYS)   # same keys, same order


# ---- unknown keys --------------------------------------------------------------------------------

def test_unknown_key_learning_rate_suggests_both_learning_rates():
    # not train.lr_layer_decay, an lr_ key that is a factor
    assert error_of(tree_with(**{"train.learning_rate": 1e-3})) == \
        "params.yaml: unknown key 'train.learning_rate'; did you mean 'train.lr_encoder' or 'train.lr_heads'?"


@pytest.mark.parametrize("key, suggestion", [
    ("train.epoch", "train.epochs"),
    ("train.batchsize", "train.batch_size"),
    ("tokenize.maxlength", "tokenize.max_length"),
    ("data.split.train", "data.split.test"),
])
def test_unknown_key_suggests_the_closest(key, suggestion):
    assert error_of(tree_with(**{key: 1})) == f"params.yaml: unknown key '{key}'; did you mean '{suggestion}'?"


def test_unknown_section():
    msg = error_of(tree_with(trian={"epochs": 3}))
    assert msg.startswith("params.yaml: unknown section 'trian'; did you mean 'train'? (sections: labels, data,")


def test_unknown_section_without_a_close_match_lists_sections():
    msg = error_of(tree_with(zzz=1))
    assert msg == ("params.yaml: unknown section 'zzz' (sections: labels, data, validate, encoder, tokenize, "
                   "train, evaluate, predict, select)")


@pytest.mark.parametrize("value, expected", [(3, "integer 3"), (None, "null"), ([1, 2], "list [1, 2]")])
def test_section_that_is_not_a_mapping(value, expected):
    tree = tree_with()
    tree["train"] = value
    assert error_of(tree) == f"params.yaml: 'train' must be a section (a mapping of keys), got {expected}"


def test_nested_section_that_is_not_a_mapping():
    assert error_of(tree_with(**{"data.split": 0.1})) == \
        "params.yaml: 'data.split' must be a section (a mapping of keys), got number 0.1"


# ---- types ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("train.epochs", "3", "'train.epochs' must be an integer, got string '3' (remove the quotes)"),
    ("train.epochs", 3.0, "'train.epochs' must be an integer, got number 3.0"),
    ("train.epochs", True, "'train.epochs' must be an integer, got boolean True"),      # bool is not int
    ("train.lr_heads", "1e-3", "'train.lr_heads' must be a number, got string '1e-3' (remove the quotes)"),
    ("train.alpha", False, "'train.alpha' must be a number, got boolean False"),
    ("train.resume", 1, "'train.resume' must be true or false, got integer 1"),        # int is not bool
    ("train.resume", "yes", "'train.resume' must be true or false, got string 'yes'"),
    ("encoder.name", None, "'encoder.name' must be a string, got null"),
    ("labels.topics", "travel", "'labels.topics' must be a list, got string 'travel'"),
])
def test_wrong_types(key, value, expected):
    assert error_of(tree_with(**{key: value})) == f"params.yaml: {expected}"


def test_int_is_accepted_where_a_float_is_expected():
    p = check(tree_with(**{"train.lr_encoder": 0, "data.split.dev": 0}))
    assert p.train.lr_encoder == 0 and isinstance(p.train.lr_encoder, float)
    assert isinstance(p.data.split.dev, float)


# ---- ranges and choices --------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, expected", [
    ("train.batch_size", 0, "'train.batch_size' must be >= 1 (got 0)"),
    ("train.epochs", -1, "'train.epochs' must be >= 1 (got -1)"),
    ("train.alpha", -0.5, "'train.alpha' must be >= 0.0 (got -0.5)"),
    ("train.lr_encoder", float("nan"), "'train.lr_encoder' must be >= 0.0 (got nan)"),
    ("data.split.dev", 1.0, "'data.split.dev' must be in [0.0, 1.0) (got 1.0)"),
    ("data.split.test", -0.1, "'data.split.test' must be in [0.0, 1.0) (got -0.1)"),
    ("train.warmup_ratio", 1, "'train.warmup_ratio' must be in [0.0, 1.0) (got 1)"),
    ("validate.max_errors_shown", 0, "'validate.max_errors_shown' must be >= 1 (got 0)"),
    ("tokenize.max_length", 4, "'tokenize.max_length' must be >= 8 (got 4)"),
    ("encoder.pooling", "max", "'encoder.pooling' must be one of mean, last, weighted_mean (got 'max')"),
    ("encoder.pooling", "Mean", "'encoder.pooling' must be one of mean, last, weighted_mean (got 'Mean')"),
    ("validate.on_error", "skip", "'validate.on_error' must be one of fail, drop (got 'skip')"),
    ("train.device", "gpu", "'train.device' must be one of auto, cpu, cuda (got 'gpu')"),
    ("train.loss_weighting", "learned", "'train.loss_weighting' must be one of fixed, uncertainty, normalized"),
    ("train.task_sampling", "uniform", "'train.task_sampling' must be one of natural, temperature, alternating"),
    ("train.sampling_temperature", 0.5, "'train.sampling_temperature' must be >= 1.0 (got 0.5)"),
    ("train.ema_decay", 1.0, "'train.ema_decay' must be in [0.0, 1.0) (got 1.0)"),
    ("train.ema_decay", -0.1, "'train.ema_decay' must be in [0.0, 1.0) (got -0.1)"),
    ("train.lr_layer_decay", 0, "'train.lr_layer_decay' must be in (0.0, 1.0] (got 0.0)"),
    ("train.lr_layer_decay", 1.5, "'train.lr_layer_decay' must be in (0.0, 1.0] (got 1.5)"),
    ("train.lr_layer_decay", float("nan"), "'train.lr_layer_decay' must be in (0.0, 1.0] (got nan)"),
    ("train.topic_dropout", 1.0, "'train.topic_dropout' must be in [0.0, 1.0) (got 1.0)"),
    ("labels.topics", ["travel", "other", "travel"], "'labels.topics' has duplicates: travel"),
    ("labels.entities", [], "'labels.entities' must be a non-empty list of non-empty strings (got [])"),
    ("labels.entities", ["LOC", ""], "'labels.entities' must be a non-empty list of non-empty strings"),
    ("labels.entities", ["LOC", 3], "'labels.entities' must be a non-empty list of non-empty strings"),
    ("data.raw_dir", "  ", "'data.raw_dir' must not be empty (got '  ')"),
])
def test_ranges_and_choices(key, value, expected):
    assert error_of(tree_with(**{key: value})).startswith(f"params.yaml: {expected}")


def test_boundaries_that_are_allowed():
    check(tree_with(**{"train.batch_size": 1, "train.alpha": 0.0, "train.patience": 0, "data.split.dev": 0.0,
                       "data.split.test": 0.0, "tokenize.stride": 0, "tokenize.max_length": 8}))
    check(tree_with(**{"train.sampling_temperature": 1.0, "train.ema_decay": 0.0, "train.lr_layer_decay": 1.0,
                       "train.topic_dropout": 0.0}))
    check(tree_with(**{"train.sampling_temperature": 50, "train.ema_decay": 0.9999, "train.lr_layer_decay": 0.01}))


@pytest.mark.parametrize("dev, test", [(0.5, 0.5), (0.9, 0.3)])
def test_dev_plus_test_must_leave_training_data(dev, test):
    assert error_of(tree_with(**{"data.split.dev": dev, "data.split.test": test})) == \
        f"params.yaml: data.split.dev + data.split.test must be < 1 (got {dev} + {test})"


def test_dev_plus_test_just_below_one_is_fine():
    check(tree_with(**{"data.split.dev": 0.5, "data.split.test": 0.49}))


def test_alpha_and_beta_both_zero():
    assert error_of(tree_with(**{"train.alpha": 0, "train.beta": 0.0})) == \
        "params.yaml: train.alpha and train.beta are both 0: nothing to train"
    check(tree_with(**{"train.alpha": 0}))   # one task alone is fine


def test_stride_must_be_below_half_the_window():
    assert error_of(tree_with(**{"tokenize.stride": 64, "tokenize.max_length": 128})) == \
        "params.yaml: 'tokenize.stride' must be < tokenize.max_length / 2 (got 64 with max_length 128)"


def test_missing_key():
    assert error_of(tree_with(**{"train.epochs": DELETE})) == "params.yaml: missing key 'train.epochs'"


def test_missing_section_counts_the_rest():
    tree = tree_with()
    del tree["predict"]
    assert error_of(tree) == "params.yaml: missing key 'predict.input' (and 5 more)"


def test_not_a_mapping():
    assert error_of([1, 2]) == "params.yaml: expected a mapping of sections, got list"
    assert error_of(None) == "params.yaml: empty file; expected a mapping of sections"


# ---- load(): files ---------------------------------------------------------------------------------

def load_error(path) -> str:
    with pytest.raises(PipelineError) as info:
        load(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_invalid_yaml_names_the_line(tmp_path):
    text = re.sub(r"^  epochs: \d+", "  epochs: [4", (REPO / "params.yaml").read_text(encoding="utf-8"), count=1, flags=re.MULTILINE)
    lineno = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("  epochs: [4"))
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    msg = load_error(tmp_path / "p.yaml")
    m = re.fullmatch(rf"{re.escape(str(tmp_path / 'p.yaml'))}:(\d+): invalid YAML: .+", msg)
    assert m, msg
    assert int(m.group(1)) >= lineno   # the parser notices at or after the bad line


def test_bad_indentation_names_the_line(tmp_path):
    (tmp_path / "p.yaml").write_text("train:\n  epochs: 4\n batch_size: 16\n", encoding="utf-8")
    assert load_error(tmp_path / "p.yaml").startswith(f"{tmp_path / 'p.yaml'}:3: invalid YAML: ")


def test_duplicate_key_is_an_error_not_silently_overridden(tmp_path):
    text = re.sub(r"^(  epochs: \d+)", r"\1\n  epochs: 9", (REPO / "params.yaml").read_text(encoding="utf-8"), count=1, flags=re.MULTILINE)
    lineno = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("  epochs: 9"))
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    assert load_error(tmp_path / "p.yaml") == \
        f"{tmp_path / 'p.yaml'}:{lineno}: invalid YAML: duplicate key 'epochs' (first at line {lineno - 1})"


# ---- hostile YAML: each refused in one line, at once (a child process with a timeout, so a hang fails) -------

TEXT = (REPO / "params.yaml").read_text(encoding="utf-8")
EPOCHS_LINE = next(i for i, line in enumerate(TEXT.splitlines(), 1) if line.startswith("  epochs: "))
TOPICS_LINE = next(i for i, line in enumerate(TEXT.splitlines(), 1) if line.startswith("  topics: "))
LAUGHS = ("  topics: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
          + "".join(f"  t{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)))


def load_in_child(path: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """load() in a child process: a hang or a memory blow-up is killed at `timeout` (and fails the test)."""
    code = ("import sys\nfrom pipeline.storage.params import load\nfrom pipeline.storage.errors import PipelineError\n"
            "try:\n    load(sys.argv[1])\nexcept PipelineError as exc:\n    print(exc)\n    sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def edited(tmp_path, pattern: str, repl: str) -> Path:
    text, n = re.subn(pattern, repl, TEXT, count=1, flags=re.MULTILINE)
    assert n == 1, pattern
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "p.yaml"


@pytest.mark.parametrize("pattern, repl, line, problem", [
    (r"^  epochs: (\d+)", r"  epochs: &e \1\n  patience_copy: *e", EPOCHS_LINE,
     "anchor &e is not allowed in params (no anchors or aliases: write each value out)"),
    (r"^  epochs: (\d+)", r"  epochs: *e", EPOCHS_LINE,
     "alias *e is not allowed in params (no anchors or aliases: write each value out)"),
    (r"^  topics: .*\n", LAUGHS, TOPICS_LINE,     # a billion laughs inside a known leaf: refused before expanding
     "anchor &a is not allowed in params (no anchors or aliases: write each value out)"),
    (r"^  epochs: (\d+)", r"  ? [a, b]\n  : 1\n  epochs: \1", EPOCHS_LINE,
     "a complex key (`? [a, b]` or a mapping as a key) is not allowed in params: keys are names"),
    (r"^  epochs: (\d+)", r"  ? {a: 1}\n  : 1\n  epochs: \1", EPOCHS_LINE,
     "a complex key (`? [a, b]` or a mapping as a key) is not allowed in params: keys are names"),
    (r"^  epochs: (\d+)", "  epochs: " + "[" * 5000 + "]" * 5000, EPOCHS_LINE, "nested more than 50 levels deep"),
    (r"^  epochs: (\d+)", "  epochs: " + "{a: " * 5000 + "1" + "}" * 5000, EPOCHS_LINE,
     "nested more than 50 levels deep"),
])
def test_hostile_yaml_is_one_line_at_once(tmp_path, pattern, repl, line, problem):
    path = edited(tmp_path, pattern, repl)
    t0 = time.monotonic()
    proc = load_in_child(path)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 1
    assert proc.stdout == f"{path}:{line}: invalid YAML: {problem}\n"


def test_anchors_are_refused_while_composing_before_anything_is_built(tmp_path):
    # the check reads the parser's events: the anchored value is never constructed
    path = edited(tmp_path, r"^  topics: .*\n", LAUGHS)
    assert load_error(path) == f"{path}:{TOPICS_LINE}: invalid YAML: anchor &a is not allowed in params " \
        "(no anchors or aliases: write each value out)"


def test_nesting_up_to_the_limit_is_still_read():
    n = params_mod.MAX_DEPTH - 2       # levels: the mapping, n lists, the scalar
    nested = 1
    for _ in range(n):
        nested = [nested]
    tree = yaml.load("a: " + "[" * n + "1" + "]" * n, Loader=params_mod._UniqueKeyLoader)
    assert tree == {"a": nested}
    with pytest.raises(yaml.YAMLError, match="nested more than 50 levels deep"):
        yaml.load("a: " + "[" * (n + 1) + "1" + "]" * (n + 1), Loader=params_mod._UniqueKeyLoader)


@pytest.mark.parametrize("key, value, expected", [
    ("train.epochs", list(range(100_000)), ("'train.epochs' must be an integer, got list [0, 1, 2, 3, 4, 5, 6, 7, 8, "
     "9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 2... (688810 more characters)")),
    ("encoder.pooling", "x" * 10_000, "'encoder.pooling' must be one of mean, last, weighted_mean (got 'xxxxxxxxxx"),
    ("train.batch_size", -int("9" * 4000), "'train.batch_size' must be >= 1 (got -99999999999999999"),
    ("data.raw_dir", " " * 10_000, "'data.raw_dir' must not be empty (got '       "),
])
def test_values_in_params_messages_are_capped(key, value, expected):
    msg = error_of(tree_with(**{key: value}))
    assert msg.startswith(f"params.yaml: {expected}"), msg[:300]
    assert len(msg) < 250, len(msg)


def test_a_huge_unknown_key_is_capped():
    msg = error_of(tree_with(**{"train." + "k" * 10_000: 1}))
    assert msg.startswith("params.yaml: unknown key 'train.kkkk") and len(msg) < 300


def test_missing_file(tmp_path):
    assert load_error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: not found (run from the repository root)"


def test_empty_file(tmp_path):
    (tmp_path / "p.yaml").write_text("# only a comment\n", encoding="utf-8")
    assert load_error(tmp_path / "p.yaml") == f"{tmp_path / 'p.yaml'}: empty file; expected a mapping of sections"


def test_invalid_utf8(tmp_path):
    (tmp_path / "p.yaml").write_bytes(b"train:\n  epochs: \xff\n")
    assert load_error(tmp_path / "p.yaml") == f"{tmp_path / 'p.yaml'}: invalid UTF-8 (byte 0xff at offset 17)"


def test_a_directory_instead_of_a_file(tmp_path):
    assert load_error(tmp_path).startswith(f"{tmp_path}: cannot read (")


def test_load_reports_schema_errors_with_the_path(tmp_path):
    text = (REPO / "params.yaml").read_text(encoding="utf-8").replace("  batch_size: 16", "  batch_size: 0", 1)
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    assert load_error(tmp_path / "p.yaml") == f"{tmp_path / 'p.yaml'}: 'train.batch_size' must be >= 1 (got 0)"


def test_tag_names():
    assert tag_names(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.mark.parametrize("written, value", [("1e-4", 1e-4), ("5E-5", 5e-5), ("-2e3", -2000.0), ("3.0e-5", 3e-5)])
def test_exponent_floats_without_a_dot_load_as_numbers(tmp_path, written, value):
    # YAML 1.1 would read `1e-4` as a string; people write learning rates that way
    text = (REPO / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(re.sub(r"lr_encoder: \S+", f"lr_encoder: {written}", text))
    if value < 0:
        # read as the number -2000.0 (then refused as negative), not as the string '-2e3'
        with pytest.raises(PipelineError, match=r"lr_encoder' must be >= 0\.0 \(got -2000\.0\)"):
            load(path)
    else:
        assert load(path).train.lr_encoder == pytest.approx(value)


def test_with_overrides_sets_dotted_keys_on_a_copy():
    tree = {"train": {"epochs": 8, "lr_encoder": 1e-4}, "encoder": {"name": "x"}}
    out = with_overrides(tree, {"train.epochs": 2, "encoder.name": "y"})
    assert out == {"train": {"epochs": 2, "lr_encoder": 1e-4}, "encoder": {"name": "y"}}
    assert tree["train"]["epochs"] == 8 and tree["encoder"]["name"] == "x"  # the input is left alone


# ---- the typed models ------------------------------------------------------------------------------

def test_typed_access_gives_python_types(tmp_path):
    text = re.sub(r"lr_encoder: \S+", "lr_encoder: 1", (REPO / "params.yaml").read_text(encoding="utf-8"))
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    p = load(tmp_path / "p.yaml")
    assert isinstance(p, Params) and isinstance(p.train, TrainParams)
    assert isinstance(p.train.lr_encoder, float) and p.train.lr_encoder == 1.0   # YAML `1` for a float key
    assert isinstance(p.train.epochs, int) and not isinstance(p.train.epochs, bool)
    assert p.labels.topics == BASE["labels"]["topics"] and all(isinstance(t, str) for t in p.labels.topics)
    assert p.data.split.dev == BASE["data"]["split"]["dev"]
    assert isinstance(p.train.resume, bool) and isinstance(p.encoder.name, str)


def test_validate_section_is_an_attribute_and_a_key():
    p = check(copy.deepcopy(BASE))
    assert p.validate.on_error == BASE["validate"]["on_error"]
    assert p.validate is p.validate_
    assert p.model_dump()["validate"] == BASE["validate"]
    assert "validate_" not in p.tree()


def test_defining_the_models_prints_no_pydantic_warning():
    # a field named `validate` would warn ("shadows an attribute in parent BaseModel"); import afresh
    code = "import pipeline.storage.params as m; m.load('params.yaml').validate"
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0 and run.stderr == "", run.stderr


def test_models_are_frozen():
    p = check(copy.deepcopy(BASE))
    with pytest.raises(pydantic.ValidationError):
        p.train.epochs = 1
    with pytest.raises(pydantic.ValidationError):
        p.train = p.train
    assert p.train.epochs == BASE["train"]["epochs"]


def test_every_model_forbids_extra_keys_and_is_strict():
    for model in {Params} | {type(getattr(check(copy.deepcopy(BASE)), s)) for s in Params.model_fields}:
        assert model.model_config["extra"] == "forbid" and model.model_config["strict"]
        assert model.model_config["frozen"]


@pytest.mark.parametrize("where", [(), ("train",), ("data", "split")])
def test_extra_forbid_rejects_unknown_keys_without_the_pre_check(where):
    tree = copy.deepcopy(BASE)
    node = tree
    for key in where:
        node = node[key]
    node["surplus"] = 1
    with pytest.raises(pydantic.ValidationError) as info:
        Params.model_validate(tree)
    assert [e["type"] for e in info.value.errors()] == ["extra_forbidden"]


@pytest.mark.parametrize("key", ["train.epochs", "tokenize.stride", "train.seed", "train.lr_heads", "data.split.dev"])
def test_a_bool_is_refused_for_numbers_even_without_the_pre_check(key):
    with pytest.raises(pydantic.ValidationError):
        Params.model_validate(tree_with(**{key: True}))
    assert "must be" in error_of(tree_with(**{key: False}))


def test_a_number_is_refused_for_a_string():
    assert error_of(tree_with(**{"encoder.name": 3})) == "params.yaml: 'encoder.name' must be a string, got integer 3"
    assert error_of(tree_with(**{"encoder.pooling": 1})) == \
        "params.yaml: 'encoder.pooling' must be a string, got integer 1"


def test_a_bad_key_is_reported_before_a_missing_key_and_before_cross_key_rules():
    tree = tree_with(**{"train.alpha": 0, "train.beta": 0, "data.split.dev": 0.6, "data.split.test": 0.6})
    assert error_of(tree).startswith("params.yaml: data.split.dev + data.split.test must be < 1")
    tree = tree_with(**{"train.alpha": 0, "train.beta": 0, "tokenize.stride": 64})
    assert error_of(tree) == "params.yaml: train.alpha and train.beta are both 0: nothing to train"
    del tree["predict"]
    assert error_of(tree) == "params.yaml: missing key 'predict.input' (and 5 more)"
    tree["evaluate"]["batch_size"] = 0
    assert error_of(tree) == "params.yaml: 'evaluate.batch_size' must be >= 1 (got 0)"


def test_a_whole_nested_section_missing():
    tree = tree_with()
    del tree["data"]["split"]
    assert error_of(tree) == "params.yaml: missing key 'data.split.dev' (and 2 more)"


def test_tree_is_a_plain_copy():
    p = check(copy.deepcopy(BASE))
    tree = p.tree()
    tree["labels"]["topics"].append("extra")
    assert p.labels.topics == BASE["labels"]["topics"]
    assert check(with_overrides(p.tree(), {"train.epochs": 3})).train.epochs == 3


def test_params_tag_names():
    p = check(tree_with(**{"labels.entities": ["PER", "LOC"]}))
    assert p.tag_names == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"] == tag_names(p.labels.entities)
