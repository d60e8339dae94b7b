"""Records -> model features (token ids, tags, windows). Pure: a tokenizer in, rows out.

One row per window. A sentence longer than max_length is split into overlapping windows of
content tokens (`stride` tokens of overlap) instead of being truncated; each row keeps the
window's absolute token start so predictions can be merged back into one record.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.align import IGNORE, Tokens, effective_offsets, resolve_spans, token_tags, windows
from pipeline.encoder import special_layout


@dataclass
class FeatureConfig:
    max_length: int
    stride: int
    label_subwords: str
    misaligned: str
    topics: list[str]
    tags: list[str]


@dataclass
class Encoded:
    rows: list[dict]
    events: list[dict] = field(default_factory=list)   # misaligned spans, with the record


class FeatureEncoder:
    def __init__(self, tokenizer, cfg: FeatureConfig):
        self.tok, self.cfg = tokenizer, cfg
        self.prefix, self.suffix = special_layout(tokenizer)
        self.max_content = cfg.max_length - len(self.prefix) - len(self.suffix)
        if self.max_content <= 2 * cfg.stride:
            raise ValueError(f"max_length {cfg.max_length} leaves too few tokens for stride {cfg.stride}")
        self.topic_id = {t: i for i, t in enumerate(cfg.topics)}
        self.tag_id = {t: i for i, t in enumerate(cfg.tags)}

    def tokens(self, sentences: list[str]):
        """Tokenize whole sentences (no truncation): ids and Tokens per sentence."""
        enc = self.tok(sentences, add_special_tokens=False, return_offsets_mapping=True,
                       return_attention_mask=False, return_token_type_ids=False)
        out = []
        for i, sentence in enumerate(sentences):
            starts, ends = effective_offsets(sentence, enc["offset_mapping"][i])
            word_ids = [w if w is not None else -1 for w in enc.word_ids(i)]
            out.append((enc["input_ids"][i], Tokens(starts, ends, word_ids)))
        return out

    def encode(self, records: list[dict], first_index: int = 0) -> Encoded:
        """Rows for `records` (dicts with sentence and optionally id, task_A, task_B)."""
        cfg, rows, events = self.cfg, [], []
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        for k, (rec, (ids, tokens)) in enumerate(zip(records, self.tokens([r["sentence"] for r in records]))):
            gold = rec.get("task_B")
            if gold is not None:
                res = resolve_spans(tokens, gold, cfg.misaligned)
                for ev in res.events:
                    events.append({"id": rec.get("id"), "sentence": rec["sentence"], "policy": cfg.misaligned, **ev})
                tags = token_tags(tokens, res.spans, cfg.label_subwords)
                labels = [IGNORE if t is None else self.tag_id[t] for t in tags]
            else:
                labels = [IGNORE] * len(ids)
            topic = rec.get("task_A")
            topic_label = self.topic_id[topic] if topic is not None else IGNORE
            for w, (a, b) in enumerate(windows(len(ids), self.max_content, cfg.stride)):
                rows.append({
                    "record": first_index + k, "id": rec.get("id") or "", "window": w, "token_start": a,
                    "input_ids": self.prefix + ids[a:b] + self.suffix,
                    "labels": [IGNORE] * n_pre + labels[a:b] + [IGNORE] * n_suf,
                    "topic": topic_label,
                    "starts": tokens.starts[a:b], "ends": tokens.ends[a:b], "word_ids": tokens.word_ids[a:b],
                })
        return Encoded(rows, events)
