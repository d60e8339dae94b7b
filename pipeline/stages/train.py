"""Stage train: fine-tune the shared encoder with both heads on data/features/.

Loss = alpha * CE(topic) + beta * CE(NER), each averaged over its labelled items only (records
annotated for one task contribute nothing to the other). AdamW with separate learning rates for
encoder and heads, linear warm-up then decay, clipping, accumulation, optional freezing, length-
grouped dynamic batches, early stopping on a dev score with the best weights kept.

Task balancing and regularisation, all off by default (the defaults train exactly as without them):
train.loss_weighting (uncertainty: learned per-task weights, Kendall et al. 2018; normalized: each
loss over its running mean; pipeline.core.balancing), train.task_sampling (temperature /
alternating: each batch from one task group), train.ema_decay (dev scoring, the kept and the
saved weights are an exponential moving average), train.lr_layer_decay (lower blocks train
slower), train.topic_dropout. The learned loss weights and the weight average are training
state, in the checkpoint, never in the model directory; the effective loss weights are logged
per epoch (train/weight_topic, train/weight_ner).
Writes models/multitask/ (self-contained: configs, safetensors weights, tokenizer), per-epoch
curves through DVCLive, metrics/train.json and plots/train_curves.png (--speed: timings).

More than one process: `torchrun --nproc_per_node N -m pipeline train` (gloo on CPU, NCCL on
GPU). train.batch_size is the global batch: each batch is split across the processes, so the
optimizer takes the same steps on the same batches as one process would (the gradient differs
only in how the per-process means are combined, and in dropout). Only rank 0 scores dev and
writes anything; it broadcasts the early-stopping decision.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.cli import run_cli, stage_parser
from pipeline.core import balancing, training
from pipeline.core.device import pick_device
from pipeline.core.features import position_limit, position_problem
from pipeline.core.headline import train_headline
from pipeline.core.metrics import select_score
from pipeline.core.model import ModelMeta, MultiTaskModel
from pipeline.core.records import split_stats
from pipeline.core.refit import RefitResult, refit_topic_head
from pipeline.core.scoring import SplitMismatch, score_split
from pipeline.storage import checkpoints, feature_store, model_card, model_dir, plots, progress
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path, read_jsonl, write_json
from pipeline.storage.hub import load_encoder, load_tokenizer, resolve


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = stage_parser("train", __doc__, {
        "--features": ("data/features", "featurized data"),
        "--validated": ("data/validated", "validated records, for dev spans"),
        "--model-dir": ("models/multitask", "output model directory"),
        "--checkpoint-dir": ("models/checkpoint", "per-epoch checkpoint for train.resume"),
        "--metrics": ("metrics/train.json", "headline training summary (dvc metrics)"),
        "--details": ("reports/train.json", "the training summary in full"),
        "--speed": (None, ("also write training time and tokens/s to this JSON file (not a DVC output: "
                           "timings differ run to run, and dvc.lock must not)")),
        "--live-dir": ("dvclive", "DVCLive directory"),
        "--plot": ("plots/train_curves.png", "training curves image")})
    return ap.parse_args(argv)


@dataclass
class TrainingData:
    train_rows: feature_store.FeatureRows  # on disk, read per batch
    dev_rows: feature_store.FeatureRows
    dev_path: Path           # the validated dev records, streamed beside dev_rows when dev is scored
    features: feature_store.FeatureMeta
    meta: ModelMeta          # what the trained model directory will say (best_epoch filled in at the end)

    def dev_records(self):
        return read_jsonl(self.dev_path)


def load_data(args, p) -> TrainingData:
    features = Path(args.features)
    feature_store.require(features / feature_store.META, feature_store.split_path(features, "train"),
                          feature_store.split_path(features, "dev"), Path(args.validated) / "dev.jsonl",
                          Path(args.validated) / "train.jsonl")
    fmeta = feature_store.read_meta(features)
    feature_store.check_compatible(fmeta, features, "params.yaml", "re-run the featurize stage (`dvc repro`)",
                                   topics=p.labels.topics, tags=p.tag_names, encoder=p.encoder.name)
    train_rows = feature_store.FeatureRows(feature_store.split_path(features, "train"))
    if not len(train_rows):
        raise PipelineError(f"{feature_store.split_path(features, 'train')} is empty: no training data")
    meta = ModelMeta(**fmeta.settings(), encoder_name=p.encoder.name, pooling=p.encoder.pooling, entities=p.labels.entities,
                     n_prefix=fmeta.n_prefix, ner_decode=p.train.ner_decode)
    return TrainingData(train_rows, feature_store.FeatureRows(feature_store.split_path(features, "dev")),
                        Path(args.validated) / "dev.jsonl", fmeta, meta)


def build_model(args, p, data: TrainingData, device: torch.device, dist: training.Distributed):
    """(tokenizer, model, the module that trains: the model or its DDP wrapper)."""
    tp = p.train
    tokenizer = load_tokenizer(p.encoder.name, p.encoder.trust_remote_code)
    encoder = load_encoder(p.encoder.name, p.encoder.trust_remote_code, p.encoder.allow_pickle)
    limit = position_limit(encoder)
    problem = position_problem(data.features.max_length, limit, f"encoder '{p.encoder.name}'")
    if problem:  # features made for another encoder config: an IndexError in the embedding mid-run otherwise
        raise PipelineError(f"{Path(args.features) / feature_store.META}: max_length {problem}; set "
                            f"tokenize.max_length <= {limit} and re-run featurize (`dvc repro`)")
    model = MultiTaskModel(encoder, len(data.meta.topics), len(data.meta.tags), p.encoder.pooling,
                           tp.topic_dropout).to(device)
    try:
        training.apply_freeze(model, tp.freeze, tp.unfreeze_top_layers)
    except ValueError as exc:
        raise PipelineError(f"train.freeze: top_k: {exc}") from None
    unused = training.freeze_unused(model, data.train_rows, data.features.pad_token_id, device)
    if unused and dist.main:
        print(f"train: {len(unused)} encoder parameter(s) get no gradient and stay fixed: {', '.join(unused[:4])}"
              + (" ..." if len(unused) > 4 else ""))
    if not any(param.requires_grad for param in model.parameters()):
        raise PipelineError("train: no trainable parameters (check train.freeze)")
    train_model = model
    if dist.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    return tokenizer, model, train_model


@dataclass
class Extras:
    """Training state besides the model and optimizer (None: off): the learned or running loss
    weights (train.loss_weighting) and the weight average (train.ema_decay; rank 0 only, the one
    that scores dev). Checkpointed under these names."""
    weighting: balancing.LossWeighting | None
    ema: training.WeightAverage | None

    def modules(self) -> dict:
        return {name: m for name, m in (("weighting", self.weighting), ("ema", self.ema)) if m is not None}

    def scored(self, model):
        """The weights dev is scored on and kept from: the average if there is one."""
        return model if self.ema is None else self.ema.module


def make_extras(tp, model, device: torch.device, dist: training.Distributed) -> Extras:
    weighting = None
    if tp.loss_weighting != "fixed":  # fixed: the model's own alpha/beta loss, nothing more
        weighting = balancing.LossWeighting(tp.loss_weighting, tp.alpha, tp.beta, world=dist.world).to(device)
    ema = training.WeightAverage(model, tp.ema_decay) if tp.ema_decay and dist.main else None
    return Extras(weighting, ema)


def make_optimizer(model, tp, n_rows: int, extras: Extras):
    extra = list(extras.weighting.parameters()) if extras.weighting is not None else None
    try:
        return training.make_optimizer(model, tp, training.steps_per_epoch(n_rows, tp) * tp.epochs, extra)
    except ValueError as exc:  # lr_layer_decay on an encoder whose blocks are not found
        raise PipelineError(f"train.lr_layer_decay: {exc}") from None


@dataclass
class RunState:
    """What a checkpoint carries besides tensors: early stopping, per-epoch history, fingerprint."""
    stopping: training.EarlyStopping
    history: list[dict]
    fingerprint: str
    best_weights: dict

    def to_json(self) -> dict:
        s = self.stopping
        return {"epoch": s.epoch, "best_score": s.best_score, "best_epoch": s.best_epoch,
                "bad_epochs": s.bad_epochs, "history": self.history, "fingerprint": self.fingerprint}


def start_or_resume(args, p, data: TrainingData, model, optimizer, scheduler, dist, extras: Extras) -> RunState:
    tp = p.train
    run = RunState(training.EarlyStopping(tp.patience), [],
                   checkpoints.fingerprint(tp.model_dump(), p.encoder.model_dump(), dataclasses.asdict(data.features)),
                   {k: v.detach().clone().cpu() for k, v in model.state_dict().items()})
    ckpt = Path(args.checkpoint_dir)
    if not tp.resume or not (ckpt / checkpoints.STATE).is_file():
        return run
    if checkpoints.saved_fingerprint(ckpt) != run.fingerprint:
        if dist.main:
            print(f"train: {ckpt} was written with other params; starting afresh")
        return run
    state, best = checkpoints.load_checkpoint(ckpt, model, optimizer, scheduler, extras.modules())
    stopping = training.EarlyStopping(tp.patience, state["best_score"], state["best_epoch"], state["bad_epochs"],
                                      state["epoch"])
    if dist.main:
        print(f"train: resuming after epoch {stopping.epoch} from {ckpt}")
        if stopping.should_stop:
            print(f"train: {ckpt} stopped early after epoch {stopping.epoch}; nothing more to train")
    return RunState(stopping, state["history"], run.fingerprint, best)


def score_dev(model, data: TrainingData, tp, device) -> dict:
    """The dev columns of an epoch's record and the early-stopping score."""
    batch_size, pad_id = tp.batch_size * 2, data.features.pad_token_id
    try:
        dev = score_split(model, data.dev_rows, data.dev_records(), data.meta, batch_size, pad_id, device)
    except SplitMismatch as exc:
        raise PipelineError(f"{data.dev_rows.path} and {data.dev_path}: {exc}; re-run featurize after validate "
                            f"(`dvc repro`)") from None
    out = {}
    if tp.select_metric == "loss":
        # the fixed alpha/beta objective in every train.loss_weighting: learned or running weights would
        # make epochs incomparable (and uncertainty's +s terms can go negative)
        out["dev_loss"] = training.dev_loss(model, data.dev_rows, pad_id, batch_size, device, tp.alpha, tp.beta)
        score = None if out["dev_loss"] is None else -out["dev_loss"]
    else:  # per_task: the encoder and NER head follow NER (the topic head is re-fit at the end)
        metric = "ner_f1" if tp.select == "per_task" and dev.get("ner") else tp.select_metric
        score = select_score(dev.get("topic"), dev.get("ner"), metric)
    return {**out, "dev_topic_macro_f1": dev.get("topic", {}).get("macro_f1"),
            "dev_ner_f1": dev.get("ner", {}).get("f1"), "dev_score": score}


