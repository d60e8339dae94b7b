"""The multi-task model: one shared encoder, a topic head on a pooled sentence embedding and a
token-wise NER head. Pure torch; saving/loading is a self-contained directory (safetensors)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.align import IGNORE
from pipeline.files import PipelineError

MODEL_CONFIG = "multitask.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
FORMAT_VERSION = 1
POOLINGS = ("mean", "last", "weighted_mean")
META_KEYS = ("pooling", "topics", "entities", "tags", "max_length", "stride", "label_subwords", "misaligned",
             "n_prefix")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sentence embedding from token states, using the attention mask only (never the pad id),
    so it is right for left and right padding alike.
    mean: average of attended tokens; last: the last attended token (what a causal model has
    seen the whole sentence at); weighted_mean: position-weighted mean (later tokens, which see
    more context in a causal model, weigh more; Muennighoff 2022, SGPT)."""
    m = mask.to(hidden.dtype)
    if how == "mean":
        return (hidden * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
    if how == "weighted_mean":
        w = torch.cumsum(m, dim=1) * m
        return (hidden * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
    if how == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask.long()).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {how!r} (one of {', '.join(POOLINGS)})")


def masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over labelled items only; exactly 0 (still in the graph, so DDP sees
    every parameter used) when nothing in the batch is labelled for this task - never NaN."""
    labels = labels.reshape(-1)
    logits = logits.reshape(labels.shape[0], -1).float()
    if (labels != IGNORE).any():
        return F.cross_entropy(logits, labels, ignore_index=IGNORE)
    return logits.sum() * 0.0


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, n_topics: int, n_tags: int, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (one of {', '.join(POOLINGS)})")
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.pooling = pooling
        self.topic_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, n_topics))
        self.ner_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, n_tags))

    def forward(self, input_ids, attention_mask, topic_labels=None, ner_labels=None,
                alpha: float = 1.0, beta: float = 1.0) -> dict:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        out = {"topic_logits": self.topic_head(pool(states, attention_mask, self.pooling)),
               "ner_logits": self.ner_head(states)}
        if topic_labels is not None and ner_labels is not None:
            out["loss_topic"] = masked_ce(out["topic_logits"], topic_labels)
            out["loss_ner"] = masked_ce(out["ner_logits"], ner_labels)
            out["loss"] = alpha * out["loss_topic"] + beta * out["loss_ner"]
        return out


def save(model: MultiTaskModel, tokenizer, out_dir: Path, meta: dict) -> None:
    """Self-contained model directory: encoder config, our config, safetensors weights, tokenizer."""
    from safetensors.torch import save_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_model(model, str(out_dir / WEIGHTS))
    # The checksum lets load() tell a damaged weights file from a good one: safetensors checks
    # only its header, so garbled tensor bytes would otherwise load silently as wrong weights.
    (out_dir / MODEL_CONFIG).write_text(json.dumps(
        {"format_version": FORMAT_VERSION, "pooling": model.pooling, **meta,
         "weights_sha256": file_sha256(out_dir / WEIGHTS)}, indent=2, ensure_ascii=False) + "\n")


def load(model_dir: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """(model, tokenizer, meta) from a directory written by save(); clear errors for bad dirs."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModel

    from pipeline.encoder import _quiet_transformers, load_tokenizer, special_layout

    _quiet_transformers()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        what = "is not a directory" if model_dir.exists() else "not found"
        raise PipelineError(f"model directory '{model_dir}' {what} (train it with `dvc repro train`)")
    for name in (MODEL_CONFIG, WEIGHTS, "config.json", TOKENIZER):
        if not (model_dir / name).is_file():
            raise PipelineError(f"model directory '{model_dir}': missing {name} (train it with `dvc repro train`)")
    try:
        meta = json.loads((model_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError, KeyError) as exc:
        raise PipelineError(f"model directory '{model_dir}': unreadable config: {_first_line(exc)}") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} format_version {version!r}, "
                            f"expected {FORMAT_VERSION}")
    missing_keys = [k for k in META_KEYS if k not in meta]
    if missing_keys:
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} lacks {', '.join(missing_keys)}")
    if meta["pooling"] not in POOLINGS:
        raise PipelineError(f"model directory '{model_dir}': {MODEL_CONFIG} pooling {meta['pooling']!r} "
                            f"is not one of {', '.join(POOLINGS)}")
    expected = meta.get("weights_sha256")
    if expected is not None and file_sha256(model_dir / WEIGHTS) != expected:
        raise PipelineError(f"model directory '{model_dir}': corrupted {WEIGHTS}: its checksum does not match "
                            f"the one recorded at training time (re-train or restore it, e.g. `dvc checkout`)")
    encoder = AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    model = MultiTaskModel(encoder, len(meta["topics"]), len(meta["tags"]), meta["pooling"])
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
    if len(special_layout(tokenizer)[0]) != meta["n_prefix"]:
        raise PipelineError(f"model directory '{model_dir}': the tokenizer's special tokens differ from "
                            f"training (n_prefix {meta['n_prefix']})")
    return model.to(device).eval(), tokenizer, meta


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
