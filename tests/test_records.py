"""The data contract (pipeline/core/records.py): one test per check, each asserting the exact message,
plus a property test that every valid record passes unchanged."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.records import (
    check_record,
    check_span,
    hash_normalised,
    hash_split,
    located,
    name_shown,
    normalise,
    record_id,
)

TOPICS = ["travel", "technology", "politics", "other"]
ENTITIES = ["PERSON", "LOC", "ORG", "DATE"]
SENT = "Tim Cook visited Paris in May."   # Tim Cook [0:8], Paris [17:22], May [26:29]


def span(text, type_, start, end, **extra):
    return {"text": text, "type": type_, "start": start, "end": end, **extra}


def rec(**fields):
    base = {"sentence": SENT, "task_A": "travel", "task_B": [span("Paris", "LOC", 17, 22)]}
    base.update(fields)
    return base


def errors_of(raw):
    checked = check_record(raw, TOPICS, ENTITIES)
    assert checked.record is None, "expected the record to be rejected"
    return checked.errors


def only_error(raw):
    errs = errors_of(raw)
    assert len(errs) == 1, errs
    return errs[0]


# ---- valid records -------------------------------------------------------------------------------

def test_valid_record_is_cleaned_and_spans_sorted():
    raw = rec(id="r1", split="dev", source="import-7",
              task_B=[span("Paris", "LOC", 17, 22), span("Tim Cook", "PERSON", 0, 8)])
    checked = check_record(raw, TOPICS, ENTITIES)
    assert checked.errors == [] and checked.warnings == []   # "source" is a known quiet field
    assert checked.record == {"sentence": SENT, "task_A": "travel", "id": "r1", "split": "dev",
                              "task_B": [span("Tim Cook", "PERSON", 0, 8), span("Paris", "LOC", 17, 22)]}


@pytest.mark.parametrize("task_a, task_b", [("travel", None), (None, []), (None, [span("May", "DATE", 26, 29)])])
def test_one_task_is_enough(task_a, task_b):
    checked = check_record({"sentence": SENT, "task_A": task_a, "task_B": task_b}, TOPICS, ENTITIES)
    assert checked.errors == []
    assert checked.record["task_A"] == task_a and checked.record["task_B"] == task_b


def test_absent_task_fields_mean_not_annotated():
    checked = check_record({"sentence": SENT, "task_A": "other"}, TOPICS, ENTITIES)
    assert checked.record == {"sentence": SENT, "task_A": "other", "task_B": None}


def test_adjacent_spans_are_not_overlapping():
    s = "ParisRome"
    checked = check_record({"sentence": s, "task_B": [span("Paris", "LOC", 0, 5), span("Rome", "LOC", 5, 9)]},
                           TOPICS, ENTITIES)
    assert checked.errors == []


# ---- record-level checks -------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    (["a list"], "record: must be a JSON object, got array ['a list']"),
    (42, "record: must be a JSON object, got integer 42"),
    ("text", "record: must be a JSON object, got string 'text'"),
    (None, "record: must be a JSON object, got null"),
])
def test_record_not_an_object(raw, expected):
    assert only_error(raw) == expected


def test_missing_sentence():
    assert only_error({"task_A": "travel"}) == "sentence: missing"


@pytest.mark.parametrize("value, expected", [
    (None, "sentence: must be a string, got null"),
    (7, "sentence: must be a string, got integer 7"),
    (["Paris"], "sentence: must be a string, got array ['Paris']"),
    ({"text": "x"}, "sentence: must be a string, got object {'text': 'x'}"),
])
def test_sentence_wrong_type(value, expected):
    assert only_error({"sentence": value, "task_A": "travel"}) == expected


def test_empty_sentence():
    assert only_error({"sentence": "", "task_A": "travel"}) == "sentence: empty"


def test_whitespace_only_sentence():
    assert only_error({"sentence": " \t\u00a0", "task_A": "travel"}) == \
        "sentence: empty (only whitespace ' \\t\\xa0')"


def test_unpaired_surrogate_in_sentence():
    # json.loads('"\\ud800"') produces such a string; it cannot be written back as UTF-8.
    assert only_error({"sentence": "ab\ud800", "task_A": "travel"}) == \
        "sentence: contains an unpaired surrogate '\\ud800' at index 2 (not valid Unicode text)"


@pytest.mark.parametrize("value, expected", [
    (5, "id: must be a non-empty string, got integer 5"),
    ("  ", "id: must be a non-empty string, got string '  '"),
    ("x\udc80", "id: contains an unpaired surrogate '\\udc80' at index 1"),
])
def test_bad_id(value, expected):
    assert expected in only_error(rec(id=value))


def test_unknown_topic():
    assert only_error(rec(task_A="sports")) == \
        "task_A: unknown topic 'sports'; allowed: travel, technology, politics, other"


def test_topic_case_mismatch_gets_a_hint():
    assert only_error(rec(task_A="Travel")) == ("task_A: unknown topic 'Travel' (did you mean 'travel'? "
                                                "labels are case-sensitive); allowed: travel, technology, "
                                                "politics, other")


@pytest.mark.parametrize("value, expected", [
    (["travel"], "task_A: must be a topic string or null, got array ['travel']"),
    (3, "task_A: must be a topic string or null, got integer 3"),
    (True, "task_A: must be a topic string or null, got boolean True"),
])
def test_topic_wrong_type(value, expected):
    assert only_error(rec(task_A=value)) == expected


@pytest.mark.parametrize("value, expected", [
    ({"text": "Paris"}, "task_B: must be a list of spans or null, got object {'text': 'Paris'}"),
    ("Paris", "task_B: must be a list of spans or null, got string 'Paris'"),
])
def test_task_b_wrong_type(value, expected):
    assert only_error(rec(task_B=value)) == expected


def test_neither_task_is_an_error():
    assert only_error({"sentence": SENT}) == "task_A/task_B: neither task is annotated"
    assert only_error({"sentence": SENT, "task_A": None, "task_B": None}) == \
        "task_A/task_B: neither task is annotated"


def test_bad_split_value_with_case_hint():
    assert only_error(rec(split="Dev")) == \
        "split: must be one of train, dev, test, got 'Dev' (did you mean 'dev'? splits are lower-case)"
    assert only_error(rec(split="holdout")) == "split: must be one of train, dev, test, got 'holdout'"


def test_unknown_fields_are_warnings_not_errors():
    checked = check_record(rec(label="x", task_B=[span("Paris", "LOC", 17, 22, note="y", score=0.9)]),
                           TOPICS, ENTITIES)
    assert checked.record is not None
    # predict's per-entity `score` is expected (corrected predictions become data); other extras warn
    assert checked.warnings == ["label: unknown field (ignored)", "task_B[0]: unknown field(s) note (ignored)"]
    assert "label" not in checked.record and set(checked.record["task_B"][0]) == {"text", "type", "start", "end"}


def test_all_problems_are_reported_together():
    errs = errors_of({"sentence": SENT, "task_A": "sport",
                      "task_B": [span("Paris", "LOC", 17, 22), span("Paris", "LOC", 17, 22),
                                 span("Paris", "CITY", 17, 22)]})
    assert errs == ["task_A: unknown topic 'sport'; allowed: travel, technology, politics, other",
                    "task_B[2].type: unknown entity type 'CITY'; allowed: PERSON, LOC, ORG, DATE",
                    "task_B: duplicate spans 'Paris' [17:22] and 'Paris' [17:22]"]


# ---- span checks ---------------------------------------------------------------------------------

def span_error(sp, sentence=SENT):
    errs = check_span(sp, 0, sentence, ENTITIES)
    assert len(errs) == 1, errs
    # the same message comes out of check_record
    assert only_error({"sentence": sentence, "task_B": [sp]}) == errs[0]
    return errs[0]


def test_unknown_entity_type():
    assert span_error(span("Paris", "CITY", 17, 22)) == \
        "task_B[0].type: unknown entity type 'CITY'; allowed: PERSON, LOC, ORG, DATE"


def test_entity_type_case_mismatch_gets_a_hint():
    assert span_error(span("Paris", "loc", 17, 22)) == ("task_B[0].type: unknown entity type 'loc' "
                                                        "(did you mean 'LOC'? labels are case-sensitive); "
                                                        "allowed: PERSON, LOC, ORG, DATE")


def test_span_not_an_object():
    assert span_error(["Paris", "LOC", 17, 22]) == \
        "task_B[0]: must be an object with text, type, start, end, got array ['Paris', 'LOC', 17, 22]"


def test_span_missing_fields():
    assert span_error({"text": "Paris", "type": "LOC"}) == "task_B[0]: missing field(s) start, end"


@pytest.mark.parametrize("start, end, expected", [
    ("17", 22, "task_B[0].start: offset must be an integer, got string '17'"),
    (17, 22.0, "task_B[0].end: offset must be an integer, got number 22.0"),
    (True, 22, "task_B[0].start: offset must be an integer, got boolean True"),
    (None, 22, "task_B[0].start: offset must be an integer, got null"),
    (-1, 22, "task_B[0].start: offset -1 is negative"),
    (17, 99, f"task_B[0].end: offset 99 is beyond the sentence (length {len(SENT)})"),
    (22, 17, "task_B[0]: start 22 must be < end 17"),
    (17, 17, "task_B[0]: start 17 must be < end 17"),
])
def test_bad_offsets(start, end, expected):
    assert span_error(span("Paris", "LOC", start, end)) == expected


BIG = int("1" * 4000)   # JSON reads a 4000-digit number (Python's limit is 4300 digits)


@pytest.mark.parametrize("start, end, expected", [
    (BIG, 22, ("task_B[0].start: offset 11111111111111111111... (3980 more characters) is beyond the sentence "
              "(length 30)")),
    (17, -BIG, "task_B[0].end: offset -1111111111111111111... (3981 more characters) is negative"),
    (BIG, BIG + 1, ("task_B[0].start: offset 11111111111111111111... (3980 more characters) is beyond the sentence "
                   "(length 30)")),
])
def test_a_4000_digit_offset_is_shown_capped(start, end, expected):
    errs = check_span(span("Paris", "LOC", start, end), 0, SENT, ENTITIES)
    assert errs[0] == expected
    assert all(len(e) < 200 for e in errs)


def test_huge_values_in_messages_are_capped():
    big = "Paris " * 100_000
    for errs in (errors_of(rec(task_A=big)), errors_of(rec(task_B=[span(big, "LOC", 17, 22)])),
                 errors_of(rec(task_B=[span("Paris", big, 17, 22)])), errors_of(rec(split=big)),
                 errors_of({"sentence": big + ".", "task_B": [span(big, "LOC", 0, len(big))]})):
        assert errs and all(len(e) < 400 for e in errs), [e[:300] for e in errs]


@pytest.mark.parametrize("raw, expected", [
    (rec(task_A="travel\udc80"), "task_A: contains an unpaired surrogate '\\udc80' at index 6 (not valid Unicode text)"),
    (rec(task_B=[span("Pari\udc80", "LOC", 17, 22)]),
     "task_B[0].text: contains an unpaired surrogate '\\udc80' at index 4 (not valid Unicode text)"),
    (rec(task_B=[span("Paris", "\udc80", 17, 22)]),
     "task_B[0].type: contains an unpaired surrogate '\\udc80' at index 0 (not valid Unicode text)"),
])
def test_unpaired_surrogate_in_a_label_or_span(raw, expected):
    assert only_error(raw) == expected


def test_unknown_field_names_are_shown_safely():
    checked = check_record(rec(**{"a\nb": 1, "k" * 500: 2, "\udc80": 3}), TOPICS, ENTITIES)
    assert checked.warnings == ["'a\\nb': unknown field (ignored)",
                                "k" * 60 + "... (440 more characters): unknown field (ignored)",
                                "'\\udc80': unknown field (ignored)"]


@pytest.mark.parametrize("raw, expected", [
    ({"id": "r1"}, "a:1 (id=r1)"),
    ({"id": "r\udc80"}, "a:1 (id='r\\udc80')"),
    ({"id": "two\nlines"}, "a:1 (id='two\\nlines')"),
    ({"id": "x" * 100}, "a:1 (id=" + "x" * 60 + "... (40 more characters))"),
    ({"id": 5}, "a:1"), ({}, "a:1"), (["not a record"], "a:1"),
])
def test_located_shows_the_id_on_one_line(raw, expected):
    assert located("a:1", raw) == expected


def test_name_shown():
    assert name_shown("lable") == "lable" and name_shown(" x") == "' x'" and name_shown(3) == "3"


def test_text_mismatch_shows_both():
    assert span_error(span("Paris", "LOC", 16, 21)) == "task_B[0].text: 'Paris' != sentence[16:21] ' Pari'"


def test_span_text_wrong_type():
    assert span_error(span(5, "LOC", 17, 22)) == "task_B[0].text: must be a string, got integer"


@pytest.mark.parametrize("start, end", [(16, 22), (17, 23)])
def test_span_with_leading_or_trailing_whitespace(start, end):
    text = SENT[start:end]
    assert span_error(span(text, "LOC", start, end)) == \
        f"task_B[0]: span {text!r} has leading/trailing whitespace"


def test_overlapping_spans():
    s = "New York City"
    assert only_error({"sentence": s, "task_B": [span("York City", "LOC", 4, 13), span("New York", "LOC", 0, 8)]}) \
        == "task_B: overlapping spans 'New York' [0:8] and 'York City' [4:13]"


def test_nested_spans():
    s = "New York City"
    assert only_error({"sentence": s, "task_B": [span("York", "LOC", 4, 8), span("New York City", "LOC", 0, 13)]}) \
        == "task_B: nested spans 'New York City' [0:13] and 'York' [4:8]"


def test_duplicate_spans_even_with_different_types():
    assert only_error(rec(task_B=[span("Paris", "LOC", 17, 22), span("Paris", "ORG", 17, 22)])) == \
        "task_B: duplicate spans 'Paris' [17:22] and 'Paris' [17:22]"


# ---- property: every valid record passes unchanged -----------------------------------------------

# Characters that make tokenizers and offset code stumble: emoji (astral), CJK, combining marks,
# NBSP and other unicode spaces, RTL scripts. Surrogates are excluded (they are not valid text).
_alphabet = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from(list("😀🚀👍🏽北京東京한국어é\u0301\u0308\u00a0\u2009\u3000 \t\nمرحباשלום")),
)
_sentences = st.text(_alphabet, min_size=1, max_size=60).filter(lambda s: s.strip() != "")


@st.composite
def valid_records(draw):
    sentence = draw(_sentences)
    task_a = draw(st.one_of(st.none(), st.sampled_from(TOPICS)))
    # Spans: cut points over the sentence, then keep a random subset of the segments between them
    # whose text has no leading/trailing whitespace.
    n = len(sentence)
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=8))) | {0, n})
    segments = [(a, b) for a, b in itertools.pairwise(cuts)
                if b > a and sentence[a:b].strip() and sentence[a:b] == sentence[a:b].strip()]
    chosen = draw(st.lists(st.sampled_from(segments), unique=True, max_size=len(segments))) if segments else []
    spans = [span(sentence[a:b], draw(st.sampled_from(ENTITIES)), a, b) for a, b in chosen]
    task_b = spans if spans else draw(st.sampled_from([[], None]))
    if task_a is None and task_b is None:
        task_b = []
    raw = {"sentence": sentence, "task_A": task_a, "task_B": task_b}
    if draw(st.booleans()):
        raw["id"] = draw(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10)
                         .filter(lambda s: s.strip() != ""))
    return raw


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_records())
def test_valid_random_records_pass_unchanged(raw):
    checked = check_record(raw, TOPICS, ENTITIES)
    assert checked.errors == [] and checked.warnings == []
    out = checked.record
    assert out["sentence"] == raw["sentence"]
    assert out["task_A"] == raw["task_A"]
    if raw["task_B"] is None:
        assert out["task_B"] is None
    else:
        assert out["task_B"] == sorted(raw["task_B"], key=lambda s: s["start"])
        for s in out["task_B"]:
            assert raw["sentence"][s["start"]:s["end"]] == s["text"]
    assert out.get("id") == raw.get("id")
    # checking is idempotent: the clean record is itself valid and unchanged
    assert check_record(out, TOPICS, ENTITIES).record == out


# ---- normalise / splits / ids --------------------------------------------------------------------

def test_normalise_folds_case_width_and_spaces():
    assert normalise("  Ｐａｒｉｓ\u00a0 IS\tnice\n") == "paris is nice"
    assert normalise("Straße") == normalise("STRASSE")


def test_hash_split_is_stable_and_uses_normalised_text():
    assert hash_split("Hello  World", 0.1, 0.1, 0) == hash_split("hello world", 0.1, 0.1, 0)
    assert hash_split("Hello world", 0.1, 0.1, 0) == hash_normalised("hello world", 0.1, 0.1, 0)
    assert hash_split("x", 0.0, 0.0, 0) == "train"
    assert hash_split("x", 0.0, 0.999999, 0) == "test"


def test_hash_split_fractions_are_roughly_respected():
    from collections import Counter
    counts = Counter(hash_split(f"sentence number {i}", 0.2, 0.1, 3) for i in range(5000))
    assert 0.17 < counts["dev"] / 5000 < 0.23 and 0.08 < counts["test"] / 5000 < 0.12


def test_hash_split_depends_on_seed():
    a = [hash_split(f"s{i}", 0.3, 0.3, 0) for i in range(200)]
    b = [hash_split(f"s{i}", 0.3, 0.3, 1) for i in range(200)]
    assert a != b


def test_record_id_is_stable_and_distinct():
    assert record_id("Paris") == record_id("Paris") != record_id("paris")
    assert record_id("Paris").startswith("s-") and len(record_id("Paris")) == 18