def end_of_epoch(args, run: RunState, stats: training.EpochStats, model, optimizer, scheduler, data, tp, device,
                 live, extras: Extras) -> None:
    """Rank 0, after each epoch: score dev, keep the best weights, log, checkpoint."""
    weights = extras.weighting.weights() if extras.weighting is not None else None
    record = {"epoch": run.stopping.epoch + 1, "loss": stats.loss, "loss_topic": stats.loss_topic,
              "loss_ner": stats.loss_ner, **({"weight_topic": weights[0], "weight_ner": weights[1]} if weights else {}),
              "padded_fraction": stats.padded_fraction, **score_dev(extras.scored(model), data, tp, device)}
    run.history.append(record)
    if run.stopping.update(record["dev_score"]):
        run.best_weights = {k: v.detach().clone().cpu() for k, v in extras.scored(model).state_dict().items()}
    for key, value in record.items():
        if key != "epoch" and value is not None:
            live.log_metric(key.replace("dev_", "dev/") if key.startswith("dev_") else f"train/{key}", value)
    live.next_step()
    checkpoints.save_checkpoint(Path(args.checkpoint_dir), model, optimizer, scheduler, run.to_json(),
                                run.best_weights, extras.modules())
    print(f"epoch {record['epoch']}: loss {record['loss']:.4f} (topic {record['loss_topic']:.4f}, "
          f"ner {record['loss_ner']:.4f}), dev score {record['dev_score']}, "
          + (f"loss weights {weights[0]:.3g}/{weights[1]:.3g}, " if weights else "") +
          f"padded {record['padded_fraction']:.1%}")
    if run.stopping.should_stop:
        print(f"train: early stop, no dev improvement for {tp.patience} epoch(s)")


