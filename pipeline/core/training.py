"""The training loop's pieces, pure torch (no files, no params file, no CLI): seeding, length-grouped
batches and their sharding over processes, freezing, the optimizer (with optional layer-wise lr
decay), the weight average (EMA), one step, one epoch, early stopping. Task balancing (loss
weighting, task-balanced batches) is pipeline/core/balancing.py. pipeline/stages/train.py puts
them together; benchmarks/train.py times the same epoch.

`tp` below is the train section of the params (pipeline.storage.params.TrainParams): anything
with the attributes a function reads.
"""
from __future__ import annotations

import math
import os
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.core.device import autocast
from pipeline.core.inference import collate
from pipeline.core.model import MultiTaskModel


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class Distributed(NamedTuple):
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Distributed:
    """This process's place under torchrun (rank 0 of 1 without it); joins the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: bool) -> list[list[int]]:
    """Batches of similar length (less padding), in a shuffled order. Deterministic per seed:
    shuffle, sort within mega-chunks of 50 batches by length, cut into batches, shuffle batches."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if group:
        chunk = batch_size * 50
        order = [i for c in range(0, len(order), chunk)
                 for i in sorted(order[c:c + chunk], key=lambda i: lengths[i])]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]


def shard(batches: list[list[int]], rank: int, world: int) -> list[tuple[list[int], float]]:
    """This rank's part of every global batch, with its loss weight world * len(part) / len(batch),
    so that DDP's gradient average is the row-weighted mean over the whole batch (weight 1 with
    one process). A batch smaller than the world gives the ranks left over a stand-in row with
    weight 0: every rank runs the same number of steps, as DDP's all-reduce needs."""
    out = []
    for batch in batches:
        part = batch[rank::world]
        out.append((part, world * len(part) / len(batch)) if part else (batch[:1], 0.0))
    return out


def encoder_layers(encoder) -> list:
    """The transformer blocks of common encoder families, bottom to top."""
    for path in ("h", "layers", "encoder.layer", "layer", "transformer.h", "block"):
        obj = encoder
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return list(obj)
    raise ValueError(f"cannot find the layers of {type(encoder).__name__}")


def apply_freeze(model: MultiTaskModel, mode: str, top_k: int) -> None:
    """none: train all; encoder: heads only; top_k: heads + the top k encoder blocks (+ final norm)."""
    if mode == "none":
        return
    for param in model.encoder.parameters():
        param.requires_grad_(False)
    if mode == "top_k":
        layers = encoder_layers(model.encoder)
        for layer in layers[max(0, len(layers) - top_k):] if top_k else []:
            for param in layer.parameters():
                param.requires_grad_(True)
        for name, module in model.encoder.named_modules():
            if name.count(".") == 0 and isinstance(module, torch.nn.LayerNorm):  # e.g. GPT-Neo's ln_f
                for param in module.parameters():
                    param.requires_grad_(True)


def freeze_unused(model: MultiTaskModel, rows: list[dict], pad_id: int, device: torch.device) -> list[str]:
    """Stop training parameters that never get a gradient (e.g. BERT's pooler: we use the token
    states, not its pooled output). DDP requires every trainable parameter to take part in the
    loss; with one process they would just sit idle. Found by one forward/backward on two rows;
    the RNG state is restored, so the run is the same as without this check."""
    model.train()
    batch = {k: v.to(device) for k, v in collate(rows[:2], pad_id).items()}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), autocast(device):
        model(**batch)["loss"].backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in model.named_parameters():
        param.grad = None
        if name in unused:
            param.requires_grad_(False)
    return unused


def encoder_lrs(model: MultiTaskModel, lr: float, decay: float) -> dict[int, float]:
    """Layer-wise lr decay: id(parameter) -> lr for every encoder parameter. Block k of L (from the
    bottom, encoder_layers) gets lr * decay^(L-k); what comes before the first block (embeddings)
    lr * decay^L; what comes after the last (a final norm) lr. Raises ValueError for an encoder
    whose blocks encoder_layers cannot find."""
    layers = encoder_layers(model.encoder)
    block = {id(p): k for k, layer in enumerate(layers, 1) for p in layer.parameters()}
    out, depth = {}, 0  # depth 0: below the first block; L: the top block and what follows it
    for param in model.encoder.parameters():  # in module order: embeddings, blocks, final norm
        depth = block.get(id(param), depth)
        out[id(param)] = lr * decay ** (len(layers) - depth)
    return out


