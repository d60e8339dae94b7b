"""The training loop's pieces in the core (pipeline/core/training.py, pipeline/core/device.py),
on a tiny GPT-Neo and toy rows: one epoch's statistics, the non-finite-loss stop, early stopping,
the step count, the one device picker."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from helpers import ENTITIES, TOPICS, toy_set

from pipeline.core import training
from pipeline.core.device import pick_device
from pipeline.core.features import FeatureConfig, Featurizer
from pipeline.core.model import MultiTaskModel
from pipeline.storage.hub import load_encoder, load_tokenizer
from pipeline.storage.params import tag_names

TP = SimpleNamespace(alpha=1.0, beta=1.0, label_smoothing=0.0, grad_accum=1, max_grad_norm=1.0, lr_encoder=1e-3, lr_heads=1e-2,
                     weight_decay=0.01, warmup_ratio=0.0, batch_size=4)


@pytest.fixture(scope="module")
def setup(tiny_gpt_neo):
    tok = load_tokenizer(str(tiny_gpt_neo))
    rows = Featurizer(tok, FeatureConfig(48, 8, "first", "expand", TOPICS, tag_names(ENTITIES))).encode(
        toy_set(10, 0, 0)).rows
    return tok, rows


def fresh_model(tiny_gpt_neo):
    torch.manual_seed(0)
    return MultiTaskModel(load_encoder(str(tiny_gpt_neo)), len(TOPICS), len(tag_names(ENTITIES)))


class Clock:
    """A progress stand-in: counts the steps run_epoch reports."""

    def __init__(self):
        self.steps, self.postfix = 0, None

    def update(self, n):
        self.steps += n

    def set_postfix(self, **kw):
        self.postfix = kw


def test_run_epoch_returns_the_epochs_statistics(setup, tiny_gpt_neo):
    tok, rows = setup
    model = fresh_model(tiny_gpt_neo)
    batches = training.shard(training.length_grouped_batches([len(r["input_ids"]) for r in rows], 4, 0, True), 0, 1)
    optimizer, scheduler = training.make_optimizer(model, TP, len(batches))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clock = Clock()
    model.train()
    stats = training.run_epoch(model, rows, batches, TP, optimizer, scheduler, torch.device("cpu"),
                               tok.pad_token_id, progress=clock)
    assert isinstance(stats, training.EpochStats)
    assert stats.tokens == sum(len(r["input_ids"]) for r in rows)  # every real token once
    slots = sum(len(idx) * max(len(rows[i]["input_ids"]) for i in idx) for idx, _ in batches)
    assert stats.padded_fraction == round(1 - stats.tokens / slots, 4)
    assert math.isfinite(stats.loss) and stats.loss == pytest.approx(stats.loss_topic + stats.loss_ner, abs=1e-5)
    assert clock.steps == len(batches) and "loss" in clock.postfix
    assert scheduler.last_epoch == len(batches)  # one optimizer step per batch
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_non_finite_loss_stops_the_epoch_at_its_step(setup, tiny_gpt_neo):
    tok, rows = setup
    model = fresh_model(tiny_gpt_neo)
    with torch.no_grad():
        model.ner_head[1].weight.fill_(float("nan"))
    batches = [([0, 1], 1.0), ([2, 3], 1.0)]
    optimizer, scheduler = training.make_optimizer(model, TP, 2)
    with pytest.raises(training.LossNotFinite) as info:
        training.run_epoch(model, rows, batches, TP, optimizer, scheduler, torch.device("cpu"), tok.pad_token_id)
    assert info.value.step == 1 and math.isnan(info.value.losses.loss_ner)
    assert str(info.value).startswith("loss became nan")


def test_early_stopping_keeps_the_best_and_stops_after_patience():
    stop = training.EarlyStopping(patience=2)
    assert [stop.update(s) for s in (0.5, 0.6, 0.55)] == [True, True, False]
    assert (stop.best_epoch, stop.best_score, stop.bad_epochs, stop.should_stop) == (2, 0.6, 1, False)
    assert stop.update(0.6) is False  # equal is not better
    assert stop.should_stop and stop.epoch == 4
    assert stop.update(0.7) is True and not stop.should_stop and stop.best_epoch == 5


def test_early_stopping_without_a_score_keeps_the_latest_epoch_and_patience_0_never_stops():
    unscored = training.EarlyStopping(patience=1)
    assert all(unscored.update(None) for _ in range(3)) and unscored.best_epoch == 3 and not unscored.should_stop
    never = training.EarlyStopping(patience=0)
    for score in (0.9, 0.1, 0.1, 0.1):
        never.update(score)
    assert not never.should_stop and never.best_epoch == 1 and never.bad_epochs == 3


@pytest.mark.parametrize("rows, batch_size, accum, steps", [(10, 4, 1, 3), (10, 4, 2, 2), (8, 4, 1, 2), (1, 16, 4, 1)])
def test_steps_per_epoch(rows, batch_size, accum, steps):
    tp = SimpleNamespace(batch_size=batch_size, grad_accum=accum)
    assert training.steps_per_epoch(rows, tp) == steps
    n_batches = len(training.length_grouped_batches([1] * rows, batch_size, 0, False))
    assert steps == math.ceil(n_batches / accum)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(None) == pick_device("auto")
    with pytest.raises(ValueError, match="'tpu': expected cpu or cuda"):
        pick_device("tpu")
    with pytest.raises(ValueError, match="expected cpu or cuda"):
        pick_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda: no CUDA device is available"):
            pick_device("cuda")
