"""params.yaml: the one config. Checked in full before any stage does work, so a typo made by
hand or by `dvc exp run -S` fails in one clear line instead of being silently ignored."""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path

import yaml

from pipeline.files import PipelineError

# Each leaf: (kind, check, description). kind is the Python type expected.
# check is a callable returning an error string or None.


def _choice(*options):
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _at_least(lo):
    return lambda v: None if v >= lo else f"must be >= {lo}"


def _range(lo, hi):
    return lambda v: None if lo <= v < hi else f"must be in [{lo}, {hi})"


def _labels(v):
    if not v or not all(isinstance(x, str) and x.strip() for x in v):
        return "must be a non-empty list of non-empty strings"
    dups = sorted({x for x in v if v.count(x) > 1})
    return f"has duplicates: {', '.join(dups)}" if dups else None


def _nonempty(v):
    return None if v.strip() else "must not be empty"


SCHEMA: dict[str, tuple[type, object]] = {
    "labels.topics": (list, _labels),
    "labels.entities": (list, _labels),
    "data.raw_dir": (str, _nonempty),
    "data.split.dev": (float, _range(0.0, 1.0)),
    "data.split.test": (float, _range(0.0, 1.0)),
    "data.split.seed": (int, None),
    "validate.on_error": (str, _choice("fail", "drop")),
    "validate.max_errors_shown": (int, _at_least(1)),
    "encoder.name": (str, _nonempty),
    "encoder.pooling": (str, _choice("mean", "last", "weighted_mean")),
    "encoder.trust_remote_code": (bool, None),
    "tokenize.max_length": (int, _at_least(8)),
    "tokenize.stride": (int, _at_least(0)),
    "tokenize.label_subwords": (str, _choice("first", "last", "all")),
    "tokenize.misaligned": (str, _choice("expand", "contract", "drop")),
    "train.epochs": (int, _at_least(1)),
    "train.batch_size": (int, _at_least(1)),
    "train.grad_accum": (int, _at_least(1)),
    "train.lr_encoder": (float, _at_least(0.0)),
    "train.lr_heads": (float, _at_least(0.0)),
    "train.weight_decay": (float, _at_least(0.0)),
    "train.warmup_ratio": (float, _range(0.0, 1.0)),
    "train.max_grad_norm": (float, _at_least(0.0)),
    "train.alpha": (float, _at_least(0.0)),
    "train.beta": (float, _at_least(0.0)),
    "train.seed": (int, None),
    "train.freeze": (str, _choice("none", "encoder", "top_k")),
    "train.unfreeze_top_layers": (int, _at_least(0)),
    "train.select_metric": (str, _choice("mean_f1", "topic_macro_f1", "ner_f1", "loss")),
    "train.patience": (int, _at_least(0)),
    "train.group_by_length": (bool, None),
    "train.device": (str, _choice("auto", "cpu", "cuda")),
    "train.resume": (bool, None),
    "evaluate.batch_size": (int, _at_least(1)),
    "predict.input": (str, _nonempty),
    "predict.batch_size": (int, _at_least(1)),
    "predict.max_chars": (int, _at_least(1)),
    "predict.max_records": (int, _at_least(1)),
}


SECTIONS = sorted({k.rpartition(".")[0] for k in SCHEMA} | {k.split(".")[0] for k in SCHEMA})


def _flatten(tree: dict, prefix: str = "", source: str = "params.yaml") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if any(k.startswith(f"{dotted}.") for k in SCHEMA):  # a section, not a leaf
            if not isinstance(value, dict):
                raise PipelineError(f"{source}: '{dotted}' must be a section (a mapping of keys), "
                                    f"got {_got(value)}")
            flat.update(_flatten(value, dotted + ".", source))
        else:
            flat[dotted] = value
    return flat


def with_overrides(tree: dict, overrides: dict) -> dict:
    """A copy of a params tree with dotted keys set: with_overrides(tree, {"train.epochs": 1})."""
    out = copy.deepcopy(tree)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return out


