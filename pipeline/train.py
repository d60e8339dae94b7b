"""Stage 3, train: fine-tune the shared encoder with both heads on data/tokenized/.

Loss = alpha * CE(topic) + beta * CE(NER), each averaged over its labelled items only (records
annotated for one task contribute nothing to the other). AdamW with separate learning rates for
encoder and heads, linear warm-up then decay, clipping, accumulation, optional freezing, length-
grouped dynamic batches, early stopping on a dev score with the best weights kept.
Writes models/multitask/ (self-contained: configs, safetensors weights, tokenizer), per-epoch
curves through DVCLive, metrics/train.json and plots/train_curves.png.

More than one process: `torchrun --nproc_per_node N -m pipeline.train` (gloo on CPU, NCCL on
GPU). train.batch_size is the global batch: each batch is split across the processes, so the
optimizer takes the same steps on the same batches as one process would (the gradient differs
only in how the per-process means are combined, and in dropout). Only rank 0 scores dev and
writes anything; it broadcasts the early-stopping decision.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import params as params_mod
from pipeline.encoder import load_encoder, load_tokenizer
from pipeline.files import PipelineError, atomic_path, read_jsonl, run_cli, write_json
from pipeline.inference import autocast, collate
from pipeline.metrics import select_score
from pipeline.model import MultiTaskModel, save
from pipeline.scoring import score_split
from pipeline.tokenize import load_features


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


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
    raise PipelineError(f"train.freeze: top_k: cannot find the layers of {type(encoder).__name__}")


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


def param_groups(model: MultiTaskModel, tp: dict) -> list[dict]:
    """Separate learning rates for encoder and heads; no weight decay on biases and norms."""
    no_decay = {id(p) for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.Embedding))
                for p in m.parameters()}
    no_decay |= {id(p) for n, p in model.named_parameters() if n.endswith("bias") or "norm" in n.lower()}
    groups = []
    for part, lr in (("encoder", tp["lr_encoder"]), ("heads", tp["lr_heads"])):
        named = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad and (n.startswith("encoder.") == (part == "encoder"))]
        for decay in (True, False):
            params = [p for _, p in named if (id(p) not in no_decay) == decay]
            if params:
                groups.append({"params": params, "lr": lr, "weight_decay": tp["weight_decay"] if decay else 0.0})
    return groups


def make_optimizer(model: MultiTaskModel, tp: dict, total_steps: int):
    """AdamW over param_groups with linear warm-up then decay. The fused kernel (CPU and CUDA)
    updates all parameters in one pass: the same maths, measurably faster (benchmarks/SPEED.md)."""
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW(param_groups(model, tp), fused=True)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(tp["warmup_ratio"] * total_steps), total_steps)


def train_step(train_model, batch: dict, weight: float, tp: dict, optimizer, scheduler, boundary: bool,
               sync, device: torch.device) -> list[float]:
    """One micro-batch: forward, weighted backward (weight: this rank's share of the global batch);
    on an accumulation boundary, clip and step. Returns [loss, loss_topic, loss_ner]."""
    with sync, autocast(device):
        out = train_model(**batch, alpha=tp["alpha"], beta=tp["beta"])
        (out["loss"] * weight / tp["grad_accum"]).backward()
    if boundary:
        if tp["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(train_model.parameters(), tp["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return [out[key].item() for key in ("loss", "loss_topic", "loss_ner")]


def setup_distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(choice: str, local_rank: int) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise PipelineError("train.device is cuda but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def fingerprint(p: dict, meta: dict) -> str:
    """What a checkpoint must match to be resumed: train/encoder params and the features' meta."""
    key = {k: v for k, v in p["train"].items() if k not in ("resume", "epochs", "patience", "device")}
    blob = json.dumps([key, p["encoder"], meta], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save_checkpoint(path: Path, model, optimizer, scheduler, state: dict, best_state: dict) -> None:
    """Everything needed to resume, without pickle: tensors in safetensors, the rest in JSON."""
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, s in opt["state"].items() for k, v in s.items()}
    with atomic_path(path, is_dir=True) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors"))
        save_file(tensors or {"_empty": torch.zeros(0)}, str(tmp / "optimizer.safetensors"))
        save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps({
            **state, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}))


