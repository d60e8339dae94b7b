"""Per-epoch training checkpoints (models/checkpoint/) for train.resume, without pickle: tensors in
safetensors, the rest (early-stopping state, history, optimizer hyper-parameters, scheduler) in
JSON, and a fingerprint of the params and features a checkpoint may be resumed with."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from pipeline.storage.errors import PipelineError
from pipeline.storage.files import atomic_path

STATE = "state.json"


# Train params added after checkpoints were first written, with the value that trains as before
# they existed: left out of the fingerprint at that value, so an older checkpoint still resumes.
ADDED_OFF = {"loss_weighting": "fixed", "task_sampling": "natural", "sampling_temperature": 2.0, "ema_decay": 0.0,
             "lr_layer_decay": 1.0, "topic_dropout": 0.1}


def fingerprint(train: dict, encoder: dict, features_meta: dict) -> str:
    """What a checkpoint must match to be resumed: train/encoder params and the features' meta."""
    key = {k: v for k, v in train.items() if k not in ("resume", "epochs", "patience", "device")
           and not (k in ADDED_OFF and v == ADDED_OFF[k])}
    blob = json.dumps([key, encoder, features_meta], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def saved_fingerprint(path: Path) -> str | None:
    """The fingerprint of the checkpoint at path; None if there is none (or it is unreadable)."""
    try:
        return json.loads((Path(path) / STATE).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _extra_tensors(extra: dict) -> dict:
    """The training-only modules' tensors (e.g. {"weighting": LossWeighting, "ema": WeightAverage}),
    keyed "name.tensor"."""
    return {f"{name}.{k}": v.detach().contiguous() for name, module in extra.items()
            for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, model, optimizer, scheduler, state: dict, best_state: dict,
                    extra: dict | None = None) -> None:
    """Everything needed to resume, without pickle: tensors in safetensors, the rest in JSON.
    `extra`: training state besides the model (name -> module), in extra.safetensors."""
    from safetensors.torch import save_file

    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.contiguous() for i, s in opt["state"].items() for k, v in s.items()}
    with atomic_path(path, is_dir=True) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
        save_file({k: v.contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors"))
        save_file(tensors or {"_empty": torch.zeros(0)}, str(tmp / "optimizer.safetensors"))
        save_file({"torch_rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        if extra:
            save_file(_extra_tensors(extra), str(tmp / "extra.safetensors"))
        (tmp / STATE).write_text(json.dumps({
            **state, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict()}))


def load_checkpoint(path: Path, model, optimizer, scheduler, extra: dict | None = None) -> tuple[dict, dict]:
    """Restore model, optimizer, scheduler, torch RNG and the `extra` modules save_checkpoint was
    given (none asked for: extra.safetensors is not read, so a checkpoint without one loads);
    returns (state, best weights)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = json.loads((path / STATE).read_text())
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
        if extra:
            flat = load_file(str(path / "extra.safetensors"))
            for name, module in extra.items():
                module.load_state_dict({k.removeprefix(f"{name}."): v for k, v in flat.items()
                                        if k.startswith(f"{name}.")})
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        raise PipelineError(f"{path}: cannot resume from this checkpoint ({str(exc).splitlines()[0][:200]}); "
                            f"delete it or set train.resume: false") from None
    # The lr of the next step follows the schedule of *this* run (train.epochs may have changed).
    for group, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    torch.set_rng_state(rng)
    return state, best
