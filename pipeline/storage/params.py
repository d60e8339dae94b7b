"""params.yaml: the one config, typed. One frozen pydantic model per section (`Params` holds them all);
the file is checked in full before any stage does work, so a typo made by hand or by `dvc exp run -S`
fails in one clear line instead of being silently ignored.

    p = load("params.yaml")      # -> Params, or PipelineError with one line
    p.train.lr_encoder           # float (YAML `1` reads as 1.0)
    p.validate.on_error          # the `validate` section (field `validate_`, key `validate`)
    p.tree()                     # the plain nested dict, same keys and order as params.yaml

Every message is worded here, not by pydantic: the tree's shape (sections, unknown keys with a
"did you mean") is checked first, then the models validate it and the first error is translated.
"""
from __future__ import annotations

import copy
import difflib
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import annotated_types
import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from pipeline.core.records import shorten, type_name
from pipeline.storage.errors import PipelineError

# ---- value rules (messages without the key; the key and "(got ...)" are added by check()) --------


def _rule(problem: str) -> PydanticCustomError:
    return PydanticCustomError("params_rule", "{problem}", {"problem": problem})


def _cross(problem: str, rank: int) -> PydanticCustomError:
    """A rule over several keys; reported only when no single key is wrong, lowest rank first."""
    return PydanticCustomError("params_cross", "{problem}", {"problem": problem, "rank": rank})


def _labels(v):
    if not isinstance(v, list):
        return v  # the list type check words it
    if not v or not all(isinstance(x, str) and x.strip() for x in v):
        raise _rule("must be a non-empty list of non-empty strings")
    dups = sorted(x for x, n in Counter(v).items() if n > 1)
    if dups:
        raise _rule(f"has duplicates: {shorten(', '.join(dups), 80)}")
    return v


def _nonempty(v: str) -> str:
    if not v.strip():
        raise _rule("must not be empty")
    return v


Labels = Annotated[list[str], BeforeValidator(_labels)]
NonEmptyStr = Annotated[str, AfterValidator(_nonempty)]


# ---- the models, in params.yaml order ---------------------------------------------------------------

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, serialize_by_alias=True)


class LabelsParams(_Section):
    topics: Labels
    entities: Labels


SEED_MAX = 2**32 - 1  # numpy's and torch's seeds are unsigned 32-bit


class SplitParams(_Section):
    dev: float = Field(ge=0.0, lt=1.0)
    test: float = Field(ge=0.0, lt=1.0)
    seed: int = Field(ge=0, le=SEED_MAX)

    @model_validator(mode="after")
    def _leaves_training_data(self):
        if self.dev + self.test >= 1.0:
            raise _cross(f"data.split.dev + data.split.test must be < 1 (got {self.dev} + {self.test})", 0)
        return self


class DataParams(_Section):
    raw_dir: NonEmptyStr
    split: SplitParams


class ValidateParams(_Section):
    on_error: Literal["fail", "drop"]
    on_conflict: Literal["fail", "first", "majority", "drop"]
    allow_external_symlinks: bool
    max_errors_shown: int = Field(ge=1)


class EncoderParams(_Section):
    name: NonEmptyStr
    pooling: Literal["mean", "last", "weighted_mean"]
    trust_remote_code: bool
    allow_pickle: bool


class TokenizeParams(_Section):
    max_length: int = Field(ge=8)
    stride: int = Field(ge=0)
    label_subwords: Literal["first", "last", "all"]
    misaligned: Literal["expand", "contract", "drop"]

    @model_validator(mode="after")
    def _windows_advance(self):
        if self.stride * 2 >= self.max_length:
            raise _cross(f"'tokenize.stride' must be < tokenize.max_length / 2 "
                         f"(got {shorten(str(self.stride), 20)} with max_length {shorten(str(self.max_length), 20)})",
                         2)
        return self


