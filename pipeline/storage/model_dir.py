"""The trained model directory (models/multitask/): self-contained, so evaluate and predict need
nothing else. The encoder's config.json, multitask.json (ModelMeta, its format version and the
weights' checksum), model.safetensors (both heads and the encoder) and the tokenizer files."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from pipeline.core.features import special_layout
from pipeline.core.model import POOLINGS, ModelMeta, MultiTaskModel
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import sha256
from pipeline.storage.hub import load_tokenizer, quiet_transformers

MODEL_CONFIG = "multitask.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
FORMAT_VERSION = 1
# multitask.json keys a model directory cannot do without (encoder_name and best_epoch are informative)
REQUIRED_KEYS = ("pooling", "topics", "entities", "tags", "max_length", "stride", "label_subwords", "misaligned",
                 "n_prefix")


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
    (out_dir / MODEL_CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_meta(model_dir: Path, trust_remote_code: bool):
    """(ModelMeta, encoder config) from multitask.json and config.json, checked."""
    from transformers import AutoConfig

    try:
        raw = json.loads((model_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError, KeyError) as exc:
        raise PipelineError(f"model directory '{model_dir}': unreadable config: {_first_line(exc)}") from None
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        version = raw.get("format_version") if isinstance(raw, dict) else None
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} format_version {version!r}, "
                            f"expected {FORMAT_VERSION}")
    missing_keys = [k for k in REQUIRED_KEYS if k not in raw]
    if missing_keys:
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} lacks {', '.join(missing_keys)}")
    if raw["pooling"] not in POOLINGS:
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} pooling {raw['pooling']!r} "
                            f"is not one of {', '.join(POOLINGS)}")
    expected = raw.get("weights_sha256")
    if expected is not None and sha256(model_dir / WEIGHTS) != expected:
        raise PipelineError(f"model directory '{model_dir}': corrupted {WEIGHTS}: its checksum does not match "
                            f"the one recorded at training time (re-train or restore it, e.g. `dvc checkout`)")
    names = {f.name for f in dataclasses.fields(ModelMeta)}
    meta = ModelMeta(**{"encoder_name": "", **{k: v for k, v in raw.items() if k in names}})
    return meta, config


def _load_weights(model_dir: Path, model: MultiTaskModel) -> None:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model

    try:
        with safe_open(str(model_dir / WEIGHTS), "pt") as fh:
            shapes = {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 (not a dict)
        wanted = {k: list(v.shape) for k, v in model.state_dict().items()}
        wrong = [k for k in shapes if k in wanted and shapes[k] != wanted[k]]
        if wrong:
            raise PipelineError(f"model directory '{model_dir}': {WEIGHTS} does not match the config: {wrong[0]} "
                                f"has shape {shapes[wrong[0]]}, {MODEL_CONFIG}/config.json need {wanted[wrong[0]]}")
        missing, unexpected = load_model(model, str(model_dir / WEIGHTS), strict=False, device="cpu")
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise PipelineError(f"model directory '{model_dir}': corrupted {WEIGHTS}: {_first_line(exc)}") from None
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
                            f"{type(exc).__name__} {_first_line(exc)}") from None
    sample = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    vocab = model.encoder.get_input_embeddings().num_embeddings
    if not sample or max(sample) >= vocab:
        raise PipelineError(f"model directory '{model_dir}': the tokenizer does not fit the model "
                            f"(it encodes 'hello world' as {sample}; embedding table of {vocab})")
    try:
        n_prefix = len(special_layout(tokenizer)[0])
    except ValueError as exc:
        raise PipelineError(f"model directory '{model_dir}': {exc}") from None
    if n_prefix != meta.n_prefix:
        raise PipelineError(f"model directory '{model_dir}': the tokenizer's special tokens differ from "
                            f"training (n_prefix {meta.n_prefix})")
    return tokenizer


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
    encoder = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    model = MultiTaskModel(encoder, len(meta.topics), len(meta.tags), meta.pooling)
    _load_weights(model_dir, model)
    tokenizer = _load_tokenizer(model_dir, model, meta, trust_remote_code)
    return LoadedModel(model.to(device).eval(), tokenizer, meta)