def param_groups(model: MultiTaskModel, tp) -> list[dict]:
    """Separate learning rates for encoder and heads (the encoder's per block with train.
    lr_layer_decay < 1); no weight decay on biases and norms."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.Embedding))
                for p in m.parameters()}
    no_decay |= {id(p) for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n.lower()}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    encoder = [p for n, p in trainable if n.startswith("encoder.")]
    heads = [p for n, p in trainable if not n.startswith("encoder.")]
    parts = [(encoder, tp.lr_encoder), (heads, tp.lr_heads)]
    if tp.lr_layer_decay != 1.0:  # one part per distinct lr, bottom first (1.0: the two parts above, as ever)
        lrs = encoder_lrs(model, tp.lr_encoder, tp.lr_layer_decay)
        levels = sorted({lrs[id(p)] for p in encoder})
        parts = [([p for p in encoder if lrs[id(p)] == lr], lr) for lr in levels] + [(heads, tp.lr_heads)]
    groups = []
    for params_of_part, lr in parts:
        for decay in (True, False):
            params = [p for p in params_of_part if (id(p) not in no_decay) == decay]
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": tp.weight_decay if decay else 0.0})
    return groups


def make_optimizer(model: MultiTaskModel, tp, total_steps: int, extra: list | None = None):
    """AdamW over param_groups with linear warm-up then decay. The fused kernel (CPU and CUDA)
    updates all parameters in one pass: the same maths, measurably faster (benchmarks/SPEED.md).
    `extra`: training-only parameters (a LossWeighting's), one last group at lr_heads without
    weight decay (none: the groups are exactly param_groups)."""
    from transformers import get_linear_schedule_with_warmup

    groups = param_groups(model, tp)
    if extra:
        groups.append({"params": list(extra), "lr": tp.lr_heads, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, fused=True)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(tp.warmup_ratio * total_steps), total_steps)


class WeightAverage(AveragedModel):
    """An exponential moving average of a model's weights (train.ema_decay): torch's AveragedModel
    with its EMA update, which averages the parameters (frozen ones stay exactly equal: a lerp
    between equal values) and starts at the weights after the first update. Buffers are copied,
    not averaged (use_buffers=True would push integer buffers such as BERT's position_ids through
    float arithmetic). `.module` is a MultiTaskModel with the model's state_dict keys: what dev is
    scored and the best weights are kept on."""

    def __init__(self, model: MultiTaskModel, decay: float):
        super().__init__(model, multi_avg_fn=get_ema_multi_avg_fn(decay))

    def update_parameters(self, model) -> None:
        super().update_parameters(model)
        with torch.no_grad():
            for mine, theirs in zip(self.module.buffers(), model.buffers()):
                mine.copy_(theirs)


def steps_per_epoch(n_rows: int, tp) -> int:
    """Optimizer steps in one epoch: one batch per batch_size rows (each process takes its share of
    every batch), one step per grad_accum batches."""
    return math.ceil(math.ceil(n_rows / tp.batch_size) / tp.grad_accum)


class Losses(NamedTuple):
    loss: float
    loss_topic: float
    loss_ner: float


def train_step(train_model, batch: dict, weight: float, tp, optimizer, scheduler, boundary: bool,
               sync, device: torch.device, weighting=None, ema=None) -> Losses:
    """One micro-batch: forward, weighted backward (weight: this rank's share of the global batch);
    on an accumulation boundary, clip and step, then update `ema` (a WeightAverage) if any.
    `weighting` (a balancing.LossWeighting) combines the task losses instead of the model's fixed
    alpha/beta sum; the reported `loss` is that fixed sum in every mode, so runs compare."""
    with sync, autocast(device):
        out = train_model(**batch, alpha=tp.alpha, beta=tp.beta, topic_smoothing=tp.label_smoothing)
        loss = out["loss"] if weighting is None else weighting(
            out["loss_topic"], out["loss_ner"], batch["topic_labels"], batch["ner_labels"], weight > 0)
        (loss * weight / tp.grad_accum).backward()
    if boundary:
        if weighting is not None:
            weighting.sync_grads()
        if tp.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(train_model.parameters(), tp.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update_parameters(getattr(train_model, "module", train_model))  # the model inside DDP
    return Losses(*(out[key].item() for key in Losses._fields))


class LossNotFinite(ArithmeticError):
    """The loss became NaN or infinite (a learning rate too high, most often)."""

    def __init__(self, losses: Losses, step: int):
        super().__init__(f"loss became {losses.loss} (topic {losses.loss_topic}, NER {losses.loss_ner}) at step {step}")
        self.losses, self.step = losses, step


@dataclass
class EpochSums:
    """Row-weighted sums over an epoch's batches (summed over processes before they are read)."""
    loss: float = 0.0
    loss_topic: float = 0.0
    loss_ner: float = 0.0
    rows: float = 0.0
    padding: float = 0.0
    slots: float = 0.0
    tokens: float = 0.0

    def add(self, losses: Losses, n_rows: int, mask: torch.Tensor) -> None:
        n_real = int(mask.sum())
        self.loss += losses.loss * n_rows
        self.loss_topic += losses.loss_topic * n_rows
        self.loss_ner += losses.loss_ner * n_rows
        self.rows += n_rows
        self.padding += mask.numel() - n_real
        self.slots += mask.numel()
        self.tokens += n_real

    def all_reduce(self, device: torch.device) -> EpochSums:
        """The sums over all processes (NCCL reduces device tensors only)."""
        names = list(vars(self))
        reduced = torch.tensor([getattr(self, n) for n in names], dtype=torch.float64).to(device)
        torch.distributed.all_reduce(reduced)
        return EpochSums(**dict(zip(names, reduced.cpu().tolist())))


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of training did: mean losses per row, the padded share of batch slots, and
    the real (non-pad) tokens it trained on."""
    loss: float
    loss_topic: float
    loss_ner: float
    padded_fraction: float
    tokens: int

    @classmethod
    def from_sums(cls, s: EpochSums) -> EpochStats:
        return cls(round(s.loss / s.rows, 6), round(s.loss_topic / s.rows, 6), round(s.loss_ner / s.rows, 6),
                   round(s.padding / s.slots, 4), int(s.tokens))


def run_epoch(train_model, rows: list[dict], batches: list[tuple[list[int], float]], tp, optimizer, scheduler,
              device: torch.device, pad_id: int, world: int = 1, progress=None, weighting=None,
              ema=None) -> EpochStats:
    """Train on `batches` (this rank's shard: row indices into `rows` and loss weights) once.
    `progress`, if given, is a tqdm-like bar updated per step; weighting and ema: see train_step.
    Raises LossNotFinite."""
    sums = EpochSums()
    for step, (idx, weight) in enumerate(batches):
        batch = {k: v.to(device) for k, v in collate([rows[i] for i in idx], pad_id).items()}
        boundary = (step + 1) % tp.grad_accum == 0 or step + 1 == len(batches)
        sync = train_model.no_sync() if world > 1 and not boundary else nullcontext()
        losses = train_step(train_model, batch, weight, tp, optimizer, scheduler, boundary, sync, device,
                            weighting, ema)
        if not all(math.isfinite(v) for v in losses):
            raise LossNotFinite(losses, step + 1)
        if weight:
            sums.add(losses, len(idx), batch["attention_mask"])
        if progress is not None:
            progress.set_postfix(loss=f"{sums.loss / max(sums.rows, 1):.4f}", refresh=False)
            progress.update(1)
    return EpochStats.from_sums(sums.all_reduce(device) if world > 1 else sums)


@torch.no_grad()
def dev_loss(model, rows: list[dict], pad_id: int, batch_size: int, device: torch.device,
             alpha: float, beta: float) -> float | None:
    """The training objective on dev rows (row-weighted mean over batches); None without dev data."""
    if not rows:
        return None
    model.eval()
    total = 0.0
    for b in range(0, len(rows), batch_size):
        chunk = rows[b:b + batch_size]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        with autocast(device):
            total += model(**batch, alpha=alpha, beta=beta)["loss"].item() * len(chunk)
    return round(total / len(rows), 6)


@dataclass
class EarlyStopping:
    """Keeps the best dev score; `update(score)` says whether this epoch improved on it. A run
    stops after `patience` epochs without improvement (patience 0: never early)."""
    patience: int
    best_score: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    epoch: int = field(default=0)

    def update(self, score: float | None) -> bool:
        """Record the next epoch's dev score (higher is better; None: nothing to score, so the
        latest epoch counts as best)."""
        self.epoch += 1
        if score is None:
            score = self.epoch - 1
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience
