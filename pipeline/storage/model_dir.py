"""The trained model directory (models/multitask/): self-contained, so evaluate and predict need
nothing else. The encoder's config.json, multitask.json (ModelMeta, its format version and the
weights' checksum), model.safetensors (both heads and the encoder) and the tokenizer files."""
from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import NamedTuple

from pipeline.core.decoding import NER_DECODES
from pipeline.core.features import content_length, position_limit, position_problem, special_layout
from pipeline.core.model import POOLINGS, ModelMeta, MultiTaskModel
from pipeline.core.records import describe, is_int, shorten
from pipeline.storage import params
from pipeline.storage.errors import PipelineError, first_line
from pipeline.storage.files import dumps, json_problem, loads, sha256
from pipeline.storage.hub import config_errors, config_problem, load_tokenizer, quiet_transformers, skeleton

MODEL_CONFIG = "multitask.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
FORMAT_VERSION = 1
# multitask.json keys a model directory cannot do without (encoder_name and best_epoch are informative)
# (weights_sha256 too: without it a bit-flipped weights file would load silently as wrong weights)
REQUIRED_KEYS = ("pooling", "topics", "entities", "tags", "max_length", "stride", "label_subwords", "misaligned",
                 "n_prefix", "weights_sha256")
TOKENIZE_KEYS = ("max_length", "stride", "label_subwords", "misaligned")  # checked by params' tokenize rules
SHA256 = re.compile(r"[0-9a-f]{64}")


class LoadedModel(NamedTuple):
    model: MultiTaskModel
    tokenizer: object
    meta: ModelMeta


def save(model: MultiTaskModel, tokenizer, out_dir: Path, meta: ModelMeta) -> None:
    """Self-contained model directory: encoder config, our config, safetensors weights, tokenizer."""
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_model(model, str(out_dir / WEIGHTS))
    # The checksum lets load() tell a damaged weights file from a good one: safetensors checks
    # only its header, so garbled tensor bytes would otherwise load silently as wrong weights.
    fields = dataclasses.asdict(meta)
    config = {"format_version": FORMAT_VERSION, "pooling": fields.pop("pooling"), **fields,
              "weights_sha256": sha256(out_dir / WEIGHTS)}
    (out_dir / MODEL_CONFIG).write_text(dumps(config, indent=2) + "\n", encoding="utf-8")


def _is_count(v) -> bool:
    return is_int(v) and v >= 0


def _settings_problem(raw: dict) -> str | None:
    """The first hand-edit of multitask.json that loading would trip over (None: all usable)."""
    problem = (params.section_problem(params.TokenizeParams, "tokenize", {k: raw[k] for k in TOKENIZE_KEYS})
               or params.section_problem(params.LabelsParams, "labels", {k: raw[k] for k in ("topics", "entities")}))
    if problem:
        return problem
    if raw["tags"] != params.tag_names(raw["entities"]):
        return (f"tags {describe(raw['tags'])} do not match entities {describe(raw['entities'])} "
                f"(expected {shorten(', '.join(params.tag_names(raw['entities'])), 200)})")
    if not isinstance(raw["pooling"], str) or raw["pooling"] not in POOLINGS:
        return f"pooling must be one of {', '.join(POOLINGS)}, got {describe(raw['pooling'])}"
    if not _is_count(raw["n_prefix"]):
        return f"n_prefix must be a non-negative integer, got {describe(raw['n_prefix'])}"
    if not isinstance(raw.get("encoder_name", ""), str):
        return f"encoder_name must be a string, got {describe(raw['encoder_name'])}"
    if raw.get("best_epoch") is not None and not _is_count(raw["best_epoch"]):
        return f"best_epoch must be a non-negative integer or null, got {describe(raw['best_epoch'])}"
    if "ner_decode" in raw and raw["ner_decode"] not in NER_DECODES:
        return f"ner_decode must be one of {', '.join(NER_DECODES)}, got {describe(raw['ner_decode'])}"
    if not isinstance(raw["weights_sha256"], str) or not SHA256.fullmatch(raw["weights_sha256"]):
        return (f"weights_sha256 must be the 64-digit hex sha256 of {WEIGHTS}, got {describe(raw['weights_sha256'])} "
                f"(restore {MODEL_CONFIG}, e.g. `dvc checkout`, or re-train)")
    return None


