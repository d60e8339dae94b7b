"""Where tensors run: one device picker for every stage, and the autocast that goes with it."""
from __future__ import annotations

from contextlib import nullcontext

import torch


def pick_device(choice: str | None = "auto", local_rank: int = 0) -> torch.device:
    """auto (or None): CUDA when present, else CPU; cpu; cuda (this process's GPU under torchrun:
    local_rank); cuda:N. A ValueError names what cannot be had."""
    if choice in (None, "auto"):
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise ValueError(f"{choice!r}: expected cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{choice!r}: expected cpu or cuda")
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"{choice}: no CUDA device is available")
    if device.index is None:
        device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision on CPU (bf16 on CPU is slower and less exact)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def set_threads(threads: int) -> None:
    """torch's intra-op threads; 0 leaves torch's default (one per physical core). On a machine
    busy with other work, fewer threads than cores can be several times faster (README "Threads")."""
    if threads > 0:
        torch.set_num_threads(threads)
