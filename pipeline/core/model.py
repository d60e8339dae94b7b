"""The multi-task model: one shared encoder, a topic head on a pooled sentence embedding and a
token-wise NER head; and ModelMeta, what a trained model knows besides its weights. Pure torch
(saving and loading the model directory is pipeline.storage.model_dir)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.align import IGNORE
from pipeline.core.features import FeatureConfig

POOLINGS = ("mean", "last", "weighted_mean")


@dataclass(frozen=True)
class ModelMeta(FeatureConfig):
    """A trained model's labels and tokenization layout (the FeatureConfig it was trained with):
    what featurizing new text and decoding the heads' outputs need. Saved as multitask.json in
    the model directory, with its format version and the weights' checksum."""
    encoder_name: str
    pooling: str
    entities: list[str]
    n_prefix: int
    best_epoch: int | None = None
    ner_decode: str = "greedy"  # pipeline.core.decoding.NER_DECODES; greedy: what models saved before it did


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


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy averaged over labelled items only; exactly 0 (still in the graph, so DDP sees
    every parameter used) when nothing in the batch is labelled for this task - never NaN."""
    labels = labels.reshape(-1)
    logits = logits.reshape(labels.shape[0], -1).float()
    if (labels != IGNORE).any():
        return F.cross_entropy(logits, labels, ignore_index=IGNORE, label_smoothing=label_smoothing)
    return logits.sum() * 0.0


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: nn.Module, n_topics: int, n_tags: int, pooling: str = "mean",
                 topic_dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r} (one of {', '.join(POOLINGS)})")
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.pooling = pooling
        # topic_dropout (train.topic_dropout) is training-time only: no weight, the saved model is the same
        self.topic_head = nn.Sequential(nn.Dropout(topic_dropout), nn.Linear(hidden, n_topics))
        self.ner_head = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, n_tags))

    def forward(self, input_ids, attention_mask, topic_labels=None, ner_labels=None,
                alpha: float = 1.0, beta: float = 1.0, topic_smoothing: float = 0.0) -> dict:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        out = {"topic_logits": self.topic_head(pool(states, attention_mask, self.pooling)),
               "ner_logits": self.ner_head(states)}
        if topic_labels is not None and ner_labels is not None:
            out["loss_topic"] = masked_ce(out["topic_logits"], topic_labels, topic_smoothing)
            out["loss_ner"] = masked_ce(out["ner_logits"], ner_labels)
            out["loss"] = alpha * out["loss_topic"] + beta * out["loss_ner"]
        return out
