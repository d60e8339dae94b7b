"""Tests for the pure alignment core (pipeline/core/align.py): spans <-> token tags, policies, windows."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.align import (
    IGNORE,
    AlignResult,
    Tokens,
    decode,
    effective_offsets,
    fill_tags,
    labelled_positions,
    merge_windows,
    resolve_spans,
    tags_to_spans,
    token_tags,
    windows,
)

STRATEGIES = ("first", "last", "all")
TYPES = ("PERSON", "LOC", "ORG", "DATE")
FETCH = "Fetch Rewards is awesome and is America's number one app"


def encode(tok, sentence: str):
    """Exactly how the pipeline obtains content tokens."""
    enc = tok(sentence, add_special_tokens=False, return_offsets_mapping=True)
    starts, ends = effective_offsets(sentence, enc["offset_mapping"])
    return enc, Tokens(starts, ends, enc.word_ids())


def roundtrip(sentence: str, tokens: Tokens, spans: list[dict], strategy: str) -> list[dict]:
    tags = token_tags(tokens, spans, strategy)
    return decode(sentence, tokens, tags, strategy)


def expected(sentence: str, spans: list[dict]) -> list[dict]:
    return [{"text": sentence[s["start"]:s["end"]], "type": s["type"], "start": s["start"], "end": s["end"]}
            for s in sorted(spans, key=lambda s: s["start"])]


def span(sentence: str, start: int, end: int, kind: str) -> dict:
    return {"text": sentence[start:end], "type": kind, "start": start, "end": end}


@pytest.fixture(scope="module")
def tokenizers(bpe_tokenizer, wordpiece_tokenizer):
    return {"bpe": bpe_tokenizer, "wordpiece": wordpiece_tokenizer}


# --------------------------------------------------------------------------------------------
# 1. Round-trip property: token-aligned spans -> gold tags -> decode gives back exactly the spans.

ASCII_WORDS = ["Fetch", "Rewards", "America's", "app", "New", "York", "City", "Tuesday", "Bank",
               "rock'n'roll", "don't", "O'Neil", "e-mail", "U.S.", "Tim", "Cook"]
ACCENTED = ["José", "Martínez", "São", "Paulo", "naïve", "café", "Zoë", "Ελληνικά", "עברית", "العربية",
            "İstanbul", "Straße", "ÅNGSTRÖM", "Œuvre"]
CJK = ["北京", "東京", "日本語", "한국어", "中文字"]
EMOJI = ["🚀", "👨\u200d👩\u200d👧", "👍🏽", "🏳️\u200d🌈", "❤️", "🇫🇷"]
COMBINING = ["e\u0301", "Jose\u0301", "n\u0303o", "a\u0308\u0301b", "\u0301"]
PUNCT = ["!!!", "...", ",", ";", "(", ")", "—", '"', "?!", "'", "-", "%", "$"]
DIGITS = ["2021", "3,", "4.5", "1,000,000", "07", "½"]
ZERO_WIDTH = ["a\u200db", "\u200d", "x\u200by", "\ufeff"]
SEPARATORS = [" ", " ", " ", "  ", "\u00a0", "\t", "", " \t ", " \u00a0", "\n", "\r\n", "\u3000", "\u2009",
              "\u2028", "\x1c", "\x85", "\u200b"]

piece = st.one_of(
    st.sampled_from(ASCII_WORDS),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=9),
    st.sampled_from(ACCENTED),
    st.sampled_from(CJK),
    st.sampled_from(EMOJI),
    st.sampled_from(COMBINING),
    st.sampled_from(PUNCT),
    st.sampled_from(DIGITS),
    st.integers(0, 99999).map(str),
    st.sampled_from(ZERO_WIDTH),
)


@st.composite
def sentences(draw):
    parts = draw(st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), min_size=1, max_size=14))
    lead = draw(st.sampled_from(["", "", "", " ", "\t"]))
    trail = draw(st.sampled_from(["", "", "", " ", "  "]))
    return lead + "".join(p + sep for p, sep in parts).rstrip() + trail


def clean_boundaries(tokens: Tokens) -> set[int]:
    """Character positions that are a token boundary: no content token straddles them."""
    content = [(s, e) for s, e in zip(tokens.starts, tokens.ends) if s < e]
    cands = {s for s, _ in content} | {e for _, e in content}
    return {b for b in cands if not any(s < b < e for s, e in content)}


def draw_spans(draw, sentence: str, tokens: Tokens) -> list[dict]:
    """Random non-overlapping spans whose edges are token boundaries of tokens the tokenizer produced."""
    content = sorted({(s, e) for s, e in zip(tokens.starts, tokens.ends) if s < e})
    if not content:
        return []
    ok = clean_boundaries(tokens)
    picks = draw(st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(0, 4), st.sampled_from(TYPES)),
                          max_size=6))
    chosen = []
    for i, length, kind in picks:
        j = min(i + length, len(content) - 1)
        start, end = content[i][0], content[j][1]
        if start >= end or start not in ok or end not in ok:
            continue
        if any(start < c["end"] and c["start"] < end for c in chosen):
            continue
        chosen.append(span(sentence, start, end, kind))
    chosen.sort(key=lambda c: c["start"])
    for c in chosen:
        assert c["text"] == c["text"].strip() and c["text"]
    return chosen


def check_roundtrip(sentence: str, tokens: Tokens, spans: list[dict]) -> None:
    for policy in ("expand", "contract", "drop"):
        res = resolve_spans(tokens, spans, policy)
        assert res.spans == spans and res.events == [], (policy, res)
    want = expected(sentence, spans)
    for strategy in STRATEGIES:
        tags = token_tags(tokens, spans, strategy)
        assert len(tags) == len(tokens.starts)
        # the tags the model would be trained on sit exactly on the strategy's labelled positions
        if strategy == "all":
            assert None not in tags
        got = decode(sentence, tokens, tags, strategy)
        assert got == want, (strategy, tags)
        for d in got:
            assert d["text"] == sentence[d["start"]:d["end"]]
            assert d["text"] == d["text"].strip()


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), sentence=sentences())
def test_roundtrip_property(tokenizers, data, sentence):
    for tok in tokenizers.values():
        _, tokens = encode(tok, sentence)
        spans = draw_spans(data.draw, sentence, tokens)
        check_roundtrip(sentence, tokens, spans)


@pytest.mark.parametrize("name", ["bpe", "wordpiece"])
@pytest.mark.parametrize("sentence", [
    FETCH,
    "北京 and 東京 are large cities; Zoë visited both 🚀 in 2019.",
    "Ελληνικά, עברית, العربية and naïve café text with\u00a0spaces\tand tabs.",
    "a  👨\u200d👩\u200d👧 Jose\u0301 x\u00a0y\tz İstanbul a\u200db !!! ... 北京",
])
def test_roundtrip_every_token_is_an_entity(tokenizers, name, sentence):
    """Deterministic stress: every content token its own entity (adjacent spans, mid-word splits)."""
    _, tokens = encode(tokenizers[name], sentence)
    ok = clean_boundaries(tokens)
    cuts = sorted(ok)
    spans = [span(sentence, a, b, TYPES[k % 4]) for k, (a, b) in enumerate(itertools.pairwise(cuts))
             if sentence[a:b].strip() == sentence[a:b] and sentence[a:b]]
    # keep only pieces that are exactly covered by tokens (no gap of untokenised chars at an edge)
    content = [(s, e) for s, e in zip(tokens.starts, tokens.ends) if s < e]
    spans = [sp for sp in spans if any(s == sp["start"] for s, _ in content)
             and any(e == sp["end"] for _, e in content)]
    assert spans
    check_roundtrip(sentence, tokens, spans)
    # and the same with one span covering everything
    check_roundtrip(sentence, tokens, [span(sentence, min(s for s, _ in content), max(e for _, e in content), "ORG")])


# --------------------------------------------------------------------------------------------
# 5. The GPT-Neo case from the spec, on the fixture byte-level BPE.

def test_fetch_rewards_bpe(bpe_tokenizer):
    enc, tokens = encode(bpe_tokenizer, FETCH)
    spans = [span(FETCH, 0, 13, "ORG"), span(FETCH, 32, 39, "LOC")]
    assert [s["text"] for s in spans] == ["Fetch Rewards", "America"]
    pieces = bpe_tokenizer.convert_ids_to_tokens(enc["input_ids"])
    k = pieces.index("ĠAmerica")
    assert enc["offset_mapping"][k] == (31, 39)          # raw: the leading space is inside the token
    assert (tokens.starts[k], tokens.ends[k]) == (32, 39)  # effective: stripped
    for policy in ("expand", "contract", "drop"):
        assert resolve_spans(tokens, spans, policy).events == []
    for strategy in STRATEGIES:
        got = roundtrip(FETCH, tokens, spans, strategy)
        assert got == [{"text": "Fetch Rewards", "type": "ORG", "start": 0, "end": 13},
                       {"text": "America", "type": "LOC", "start": 32, "end": 39}]
    tags = token_tags(tokens, spans, "all")
    assert tags[k] == "B-LOC" and tags[k + 1] == "O"
    assert tags[:2] == ["B-ORG", "I-ORG"]


def test_fetch_rewards_wordpiece(wordpiece_tokenizer):
    _, tokens = encode(wordpiece_tokenizer, FETCH)
    spans = [span(FETCH, 0, 13, "ORG"), span(FETCH, 32, 39, "LOC"), span(FETCH, 49, 56, "DATE")]
    for strategy in STRATEGIES:
        assert roundtrip(FETCH, tokens, spans, strategy) == expected(FETCH, spans)


# --------------------------------------------------------------------------------------------
# Strategies on a hand-built multi-piece word.

def hand_tokens():
    # "Rewardsapp is": word 0 = Re|wards|app, word 1 = is
    sentence = "Rewardsapp is"
    return sentence, Tokens([0, 2, 7, 11], [2, 7, 10, 13], [0, 0, 0, 1])


@pytest.mark.parametrize("strategy,tags", [
    ("first", ["B-ORG", None, "B-LOC", "O"]),
    ("last", [None, "B-ORG", "B-LOC", "O"]),
    ("all", ["B-ORG", "I-ORG", "B-LOC", "O"]),
])
def test_units_split_inside_a_word(strategy, tags):
    sentence, tokens = hand_tokens()
    spans = [span(sentence, 0, 7, "ORG"), span(sentence, 7, 10, "LOC")]
    assert token_tags(tokens, spans, strategy) == tags
    assert decode(sentence, tokens, tags, strategy) == expected(sentence, spans)


def test_labelled_positions_and_fill():
    wid = [0, 0, 0, 1, 2, 2]
    assert labelled_positions(wid, "first") == [True, False, False, True, True, False]
    assert labelled_positions(wid, "last") == [False, False, True, True, False, True]
    assert labelled_positions(wid, "all") == [True] * 6
    assert fill_tags(wid, ["B-X", None, None, "O", "B-Y", None], "first") == ["B-X", "I-X", "I-X", "O", "B-Y", "I-Y"]
    assert fill_tags(wid, [None, None, "B-X", "O", None, "I-Y"], "last") == ["B-X", "I-X", "I-X", "O", "I-Y", "I-Y"]
    assert IGNORE == -100


# --------------------------------------------------------------------------------------------
# 2. Misalignment policies.

@pytest.fixture(scope="module")
def fetch_tokens(bpe_tokenizer):
    return encode(bpe_tokenizer, FETCH)[1]


def test_policy_expand(fetch_tokens):
    spans = [span(FETCH, 0, 13, "ORG"), span(FETCH, 32, 38, "LOC")]  # 'Americ': end inside ' America'
    res = resolve_spans(fetch_tokens, spans, "expand")
    assert isinstance(res, AlignResult)
    assert res.spans == [spans[0], {**spans[1], "start": 32, "end": 39}]
    assert [e["action"] for e in res.events] == ["expanded"]
    assert res.events[0]["span"] == spans[1] and res.events[0]["new"] == {"start": 32, "end": 39}
    assert roundtrip(FETCH, fetch_tokens, res.spans, "first")[1]["text"] == "America"


def test_policy_expand_start_inside_token(fetch_tokens):
    spans = [span(FETCH, 8, 13, "ORG")]  # 'wards' inside ' Rewards'
    res = resolve_spans(fetch_tokens, spans, "expand")
    assert res.spans == [{**spans[0], "start": 6, "end": 13}]
    assert res.events[0]["action"] == "expanded"


def test_policy_contract(fetch_tokens):
    # 'Fetch Rew': starts on a token edge, ends inside ' Rewards' -> contracted to 'Fetch'
    spans = [span(FETCH, 0, 9, "ORG"), span(FETCH, 32, 38, "LOC")]
    res = resolve_spans(fetch_tokens, spans, "contract")
    assert res.spans == [{**spans[0], "start": 0, "end": 5}]
    assert [e["action"] for e in res.events] == ["contracted", "dropped"]  # 'Americ' holds no whole token
    assert res.events[0]["new"] == {"start": 0, "end": 5}
    assert res.events[1]["span"] == spans[1]
    assert roundtrip(FETCH, fetch_tokens, res.spans, "all") == [
        {"text": "Fetch", "type": "ORG", "start": 0, "end": 5}]


def test_policy_drop(fetch_tokens):
    spans = [span(FETCH, 0, 13, "ORG"), span(FETCH, 32, 38, "LOC"), span(FETCH, 49, 52, "DATE")]
    res = resolve_spans(fetch_tokens, spans, "drop")
    assert res.spans == [spans[0], spans[2]]
    assert [(e["action"], e["span"]) for e in res.events] == [("dropped", spans[1])]


def test_policy_span_covering_no_token(fetch_tokens):
    spans = [span(FETCH, 13, 14, "ORG")]  # just the space before 'is'
    for policy in ("expand", "contract", "drop"):
        res = resolve_spans(fetch_tokens, spans, policy)
        assert res.spans == [] and [e["action"] for e in res.events] == ["dropped"]


def test_policy_expand_overlap_after_alignment(fetch_tokens):
    # 'Fetch Re' expands to 'Fetch Rewards', which then overlaps 'wards' expanded to ' Rewards'
    spans = [span(FETCH, 0, 8, "ORG"), span(FETCH, 8, 13, "LOC")]
    res = resolve_spans(fetch_tokens, spans, "expand")
    assert res.spans == [{**spans[0], "start": 0, "end": 13}]
    assert [e["action"] for e in res.events] == ["expanded", "dropped"]


def test_policy_overlapping_gold_spans_are_reported(fetch_tokens):
    # nested/overlapping gold spans cannot both be tagged; the second is reported, not silently lost
    spans = [span(FETCH, 0, 13, "ORG"), span(FETCH, 6, 13, "PERSON")]
    for policy in ("expand", "contract", "drop"):
        res = resolve_spans(fetch_tokens, spans, policy)
        assert res.spans == [spans[0]]
        assert [(e["action"], e["span"]) for e in res.events] == [("dropped", spans[1])]
        for strategy in STRATEGIES:
            assert roundtrip(FETCH, fetch_tokens, res.spans, strategy) == expected(FETCH, res.spans)


def test_policy_unsorted_gold_spans(fetch_tokens):
    spans = [span(FETCH, 32, 39, "LOC"), span(FETCH, 0, 13, "ORG")]
    res = resolve_spans(fetch_tokens, spans, "drop")
    assert res.events == []
    assert [s["start"] for s in res.spans] == [0, 32]
    for strategy in STRATEGIES:
        assert roundtrip(FETCH, fetch_tokens, res.spans, strategy) == expected(FETCH, spans)


# --------------------------------------------------------------------------------------------
# 3. Windows.

@pytest.mark.parametrize("n,max_content,stride", [
    (1, 8, 2), (8, 8, 2), (9, 8, 2), (20, 8, 2), (21, 8, 3), (100, 16, 4), (37, 10, 9), (50, 7, 0), (0, 8, 2),
])
def test_windows_cover_and_overlap(n, max_content, stride):
    ranges = windows(n, max_content, stride)
    if n <= max_content:
        assert ranges == [(0, n)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    covered = set()
    for a, b in ranges:
        assert 0 <= a < b <= n or n == 0
        assert b - a <= max_content
        covered.update(range(a, b))
    assert covered == set(range(n))
    for (a1, b1), (a2, b2) in itertools.pairwise(ranges):
        assert a1 < a2 and b1 < b2
        assert b1 - a2 == stride  # consecutive windows overlap by exactly `stride` tokens
    assert all(b - a == max_content for a, b in ranges[:-1])


def test_windows_rejects_stride_not_below_max():
    with pytest.raises(ValueError):
        windows(20, 8, 8)
    with pytest.raises(ValueError):
        windows(20, 8, 9)


@pytest.mark.parametrize("n,max_content,stride", [(20, 8, 2), (21, 8, 3), (100, 16, 4), (37, 10, 9), (5, 8, 2)])
def test_merge_windows_most_central(n, max_content, stride):
    ranges = windows(n, max_content, stride)
    merged = merge_windows(n, ranges)
    assert len(merged) == n
    for t, (w, pos) in enumerate(merged):
        a, b = ranges[w]
        assert a + pos == t
        centrality = lambda a, b, t: min(t - a, b - 1 - t)
        best = max(centrality(a2, b2, t) for a2, b2 in ranges if a2 <= t < b2)
        assert centrality(a, b, t) == best


def test_merge_windows_small_example():
    ranges = windows(12, 8, 4)
    assert ranges == [(0, 8), (4, 12)]
    merged = merge_windows(12, ranges)
    assert [w for w, _ in merged] == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert merged[6] == (1, 2)


# --------------------------------------------------------------------------------------------
# 4. BIO repair in tags_to_spans.

S = "Tim Cook of Apple in New York"
# content tokens:  Tim  Cook  of  Apple  in  New  York
ST = Tokens([0, 4, 9, 12, 18, 21, 25], [3, 8, 11, 17, 20, 24, 29], [0, 1, 2, 3, 4, 5, 6])


def spans_of(tags):
    return [(d["text"], d["type"]) for d in tags_to_spans(S, ST, tags)]


def test_bio_i_without_b_opens_entity():
    assert spans_of(["I-PERSON", "I-PERSON", "O", "I-ORG", "O", "O", "I-LOC"]) == [
        ("Tim Cook", "PERSON"), ("Apple", "ORG"), ("York", "LOC")]


def test_bio_type_change_closes_entity():
    assert spans_of(["B-PERSON", "I-ORG", "O", "O", "O", "B-LOC", "I-PERSON"]) == [
        ("Tim", "PERSON"), ("Cook", "ORG"), ("New", "LOC"), ("York", "PERSON")]


def test_bio_b_after_b_gives_two_entities():
    assert spans_of(["B-PERSON", "B-PERSON", "O", "O", "O", "B-LOC", "B-LOC"]) == [
        ("Tim", "PERSON"), ("Cook", "PERSON"), ("New", "LOC"), ("York", "LOC")]


def test_bio_none_and_o_close():
    assert spans_of(["B-PERSON", None, "I-PERSON", "O", "O", "O", "O"]) == [("Tim", "PERSON"), ("of", "PERSON")]


def test_bio_scores_are_averaged():
    got = tags_to_spans(S, ST, ["B-PERSON", "I-PERSON", "O", "O", "O", "O", "O"],
                        scores=[0.5, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert got == [{"text": "Tim Cook", "type": "PERSON", "start": 0, "end": 8, "score": 0.75}]


W = "a  b\u00a0\tc "
# raw tokens (GPT-2 style): 'a' (0,1), ' ' (1,2), ' b' (2,4), '\xa0' (4,5), '\t' (5,6), 'c' (6,7), ' ' (7,8)
WT = Tokens(*effective_offsets(W, [(0, 1), (1, 2), (2, 4), (4, 5), (5, 6), (6, 7), (7, 8)]), [0, 1, 2, 3, 4, 5, 6])


def test_effective_offsets_strip_both_sides():
    # a tokenizer that keeps trailing spaces (or a SentencePiece-like one) is stripped on both sides
    assert effective_offsets("ab  cd\u00a0", [(0, 4), (4, 7), (2, 3)]) == ([0, 4, 3], [2, 6, 3])


def test_effective_offsets_whitespace_tokens():
    assert WT.starts == [0, 2, 3, 5, 6, 6, 8]
    assert WT.ends == [1, 2, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("tags,want", [
    (["B-X", "I-X", "I-X", "I-X", "I-X", "I-X", "I-X"], [("a  b\u00a0\tc", 0, 7)]),
    (["O", "B-X", "I-X", "I-X", "I-X", "O", "O"], [("b", 3, 4)]),          # whitespace tokens never start/end it
    (["O", "I-X", "I-X", "I-X", "O", "O", "O"], [("b", 3, 4)]),
    (["O", "B-X", "O", "B-X", "I-X", "O", "I-X"], []),                   # whitespace-only entities vanish
    (["B-X", "I-X", "O", "O", "O", "I-X", "I-X"], [("a", 0, 1), ("c", 6, 7)]),
    (["B-X", "I-X", "B-X", "I-X", "I-X", "B-X", "I-X"], [("a", 0, 1), ("b", 3, 4), ("c", 6, 7)]),
])
def test_bio_whitespace_tokens(tags, want):
    got = tags_to_spans(W, WT, tags)
    assert [(d["text"], d["start"], d["end"]) for d in got] == want
    for d in got:
        assert d["text"] == W[d["start"]:d["end"]] == d["text"].strip()
