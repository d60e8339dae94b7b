"""Shared fixtures: tiny local encoders built from scratch (no hub, no ../shared), so the whole
pipeline runs offline through the same `from_pretrained(directory)` path as real checkpoints."""
from __future__ import annotations

import random

import pytest

CORPUS = [
    "Fetch Rewards is awesome and is America's number one app",
    "The Yellowstone National Park sees over four million visitors.",
    "José Martínez flew from São Paulo to New York City on March 3, 2021.",
    "The European Central Bank raised rates in Frankfurt last Tuesday.",
    "Parliament passed the budget law after a long debate.",
    "Apple CEO Tim Cook announced a new chip in Cupertino.",
    "北京 and 東京 are large cities; Zoë visited both 🚀 in 2019.",
    "Ελληνικά, עברית, العربية and naïve café text with\u00a0spaces\tand tabs.",
]


def _training_text(n: int = 400) -> list[str]:
    rng = random.Random(0)
    words = " ".join(CORPUS).split()
    return CORPUS + [" ".join(rng.choice(words) for _ in range(12)) for _ in range(n)]


def build_bpe_tokenizer(out_dir):
    """A small byte-level BPE tokenizer (GPT-2 style: leading space inside tokens, no pad token)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=False)
    bpe.train_from_iterator(_training_text(), vocab_size=600, min_frequency=1,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                            bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.save_pretrained(out_dir)
    return tok


def build_wordpiece_tokenizer(out_dir):
    """A small uncased WordPiece tokenizer (BERT/MiniLM style: ## continuation pieces)."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True, strip_accents=True)
    wp.train_from_iterator(_training_text(), vocab_size=400, min_frequency=1, show_progress=False)
    tok = BertTokenizerFast(tokenizer_object=wp._tokenizer, do_lower_case=True)
    tok.save_pretrained(out_dir)
    return tok


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory):
    return build_bpe_tokenizer(tmp_path_factory.mktemp("bpe_tok"))


@pytest.fixture(scope="session")
def wordpiece_tokenizer(tmp_path_factory):
    return build_wordpiece_tokenizer(tmp_path_factory.mktemp("wp_tok"))


def build_tiny_gpt_neo(out_dir, hidden: int = 32, layers: int = 2, seed: int = 0):
    """A tiny GPT-Neo checkpoint (random weights) with the fixture's byte-level BPE tokenizer."""
    import torch
    from transformers import GPTNeoConfig, GPTNeoModel

    tok = build_bpe_tokenizer(out_dir)
    cfg = GPTNeoConfig(vocab_size=len(tok), hidden_size=hidden, num_layers=layers, num_heads=2,
                       attention_types=[[["global", "local"], layers // 2]], max_position_embeddings=512,
                       window_size=64, embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0,
                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    GPTNeoModel(cfg).save_pretrained(out_dir)
    return out_dir


def build_tiny_bert(out_dir, hidden: int = 32, layers: int = 2, seed: int = 0):
    """A tiny BERT checkpoint (random weights) with the fixture's WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    tok = build_wordpiece_tokenizer(out_dir)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_gpt_neo(tmp_path_factory):
    return build_tiny_gpt_neo(tmp_path_factory.mktemp("tiny_gpt_neo"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