def _read_meta(model_dir: Path, trust_remote_code: bool):
    """(ModelMeta, encoder config) from multitask.json and config.json, checked."""
    from transformers import AutoConfig

    where = f"model directory '{model_dir}'"
    try:
        raw = loads((model_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, duplicate keys, NaN, too deep
        raise PipelineError(f"{where}: unreadable config: {MODEL_CONFIG}: {json_problem(exc)}") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise PipelineError(f"{where}: unreadable config: {MODEL_CONFIG}: {first_line(exc)}") from None
    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except config_errors() as exc:
        raise PipelineError(f"{where}: unreadable config: config.json: {shorten(config_problem(exc))}") from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        version = raw.get("format_version") if isinstance(raw, dict) else None
        raise PipelineError(f"{where}: {MODEL_CONFIG} format_version {shorten(repr(version), 60)}, "
                            f"expected {FORMAT_VERSION}")
    missing_keys = [k for k in REQUIRED_KEYS if k not in raw]
    if missing_keys:
        raise PipelineError(f"{where}: {MODEL_CONFIG} lacks {', '.join(missing_keys)} (restore it, e.g. "
                            f"`dvc checkout`, or re-train)")
    problem = _settings_problem(raw)
    if problem:
        raise PipelineError(f"{where}: {MODEL_CONFIG}: {problem}")
    if sha256(model_dir / WEIGHTS) != raw["weights_sha256"]:
        raise PipelineError(f"{where}: corrupted {WEIGHTS}: its checksum does not match "
                            f"the one recorded at training time (re-train or restore it, e.g. `dvc checkout`)")
    names = {f.name for f in dataclasses.fields(ModelMeta)}
    meta = ModelMeta(**{"encoder_name": "", **{k: v for k, v in raw.items() if k in names}})
    return meta, config


def _tensor_groups(model) -> list[list[str]]:
    """The state-dict keys, grouped where one tensor has several names (tied weights, which the
    safetensors file holds under one of them)."""
    keys = set(model.state_dict())
    groups: dict[int, list[str]] = {}
    for name, tensor in itertools.chain(model.named_parameters(remove_duplicate=False),
                                        model.named_buffers(remove_duplicate=False)):
        if name in keys:
            groups.setdefault(id(tensor), []).append(name)
    return list(groups.values())


def _check_structure(model_dir: Path, config, meta: ModelMeta, trust_remote_code: bool) -> None:
    """config.json and multitask.json against the weights file's header and each other, on a model
    built on the meta device: nothing allocated for a config that asks for more than the file holds."""
    from safetensors import SafetensorError, safe_open

    where = f"model directory '{model_dir}'"
    try:
        model = MultiTaskModel(skeleton(config, trust_remote_code), len(meta.topics), len(meta.tags), meta.pooling)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError) as exc:
        raise PipelineError(f"{where}: config.json describes no model this transformers can build "
                            f"({type(exc).__name__}: {shorten(first_line(exc))})") from None
    try:
        with safe_open(str(model_dir / WEIGHTS), "pt") as fh:
            shapes = {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise PipelineError(f"{where}: corrupted {WEIGHTS}: {first_line(exc)}") from None
    wanted = {k: list(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k in shapes if k in wanted and shapes[k] != wanted[k]]
    if wrong:
        raise PipelineError(f"{where}: {WEIGHTS} does not match the config: {wrong[0]} "
                            f"has shape {shapes[wrong[0]]}, {MODEL_CONFIG}/config.json need {wanted[wrong[0]]}")
    missing = [g[0] for g in _tensor_groups(model) if not any(k in shapes for k in g)]
    unexpected = [k for k in shapes if k not in wanted]
    if missing or unexpected:
        example = f"e.g. {missing[0]} is missing" if missing else f"e.g. {unexpected[0]} is not in the config"
        raise PipelineError(f"{where}: {WEIGHTS} does not match config.json ({len(missing)} missing, "
                            f"{len(unexpected)} unexpected tensors; {shorten(example, 120)}): was config.json "
                            f"edited or replaced? Restore it (e.g. `dvc checkout`) or re-train")
    problem = position_problem(meta.max_length, position_limit(model.encoder), "the encoder in config.json")
    if problem:
        raise PipelineError(f"{where}: {MODEL_CONFIG}: max_length {problem}")


def _load_weights(model_dir: Path, model: MultiTaskModel) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(model, str(model_dir / WEIGHTS), strict=False, device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise PipelineError(f"model directory '{model_dir}': corrupted {WEIGHTS}: {first_line(exc)}") from None
    if missing or unexpected:
        raise PipelineError(f"model directory '{model_dir}': {WEIGHTS} does not match the config "
                            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")


def _load_tokenizer(model_dir: Path, model: MultiTaskModel, meta: ModelMeta, trust_remote_code: bool):
    try:
        tokenizer = load_tokenizer(str(model_dir), trust_remote_code)
    except PipelineError as exc:  # "cannot load encoder from directory '...': why"
        why = str(exc).split("': ", 1)[-1]
        raise PipelineError(f"model directory '{model_dir}': unreadable tokenizer: {why}") from None
    except Exception as exc:  # noqa: BLE001 - a damaged tokenizer.json fails in many ways (KeyError, Rust errors)
        raise PipelineError(f"model directory '{model_dir}': unreadable tokenizer: "
                            f"{type(exc).__name__} {first_line(exc)}") from None
    sample = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    vocab = model.encoder.get_input_embeddings().num_embeddings
    if not sample or max(sample) >= vocab:
        raise PipelineError(f"model directory '{model_dir}': the tokenizer does not fit the model "
                            f"(it encodes 'hello world' as {sample}; embedding table of {vocab})")
    try:
        prefix, suffix = special_layout(tokenizer)
    except ValueError as exc:
        raise PipelineError(f"model directory '{model_dir}': {exc}") from None
    if len(prefix) != meta.n_prefix:
        raise PipelineError(f"model directory '{model_dir}': the tokenizer's special tokens differ from "
                            f"training (n_prefix {meta.n_prefix})")
    try:
        content_length(meta, len(prefix) + len(suffix))
    except ValueError as exc:  # the Featurizer predict builds would refuse it
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG}: {exc}") from None
    return tokenizer


def weights_checksum(model_dir: str | Path) -> str:
    """The weights' sha256 as multitask.json records it (what an ONNX export is tied to); call
    after load(), which has checked it against the weights file."""
    return loads((Path(model_dir) / MODEL_CONFIG).read_text(encoding="utf-8"))["weights_sha256"]


def load(model_dir: str | Path, device: str = "cpu", trust_remote_code: bool = False) -> LoadedModel:
    """(model, tokenizer, meta) from a directory written by save(); clear errors for bad dirs."""
    from transformers import AutoModel

    quiet_transformers()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        what = "is not a directory" if model_dir.exists() else "not found"
        raise PipelineError(f"model directory '{model_dir}' {what} (train it with `dvc repro train`)")
    for name in (MODEL_CONFIG, WEIGHTS, "config.json", TOKENIZER):
        if not (model_dir / name).is_file():
            raise PipelineError(f"model directory '{model_dir}': missing {name} (train it with `dvc repro train`)")
    meta, config = _read_meta(model_dir, trust_remote_code)
    _check_structure(model_dir, config, meta, trust_remote_code)
    encoder = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    model = MultiTaskModel(encoder, len(meta.topics), len(meta.tags), meta.pooling)
    _load_weights(model_dir, model)
    tokenizer = _load_tokenizer(model_dir, model, meta, trust_remote_code)
    return LoadedModel(model.to(device).eval(), tokenizer, meta)
