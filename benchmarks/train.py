"""Training-throughput benchmark: the project's training epoch against a Hugging Face Trainer.

Project arm: the train stage's own epoch, pipeline.core.training.run_epoch (reading each batch's
rows from the split's Arrow file through feature_store.FeatureRows, as the stage does; collate, autocast,
forward with both heads and both losses, weighted backward, three loss .item() reads, clipping,
optimizer and scheduler step, the epoch's bookkeeping), set up as pipeline/stages/train.py sets it
up: seed_everything, MultiTaskModel, apply_freeze, freeze_unused, make_optimizer (fused AdamW over
param_groups + linear warm-up schedule), length_grouped_batches, shard. Per-step end times come
from the `progress` object run_epoch updates once per step.
HF arm: `Trainer` with `AutoModelForTokenClassification` on the same encoder, the same feature rows
(input ids and NER labels from Featurizer), the same batch size, length-grouped sampling,
DataCollatorForTokenClassification (dynamic padding), the same lr / weight decay / clipping.

Throughput = non-pad tokens / seconds over the measured steps (after warm-up steps), both arms
timed step end to step end, in the same process, rounds interleaved. Acceptance: project / HF >= 1.0.
--stage also runs the real stage (`python -m pipeline train`, one epoch of the same number of
steps) and reports the tokens_per_second it writes to its speed report; that figure includes the
stage's per-epoch dev scoring and checkpoint write, so it is shown, not judged.

    python benchmarks/train.py --quick
    python benchmarks/train.py --encoder PATH --encoder PATH2 --data a.jsonl b.jsonl --stage
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from pathlib import Path

import _common as C

TARGET = 1.0


PROJECT = "project epoch (training.run_epoch)"
HF = "HF Trainer (token classification)"
STAGE = "real stage (python -m pipeline train)"


def feature_rows(encoder: str, args, p, n: int):
    from pipeline.core.features import Featurizer
    from pipeline.storage.feature_store import feature_config
    from pipeline.storage.hub import load_tokenizer

    tok = load_tokenizer(encoder, p.encoder.trust_remote_code)
    fe = Featurizer(tok, feature_config(p))
    rows = fe.encode(C.load_records(args.data, n)).rows
    return tok, fe, rows


def stored_rows(rows: list[dict], path: Path):
    """The rows written as the featurize stage writes a split, opened as the train stage opens it."""
    from pipeline.storage import feature_store

    with feature_store.writer(path) as out:
        out.write_rows(rows)
    return feature_store.FeatureRows(path)


class StepClock:
    """The tqdm-like `progress` run_epoch takes: it calls update(1) once per step, after the
    optimizer step and the loss reads; each call records the step's end time."""

    def __init__(self):
        self.ends = [time.perf_counter()]

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.ends.append(time.perf_counter())


def project_arm(encoder: str, p, rows, pad_id: int, n_steps: int):
    """One run_epoch of n_steps batches, set up as the train stage does; returns (step end times,
    non-pad tokens per step)."""
    import torch

    from pipeline.core import training
    from pipeline.core.model import MultiTaskModel
    from pipeline.storage.hub import load_encoder

    tp = p.train
    device = torch.device("cpu")
    training.seed_everything(tp.seed)
    model = MultiTaskModel(load_encoder(encoder, p.encoder.trust_remote_code), len(p.labels.topics),
                           len(p.tag_names), p.encoder.pooling).to(device)
    training.apply_freeze(model, tp.freeze, tp.unfreeze_top_layers)
    training.freeze_unused(model, rows, pad_id, device)
    lengths = rows.lengths.tolist()
    batches = training.shard(training.length_grouped_batches(lengths, tp.batch_size, tp.seed, tp.group_by_length),
                             0, 1)[:n_steps]
    optimizer, scheduler = training.make_optimizer(model, tp, math.ceil(len(batches) / tp.grad_accum))
    # non-pad tokens per step: collate masks exactly each row's input_ids
    tokens = [sum(lengths[i] for i in idx) for idx, _ in batches]
    model.train()
    if tp.freeze == "encoder":
        model.encoder.eval()  # as the stage does
    clock = StepClock()
    try:
        training.run_epoch(model, rows, batches, tp, optimizer, scheduler, device, pad_id, world=1, progress=clock)
    except training.LossNotFinite as exc:
        raise SystemExit(f"project arm: {exc}") from None
    return clock.ends, tokens


