"""Records -> model features (token ids, tags, windows). Pure: a tokenizer in, rows out.

One row per window. A sentence longer than max_length is split into overlapping windows of
content tokens (`stride` tokens of overlap) instead of being truncated; each row keeps the
window's absolute token start so predictions can be merged back into one record.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from pipeline.core.align import (
    IGNORE,
    Tokens,
    effective_offsets,
    gold_labels,
    outside_labels,
    windows,
)


def special_layout(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single sentence ([CLS] ... [SEP])."""
    sample = "hello world"
    content = tokenizer(sample, add_special_tokens=False)["input_ids"]
    full = tokenizer(sample, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(content) + 1):
        if full[i:i + len(content)] == content:
            return full[:i], full[i + len(content):]
    raise ValueError(f"{type(tokenizer).__name__}: cannot locate the sentence among its special tokens")


@dataclass(frozen=True)
class FeatureConfig:
    """How records become feature rows: window size and overlap, which sub-tokens carry a tag,
    what to do with a span edge inside a token, and the label sets (topics, BIO tags)."""
    max_length: int
    stride: int
    label_subwords: str
    misaligned: str
    topics: list[str]
    tags: list[str]

    def settings(self) -> dict:
        """Just the FeatureConfig fields (also of a subclass that records more, such as ModelMeta)."""
        return {f.name: getattr(self, f.name) for f in fields(FeatureConfig)}


def content_length(cfg: FeatureConfig, n_special: int) -> int:
    """Content tokens per window: max_length counts the tokenizer's special tokens too. ValueError
    when the rest is too short for windows that overlap by `stride` and still advance."""
    max_content = cfg.max_length - n_special
    if max_content <= 2 * cfg.stride:
        raise ValueError(f"max_length {cfg.max_length} leaves too few tokens for stride {cfg.stride}"
                         + (f" after {n_special} special token(s)" if n_special else ""))
    return max_content


POSITION_TABLES = ("wpe", "embed_positions")  # GPT-2/GPT-Neo, OPT/BART-style; any other: "position" in the name


def position_limit(encoder) -> int | None:
    """The most tokens (special tokens included) one window may hold in an encoder with learned or
    fixed absolute position tables: the smallest table among its embedding modules named for positions
    (BERT's position_embeddings, GPT-Neo's wpe). A table with a padding index (RoBERTa's family)
    numbers positions after it; one with an `offset` (BART, OPT) starts there. None when there is no such table (rotary, ALiBi, relative buckets):
    nothing to enforce. Works on an encoder built on the meta device (no weights needed)."""
    limits = []
    for name, module in encoder.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        size = getattr(module, "num_embeddings", None)
        if isinstance(size, int) and ("position" in leaf or leaf in POSITION_TABLES):
            pad, offset = getattr(module, "padding_idx", None), getattr(module, "offset", None)
            limits.append(size - (pad + 1 if isinstance(pad, int) else 0) - (offset if isinstance(offset, int) else 0))
    return min(limits, default=None)


def position_problem(max_length: int, limit: int | None, encoder: str = "the encoder") -> str | None:
    """Why windows of max_length tokens do not fit the encoder's position table (None: they fit)."""
    if limit is None or max_length <= limit:
        return None
    return f"{max_length} is above the position limit of {encoder} ({limit} tokens, special tokens included)"


@dataclass
class Encoded:
    rows: list[dict]
    events: list[dict] = field(default_factory=list)   # misaligned spans, with the record