class TrainParams(_Section):
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    grad_accum: int = Field(ge=1)
    lr_encoder: float = Field(ge=0.0)
    lr_heads: float = Field(ge=0.0)
    weight_decay: float = Field(ge=0.0)
    warmup_ratio: float = Field(ge=0.0, lt=1.0)
    max_grad_norm: float = Field(ge=0.0)
    alpha: float = Field(ge=0.0)
    beta: float = Field(ge=0.0)
    seed: int = Field(ge=0, le=SEED_MAX)
    freeze: Literal["none", "encoder", "top_k"]
    unfreeze_top_layers: int = Field(ge=0)
    select_metric: Literal["mean_f1", "topic_macro_f1", "ner_f1", "loss"]
    select: Literal["joint", "per_task"]
    topic_refit_epochs: int = Field(ge=0)
    label_smoothing: float = Field(ge=0.0, lt=1.0)
    loss_weighting: Literal["fixed", "uncertainty", "normalized"]
    task_sampling: Literal["natural", "temperature", "alternating"]
    sampling_temperature: float = Field(ge=1.0)
    ema_decay: float = Field(ge=0.0, lt=1.0)
    lr_layer_decay: float
    topic_dropout: float = Field(ge=0.0, lt=1.0)
    ner_decode: Literal["greedy", "viterbi"]  # pipeline.core.decoding.NER_DECODES
    patience: int = Field(ge=0)
    group_by_length: bool
    device: Literal["auto", "cpu", "cuda"]
    resume: bool

    @model_validator(mode="after")
    def _a_decay_factor(self):
        # an open lower bound, which the Field bounds' messages do not word (NaN fails it too)
        if not 0.0 < self.lr_layer_decay <= 1.0:
            raise _cross(f"'train.lr_layer_decay' must be in (0.0, 1.0] (got {shorten(str(self.lr_layer_decay), 20)})", 0)
        return self

    @model_validator(mode="after")
    def _something_to_train(self):
        if self.alpha == 0 and self.beta == 0:
            raise _cross("train.alpha and train.beta are both 0: nothing to train", 1)
        return self


Runtime = Literal["torch", "onnx", "onnx-int8"]  # pipeline.storage.onnx_graph.RUNTIMES


class EvaluateParams(_Section):
    batch_size: int = Field(ge=1)
    runtimes: list[Literal["onnx", "onnx-int8"]]  # scored on test besides torch (metrics/runtimes.json)
    threads: int = Field(ge=0, le=1024)            # 0: the libraries' default (one per core)


class PredictParams(_Section):
    input: NonEmptyStr
    batch_size: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    max_records: int = Field(ge=1)
    runtime: Runtime
    threads: int = Field(ge=0, le=1024)


class SelectParams(_Section):
    """The select stage (active learning): what to pick from which pool. Names as in
    pipeline.core.selection.STRATEGIES, TASKS and NER_SCORES."""
    pool: NonEmptyStr
    budget: int = Field(ge=1)
    strategy: Literal["uncertainty", "diverse", "random"]
    task: Literal["both", "topic", "ner"]
    ner_score: Literal["mnlp", "errors"]
    seed: int


class Params(_Section):
    """The whole params.yaml. `validate` would shadow BaseModel.validate, so the field is `validate_`
    (key `validate` in the file and in tree()) and `p.validate` is a read-only alias of it."""

    labels: LabelsParams
    data: DataParams
    validate_: ValidateParams = Field(alias="validate")
    encoder: EncoderParams
    tokenize: TokenizeParams
    train: TrainParams
    evaluate: EvaluateParams
    predict: PredictParams
    select: SelectParams

    @property
    def validate(self) -> ValidateParams:  # replaces the deprecated BaseModel.validate classmethod
        return self.validate_

    @property
    def tag_names(self) -> list[str]:
        return tag_names(self.labels.entities)

    def tree(self) -> dict:
        """The plain nested dict, equal to the YAML tree (same keys, same order): for logs and hashes."""
        return self.model_dump()


# ---- every dotted key, derived from the models --------------------------------------------------------

def _leaves(model: type[BaseModel], prefix: str = ""):
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _leaves(sub, key + ".")
        else:
            yield key, info