def _suggest(key: str) -> str:
    section, _, leaf = key.rpartition(".")
    if not section:  # an unknown top-level section
        close = difflib.get_close_matches(key, [k for k in SECTIONS if "." not in k], n=1, cutoff=0.6)
        top = sorted({k.split(".")[0] for k in SCHEMA}, key=[k.split(".")[0] for k in SCHEMA].index)
        return (f"; did you mean '{close[0]}'?" if close else "") + f" (sections: {', '.join(top)})"
    leaf = leaf.replace("learning_rate", "lr")  # the usual spelling elsewhere
    same_section = [k for k in SCHEMA if k.rpartition(".")[0] == section]
    pool = same_section or list(SCHEMA)
    leaves = {k.rpartition(".")[2]: k for k in pool}
    close = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.4)
    if close and close[0].startswith("lr_"):  # both learning rates are candidates
        close = [name for name in leaves if name.startswith("lr_")]
    if not close:
        close_keys = difflib.get_close_matches(key, SCHEMA, n=1, cutoff=0.5)
        return f"; did you mean '{close_keys[0]}'?" if close_keys else ""
    return "; did you mean " + " or ".join(f"'{leaves[c]}'" for c in close) + "?"


_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}


def _yaml_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}.get(
        type(value), type(value).__name__)


def _got(value) -> str:
    return "null" if value is None else f"{_yaml_type(value)} {value!r}"


def check(tree: dict, source: str = "params.yaml") -> dict:
    """Return the params tree if every key is known and well-typed; else raise one clear line."""
    if tree is None:
        raise PipelineError(f"{source}: empty file; expected a mapping of sections")
    if not isinstance(tree, dict):
        raise PipelineError(f"{source}: expected a mapping of sections, got {_yaml_type(tree)}")
    flat = _flatten(tree, source=source)
    for key, value in flat.items():
        if key not in SCHEMA:
            hint = _suggest(key)
            what = "key" if "." in key else "section"
            raise PipelineError(f"{source}: unknown {what} '{key}'{hint}")
        kind, rule = SCHEMA[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            hint = ' (remove the quotes)' if isinstance(value, str) and kind in (int, float) else ''
            raise PipelineError(
                f"{source}: '{key}' must be {_KIND[kind]}, got {_got(value)}{hint}")
        problem = rule(value) if rule else None
        if problem:
            raise PipelineError(f"{source}: '{key}' {problem} (got {value!r})")
    missing = [k for k in SCHEMA if k not in flat]
    if missing:
        raise PipelineError(f"{source}: missing key '{missing[0]}'"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if flat["data.split.dev"] + flat["data.split.test"] >= 1.0:
        raise PipelineError(f"{source}: data.split.dev + data.split.test must be < 1 "
                            f"(got {flat['data.split.dev']} + {flat['data.split.test']})")
    if flat["train.alpha"] == 0 and flat["train.beta"] == 0:
        raise PipelineError(f"{source}: train.alpha and train.beta are both 0: nothing to train")
    if flat["tokenize.stride"] * 2 >= flat["tokenize.max_length"]:
        raise PipelineError(f"{source}: 'tokenize.stride' must be < tokenize.max_length / 2 "
                            f"(got {flat['tokenize.stride']} with max_length {flat['tokenize.max_length']})")
    return tree


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
            try:
                seen[key] = key_node.start_mark.line
            except TypeError:  # unhashable key: let PyYAML report it
                pass
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `1e-4` (no dot) as a string; learning rates are written that way by hand
# and by `dvc exp run -S`, so read them as the floats everyone means.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load(path: str | Path = "params.yaml") -> dict:
    """Load and check params.yaml. Stages read only the sections DVC declares for them."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found (run from the repository root)") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: invalid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        tree = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise PipelineError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return check(tree, str(path))


def tag_names(entities: list[str]) -> list[str]:
    """BIO tag set: O, then B-/I- per entity type in params order."""
    return ["O"] + [f"{p}-{t}" for t in entities for p in ("B", "I")]
