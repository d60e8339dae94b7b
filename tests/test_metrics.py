"""Scores (pipeline/core/metrics.py) on small cases computed by hand: exact-span NER P/R/F1 (micro and
per type), topic accuracy and macro-F1 over annotated records only, seqeval strict IOB2, the error
kinds shown to annotators, and "nothing to score" as absent rather than zero."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.metrics import (
    EntityTally,
    SpanTally,
    select_score,
    seqeval_f1,
    span_errors,
    span_metrics,
    topic_metrics,
)

TYPES = ["PERSON", "LOC", "ORG", "DATE"]
TOPICS = ["travel", "technology", "politics", "other"]


def sp(kind: str, start: int, end: int) -> dict:
    return {"text": "x" * (end - start), "type": kind, "start": start, "end": end}


# NER, exact spans --------------------------------------------------------------------------------

def test_exact_match_scores_one():
    gold = [[sp("PERSON", 0, 8), sp("LOC", 20, 25)]]
    m = span_metrics(gold, gold, TYPES)
    assert (m["precision"], m["recall"], m["f1"]) == (1.0, 1.0, 1.0)
    assert m["n"] == 1 and m["gold_entities"] == 2


def test_boundary_error_is_one_false_positive_and_one_false_negative():
    # tp 1 (LOC), fp 1 (PERSON 0-3), fn 1 (PERSON 0-8): P = R = 1/2
    m = span_metrics([[sp("PERSON", 0, 8), sp("LOC", 20, 25)]], [[sp("PERSON", 0, 3), sp("LOC", 20, 25)]], TYPES)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["PERSON"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["LOC"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_type_error_is_one_false_positive_and_one_false_negative():
    # same range, wrong type: fp for ORG, fn for PERSON; tp 1 (LOC)
    m = span_metrics([[sp("PERSON", 0, 8), sp("LOC", 20, 25)]], [[sp("ORG", 0, 8), sp("LOC", 20, 25)]], TYPES)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["PERSON"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # predicted, never gold


def test_per_type_f1_by_hand():
    gold = [[sp("PERSON", 0, 5), sp("LOC", 10, 15)],
            [sp("PERSON", 0, 4), sp("LOC", 8, 12)],
            [sp("PERSON", 3, 9), sp("LOC", 20, 24)]]
    pred = [[sp("PERSON", 0, 5), sp("LOC", 10, 15)],      # both right
            [sp("PERSON", 0, 4), sp("PERSON", 8, 12)],    # LOC typed PERSON
            [sp("PERSON", 2, 9)]]                          # PERSON boundary, LOC missed
    m = span_metrics(gold, pred, TYPES)
    # PERSON: tp 2, fp 2, fn 1 -> P 1/2, R 2/3, F 4/7; LOC: tp 1, fp 0, fn 2 -> P 1, R 1/3, F 1/2
    assert m["PERSON"] == {"precision": 0.5, "recall": 0.6667, "f1": 0.5714, "support": 3}
    assert m["LOC"] == {"precision": 1.0, "recall": 0.3333, "f1": 0.5, "support": 3}
    # micro: tp 3, fp 2, fn 3 -> P 3/5, R 1/2, F 6/11
    assert (m["precision"], m["recall"], m["f1"]) == (0.6, 0.5, 0.5455)
    assert m["gold_entities"] == 6
    assert "ORG" not in m and "DATE" not in m  # in neither gold nor predictions: nothing to score


def test_spans_scored_only_on_records_annotated_for_ner():
    gold = [None, [sp("LOC", 0, 5)]]
    pred = [[sp("PERSON", 0, 3)], [sp("LOC", 0, 5)]]  # the first record's prediction is not judged
    m = span_metrics(gold, pred, TYPES)
    assert m["n"] == 1 and m["f1"] == 1.0 and "PERSON" not in m


def test_annotated_no_entities_and_none_predicted():
    # annotated "no entities" (task_B == []) and nothing predicted: P/R/F undefined, not 0
    m = span_metrics([[], []], [[], []], TYPES)
    assert m["n"] == 2 and m["precision"] is None and m["recall"] is None and m["f1"] is None
    # a spurious prediction there is a real error: precision 0
    m = span_metrics([[]], [[sp("ORG", 0, 3)]], TYPES)
    assert (m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0)


def test_empty_is_absent_not_zero():
    assert span_metrics([], [], TYPES) is None
    assert span_metrics([None, None], [[sp("LOC", 0, 1)], []], TYPES) is None
    assert topic_metrics([], [], TOPICS) is None
    assert topic_metrics([None, None], ["travel", "other"], TOPICS) is None
    assert seqeval_f1([], []) is None
    assert seqeval_f1([["O", "O"]], [["O", "O"]]) is None


def test_mismatched_lengths_are_a_bug_not_a_score():
    with pytest.raises(ValueError):
        span_metrics([[]], [[], []], TYPES)
    with pytest.raises(ValueError):
        topic_metrics(["travel"], ["travel", "other"], TOPICS)


# topic --------------------------------------------------------------------------------------------

def test_topic_metrics_by_hand_over_annotated_records_only():
    gold = ["travel", "technology", None, "travel", "politics"]
    pred = ["travel", "travel", "politics", "travel", "politics"]
    m = topic_metrics(gold, pred, TOPICS)
    # annotated pairs: (tr,tr) (tech,tr) (tr,tr) (pol,pol); the None record's "politics" is not a FP
    assert m["n"] == 4 and m["accuracy"] == 0.75
    assert m["travel"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["technology"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["politics"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert "other" not in m  # in neither gold nor predictions
    assert m["macro_f1"] == pytest.approx((0.8 + 0.0 + 1.0) / 3, abs=1e-4)


def test_topic_macro_f1_counts_a_class_only_predicted():
    # "other" never occurs in gold but is predicted once: its F1 of 0 is part of the macro average
    m = topic_metrics(["travel", "travel"], ["travel", "other"], TOPICS)
    assert m["accuracy"] == 0.5
    assert m["travel"]["f1"] == pytest.approx(2 / 3, abs=1e-4) and m["other"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)


# seqeval ------------------------------------------------------------------------------------------

def test_seqeval_strict_iob2():
    assert seqeval_f1([["B-PERSON", "I-PERSON", "O"]], [["B-PERSON", "I-PERSON", "O"]]) == 1.0
    # an entity opened by I- is invalid in strict IOB2 (the lenient conlleval mode would accept it)
    assert seqeval_f1([["B-PERSON", "I-PERSON", "O"]], [["I-PERSON", "I-PERSON", "O"]]) == 0.0
    # tp 1, fp 1, fn 1 -> 0.5
    assert seqeval_f1([["B-PERSON", "I-PERSON", "O", "B-LOC"]], [["B-PERSON", "I-PERSON", "O", "B-ORG"]]) == 0.5
    # boundary: B-PERSON alone is another entity than B-PERSON I-PERSON
    assert seqeval_f1([["B-PERSON", "I-PERSON"], ["B-LOC"]], [["B-PERSON", "O"], ["B-LOC"]]) == 0.5


# errors for annotators ----------------------------------------------------------------------------

def test_span_error_kinds():
    gold = [sp("PERSON", 0, 8), sp("LOC", 20, 25), sp("ORG", 30, 35), sp("DATE", 40, 45)]
    pred = [sp("PERSON", 0, 3), sp("ORG", 20, 25), sp("DATE", 40, 45), sp("LOC", 50, 55)]
    errors = span_errors(gold, pred)
    assert errors == [
        {"kind": "wrong_boundary", "gold": gold[0], "pred": pred[0]},
        {"kind": "wrong_type", "gold": gold[1], "pred": pred[1]},
        {"kind": "spurious", "gold": None, "pred": pred[3]},
        {"kind": "missed", "gold": gold[2], "pred": None},
    ]


def test_span_errors_none_when_all_right_and_split_entity_not_also_missed():
    gold = [sp("LOC", 0, 13)]
    assert span_errors(gold, list(gold)) == []
    pred = [sp("LOC", 0, 3), sp("LOC", 4, 13)]  # "New" + "York City" for "New York City"
    errors = span_errors(gold, pred)
    assert [e["kind"] for e in errors] == ["wrong_boundary", "wrong_boundary"]
    assert all(e["gold"] == gold[0] for e in errors)
    assert span_errors(gold, []) == [{"kind": "missed", "gold": gold[0], "pred": None}]
    assert span_errors([], [sp("ORG", 1, 2)]) == [{"kind": "spurious", "gold": None, "pred": sp("ORG", 1, 2)}]


def test_select_score():
    topic, ner = {"macro_f1": 0.6}, {"f1": 0.8}
    assert select_score(topic, ner, "mean_f1") == pytest.approx(0.7)
    assert select_score(topic, ner, "topic_macro_f1") == 0.6
    assert select_score(topic, ner, "ner_f1") == 0.8
    assert select_score(None, ner, "mean_f1") == 0.8  # a task with nothing to score is left out
    assert select_score(topic, {"f1": None}, "mean_f1") == 0.6
    assert select_score(None, None, "mean_f1") is None
    assert select_score(None, ner, "topic_macro_f1") is None


# streaming tallies --------------------------------------------------------------------------------

TAGS = ["O", "B-PERSON", "I-PERSON", "B-LOC", "I-LOC"]
sentences = st.lists(st.sampled_from(TAGS), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(sentences, st.randoms(use_true_random=False)), min_size=1, max_size=12),
       st.integers(1, 5))
def test_entity_tally_in_chunks_equals_seqeval_on_the_whole_list(pairs, chunk):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    gold = [g for g, _ in pairs]
    pred = [[rnd.choice(TAGS) if rnd.random() < 0.4 else t for t in g] for g, rnd in pairs]  # near gold
    tally = EntityTally()
    for i in range(0, len(gold), chunk):
        tally.add(gold[i:i + chunk], pred[i:i + chunk])
    if not any(t != "O" for seq in gold + pred for t in seq):
        assert tally.result() is None
    else:
        expected = round(float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0)), 4)
        assert tally.result() == expected == seqeval_f1(gold, pred)


def test_span_tally_added_record_by_record_equals_span_metrics():
    gold = [[sp("PERSON", 0, 5)], None, [sp("LOC", 2, 6), sp("ORG", 8, 9)], []]
    pred = [[sp("PERSON", 0, 5)], [sp("LOC", 0, 1)], [sp("LOC", 2, 7)], [sp("DATE", 0, 3)]]
    tally = SpanTally()
    for g, p in zip(gold, pred):
        tally.add(g, p)
    assert tally.result(TYPES) == span_metrics(gold, pred, TYPES)
    assert tally.result(TYPES)["n"] == 3 and tally.result(TYPES)["precision"] == round(1 / 3, 4)