LEAF_KEYS: dict[str, FieldInfo] = dict(_leaves(Params))  # "train.lr_encoder" -> its field, file order
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(
    ".".join(k.split(".")[:i]) for k in LEAF_KEYS for i in range(1, k.count(".") + 1)))
_TOP = tuple(s for s in SECTIONS if "." not in s)


def _flatten(tree: dict, prefix: str = "", source: str = "params.yaml") -> dict:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if dotted in SECTIONS:
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


_LEARNING_RATES = ("lr_encoder", "lr_heads")  # train.lr_layer_decay is a factor, not a rate


def _suggest(key: str) -> str:
    section, _, leaf = key.rpartition(".")
    if not section:  # an unknown top-level section
        close = difflib.get_close_matches(key, _TOP, n=1, cutoff=0.6)
        return (f"; did you mean '{close[0]}'?" if close else "") + f" (sections: {', '.join(_TOP)})"
    leaf = leaf.replace("learning_rate", "lr")  # the usual spelling elsewhere
    same_section = [k for k in LEAF_KEYS if k.rpartition(".")[0] == section]
    pool = same_section or list(LEAF_KEYS)
    leaves = {k.rpartition(".")[2]: k for k in pool}
    close = difflib.get_close_matches(leaf, leaves, n=1, cutoff=0.4)
    if close and close[0] in _LEARNING_RATES:  # both learning rates are candidates
        close = [name for name in leaves if name in _LEARNING_RATES]
    if not close:
        close_keys = difflib.get_close_matches(key, LEAF_KEYS, n=1, cutoff=0.5)
        return f"; did you mean '{close_keys[0]}'?" if close_keys else ""
    return "; did you mean " + " or ".join(f"'{leaves[c]}'" for c in close) + "?"


# ---- wording ---------------------------------------------------------------------------------------

_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}


_YAML_TYPES = {int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}


def _yaml_type(value) -> str:
    return type_name(value, _YAML_TYPES)


def _shown(value) -> str:
    """A value from the file as a message shows it (capped: a huge list or string stays one line)."""
    return shorten(repr(value), 80)


def _got(value) -> str:
    return "null" if value is None else f"{_yaml_type(value)} {_shown(value)}"


def _kind(info: FieldInfo) -> type:
    origin = get_origin(info.annotation)
    return str if origin is Literal else origin or info.annotation


def _bounds(info: FieldInfo) -> str:
    ge = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None)
    lt = next((m.lt for m in info.metadata if isinstance(m, annotated_types.Lt)), None)
    le = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None)
    if le is not None:
        return f"must be in [{ge}, {le}]"
    return f"must be >= {ge}" if lt is None else f"must be in [{ge}, {lt})"


def _leaf_of(loc: tuple) -> str:
    """The dotted key of an error location (an error inside a list item belongs to the list)."""
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LEAF_KEYS:
            return ".".join(parts[:n])
    return ".".join(parts)


def _key_problem(err: dict) -> str:
    """One pydantic error about one key, in this module's words."""
    key, value, kind = _leaf_of(err["loc"]), err["input"], err["type"]
    info = LEAF_KEYS.get(key)
    if kind == "extra_forbidden" or info is None:
        return f"unknown key '{shorten(key, 80)}'{_suggest(key)}"
    expected = _kind(info)
    if kind == "literal_error" and isinstance(value, str):
        return f"'{key}' must be one of {', '.join(get_args(info.annotation))} (got {_shown(value)})"
    if kind.endswith("_type") or kind == "literal_error":
        hint = " (remove the quotes)" if isinstance(value, str) and expected in (int, float) else ""
        return f"'{key}' must be {_KIND.get(expected, expected.__name__)}, got {_got(value)}{hint}"
    if kind in ("greater_than_equal", "less_than", "less_than_equal"):
        return f"'{key}' {_bounds(info)} (got {_shown(value)})"
    if kind == "params_rule":
        return f"'{key}' {err['msg']} (got {_shown(value)})"
    return f"'{key}' is invalid: {shorten(err['msg'], 200)}"


