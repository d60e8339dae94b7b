"""The multi-task model (pipeline/core/model.py): masked pooling, the masked loss, output shapes;
and the self-contained model directory (pipeline/storage/model_dir.py): save/load round trip,
clear errors for damaged directories."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from pipeline.core.align import IGNORE
from pipeline.core.model import ModelMeta, MultiTaskModel, masked_ce, pool
from pipeline.storage.errors import PipelineError
from pipeline.storage.hub import load_encoder, load_tokenizer
from pipeline.storage.model_dir import MODEL_CONFIG, WEIGHTS, load, save

TOPICS = ["travel", "technology", "politics", "other"]
ENTITIES = ["PERSON", "LOC", "ORG", "DATE"]
TAGS = ["O"] + [f"{p}-{t}" for t in ENTITIES for p in ("B", "I")]


def padded(seqs: list[torch.Tensor], side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch variable-length (len, hidden) sequences with garbage in the pad slots."""
    width, hidden = max(len(s) for s in seqs), seqs[0].shape[1]
    states = torch.full((len(seqs), width, hidden), 1e4)  # large: any leak into a pooled vector shows
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        states[i, sl], mask[i, sl] = s, 1
    return states, mask


@pytest.mark.parametrize("how", ["mean", "last", "weighted_mean"])
def test_pool_same_for_right_and_left_padding(how):
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randn(n, 8, generator=g) for n in (5, 2, 7, 1)]
    right = pool(*padded(seqs, "right"), how)
    left = pool(*padded(seqs, "left"), how)
    torch.testing.assert_close(right, left)
    # and each equals the pooled unpadded sequence on its own
    alone = torch.cat([pool(s[None], torch.ones(1, len(s), dtype=torch.long), how) for s in seqs])
    torch.testing.assert_close(right, alone)
    assert right.abs().max() < 100  # no pad slot (1e4) leaked in


def test_pool_definitions():
    s = torch.tensor([[[1.0], [2.0], [4.0]]])
    mask = torch.ones(1, 3, dtype=torch.long)
    assert pool(s, mask, "mean").item() == pytest.approx(7 / 3)
    assert pool(s, mask, "last").item() == 4.0
    assert pool(s, mask, "weighted_mean").item() == pytest.approx((1 * 1 + 2 * 2 + 3 * 4) / 6)
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(s, mask, "max")


def test_masked_ce_all_ignored_is_zero_with_grad():
    logits = torch.randn(3, 5, 9, requires_grad=True)
    loss = masked_ce(logits, torch.full((3, 5), IGNORE))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_masked_ce_averages_over_labelled_items_only():
    logits = torch.randn(2, 4, 9)
    labels = torch.tensor([[1, IGNORE, 3, IGNORE], [IGNORE, IGNORE, 0, IGNORE]])
    keep = labels != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(masked_ce(logits, labels), expected)


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_gpt_neo):
    torch.manual_seed(0)
    model = MultiTaskModel(load_encoder(str(tiny_gpt_neo)), len(TOPICS), len(TAGS), "mean")
    return model.eval(), load_tokenizer(str(tiny_gpt_neo))


def batch(tokenizer, sentences):
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def test_forward_shapes_and_losses(model_and_tokenizer):
    model, tok = model_and_tokenizer
    ids, mask = batch(tok, ["Tim Cook flew to Paris.", "Hello", "Parliament passed the budget law today."])
    out = model(ids, mask)
    assert out["topic_logits"].shape == (3, 4)
    assert out["ner_logits"].shape == (3, ids.shape[1], 9)
    assert "loss" not in out
    topic = torch.tensor([0, IGNORE, 2])
    ner = torch.full(ids.shape, IGNORE)
    out = model(ids, mask, topic_labels=topic, ner_labels=ner, alpha=2.0, beta=1.0)
    assert out["loss_ner"].item() == 0.0
    torch.testing.assert_close(out["loss"], 2.0 * out["loss_topic"])


def save_tiny(model, tok, path):
    save(model, tok, path, ModelMeta(encoder_name="tiny", pooling=model.pooling, topics=TOPICS, entities=ENTITIES,
                                     tags=TAGS, max_length=32, stride=4, label_subwords="first", misaligned="expand",
                                     n_prefix=0, best_epoch=1))
    return path


