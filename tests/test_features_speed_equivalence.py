"""The fast featurize path (gold_labels / token_labels / Featurizer.encode without per-token loops)
against straightforward references: token_tags + resolve_spans, and an encode written the plain way
(tokenizer call, effective offsets, tags per token, slices per window)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.align import (
    IGNORE,
    Tokens,
    _hull,
    _hull_sorted,
    effective_offsets,
    gold_labels,
    labelled_positions,
    resolve_spans,
    token_labels,
    token_tags,
    windows,
)
from pipeline.core.features import FeatureConfig, Featurizer

STRATEGIES = ("first", "last", "all")
POLICIES = ("expand", "contract", "drop")
TYPES = ("PERSON", "LOC", "ORG", "DATE")
TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
LABEL_ID = {t: i for i, t in enumerate(TAGS)}
TOPICS = ["travel", "technology", "politics", "other"]


def reference_labels(tokens: Tokens, spans: list[dict], strategy: str) -> list[int]:
    label_of = {None: IGNORE, **LABEL_ID}
    return [label_of[t] for t in token_tags(tokens, spans, strategy)]


# --------------------------------------------------------------------------------------------
# 1. Span-level: arbitrary tokens (ordered or not, empty, overlapping) and spans (any order, overlapping).

@st.composite
def tokens_and_spans(draw):
    n_chars = draw(st.integers(1, 30))
    n = draw(st.integers(0, 12))
    pos = st.integers(0, n_chars)
    pairs = [tuple(sorted(draw(st.tuples(pos, pos)))) for _ in range(n)]
    if draw(st.booleans()):   # usually ordered, as real tokenizers give them
        pairs.sort()
        pairs = [(s, max(e, pairs[i - 1][1] if i else e)) for i, (s, e) in enumerate(pairs)]
    if pairs and draw(st.integers(0, 9)) == 0:   # a token that ends before it starts
        i = draw(st.integers(0, len(pairs) - 1))
        pairs[i] = (pairs[i][1] + 1, pairs[i][1])
    word_ids, w = [], 0
    for _ in pairs:
        w += draw(st.integers(0, 1))
        word_ids.append(w)
    tokens = Tokens([s for s, _ in pairs], [e for _, e in pairs], word_ids)
    spans = [{"type": draw(st.sampled_from(TYPES)), "start": a, "end": b}
             for a, b in (sorted(draw(st.tuples(pos, pos))) for _ in range(draw(st.integers(0, 4))))]
    return tokens, spans


@settings(max_examples=400, deadline=None, database=None)
@given(case=tokens_and_spans(), strategy=st.sampled_from(STRATEGIES), policy=st.sampled_from(POLICIES))
def test_gold_labels_match_resolve_then_token_tags(case, strategy, policy):
    tokens, spans = case
    res = resolve_spans(Tokens(tokens.starts, tokens.ends, tokens.word_ids), spans, policy)
    assert gold_labels(tokens, spans, policy, strategy, LABEL_ID) == (
        reference_labels(tokens, res.spans, strategy), res.events)
    # token_labels alone on spans as resolve_spans leaves them and on raw (overlapping) spans
    assert token_labels(tokens, res.spans, strategy, LABEL_ID) == reference_labels(tokens, res.spans, strategy)
    assert token_labels(tokens, spans, strategy, LABEL_ID) == reference_labels(tokens, spans, strategy)


@settings(max_examples=300, deadline=None, database=None)
@given(case=tokens_and_spans())
def test_hull_by_bisection_matches_the_scan(case):
    tokens, spans = case
    if tokens.ordered:
        for sp in spans:
            assert _hull_sorted(tokens, sp["start"], sp["end"]) == _hull(tokens, sp["start"], sp["end"])


def test_unordered_tokens_take_the_reference_path():
    # byte-level pieces of one character can overlap out of order
    tokens = Tokens([0, 2, 1, 4], [2, 3, 3, 6], [0, 0, 1, 2])
    assert not tokens.ordered
    spans = [{"type": "LOC", "start": 1, "end": 3}, {"type": "ORG", "start": 4, "end": 6}]
    for strategy in STRATEGIES:
        for policy in POLICIES:
            res = resolve_spans(tokens, spans, policy)
            assert gold_labels(tokens, spans, policy, strategy, LABEL_ID) == (
                reference_labels(tokens, res.spans, strategy), res.events)


def test_token_ending_before_it_starts_is_not_ordered():
    assert not Tokens([0, 3, 3], [2, 2, 5], [0, 1, 2]).ordered
    assert Tokens([0, 3, 3], [2, 3, 5], [0, 1, 2]).ordered


def test_labelled_positions_edges_unlike_any_word_id():
    # the edge sentinel differs even from None (a raw HF word id)
    assert labelled_positions([None, None, 1], "first") == [True, False, True]
    assert labelled_positions([1, None, None], "last") == [True, False, True]


def test_unknown_policy_rejected_on_the_fast_path_too():
    tokens = Tokens([0], [3], [0])
    with pytest.raises(ValueError, match="misalignment policy"):
        gold_labels(tokens, [{"type": "LOC", "start": 0, "end": 3}], "bogus", "first", LABEL_ID)


# --------------------------------------------------------------------------------------------
# 2. Featurizer.encode against a plain implementation, row for row (every field, key order too).

def reference_encode(tok, cfg: FeatureConfig, prefix, suffix, records, first_index=0):
    rows, events = [], []
    max_content = cfg.max_length - len(prefix) - len(suffix)
    label_of = {None: IGNORE, **{t: i for i, t in enumerate(cfg.tags)}}
    topic_id = {t: i for i, t in enumerate(cfg.topics)}
    for k, rec in enumerate(records):
        sentence = rec["sentence"]
        enc = tok(sentence, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        starts, ends = effective_offsets(sentence, enc["offset_mapping"])
        tokens = Tokens(starts, ends, [-1 if w is None else w for w in enc.word_ids()])
        gold, n = rec.get("task_B"), len(ids)
        if gold:
            res = resolve_spans(tokens, gold, cfg.misaligned)
            events += [{"id": rec.get("id"), "sentence": sentence, "policy": cfg.misaligned, **ev} for ev in res.events]
            labels = [label_of[t] for t in token_tags(tokens, res.spans, cfg.label_subwords)]
        elif gold is not None:
            w = tokens.word_ids
            if cfg.label_subwords == "all":
                used = [True] * n
            elif cfg.label_subwords == "first":
                used = [i == 0 or w[i] != w[i - 1] for i in range(n)]
            else:
                used = [i == n - 1 or w[i] != w[i + 1] for i in range(n)]
            labels = [label_of["O"] if u else IGNORE for u in used]
        else:
            labels = [IGNORE] * n
        topic = rec.get("task_A")
        for wi, (a, b) in enumerate(windows(n, max_content, cfg.stride)):
            rows.append({
                "record": first_index + k, "id": rec.get("id") or "", "window": wi, "token_start": a,
                "input_ids": prefix + ids[a:b] + suffix,
                "labels": [IGNORE] * len(prefix) + labels[a:b] + [IGNORE] * len(suffix),
                "topic": topic_id[topic] if topic is not None else IGNORE,
                "starts": starts[a:b], "ends": ends[a:b], "word_ids": tokens.word_ids[a:b],
            })
    return rows, events


SENTENCES = [
    "Fetch Rewards is awesome and is America's number one app",
    "José Martínez flew from São Paulo to New York City on March 3, 2021.",
    "北京 and 東京 are large cities; Zoë visited both 🚀 in 2019.",
    "Ελληνικά, עברית, العربية and naïve café text with\u00a0spaces\tand tabs.",
    "e\u0301e\u0301 co\u0308operate  double  spaces and trailing ",
    "",
    " ",
    " ".join(["Apple CEO Tim Cook announced a new chip in Cupertino."] * 6),  # several windows
]


def adversarial_records() -> list[dict]:
    records = []
    for si, s in enumerate(SENTENCES):
        n = len(s)
        cuts = sorted({0, n, *range(0, n, 3)})   # many edges fall inside tokens
        spans = [{"text": s[a:b], "type": TYPES[i % 4], "start": a, "end": b}
                 for i, (a, b) in enumerate(zip(cuts, cuts[2:]))][::2]
        words = [(m, m + len(w)) for m, w in _word_spans(s)]
        aligned = [{"text": s[a:b], "type": TYPES[i % 4], "start": a, "end": b} for i, (a, b) in enumerate(words)][::3]
        overlapping = spans[:2] + [{**spans[0], "end": min(n, spans[0]["end"] + 4)}] if spans else []
        for gold in (None, [], spans, aligned, overlapping):
            records.append({"id": f"r{si}", "sentence": s, "task_A": TOPICS[si % 4] if si % 3 else None, "task_B": gold})
        records.append({"sentence": s})   # no id, no task_A, no task_B
    return records


def _word_spans(s: str):
    i = 0
    for w in s.split():
        i = s.index(w, i)
        yield i, w
        i += len(w)


@pytest.mark.parametrize("name", ["bpe", "wordpiece"])
@pytest.mark.parametrize("max_length,stride", [(128, 32), (12, 3)])
def test_encode_matches_plain_reference(bpe_tokenizer, wordpiece_tokenizer, name, max_length, stride):
    tok = {"bpe": bpe_tokenizer, "wordpiece": wordpiece_tokenizer}[name]
    records = adversarial_records()
    assert any(r.get("task_B") for r in records)
    for strategy in STRATEGIES:
        for policy in POLICIES:
            cfg = FeatureConfig(max_length, stride, strategy, policy, TOPICS, TAGS)
            fe = Featurizer(tok, cfg)
            got = fe.encode(records, first_index=7)
            rows, events = reference_encode(tok, cfg, fe.prefix, fe.suffix, records, first_index=7)
            assert got.rows == rows and got.events == events, (strategy, policy)
            assert [list(r) for r in got.rows] == [list(r) for r in rows]   # same key order
            if max_length == 12:
                assert any(r["window"] > 0 for r in got.rows)
            # each row owns its lists (no list shared between rows or fields)
            lists = [id(v) for r in got.rows for v in r.values() if isinstance(v, list)]
            assert len(lists) == len(set(lists))


def test_encode_reference_has_events(bpe_tokenizer):
    cfg = FeatureConfig(128, 32, "first", "expand", TOPICS, TAGS)
    assert Featurizer(bpe_tokenizer, cfg).encode(adversarial_records()).events



@pytest.mark.parametrize("name", ["bpe", "wordpiece"])
def test_encode_at_the_window_boundary(bpe_tokenizer, wordpiece_tokenizer, name):
    """Sentences of exactly max_content tokens (one window) and one more (two windows)."""
    tok = {"bpe": bpe_tokenizer, "wordpiece": wordpiece_tokenizer}[name]
    records = [r for r in adversarial_records() if r["sentence"] == SENTENCES[1]]
    probe = Featurizer(tok, FeatureConfig(128, 2, "first", "expand", TOPICS, TAGS))
    n_special = len(probe.prefix) + len(probe.suffix)
    n = len(tok(SENTENCES[1], add_special_tokens=False)["input_ids"])
    for max_content in (n - 1, n, n + 1):
        cfg = FeatureConfig(max_content + n_special, 2, "last", "contract", TOPICS, TAGS)
        fe = Featurizer(tok, cfg)
        got = fe.encode(records)
        rows, events = reference_encode(tok, cfg, fe.prefix, fe.suffix, records)
        assert (got.rows, got.events) == (rows, events)
        assert {r["window"] for r in got.rows} == ({0, 1} if max_content < n else {0})
