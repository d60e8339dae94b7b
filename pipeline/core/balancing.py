"""Balancing the two tasks, pure torch: how their losses are weighted (LossWeighting) and which
rows a batch is drawn from (task_balanced_batches). The default of both (train.loss_weighting:
fixed, train.task_sampling: natural) is the plain loop of pipeline/core/training.py, untouched:
none of this runs then, so the default run consumes no extra randomness and has no extra state.

A row's task group is what it is labelled for: topic only, NER only, or both (pipeline.core.
features: `topic` != IGNORE, some `labels` != IGNORE).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pipeline.core.align import IGNORE
from pipeline.core.training import length_grouped_batches

WEIGHTINGS = ("uncertainty", "normalized")   # besides "fixed", which is the model's own loss
GROUPS = ("topic", "ner", "both")


def labelled(labels: torch.Tensor) -> torch.Tensor:
    """1.0 if any item of the batch is labelled for the task, else 0.0: a device tensor, so the
    step need not wait on the GPU to decide (the 0/1 multiplies instead of an `if`)."""
    return (labels != IGNORE).any().float()


class LossWeighting(nn.Module):
    """Combines the two task losses into the training objective; train state, not model weights
    (it is no submodule of MultiTaskModel, so the saved model is the same either way).

    uncertainty (Kendall, Gal & Cipolla 2018), learned log-variances s_topic, s_ner (init 0):
        loss = alpha * (exp(-s_topic) * L_topic + s_topic) + beta * (exp(-s_ner) * L_ner + s_ner)
      where a task with no labelled item in the batch contributes 0, its +s term included (masked_ce's
      L is then an in-graph 0), so its s gets an exactly zero gradient from that batch.
    normalized: loss = alpha * L_topic / m_topic + beta * L_ner / m_ner, m_t an exponential moving
      average (momentum) of the task's detached loss over the batches labelled for it, started at the
      first such batch: each task then contributes about alpha (beta), whatever its scale.

    Under DDP (world > 1) the ranks stay in step: `sync_grads` averages the s gradients as DDP does
    the model's, and the normalized running means are updated from the all-reduced batch losses."""

    def __init__(self, mode: str, alpha: float, beta: float, momentum: float = 0.99, world: int = 1):
        super().__init__()
        if mode not in WEIGHTINGS:
            raise ValueError(f"unknown loss weighting {mode!r} (one of {', '.join(WEIGHTINGS)})")
        self.mode, self.momentum, self.world = mode, momentum, world
        self.register_buffer("scale", torch.tensor([alpha, beta]), persistent=False)
        if mode == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(2))
        else:  # running means start at 1 (not yet seen): dividing a batch's in-graph 0 by it stays 0
            self.register_buffer("running", torch.ones(2))
            self.register_buffer("seen", torch.zeros(2))

    def forward(self, loss_topic: torch.Tensor, loss_ner: torch.Tensor, topic_labels: torch.Tensor,
                ner_labels: torch.Tensor, counts: bool = True) -> torch.Tensor:
        """The combined loss of a batch with these labels. counts False: a stand-in row (training.
        shard's weight 0), which must not move the running means either."""
        losses = torch.stack([loss_topic, loss_ner])
        has = torch.stack([labelled(topic_labels), labelled(ner_labels)]) * float(counts)
        if self.mode == "uncertainty":
            terms = torch.exp(-self.log_vars) * losses + self.log_vars * has
        else:
            self._update_running(losses.detach(), has)
            terms = losses / self.running.clamp(min=1e-12)
        return (self.scale * terms).sum()

    @torch.no_grad()
    def _update_running(self, losses: torch.Tensor, has: torch.Tensor) -> None:
        if self.world > 1:  # every rank the same means: the mean loss of the ranks labelled for the task
            both = torch.cat([losses * has, has])
            torch.distributed.all_reduce(both)
            losses, has = both[:2] / both[2:].clamp(min=1), (both[2:] > 0).float()
        mixed = self.momentum * self.running + (1 - self.momentum) * losses
        new = torch.where(self.seen > 0, mixed, losses)
        self.running.copy_(torch.where(has > 0, new, self.running))
        self.seen.copy_(torch.maximum(self.seen, has))

    def sync_grads(self) -> None:
        """Average the learned log-variances' gradients over the processes (what DDP does for the
        model's parameters) before the optimizer step; nothing to do with one process."""
        if self.world > 1 and self.mode == "uncertainty" and self.log_vars.grad is not None:
            torch.distributed.all_reduce(self.log_vars.grad)
            self.log_vars.grad /= self.world

    @torch.no_grad()
    def weights(self) -> tuple[float, float]:
        """The current effective weights on (L_topic, L_ner): alpha*exp(-s_topic), beta*exp(-s_ner)
        (uncertainty) or alpha/m_topic, beta/m_ner (normalized)."""
        w = self.scale * (torch.exp(-self.log_vars) if self.mode == "uncertainty" else 1 / self.running.clamp(min=1e-12))
        return round(float(w[0]), 6), round(float(w[1]), 6)