def test_save_load_round_trip_gives_identical_outputs(model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    with torch.no_grad():
        model.topic_head[1].weight.add_(0.5)  # not the init: the loaded heads must come from the file
    path = save_tiny(model, tok, tmp_path / "m")
    loaded, tok2, meta = load(path)
    assert meta.topics == TOPICS and meta.pooling == "mean" and meta.best_epoch == 1
    assert not loaded.training
    ids, mask = batch(tok, ["José Martínez flew from São Paulo to New York City.", "Zoë"])
    assert torch.equal(ids, batch(tok2, ["José Martínez flew from São Paulo to New York City.", "Zoë"])[0])
    with torch.no_grad():
        a, b = model(ids, mask), loaded(ids, mask)
    assert torch.equal(a["topic_logits"], b["topic_logits"])
    assert torch.equal(a["ner_logits"], b["ner_logits"])


@pytest.fixture
def saved(model_and_tokenizer, tmp_path):
    return save_tiny(*model_and_tokenizer, tmp_path / "m")


@pytest.mark.parametrize("name", [MODEL_CONFIG, WEIGHTS, "config.json", "tokenizer.json"])
def test_load_missing_file(saved, name):
    (saved / name).unlink()
    with pytest.raises(PipelineError, match=f"missing {name}"):
        load(saved)


def test_load_missing_dir(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load(tmp_path / "nope")


@pytest.mark.parametrize("damage", ["truncate", "garble_data", "garble_header", "empty"])
def test_load_corrupted_weights(saved, damage):
    path = saved / WEIGHTS
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garble_data":  # tensor bytes: safetensors itself cannot notice
        for i in range(len(data) - 200, len(data) - 100):
            data[i] ^= 0xFF
    elif damage == "garble_header":
        data[8:40] = b"\x00" * 32
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(PipelineError, match=f"corrupted {WEIGHTS}") as info:
        load(saved)
    assert "\n" not in str(info.value)


def test_deleting_the_checksum_does_not_switch_the_integrity_check_off(saved):
    meta = json.loads((saved / MODEL_CONFIG).read_text())
    del meta["weights_sha256"]
    (saved / MODEL_CONFIG).write_text(json.dumps(meta))
    path = saved / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # one bit of tensor data: safetensors' own checks cannot see it
    path.write_bytes(bytes(data))
    with pytest.raises(PipelineError) as info:
        load(saved)
    assert str(info.value) == (f"model directory '{saved}': {MODEL_CONFIG} lacks weights_sha256 (restore it, e.g. "
                               f"`dvc checkout`, or re-train)")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "format_version 99"),
    (lambda m: m.pop("tags"), "lacks tags"),
    (lambda m: m.update(pooling="max"), "pooling must be one of mean, last, weighted_mean, got string 'max'"),
    (lambda m: m.update(max_length="32"), "'max_length' must be an integer, got string '32'"),
    (lambda m: m.update(topics=TOPICS + ["sports"]), "does not match the config"),
])
def test_load_bad_model_config(saved, edit, message):
    meta = json.loads((saved / MODEL_CONFIG).read_text())
    edit(meta)
    (saved / MODEL_CONFIG).write_text(json.dumps(meta))
    with pytest.raises(PipelineError, match=message):
        load(saved)


def test_ner_decode_is_saved_and_a_model_saved_before_it_decodes_greedy(saved, model_and_tokenizer, tmp_path):
    model, tok = model_and_tokenizer
    meta = load(saved)[2]
    path = tmp_path / "viterbi"
    save(model, tok, path, dataclasses.replace(meta, ner_decode="viterbi"))
    assert load(path)[2].ner_decode == "viterbi"
    config = json.loads((saved / MODEL_CONFIG).read_text())
    config.pop("ner_decode")  # multitask.json as written before the option existed
    (saved / MODEL_CONFIG).write_text(json.dumps(config))
    assert load(saved)[2].ner_decode == "greedy"


def test_load_unreadable_model_config(saved):
    (saved / MODEL_CONFIG).write_text("{not json")
    with pytest.raises(PipelineError, match="unreadable config"):
        load(saved)


@pytest.mark.parametrize("text, message", [("{}", "unreadable tokenizer"), ("{not json", "unreadable tokenizer")])
def test_load_damaged_tokenizer(saved, text, message):
    (saved / "tokenizer.json").write_text(text)
    with pytest.raises(PipelineError, match=message):
        load(saved)


def test_load_tokenizer_that_does_not_fit(saved):
    tok = load_tokenizer(str(saved))
    tok.add_tokens(["hello"])  # an id past the end of the model's embedding table
    tok.save_pretrained(saved)
    with pytest.raises(PipelineError, match="tokenizer does not fit the model"):
        load(saved)


def test_load_tokenizer_of_another_family(saved, wordpiece_tokenizer):
    wordpiece_tokenizer.save_pretrained(saved)  # BERT-style [CLS] ... [SEP]: the feature layout changes
    with pytest.raises(PipelineError, match="special tokens differ from training"):
        load(saved)


def test_saved_dir_is_self_contained(saved, tmp_path):
    moved = shutil.move(str(saved), str(tmp_path / "elsewhere"))
    _, tok, meta = load(moved)
    assert meta.tags == TAGS and tok.pad_token is not None


def test_windows_too_short_for_the_stride_after_special_tokens(tmp_path, tiny_bert):
    """max_length 9, stride 4 passes the params rule (8 < 9) but BERT's [CLS] and [SEP] leave 7
    content tokens, too few to advance: predict's featurizer would raise ValueError, so load() refuses."""
    torch.manual_seed(0)
    model = MultiTaskModel(load_encoder(str(tiny_bert)), len(TOPICS), len(TAGS), "mean")
    save(model, load_tokenizer(str(tiny_bert)), tmp_path / "bert",
         ModelMeta(encoder_name="tiny", pooling="mean", topics=TOPICS, entities=ENTITIES, tags=TAGS, max_length=9,
                   stride=4, label_subwords="first", misaligned="expand", n_prefix=1))
    with pytest.raises(PipelineError) as info:
        load(tmp_path / "bert")
    assert str(info.value) == (f"model directory '{tmp_path / 'bert'}': {MODEL_CONFIG}: max_length 9 leaves too few "
                               f"tokens for stride 4 after 2 special token(s)")
