"""Per-task model selection's second half: re-fit the topic head on the kept encoder.

Topic peaks early (dev macro-F1 by epoch 2-3) while NER still rises at epoch 8, so one epoch
chosen for both serves neither. With train.select: per_task the run keeps the encoder and NER
head of the epoch with the best dev NER F1, then trains the topic head alone on that frozen
encoder: its pooled sentence embeddings are computed once (encoder in eval mode, so they are
fixed), and the head is trained on them for a few epochs, keeping the epoch (0: the head as it
was) with the best dev topic macro-F1. The head is the only thing that changes, and cheaply: one
encoder pass over the topic rows instead of more training. Pure torch, no file I/O.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pipeline.core.align import IGNORE
from pipeline.core.inference import group_windows, pooled_embeddings
from pipeline.core.metrics import topic_metrics
from pipeline.core.model import MultiTaskModel


@dataclass(frozen=True)
class RefitResult:
    """What the re-fit did: dev topic macro-F1 per head epoch (index 0: before any re-fit), and the
    epoch kept."""
    dev_scores: list[float]
    best_epoch: int

    @property
    def gain(self) -> float:
        return round(self.dev_scores[self.best_epoch] - self.dev_scores[0], 4)


@torch.no_grad()
def topic_score(head: torch.nn.Module, emb: torch.Tensor, groups: list[list[int]], gold: list[str | None],
                topics: list[str]) -> float:
    """Dev topic macro-F1 of `head` on fixed embeddings, records' windows averaged as at inference."""
    head.eval()
    probs = torch.softmax(head(emb).float(), -1)
    pred = [topics[int(probs[g].mean(0).argmax())] for g in groups]
    return topic_metrics(gold, pred, topics)["macro_f1"]


def refit_topic_head(model: MultiTaskModel, train_rows: list[dict], dev_rows: list[dict], dev_gold: list[str | None],
                     topics: list[str], tp, pad_id: int, device: torch.device, epochs: int) -> RefitResult | None:
    """Train model.topic_head alone on the frozen encoder's embeddings; keep its best dev epoch.
    None when there is nothing to re-fit on or to judge by (no topic labels in train or dev)."""
    labelled = [r for r in train_rows if r["topic"] != IGNORE]
    if not labelled or all(g is None for g in dev_gold) or not dev_rows:
        return None
    batch_size = tp.batch_size * 2
    x = pooled_embeddings(model, labelled, batch_size, pad_id, device)
    y = torch.tensor([r["topic"] for r in labelled])
    dev_emb = pooled_embeddings(model, dev_rows, batch_size, pad_id, device).to(device)
    groups = group_windows(dev_rows)
    head = model.topic_head
    scores = [topic_score(head, dev_emb, groups, dev_gold, topics)]
    best, best_state = 0, copy.deepcopy(head.state_dict())
    optimizer = torch.optim.AdamW(head.parameters(), lr=tp.lr_heads, weight_decay=tp.weight_decay)
    g = torch.Generator().manual_seed(tp.seed)
    for epoch in range(1, epochs + 1):
        head.train()
        for idx in torch.randperm(len(y), generator=g).split(tp.batch_size):
            loss = F.cross_entropy(head(x[idx].to(device)), y[idx].to(device), label_smoothing=tp.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scores.append(topic_score(head, dev_emb, groups, dev_gold, topics))
        if scores[-1] > scores[best]:
            best, best_state = epoch, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return RefitResult(scores, best)