def refit_topic(model, data: TrainingData, tp) -> RefitResult | None:
    """train.select per_task: the topic head re-fit on the kept encoder (pipeline.core.refit)."""
    device = next(model.parameters()).device
    result = refit_topic_head(model, data.train_rows, data.dev_rows, [r["task_A"] for r in data.dev_records()],
                              data.meta.topics, tp, data.features.pad_token_id, device, tp.topic_refit_epochs)
    if result is not None:
        print(f"train: topic head re-fit on the kept encoder: dev topic macro-F1 {result.dev_scores[0]} -> "
              f"{result.dev_scores[result.best_epoch]} (head epoch {result.best_epoch} of {tp.topic_refit_epochs})")
    return result


class FirstStep:
    """A progress bar that also notes when the first training step of this run ended (unix time):
    --speed reports it, so benchmarks/scale.py can time a start-up from the process's launch."""

    def __init__(self):
        self.bar, self.at = None, None  # the bar: each epoch's own

    def update(self, n: int = 1) -> None:
        if self.at is None:
            self.at = time.time()
        self.bar.update(n)

    def set_postfix(self, **kwargs) -> None:
        self.bar.set_postfix(**kwargs)


def finish(args, p, run: RunState, model, tokenizer, data: TrainingData, seconds: float, tokens: int,
           world: int, first_step_at: float | None) -> None:
    """Rank 0: write the best weights as the model directory (with its model card), the summary
    metrics, the timing report and the curves."""
    model.load_state_dict(run.best_weights)
    meta = dataclasses.replace(data.meta, best_epoch=run.stopping.best_epoch)
    best = next((h for h in run.history if h["epoch"] == run.stopping.best_epoch), {})
    refit = refit_topic(model, data, p.train) if p.train.select == "per_task" else None
    if refit is not None:
        best = {**best, "dev_topic_macro_f1": refit.dev_scores[refit.best_epoch],
                "selection": (f"the best by dev NER F1 (`train.select: per_task`), with the topic head then "
                              f"re-fit on that encoder (head epoch {refit.best_epoch} of {p.train.topic_refit_epochs} "
                              f"kept)")}
    train_stats = split_stats(read_jsonl(Path(args.validated) / "train.jsonl"), p.labels.topics,
                              p.labels.entities)
    with atomic_path(args.model_dir, is_dir=True) as tmp:
        model_dir.save(model.cpu(), tokenizer, tmp, meta)
        model_card.write(tmp, meta, resolve(p.encoder.name), train_stats, best, run.stopping.epoch)
    last = run.history[-1]
    summary = {"epochs_run": run.stopping.epoch, "best_epoch": run.stopping.best_epoch,
               "best_dev_score": run.stopping.best_score, "final_loss": last["loss"],
               "padded_fraction": last["padded_fraction"], "world_size": world}
    summary |= {k: last[k] for k in ("weight_topic", "weight_ner") if k in last}  # the last epoch's loss weights
    if refit is not None:
        summary["topic_refit"] = {"dev_topic_macro_f1": refit.dev_scores, "best_epoch": refit.best_epoch,
                                  "gain": refit.gain}
    write_json(args.details, summary)
    write_json(args.metrics, train_headline(summary))
    speed = {"train_seconds": round(seconds, 1), "tokens_per_second": round(tokens / max(seconds, 1e-9), 1)}
    if args.speed:
        write_json(args.speed, {**speed, "world_size": world, "first_step_at": first_step_at})
    plots.plot_curves(run.history, args.plot)
    print(f"train: best epoch {run.stopping.best_epoch} (dev score {run.stopping.best_score}), "
          f"model and model card in {args.model_dir}; {speed['train_seconds']} s, "
          f"{speed['tokens_per_second']} tokens/s")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    p = params_mod.load(args.params)
    tp = p.train
    dist = training.setup_distributed()
    try:
        device = pick_device(tp.device, dist.local_rank)
    except ValueError as exc:
        raise PipelineError(f"train.device: {exc}") from None
    training.seed_everything(tp.seed)
    # SIGTERM (e.g. a scheduler's kill) -> KeyboardInterrupt: nothing half-written is left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data = load_data(args, p)
    tokenizer, model, train_model = build_model(args, p, data, device, dist)
    extras = make_extras(tp, model, device, dist)
    optimizer, scheduler = make_optimizer(model, tp, len(data.train_rows), extras)
    run = start_or_resume(args, p, data, model, optimizer, scheduler, dist, extras)
    live = None
    if dist.main:
        from dvclive import Live

        live = Live(args.live_dir, resume=run.stopping.epoch > 0, save_dvc_exp=False, dvcyaml=None)
        live.log_params({f"train.{k}": v for k, v in tp.model_dump().items()} | {"encoder.pooling": p.encoder.pooling})
    rows = data.train_rows
    lengths, groups = rows.lengths.tolist(), balancing.groups_from_flags(rows.has_topic, rows.has_ner)
    t0, tokens, stop, clock = time.time(), 0, run.stopping.should_stop, FirstStep()
    for epoch in range(run.stopping.epoch, tp.epochs):
        if stop:
            break
        batches = training.shard(balancing.epoch_batches(lengths, groups, tp, epoch), dist.rank, dist.world)
        train_model.train()
        if tp.freeze == "encoder":
            model.encoder.eval()  # no dropout in a frozen encoder: its features stay fixed
        with progress.bar(len(batches), f"epoch {epoch + 1}/{tp.epochs}", " step", disable=not dist.main) as bar:
            clock.bar = bar
            try:
                stats = training.run_epoch(train_model, data.train_rows, batches, tp, optimizer, scheduler, device,
                                           data.features.pad_token_id, dist.world, clock, extras.weighting, extras.ema)
            except training.LossNotFinite as exc:
                raise PipelineError(f"train: the {exc} of epoch {epoch + 1}; lower train.lr_encoder / "
                                    f"train.lr_heads") from None
        tokens += stats.tokens
        if dist.main:
            end_of_epoch(args, run, stats, model, optimizer, scheduler, data, tp, device, live, extras)
            stop = run.stopping.should_stop
        if dist.world > 1:
            flag = [stop]
            torch.distributed.broadcast_object_list(flag, src=0)
            stop = flag[0]
    if dist.main:
        finish(args, p, run, model, tokenizer, data, time.time() - t0, tokens, dist.world, clock.at)
        live.end()
    if dist.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run_cli(main)