def load_checkpoint(path: Path, model, optimizer, scheduler) -> tuple[dict, dict]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((path / "state.json").read_text())
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        flat = load_file(str(path / "optimizer.safetensors"))
        opt_state: dict = {}
        for key, value in flat.items():
            if key == "_empty":
                continue
            i, name = key.split(".", 1)
            opt_state.setdefault(int(i), {})[name] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
        scheduler.load_state_dict(state.pop("scheduler"))
        rng = load_file(str(path / "rng.safetensors"))["torch_rng"]
        best = load_file(str(path / "best.safetensors"))
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise PipelineError(f"{path}: cannot resume from this checkpoint ({str(exc).splitlines()[0][:200]}); "
                            f"delete it or set train.resume: false") from None
    # The lr of the next step follows the schedule of *this* run (train.epochs may have changed).
    for group, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    torch.set_rng_state(rng)
    return state, best


def plot_curves(history: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "loss_topic", "loss_ner"):
        ax1.plot(epochs, [h[key] for h in history], marker="o", label=key)
    ax1.set(title="training loss", xlabel="epoch")
    ax1.legend()
    for key in ("dev_topic_macro_f1", "dev_ner_f1", "dev_score"):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax2.plot(epochs, [v if v is not None else float("nan") for v in values], marker="o", label=key)
    ax2.set(title="dev scores", xlabel="epoch", ylim=(0, 1))
    ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--features", default="data/tokenized", help="tokenized features (default: %(default)s)")
    ap.add_argument("--validated", default="data/validated", help="validated records, for dev spans (default: %(default)s)")
    ap.add_argument("--model-dir", default="models/multitask", help="output model directory (default: %(default)s)")
    ap.add_argument("--checkpoint-dir", default="models/checkpoint", help="per-epoch checkpoint for train.resume (default: %(default)s)")
    ap.add_argument("--metrics", default="metrics/train.json", help="training summary (default: %(default)s)")
    ap.add_argument("--live-dir", default="dvclive", help="DVCLive directory (default: %(default)s)")
    ap.add_argument("--plot", default="plots/train_curves.png", help="training curves image (default: %(default)s)")
    args = ap.parse_args()

    p = params_mod.load(args.params)
    tp = p["train"]
    rank, world, local_rank = setup_distributed()
    main_proc = rank == 0
    device = pick_device(tp["device"], local_rank)
    seed_everything(tp["seed"])
    # SIGTERM (e.g. a scheduler's kill) -> KeyboardInterrupt: nothing half-written is left behind.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    features = Path(args.features)
    for path in (features / "meta.json", features / "train.parquet", features / "dev.parquet",
                 Path(args.validated) / "dev.jsonl"):
        if not path.is_file():
            raise PipelineError(f"{path}: not found; run the validate and tokenize stages first (`dvc repro`)")
    meta = json.loads((features / "meta.json").read_text())
    tags = params_mod.tag_names(p["labels"]["entities"])
    if meta["topics"] != p["labels"]["topics"] or meta["tags"] != tags or meta["encoder"] != p["encoder"]["name"]:
        raise PipelineError(f"{features}/meta.json does not match params.yaml (labels or encoder changed); "
                            f"re-run the tokenize stage (`dvc repro`)")
    train_rows = load_features(features / "train.parquet")
    dev_rows = load_features(features / "dev.parquet")
    dev_records = list(read_jsonl(Path(args.validated) / "dev.jsonl"))
    if not train_rows:
        raise PipelineError(f"{features}/train.parquet is empty: no training data")

    tokenizer = load_tokenizer(p["encoder"]["name"], p["encoder"]["trust_remote_code"])
    encoder = load_encoder(p["encoder"]["name"], p["encoder"]["trust_remote_code"])
    model = MultiTaskModel(encoder, len(meta["topics"]), len(tags), p["encoder"]["pooling"]).to(device)
    apply_freeze(model, tp["freeze"], tp["unfreeze_top_layers"])
    unused = freeze_unused(model, train_rows, meta["pad_token_id"], device)
    if unused and main_proc:
        print(f"train: {len(unused)} encoder parameter(s) get no gradient and stay fixed: {', '.join(unused[:4])}"
              + (" ..." if len(unused) > 4 else ""))
    if not any(p.requires_grad for p in model.parameters()):
        raise PipelineError("train: no trainable parameters (check train.freeze)")
    encoder_frozen = tp["freeze"] == "encoder"
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)

    lengths = [len(r["input_ids"]) for r in train_rows]
    n_batches = len(shard(length_grouped_batches(lengths, tp["batch_size"], 0, False), rank, world))
    steps_per_epoch = math.ceil(n_batches / tp["grad_accum"])
    total_steps = steps_per_epoch * tp["epochs"]
    optimizer, scheduler = make_optimizer(model, tp, total_steps)

    state = {"epoch": 0, "best_score": None, "best_epoch": None, "bad_epochs": 0, "history": [],
             "fingerprint": fingerprint(p, meta)}
    best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
    ckpt = Path(args.checkpoint_dir)
    if tp["resume"] and (ckpt / "state.json").is_file():
        try:
            saved = json.loads((ckpt / "state.json").read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("fingerprint") == state["fingerprint"]:
            state, best_state = load_checkpoint(ckpt, model, optimizer, scheduler)
            if main_proc:
                print(f"train: resuming after epoch {state['epoch']} from {ckpt}")
        elif main_proc:
            print(f"train: {ckpt} was written with other params; starting afresh")

    live = None
    if main_proc:
        from dvclive import Live

        live = Live(args.live_dir, resume=state["epoch"] > 0, save_dvc_exp=False, dvcyaml=None)
        live.log_params({f"train.{k}": v for k, v in tp.items()} | {"encoder.pooling": p["encoder"]["pooling"]})

    t0 = time.time()
    tokens_seen = 0
    stop = bool(tp["patience"]) and state["bad_epochs"] >= tp["patience"]
    if stop and main_proc:
        print(f"train: {ckpt} stopped early after epoch {state['epoch']}; nothing more to train")
    for epoch in range(state["epoch"], tp["epochs"]):
        if stop:
            break
        batches = shard(length_grouped_batches(lengths, tp["batch_size"], tp["seed"] + epoch,
                                               tp["group_by_length"]), rank, world)
        train_model.train()
        if encoder_frozen:
            model.encoder.eval()  # no dropout in a frozen encoder: its features stay fixed
        # row-weighted sums of the batch losses, rows, padding and real tokens (summed over ranks below)
        sums = torch.zeros(7, dtype=torch.float64)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{tp['epochs']}", disable=not main_proc, mininterval=1.0)
        for step, (idx, weight) in enumerate(bar):
            batch = {k: v.to(device) for k, v in collate([train_rows[i] for i in idx], meta["pad_token_id"]).items()}
            n_rows = len(idx) if weight else 0
            n_real = int(batch["attention_mask"].sum())
            boundary = (step + 1) % tp["grad_accum"] == 0 or step + 1 == len(batches)
            sync = train_model.no_sync() if world > 1 and not boundary else nullcontext()
            losses = train_step(train_model, batch, weight, tp, optimizer, scheduler, boundary, sync, device)
            if not all(math.isfinite(v) for v in losses):
                raise PipelineError(f"train: the loss became {losses[0]} (topic {losses[1]}, NER {losses[2]}) at "
                                    f"epoch {epoch + 1}, step {step + 1}; lower train.lr_encoder / train.lr_heads")
            if n_rows:
                sums += torch.tensor([*(v * n_rows for v in losses), n_rows,
                                      batch["attention_mask"].numel() - n_real, batch["attention_mask"].numel(),
                                      n_real], dtype=torch.float64)
            bar.set_postfix(loss=f"{sums[0] / max(sums[3], 1):.4f}")
        if world > 1:  # NCCL reduces device tensors only
            reduced = sums.to(device)
            torch.distributed.all_reduce(reduced)
            sums = reduced.cpu()
        tokens_seen += int(sums[6])
        record = {"epoch": epoch + 1,
                  **{k: round(float(sums[i] / sums[3]), 6) for i, k in enumerate(("loss", "loss_topic", "loss_ner"))},
                  "padded_fraction": round(float(sums[4] / sums[5]), 4)}
        if main_proc:
            dev, _ = score_split(model, dev_rows, dev_records, meta, tp["batch_size"] * 2, meta["pad_token_id"],
                                 device)
            if tp["select_metric"] == "loss":
                record["dev_loss"] = dev_loss(model, dev_rows, meta["pad_token_id"], tp["batch_size"] * 2, device,
                                              tp["alpha"], tp["beta"])
                score = None if record["dev_loss"] is None else -record["dev_loss"]
            else:
                score = select_score(dev.get("topic"), dev.get("ner"), tp["select_metric"])
            record.update({"dev_topic_macro_f1": dev.get("topic", {}).get("macro_f1"),
                           "dev_ner_f1": dev.get("ner", {}).get("f1"), "dev_score": score})
            state["history"].append(record)
            if score is None:  # nothing to score on dev: keep the last epoch
                score = epoch
            improved = state["best_score"] is None or score > state["best_score"]
            if improved:
                state.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
                best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            for key, value in record.items():
                if key != "epoch" and value is not None:
                    live.log_metric(key.replace("dev_", "dev/") if key.startswith("dev_") else f"train/{key}", value)
            live.next_step()
            save_checkpoint(ckpt, model, optimizer, scheduler, state, best_state)
            print(f"epoch {epoch + 1}: loss {record['loss']:.4f} (topic {record['loss_topic']:.4f}, "
                  f"ner {record['loss_ner']:.4f}), dev score {record['dev_score']}, "
                  f"padded {record['padded_fraction']:.1%}")
            stop = bool(tp["patience"]) and state["bad_epochs"] >= tp["patience"]
            if stop:
                print(f"train: early stop, no dev improvement for {tp['patience']} epoch(s)")
        if world > 1:
            flag = [stop]
            torch.distributed.broadcast_object_list(flag, src=0)
            stop = flag[0]
    elapsed = time.time() - t0

    if main_proc:
        model.load_state_dict(best_state)
        model_meta = {"encoder_name": p["encoder"]["name"], "topics": meta["topics"], "entities": p["labels"]["entities"],
                      "tags": tags, "max_length": meta["max_length"], "stride": meta["stride"],
                      "label_subwords": meta["label_subwords"], "misaligned": meta["misaligned"],
                      "n_prefix": meta["n_prefix"], "best_epoch": state["best_epoch"]}
        with atomic_path(args.model_dir, is_dir=True) as tmp:
            save(model.cpu(), tokenizer, tmp, model_meta)
        last = state["history"][-1]
        write_json(args.metrics, {
            "epochs_run": state["epoch"], "best_epoch": state["best_epoch"], "best_dev_score": state["best_score"],
            "final_loss": last["loss"], "padded_fraction": last["padded_fraction"],
            "train_seconds": round(elapsed, 1), "tokens_per_second": round(tokens_seen / max(elapsed, 1e-9), 1),
            "world_size": world})
        plot_curves(state["history"], args.plot)
        live.end()
        print(f"train: best epoch {state['best_epoch']} (dev score {state['best_score']}), model in {args.model_dir}")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run_cli(main)