def _explain(errors: list[dict]) -> str:
    """The one error to report: a bad key first, then missing keys, then rules over several keys."""
    for err in errors:
        if err["type"] not in ("missing", "params_cross"):
            return _key_problem(err)
    gone = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
    missing = [k for k in LEAF_KEYS if any(k == g or k.startswith(g + ".") for g in gone)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"missing key '{missing[0]}'{more}"
    cross = sorted((e for e in errors if e["type"] == "params_cross"), key=lambda e: e["ctx"]["rank"])
    return cross[0]["msg"]


def section_problem(model: type[BaseModel], section: str, values: dict) -> str | None:
    """The rule of params section `section` (its model) that `values` break, worded as for
    params.yaml but without the section prefix; None if they pass. For files that hold a copy of
    a section (the model directory's multitask.json): one rule, one wording."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        errors = [{**err, "loc": (section, *err["loc"])} for err in exc.errors()]
        return shorten(_explain(errors).replace(f"{section}.", ""), 300)
    return None


def check(tree: dict, source: str = "params.yaml") -> Params:
    """The typed params if every key is known and well-typed; else raise one clear line."""
    if tree is None:
        raise PipelineError(f"{source}: empty file; expected a mapping of sections")
    if not isinstance(tree, dict):
        raise PipelineError(f"{source}: expected a mapping of sections, got {_yaml_type(tree)}")
    for key in _flatten(tree, source=source):
        if key not in LEAF_KEYS:
            what = "key" if "." in key else "section"
            raise PipelineError(f"{source}: unknown {what} '{shorten(str(key), 80)}'{_suggest(key)}")
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise PipelineError(f"{source}: {_explain(exc.errors())}") from None


# ---- the file ----------------------------------------------------------------------------------------

MAX_DEPTH = 50   # params are a few levels deep; a 5000-deep list would exhaust the recursion limit


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader for params (and other hand-written YAML: WHAT names it in messages): a key given twice in one mapping (PyYAML keeps the last silently), an
    anchor or alias (a billion-laughs expands into gigabytes), a complex key (`? [a, b]`) and
    nesting deeper than MAX_DEPTH are errors. Anchors, aliases and depth are checked while composing,
    from the parser's events, before anything is expanded or constructed."""

    WHAT = "params"

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            sign = "*" if isinstance(event, yaml.AliasEvent) else "&"
            raise yaml.composer.ComposerError(
                None, None, f"{'alias' if sign == '*' else 'anchor'} {sign}{shorten(event.anchor, 40)} is not "
                f"allowed in {self.WHAT} (no anchors or aliases: write each value out)", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a complex key (`? [a, b]` or a mapping as a key) is not allowed in {self.WHAT}: "
                    "keys are names", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shorten(repr(key), 80)} (first at line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `1e-4` (no dot) as a string; learning rates are written that way by hand
# and by `dvc exp run -S`, so read them as the floats everyone means.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(path: str | Path, what: str = "params", missing_hint: str = "") -> object:
    """A hand-written YAML file, read strictly (_UniqueKeyLoader; `what` names the file's kind in
    messages): its tree, or one line naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found{missing_hint}") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: invalid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    loader = _UniqueKeyLoader if what == _UniqueKeyLoader.WHAT else type("_Loader", (_UniqueKeyLoader,), {"WHAT": what})
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = shorten(" ".join(str(getattr(exc, "problem", None) or exc).split()), 200)
        raise PipelineError(f"{path}{where}: invalid YAML: {problem}") from None
    except RecursionError:   # a safety net: MAX_DEPTH stops deep nesting first
        raise PipelineError(f"{path}: invalid YAML: nested too deeply") from None


def load(path: str | Path = "params.yaml") -> Params:
    """Load and check params.yaml. Stages read only the sections DVC declares for them."""
    return check(read_yaml(path, missing_hint=" (run from the repository root)"), str(path))


def tag_names(entities: list[str]) -> list[str]:
    """BIO tag set: O, then B-/I- per entity type in params order."""
    return ["O"] + [f"{p}-{t}" for t in entities for p in ("B", "I")]