class Featurizer:
    """Records -> feature rows for one tokenizer and FeatureConfig (the featurize stage, predict)."""

    def __init__(self, tokenizer, cfg: FeatureConfig):
        self.tok, self.cfg = tokenizer, cfg
        self.prefix, self.suffix = special_layout(tokenizer)
        self.max_content = content_length(cfg, len(self.prefix) + len(self.suffix))
        self._pre_ignore, self._suf_ignore = [IGNORE] * len(self.prefix), [IGNORE] * len(self.suffix)
        self.topic_id = {t: i for i, t in enumerate(cfg.topics)}
        self.tag_id = {t: i for i, t in enumerate(cfg.tags)}
        # The Rust tokenizer behind the fast tokenizer, own copy: no truncation/padding whatever the
        # shared one was last set to; same added/special-token handling as tokenizer(...) uses.
        from tokenizers import Tokenizer
        self._backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self._backend.encode_special_tokens = getattr(tokenizer, "split_special_tokens", False)

    def tokens(self, sentences: list[str]):
        """Tokenize whole sentences (no truncation): ids and Tokens per sentence."""
        out = []
        for sentence, e in zip(sentences, self._backend.encode_batch(sentences, add_special_tokens=False)):
            starts, ends = effective_offsets(sentence, e.offsets)
            word_ids = e.word_ids
            if None in word_ids:  # content tokens all belong to a word; keep the -1 convention anyway
                word_ids = [-1 if w is None else w for w in word_ids]
            out.append((e.ids, Tokens(starts, ends, word_ids)))
        return out

    def encode(self, records: list[dict], first_index: int = 0) -> Encoded:
        """Rows for `records` (dicts with sentence and optionally id, task_A, task_B)."""
        rows, events = [], []
        if records:  # validate the stride once: _rows skips windows() for sentences that fit one window
            windows(0, self.max_content, self.cfg.stride)
        for k, (rec, (ids, tokens)) in enumerate(zip(records, self.tokens([r["sentence"] for r in records]))):
            labels = self._labels(rec, tokens, events)
            rows += self._rows(first_index + k, rec, ids, labels, tokens)
        return Encoded(rows, events)

    def _labels(self, rec: dict, tokens: Tokens, events: list[dict]) -> list[int]:
        """Label id per content token (IGNORE where unlabelled); misaligned spans go to `events`."""
        cfg, gold = self.cfg, rec.get("task_B")
        if gold:
            labels, misaligned = gold_labels(tokens, gold, cfg.misaligned, cfg.label_subwords, self.tag_id)
            for ev in misaligned:
                events.append({"id": rec.get("id"), "sentence": rec["sentence"], "policy": cfg.misaligned, **ev})
            return labels
        if gold is not None:  # annotated, no entities: "O" wherever the strategy labels
            return outside_labels(tokens.word_ids, cfg.label_subwords, self.tag_id.get("O"))
        return [IGNORE] * len(tokens.word_ids)  # entities not annotated

    def _rows(self, index: int, rec: dict, ids: list[int], labels: list[int], tokens: Tokens) -> list[dict]:
        """One row per window, special tokens added around each window's content."""
        rid, topic = rec.get("id") or "", rec.get("task_A")
        topic = self.topic_id[topic] if topic is not None else IGNORE
        prefix, suffix, pre_ign, suf_ign = self.prefix, self.suffix, self._pre_ignore, self._suf_ignore
        n = len(ids)
        if n <= self.max_content:  # one window: the sentence's own lists (fresh per sentence), no slices
            if prefix or suffix:
                ids, labels = [*prefix, *ids, *suffix], [*pre_ign, *labels, *suf_ign]
            return [{"record": index, "id": rid, "window": 0, "token_start": 0, "input_ids": ids, "labels": labels,
                     "topic": topic, "starts": tokens.starts, "ends": tokens.ends, "word_ids": tokens.word_ids}]
        return [{"record": index, "id": rid, "window": w, "token_start": a,
                 "input_ids": [*prefix, *ids[a:b], *suffix], "labels": [*pre_ign, *labels[a:b], *suf_ign],
                 "topic": topic, "starts": tokens.starts[a:b], "ends": tokens.ends[a:b], "word_ids": tokens.word_ids[a:b]}
                for w, (a, b) in enumerate(windows(n, self.max_content, self.cfg.stride))]


COUNT_KEYS = ("records", "windows", "windowed_records", "tokens", "spans", "aligned", "expanded", "contracted",
              "dropped")


def chunk_counts(records: list[dict], encoded: Encoded) -> dict[str, int]:
    """Window, token and span-alignment counts of one encoded chunk (summed into metrics/featurize.json)."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["records"] = len(records)
    counts["windows"] = len(encoded.rows)
    counts["windowed_records"] = sum(r["window"] == 1 for r in encoded.rows)
    counts["tokens"] = sum({r["record"]: r["token_start"] + len(r["starts"]) for r in encoded.rows}.values())
    counts["spans"] = sum(len(r["task_B"] or []) for r in records)
    for event in encoded.events:
        counts[event["action"]] += 1
    counts["aligned"] = counts["spans"] - len(encoded.events)
    return counts
