"""NER decoding: greedy argmax against the likeliest valid BIO sequence (Viterbi)."""
from __future__ import annotations

import itertools
import math
import typing

import numpy as np
import pytest

from pipeline.core.align import Tokens
from pipeline.core.decoding import NER_DECODES, best_valid_path, decode_tag_ids, is_valid_bio
from pipeline.core.inference import decoded_tags, merge_record
from pipeline.core.model import ModelMeta
from pipeline.storage.params import TrainParams

TAGS = ["O", "B-PERSON", "I-PERSON", "B-LOC", "I-LOC"]


def logp_of(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(1, keepdims=True))


def brute_force(logp: np.ndarray) -> list[int]:
    """The best valid sequence by trying them all (ties: the first in lexicographic order)."""
    best, arg = -math.inf, None
    for seq in itertools.product(range(len(TAGS)), repeat=len(logp)):
        if is_valid_bio([TAGS[t] for t in seq]):
            total = sum(logp[i, t] for i, t in enumerate(seq))
            if total > best:
                best, arg = total, list(seq)
    return arg


@pytest.mark.parametrize("tags, valid", [
    (["O", "B-PERSON", "I-PERSON", "O"], True),
    (["B-LOC", "B-LOC", "I-LOC"], True),
    ([], True),
    (["I-PERSON"], False),                     # I- at the start
    (["O", "I-LOC"], False),                   # I- after O
    (["B-PERSON", "I-LOC"], False),            # I- of another type
    (["B-PERSON", "I-PERSON", "I-LOC"], False),
])
def test_valid_bio(tags, valid):
    assert is_valid_bio(tags) is valid


def test_viterbi_matches_brute_force_on_random_distributions():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5):
        for _ in range(40):
            logp = logp_of(rng.dirichlet(np.full(len(TAGS), 0.3), size=n).tolist())
            path = best_valid_path(logp, TAGS)
            assert is_valid_bio([TAGS[t] for t in path])
            assert path == brute_force(logp)


def test_viterbi_picks_the_likelier_repair_where_greedy_splits_an_entity():
    # argmax: B-PERSON I-LOC I-LOC, which the span repair reads as PERSON + LOC; the likeliest
    # valid sequence is one LOC entity
    logp = logp_of([[0.05, 0.50, 0.02, 0.40, 0.03],
                    [0.05, 0.02, 0.40, 0.03, 0.50],
                    [0.05, 0.02, 0.40, 0.03, 0.50]])
    greedy = [int(i) for i in logp.argmax(1)]
    assert [TAGS[t] for t in greedy] == ["B-PERSON", "I-LOC", "I-LOC"]
    assert [TAGS[t] for t in decode_tag_ids(greedy, logp, TAGS, "viterbi")] == ["B-LOC", "I-LOC", "I-LOC"]
    assert decode_tag_ids(greedy, logp, TAGS, "greedy") == greedy


def test_a_valid_greedy_sequence_is_kept_as_is():
    logp = logp_of([[0.1, 0.6, 0.1, 0.1, 0.1], [0.2, 0.1, 0.5, 0.1, 0.1], [0.7, 0.1, 0.1, 0.05, 0.05]])
    greedy = [int(i) for i in logp.argmax(1)]
    assert decode_tag_ids(greedy, logp, TAGS, "viterbi") == greedy == best_valid_path(logp, TAGS)


def test_unknown_decoding_is_refused():
    with pytest.raises(ValueError, match="unknown NER decoding 'crf'"):
        decode_tag_ids([0], logp_of([[1, 1, 1, 1, 1]]), TAGS, "crf")


def test_params_offer_exactly_the_decodings():
    assert typing.get_args(TrainParams.model_fields["ner_decode"].annotation) == NER_DECODES


def test_decoded_tags_skip_unlabelled_sub_tokens_and_score_the_chosen_tag():
    # words: "Ann" (one token) "Lee" (two tokens, the second unlabelled under `first`) "ran"
    tokens = Tokens([0, 4, 6, 8], [3, 6, 7, 11], [0, 1, 1, 2])
    probs = [[0.1, 0.2, 0.1, 0.5, 0.1],    # B-LOC, but B-PERSON is close
             [0.1, 0.1, 0.6, 0.1, 0.1],    # I-PERSON
             [0.9, 0.0, 0.1, 0.0, 0.0],    # unlabelled: never decoded
             [0.8, 0.05, 0.05, 0.05, 0.05]]
    logp = logp_of([[max(x, 1e-9) for x in row] for row in probs]).astype(np.float32)
    m = {"tokens": tokens, "tag_ids": [int(i) for i in logp.argmax(1)], "tag_probs": [float(max(r)) for r in probs],
         "tag_logp": logp}
    meta = ModelMeta(max_length=16, stride=2, label_subwords="first", misaligned="expand", topics=["a", "b"],
                     tags=TAGS, encoder_name="tiny", pooling="mean", entities=["PERSON", "LOC"], n_prefix=0)
    assert decoded_tags(m, meta)[0] == ["B-LOC", "I-PERSON", None, "O"]
    tags, scores = decoded_tags(m, ModelMeta(**{**meta.__dict__, "ner_decode": "viterbi"}))
    # B-PERSON I-PERSON (0.2 * 0.6) beats B-LOC B-LOC / B-LOC O (0.5 * 0.1) and O I-? is invalid
    assert tags == ["B-PERSON", "I-PERSON", None, "O"]
    assert scores[0] == pytest.approx(0.2, rel=1e-5) and scores[1:] == m["tag_probs"][1:]


def test_merged_windows_keep_each_tokens_values_from_the_window_it_is_taken_from():
    # 6 tokens in two windows, [0, 4) and [2, 6): tokens 0-2 come from the first, 3-5 from the second
    def window(start, n, base):
        return {"token_start": start, "starts": list(range(start, start + n)), "ends": list(range(start + 1, start + n + 1)),
                "word_ids": list(range(start, start + n)), "labels": [int(base) + p for p in range(n)]}, \
               {"topic": [0.5, 0.5], "tag_ids": [0] * n, "tag_probs": [1.0] * n,
                "tag_logp": np.full((n, len(TAGS)), base, dtype=np.float32) + np.arange(n)[:, None]}
    (r1, o1), (r2, o2) = window(0, 4, 10.0), window(2, 4, 20.0)
    m = merge_record([r1, r2], [o1, o2], n_prefix=0)
    assert m["tag_logp"][:, 0].tolist() == [10.0, 11.0, 12.0, 21.0, 22.0, 23.0]
    assert m["gold_labels"] == [10, 11, 12, 21, 22, 23]
    single = merge_record([r1], [o1], n_prefix=0)
    assert single["tag_logp"][:, 0].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert single["gold_labels"] == [10, 11, 12, 13]
