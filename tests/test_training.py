"""The training loop's pieces in the core (pipeline/core/training.py, pipeline/core/device.py),
on a tiny GPT-Neo and toy rows: one epoch's statistics, the non-finite-loss stop, early stopping,
the step count, the one device picker; and the task balancing (pipeline/core/balancing.py), the
weight average, layer-wise lr decay and the topic head's dropout."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from helpers import ENTITIES, TOPICS, toy_set

from pipeline.core import balancing, training
from pipeline.core.align import IGNORE
from pipeline.core.device import pick_device
from pipeline.core.features import FeatureConfig, Featurizer
from pipeline.core.model import MultiTaskModel
from pipeline.storage import feature_store
from pipeline.storage.hub import load_encoder, load_tokenizer
from pipeline.storage.params import tag_names

TP = SimpleNamespace(alpha=1.0, beta=1.0, label_smoothing=0.0, grad_accum=1, max_grad_norm=1.0, lr_encoder=1e-3, lr_heads=1e-2,
                     weight_decay=0.01, warmup_ratio=0.0, batch_size=4, lr_layer_decay=1.0)


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


# task balancing, weight averaging, layer-wise lr decay (pipeline/core/balancing.py, training.py) --------

def in_graph_zero(x: torch.Tensor) -> torch.Tensor:
    """What masked_ce returns for a task with no labels in the batch."""
    return x.sum() * 0.0


def test_uncertainty_weighting_is_kendalls_formula_and_an_unlabelled_task_gets_no_push():
    w = balancing.LossWeighting("uncertainty", alpha=0.5, beta=2.0)
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.3, -0.2]))
    l_topic = torch.tensor(1.2, requires_grad=True)
    topic_labels, no_ner = torch.tensor([1, IGNORE]), torch.full((2, 5), IGNORE)
    loss = w(l_topic * 1.0, in_graph_zero(torch.ones(3, requires_grad=True)), topic_labels, no_ner)
    assert loss.item() == pytest.approx(0.5 * (math.exp(-0.3) * 1.2 + 0.3))   # the NER term, +s_ner too, is 0
    loss.backward()
    assert w.log_vars.grad[1].item() == 0.0                                    # exactly: s_ner is not pushed
    assert w.log_vars.grad[0].item() == pytest.approx(0.5 * (1 - math.exp(-0.3) * 1.2))
    assert w.weights() == (round(0.5 * math.exp(-0.3), 6), round(2.0 * math.exp(0.2), 6))
    both = w(torch.tensor(1.0), torch.tensor(0.5), topic_labels, torch.tensor([[0, IGNORE]]))
    assert both.item() == pytest.approx(0.5 * (math.exp(-0.3) + 0.3) + 2.0 * (math.exp(0.2) * 0.5 - 0.2))


def test_normalized_weights_are_one_over_the_running_mean_of_each_tasks_loss():
    w = balancing.LossWeighting("normalized", alpha=1.0, beta=3.0, momentum=0.9)
    labels, none = torch.tensor([0]), torch.tensor([IGNORE])
    assert w.weights() == (1.0, 3.0)                                       # nothing seen yet
    first = w(torch.tensor(2.0), in_graph_zero(torch.ones(1)), labels, none)
    assert first.item() == pytest.approx(1.0)                              # started at the first labelled batch
    w(torch.tensor(4.0), torch.tensor(0.5), labels, labels)                # NER's first labelled batch
    m_topic, m_ner = 0.9 * 2.0 + 0.1 * 4.0, 0.5
    assert w.running.tolist() == pytest.approx([m_topic, m_ner])
    assert w.weights() == (round(1 / m_topic, 6), round(3.0 / m_ner, 6))
    loss = w(torch.tensor(1.0), torch.tensor(0.5), labels, labels, counts=False)   # a stand-in row: no update
    assert w.running.tolist() == pytest.approx([m_topic, m_ner])
    assert loss.item() == pytest.approx(1.0 / m_topic + 3.0 * 0.5 / m_ner)
    assert list(w.state_dict()) == ["running", "seen"]                    # alpha/beta come from the params


def toy_groups() -> tuple[list[int], list[str]]:
    groups = ["topic"] * 9000 + ["ner"] * 1000
    return [5 + i % 7 for i in range(len(groups))], groups


@pytest.mark.parametrize("temperature, share", [(1.0, 0.9), (2.0, 0.75), (1e9, 0.5)])
def test_temperature_sampling_follows_n_to_the_1_over_t(temperature, share):
    lengths, groups = toy_groups()
    batches = balancing.task_balanced_batches(lengths, groups, 4, 0, True, "temperature", temperature)
    assert len(batches) == len(training.length_grouped_batches(lengths, 4, 0, True)) == 2500
    kinds = [{groups[i] for i in b} for b in batches]
    assert all(len(k) == 1 for k in kinds)                                 # every batch from one group
    topic = sum(k == {"topic"} for k in kinds) / len(kinds)
    assert topic == pytest.approx(share, abs=0.03)
    assert balancing.group_probabilities([9000, 1000], temperature)[0] == pytest.approx(share, abs=1e-6)


def test_task_sampling_is_deterministic_per_seed_and_cycles_a_small_group():
    lengths, groups = toy_groups()
    a, b, c = (balancing.task_balanced_batches(lengths, groups, 4, seed, True, "temperature", 1e9)
               for seed in (3, 3, 4))
    assert a == b and a != c
    ner = [batch for batch in a if groups[batch[0]] == "ner"]              # about 1250 NER batches of 1000 rows
    first_pass = [i for batch in ner[:250] for i in batch]
    assert sorted(first_pass) == list(range(9000, 10000))                  # every row once before any repeats
    assert len(ner) > 250 and ner[250:500] != ner[:250]                    # then a reshuffled pass


def test_alternating_takes_the_groups_in_turn_and_rows_labelled_for_nothing_are_left_out(setup, tmp_path):
    _, rows = setup
    groups = ["topic", "ner", "both", None, "topic", "ner", "both", "topic"]
    batches = balancing.task_balanced_batches([5] * 8, groups, 1, 0, False, "alternating")
    assert [groups[b[0]] for b in batches] == ["topic", "ner", "both"] * 2 + ["topic", "ner"]
    assert 3 not in {i for b in batches for i in b}
    both = {**rows[0]}
    topic_only, ner_only = {**both, "labels": [IGNORE] * len(both["labels"])}, {**both, "topic": IGNORE}
    nothing = {**topic_only, "topic": IGNORE}
    with feature_store.writer(tmp_path / "train.arrow") as out:
        out.write_rows([both, topic_only, ner_only, nothing])
    stored = feature_store.FeatureRows(tmp_path / "train.arrow")
    assert balancing.groups_from_flags(stored.has_topic, stored.has_ner) == ["both", "topic", "ner", None]
    natural = SimpleNamespace(task_sampling="natural", batch_size=2, seed=1, group_by_length=True)
    assert balancing.epoch_batches([5] * 8, groups, natural, 2) == training.length_grouped_batches([5] * 8, 2, 3, True)


def test_uncertainty_weights_are_learned_on_a_toy_run(setup, tiny_gpt_neo):
    tok, rows = setup
    model = fresh_model(tiny_gpt_neo)
    weighting = balancing.LossWeighting("uncertainty", 1.0, 1.0)
    batches = training.shard(training.length_grouped_batches([len(r["input_ids"]) for r in rows], 2, 0, True), 0, 1)
    optimizer, scheduler = training.make_optimizer(model, TP, len(batches), list(weighting.parameters()))
    last = optimizer.param_groups[-1]
    assert last["params"] == [weighting.log_vars] and last["lr"] == TP.lr_heads and last["weight_decay"] == 0.0
    model.train()
    stats = training.run_epoch(model, rows, batches, TP, optimizer, scheduler, torch.device("cpu"), tok.pad_token_id,
                               weighting=weighting)
    assert (weighting.log_vars != 0).all() and weighting.weights() != (1.0, 1.0)
    assert stats.loss == pytest.approx(stats.loss_topic + stats.loss_ner, abs=1e-5)  # reported: the fixed sum


def test_ema_is_the_hand_computed_average_of_two_steps(setup, tiny_gpt_neo):
    tok, rows = setup
    model = fresh_model(tiny_gpt_neo)
    ema = training.WeightAverage(model, 0.9)
    optimizer, scheduler = training.make_optimizer(model, TP, 2)
    model.train()
    after = []
    for batch in ([0, 1], [2, 3]):
        training.run_epoch(model, rows, [(batch, 1.0)], TP, optimizer, scheduler, torch.device("cpu"),
                           tok.pad_token_id, ema=ema)
        after.append({k: v.clone() for k, v in model.state_dict().items()})
    averaged = ema.module.state_dict()
    assert averaged.keys() == after[1].keys() and int(ema.n_averaged) == 2
    for key, w2 in after[1].items():
        assert torch.allclose(averaged[key], 0.9 * after[0][key] + 0.1 * w2, atol=1e-7), key
    assert any(not torch.equal(averaged[k], v) for k, v in after[1].items())


def test_ema_copies_buffers_instead_of_averaging_them():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = training.WeightAverage(net, 0.5)
    for _ in range(3):
        net(torch.randn(8, 3))
        ema.update_parameters(net)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    assert int(ema.module[1].num_batches_tracked) == 3


def old_param_groups(model, tp) -> list[dict]:
    """param_groups as it was before train.lr_layer_decay: what 1.0 must still give."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.Embedding))
                for p in m.parameters()}
    no_decay |= {id(p) for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n.lower()}
    groups = []
    for part, lr in (("encoder", tp.lr_encoder), ("heads", tp.lr_heads)):
        named = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad and (n.startswith("encoder.") == (part == "encoder"))]
        for decay in (True, False):
            params = [p for _, p in named if (id(p) not in no_decay) == decay]
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": tp.weight_decay if decay else 0.0})
    return groups