def groups_from_flags(has_topic, has_ner) -> list[str | None]:
    """Each feature row's group, "topic", "ner", "both" or None (labelled for nothing), from per-row
    flags: a topic label, any NER label (a FeatureRows' has_topic and has_ner)."""
    names = {(True, True): "both", (True, False): "topic", (False, True): "ner", (False, False): None}
    return [names[bool(t), bool(n)] for t, n in zip(has_topic, has_ner, strict=True)]


def _group_batches(idx: list[int], lengths: list[int], batch_size: int, gen: torch.Generator, group: bool):
    """Endless batches of one group: length-grouped shuffled passes over it, reshuffled each pass."""
    while True:
        seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
        for batch in length_grouped_batches([lengths[i] for i in idx], batch_size, seed, group):
            yield [idx[i] for i in batch]


def group_probabilities(sizes: list[int], temperature: float) -> list[float]:
    """p_g proportional to n_g^(1/T): T=1 the groups' own shares, larger T closer to uniform."""
    powered = [n ** (1 / temperature) for n in sizes]
    return [x / sum(powered) for x in powered]


def task_balanced_batches(lengths: list[int], groups: list[str | None], batch_size: int, seed: int, group: bool,
                          mode: str, temperature: float = 2.0) -> list[list[int]]:
    """As many batches as length_grouped_batches gives (one per batch_size rows), each drawn from one
    task group. temperature: the group picked at random with p_g ~ n_g^(1/T); alternating: the
    groups in turn (topic, ner, both, those present). Inside a group rows come in length-grouped
    shuffled order, the group starting a reshuffled pass when it runs out (a small group repeats).
    Deterministic per seed. Rows labelled for nothing are left out (they carry no loss)."""
    if mode not in ("temperature", "alternating"):
        raise ValueError(f"unknown task sampling {mode!r} (temperature or alternating)")
    present = [(name, [i for i, g in enumerate(groups) if g == name]) for name in GROUPS]
    present = [(name, idx) for name, idx in present if idx]
    if not present:
        return []
    gen = torch.Generator().manual_seed(seed)
    streams = [_group_batches(idx, lengths, batch_size, gen, group) for _, idx in present]
    n_batches = math.ceil(len(lengths) / batch_size)
    if mode == "alternating":
        picks = [b % len(present) for b in range(n_batches)]
    else:
        probs = torch.tensor(group_probabilities([len(idx) for _, idx in present], temperature), dtype=torch.float64)
        picks = torch.multinomial(probs, n_batches, replacement=True, generator=gen).tolist()
    return [next(streams[k]) for k in picks]


def epoch_batches(lengths: list[int], groups: list[str | None], tp, epoch: int) -> list[list[int]]:
    """An epoch's global batches as train.task_sampling says (natural: length_grouped_batches, as
    ever); seeded by train.seed + the epoch's index. groups: groups_from_flags of the rows."""
    if tp.task_sampling == "natural":
        return length_grouped_batches(lengths, tp.batch_size, tp.seed + epoch, tp.group_by_length)
    return task_balanced_batches(lengths, groups, tp.batch_size, tp.seed + epoch, tp.group_by_length,
                                 tp.task_sampling, tp.sampling_temperature)