def hf_arm(encoder: str, p, rows: list[dict], tok, n_steps: int, out_dir: str):
    """Trainer + AutoModelForTokenClassification; returns (step end times, non-pad tokens per step)."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        DataCollatorForTokenClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tp = p.train
    from pipeline.storage.hub import load_pretrained  # offline via the packaged copy, as the stage

    model = load_pretrained(
        AutoModelForTokenClassification.from_pretrained, encoder, num_labels=len(p.tag_names), trust_remote_code=p.encoder.trust_remote_code)
    model.config.pad_token_id = tok.pad_token_id
    data = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    ends, tokens = [], []

    class StepClock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            if not ends:
                ends.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            ends.append(time.perf_counter())

    class CountingTrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            tokens.append(int(inputs["attention_mask"].sum()))
            return super().training_step(model, inputs, num_items_in_batch)

    targs = TrainingArguments(
        output_dir=out_dir, per_device_train_batch_size=tp.batch_size, gradient_accumulation_steps=tp.grad_accum,
        max_steps=math.ceil(n_steps / tp.grad_accum), learning_rate=tp.lr_encoder,
        weight_decay=tp.weight_decay, warmup_steps=int(tp.warmup_ratio * n_steps),
        max_grad_norm=tp.max_grad_norm, seed=tp.seed, use_cpu=True, report_to="none",
        logging_strategy="no", save_strategy="no", eval_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, train_sampling_strategy="group_by_length" if tp.group_by_length else "random")
    trainer = CountingTrainer(model=model, args=targs, train_dataset=data,
                              data_collator=DataCollatorForTokenClassification(tok), callbacks=[StepClock()])
    trainer.train()
    del trainer, model
    torch.set_grad_enabled(True)
    return ends, tokens


def stage_arm(encoder: str, args, p_path: Path, rows_records: list[dict], n_steps: int, work: Path) -> dict:
    """The real train stage on a prepared validated + featurized dir: one epoch of n_steps batches."""
    d = work / "stage"
    if not (d / "features").is_dir():
        C.write_validated(d / "validated", rows_records, n_steps * args.batch_size, n_other=32)
        subprocess.run(C.stage_cmd("featurize", "--params", p_path, "--in-dir", d / "validated",
                                   "--out-dir", d / "features", "--metrics", d / "featurize.json", "--details", d / "featurize_details.json",
                                   "--report", d / "misaligned.jsonl"),
                       cwd=C.REPO, check=True, capture_output=True)
    cmd = C.stage_cmd("train", "--params", p_path, "--features", d / "features", "--validated", d / "validated",
                      "--model-dir", d / "model", "--checkpoint-dir", d / "ckpt", "--metrics", d / "train.json", "--details", d / "train_details.json",
                      "--speed", d / "speed.json", "--live-dir", d / "dvclive", "--plot", d / "curves.png")
    res = subprocess.run(cmd, cwd=C.REPO, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"train stage failed:\n{res.stderr[-2000:]}")
    return json.loads((d / "speed.json").read_text())


def measured(ends: list[float], tokens: list[int], warmup: int) -> tuple[float, int]:
    """(seconds, tokens) over the steps after the first `warmup` ones."""
    return ends[len(ends) - 1] - ends[warmup], sum(tokens[warmup:len(ends) - 1])


def run_encoder(encoder: str, args, work: Path) -> dict:
    import torch

    from pipeline.storage import params as params_mod

    p_path = C.write_params(args.params, work / "params.yaml", {
        "encoder.name": encoder, "train.batch_size": args.batch_size, "train.epochs": 1, "train.patience": 0,
        "train.device": "cpu"})
    p = params_mod.load(p_path)
    n_steps = args.warmup + args.steps
    tok, _, rows = feature_rows(encoder, args, p, n_steps * args.batch_size)
    on_disk = stored_rows(rows, work / "train.arrow")  # the project arm reads rows per batch, as the stage does
    arms = {}
    results: dict[str, list] = {}

    def add(name, fn):
        def run():
            ends, tokens = fn()
            sec, ntok = measured(ends, tokens, args.warmup)
            results.setdefault(name, []).append({"seconds": sec, "tokens": ntok, "tokens_per_s": ntok / sec,
                                                 "steps": len(tokens) - args.warmup})
        arms[name] = run

    add(PROJECT, lambda: project_arm(encoder, p, on_disk, tok.pad_token_id, n_steps))
    add(HF, lambda: hf_arm(encoder, p, rows, tok, n_steps, str(work / "hf")))
    if args.stage:
        arms[STAGE] = lambda: results.setdefault(STAGE, []).append(
            {"tokens_per_s": stage_arm(encoder, args, p_path, C.load_records(args.data), n_steps, work)[
                "tokens_per_second"]})
    C.log(f"train, {encoder}: {args.warmup}+{args.steps} steps x batch {args.batch_size}, {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads")
    C.interleave(arms, args.rounds, C.log)
    out = {"encoder": encoder, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
           "rounds": args.rounds, "arms": {k: {"best_tokens_per_s": max(r["tokens_per_s"] for r in v), "runs": v}
                                           for k, v in results.items()}}
    ours = out["arms"][PROJECT]["best_tokens_per_s"]
    hf = out["arms"][HF]["best_tokens_per_s"]
    out["ratio"] = ours / hf
    pairs = zip(results[PROJECT], results[HF])
    out["ratio_per_round"] = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in pairs]
    out["verdict"] = C.verdict(out["ratio"], TARGET, higher_is_better=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--steps", type=int, help="measured steps per arm and round (default: 60; quick: 20)")
    ap.add_argument("--warmup", type=int, default=3, help="unmeasured first steps (default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=16, help="batch size, both arms (default: %(default)s)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default: 3; quick: 2)")
    ap.add_argument("--stage", action="store_true", help="also run the real train stage each round")
    args = ap.parse_args()
    args.steps = args.steps or (20 if args.quick else 60)
    args.rounds = args.rounds or (2 if args.quick else 3)
    C.apply_threads(args)
    info = C.machine()
    C.log(f"machine: {info}")
    results = {"machine": info, "encoders": []}
    for enc in C.encoders(args):
        with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
            results["encoders"].append(run_encoder(enc, args, Path(work)))
    print(f"\nTraining throughput, non-pad tokens/s ({info['cpus']} CPUs, {info['date']}; batch {args.batch_size}, "
          f"{args.steps} measured steps after {args.warmup} warm-up, best of {args.rounds} interleaved rounds; "
          f"target project/HF >= {TARGET})")
    rows = []
    for r in results["encoders"]:
        hf = r["arms"][HF]["best_tokens_per_s"]
        for name, a in r["arms"].items():
            rows.append([C.short(r["encoder"]), name, round(a["best_tokens_per_s"], 1), round(a["best_tokens_per_s"] / hf, 3),
                         r["verdict"] if name == PROJECT else ""])
    print(C.table(["encoder", "arm", "tokens/s", "ratio vs HF", "verdict"], rows))
    for r in results["encoders"]:
        print(f"{C.short(r['encoder'])}: project/HF within each round: "
              + ", ".join(f"{x:.3f}" for x in r["ratio_per_round"]))
    C.dump_json(args.json, results)


if __name__ == "__main__":
    main()