def group_of(groups: list[dict], model) -> dict[str, tuple[float, float]]:
    where = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    return {n: where[id(p)] for n, p in model.named_parameters() if id(p) in where}


def test_lr_layer_decay_gives_each_block_its_lr_and_1_is_the_groups_as_before(tiny_gpt_neo):
    model = fresh_model(tiny_gpt_neo)
    same = training.param_groups(model, TP)
    old = old_param_groups(model, TP)
    assert [(g["lr"], g["weight_decay"], [id(p) for p in g["params"]]) for g in same] == \
        [(g["lr"], g["weight_decay"], [id(p) for p in g["params"]]) for g in old]
    decayed = group_of(training.param_groups(model, SimpleNamespace(**{**vars(TP), "lr_layer_decay": 0.5})), model)
    expected = {"encoder.wte.": 0.25, "encoder.wpe.": 0.25, "encoder.h.0.": 0.5, "encoder.h.1.": 1.0,
                "encoder.ln_f.": 1.0}   # GPT-Neo, 2 blocks: embeddings decay^2, block 1 decay^1, top and ln_f 1
    for name, (lr, wd) in decayed.items():
        scale = next((v for k, v in expected.items() if name.startswith(k)), None)
        assert lr == pytest.approx(TP.lr_heads if scale is None else TP.lr_encoder * scale), name
        assert wd == group_of(old, model)[name][1], name                 # the weight-decay split is kept
    assert set(decayed) == set(group_of(old, model))


def test_topic_dropout_reaches_the_head_and_leaves_the_weights_alone(tiny_gpt_neo):
    model = MultiTaskModel(load_encoder(str(tiny_gpt_neo)), 4, 9, topic_dropout=0.3)
    assert model.topic_head[0].p == 0.3 and model.ner_head[0].p == 0.1
    assert model.state_dict().keys() == fresh_model(tiny_gpt_neo).state_dict().keys()
    assert MultiTaskModel(load_encoder(str(tiny_gpt_neo)), 4, 9).topic_head[0].p == 0.1
