"""The import stage and its formats (pipeline/formats/) and the Label Studio export, on small
files in the real formats: CoNLL (IOB2, IOB1, BIOES, -DOCSTART-, CoNLL-2003 columns), Label
Studio JSON with UTF-16 offsets, spaCy-style JSONL; label mapping; the export -> import round trip;
the imported files pass the validate stage; bad inputs fail in one line."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from helpers import ENTITIES, REPO, TOPICS, run_stage

from pipeline.formats.common import check_items
from pipeline.formats.conll import join_tokens, parse_conll
from pipeline.formats.labels import apply_labels, parse_mapping
from pipeline.formats.labelstudio import parse_labelstudio, to_codepoint, to_utf16
from pipeline.formats.spacy_docs import parse_spacy
from pipeline.stages import export as export_stage
from pipeline.stages import import_ as import_stage
from pipeline.storage.errors import PipelineError

PARAMS = str(REPO / "params.yaml")


def u16(s: str, i: int) -> int:
    """UTF-16 offset of code point i, computed independently of the code under test."""
    return len(s[:i].encode("utf-16-le")) // 2


def cli(stage: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", stage, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def run_import(tmp: Path, fmt: str, *args) -> subprocess.CompletedProcess:
    return cli("import", fmt, *args, "--params", PARAMS, cwd=tmp)


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_consistent(records):
    for r in records:
        for s in r["task_B"] or []:
            assert r["sentence"][s["start"]:s["end"]] == s["text"], (r, s)


# --------------------------------------------------------------------------------------- CoNLL

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
visited VBD B-VP O
New NNP B-NP B-LOC
York NNP I-NP I-LOC
( ( O O
USA NNP B-NP B-LOC
) ) O O
on IN B-PP O
Monday NNP B-NP B-DATE
's POS B-NP O
trip NN I-NP O
. . O O
"""


def test_conll2003_columns_docstart_smart_join():
    batch = parse_conll(CONLL_2003, "eng.train")
    items = apply_labels(batch.items, {"PER": "PERSON", "MISC": None}, TOPICS, ENTITIES)
    records = check_items(items, TOPICS, ENTITIES)
    assert [i.loc for i in items] == ["eng.train:3", "eng.train:13"]
    assert batch.notes["-DOCSTART- lines skipped"] == 1
    first, second = records
    assert first["sentence"] == "EU rejects German call to boycott British lamb."
    assert first["task_A"] is None
    assert first["task_B"] == [{"text": "EU", "type": "ORG", "start": 0, "end": 2}]
    assert second["sentence"] == "Peter Blackburn visited New York (USA) on Monday's trip."
    assert second["task_B"] == [
        {"text": "Peter Blackburn", "type": "PERSON", "start": 0, "end": 15},
        {"text": "New York", "type": "LOC", "start": 24, "end": 32},
        {"text": "USA", "type": "LOC", "start": 34, "end": 37},
        {"text": "Monday", "type": "DATE", "start": 42, "end": 48},
    ]
    assert_consistent(records)


def test_conll_join_spaces():
    batch = parse_conll(CONLL_2003, "x", join="spaces")
    assert batch.items[1].record["sentence"] == "Peter Blackburn visited New York ( USA ) on Monday 's trip ."
    assert_consistent([i.record for i in batch.items])


def test_join_tokens_offsets():
    text, offsets = join_tokens(["He", "did", "n't", "go", "(", "really", ")", ";", "ok", "!"])
    assert text == "He didn't go (really); ok!"
    assert [text[a:b] for a, b in offsets] == ["He", "did", "n't", "go", "(", "really", ")", ";", "ok", "!"]


TOKENS = ["Tim", "Cook", "met", "Ann", "Lee", "Bob", "in", "Paris", "."]
EXPECTED = [("Tim Cook", "PERSON", 0, 8), ("Ann Lee", "PERSON", 13, 20), ("Bob", "PERSON", 21, 24),
            ("Paris", "LOC", 28, 33)]
SCHEMES = {
    "iob2": ["B-PERSON", "I-PERSON", "O", "B-PERSON", "I-PERSON", "B-PERSON", "O", "B-LOC", "O"],
    # IOB1: I- opens an entity; B- only separates two adjacent entities of one type
    "iob1": ["I-PERSON", "I-PERSON", "O", "I-PERSON", "I-PERSON", "B-PERSON", "O", "I-LOC", "O"],
    "bioes": ["B-PERSON", "E-PERSON", "O", "B-PERSON", "E-PERSON", "S-PERSON", "O", "S-LOC", "O"],
    "bilou": ["B-PERSON", "L-PERSON", "O", "B-PERSON", "L-PERSON", "U-PERSON", "O", "U-LOC", "O"],
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_conll_tag_schemes(scheme):
    text = "".join(f"{tok}\t{tag}\n" for tok, tag in zip(TOKENS, SCHEMES[scheme]))
    [item] = parse_conll(text, scheme).items
    assert item.record["sentence"] == "Tim Cook met Ann Lee Bob in Paris."
    got = [(s["text"], s["type"], s["start"], s["end"]) for s in item.record["task_B"]]
    assert got == EXPECTED
    assert check_items([item], TOPICS, ENTITIES)


def test_conll_sentence_without_entities_is_annotated_empty():
    [item] = parse_conll("Nothing O\nhere O\n.\tO\n", "f").items
    assert item.record == {"sentence": "Nothing here.", "task_A": None, "task_B": []}


# --------------------------------------------------------------------------------- Label Studio

EMOJI = "🚀🚀 Launch at Kennedy Space Center"


def ls_result(text: str, entity: str, label: str, with_text: bool = True, unit: str = "codepoints") -> dict:
    """A `labels` result as Label Studio writes it: code-point offsets (UTF-16 units on request)."""
    i = text.index(entity)
    at = (lambda k: u16(text, k)) if unit == "utf16" else (lambda k: k)
    value = {"start": at(i), "end": at(i + len(entity)), "labels": [label]}
    if with_text:
        value["text"] = entity
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def choice(topic: str) -> dict:
    return {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [topic]}}


def ls_export(unit: str = "codepoints") -> list[dict]:
    emoji_text = "Zoë 🎉 met 👩‍👩‍👧 Ann in Zürich 🇨🇭 on Friday"
    return [
        {"id": 1, "data": {"text": EMOJI},
         "annotations": [
             {"id": 10, "was_cancelled": False, "result": [ls_result(EMOJI, "Kennedy Space Center", "LOC", unit=unit)]},
             {"id": 11, "was_cancelled": False,
              "result": [ls_result(EMOJI, "Kennedy Space Center", "ORG", unit=unit), choice("technology")]},
             {"id": 12, "was_cancelled": True, "result": [choice("politics")]},
         ]},
        {"id": 2, "data": {"text": emoji_text},
         "annotations": [{"result": [ls_result(emoji_text, "Ann", "PER", with_text=False, unit=unit),
                                     ls_result(emoji_text, "Zürich", "LOC", unit=unit),
                                     ls_result(emoji_text, "Friday", "DATE", unit=unit), choice("travel")]}]},
        {"id": 3, "data": {"text": "Nothing to see here."}, "annotations": [{"result": [choice("other")]}]},
        {"id": 4, "data": {"text": "Not annotated yet."}, "annotations": []},
    ]


def test_utf16_conversion_helpers():
    assert EMOJI.index("Kennedy") == 13 and u16(EMOJI, 13) == 15
    assert to_codepoint(EMOJI, [15, 35]) == [13, 33]
    assert to_codepoint(EMOJI, [1]) == [None]          # inside the first surrogate pair
    assert to_utf16(EMOJI, [13, 33]) == [15, 35]
    assert to_codepoint("plain", [2, 9]) == [2, None]


@pytest.mark.parametrize("unit", ["codepoints", "utf16"])
def test_labelstudio_emoji_offsets_last_annotation(unit):
    batch = parse_labelstudio(ls_export(unit), "export.json", offsets=unit)
    items = apply_labels(batch.items, {"PER": "PERSON"}, TOPICS, ENTITIES)
    records = check_items(items, TOPICS, ENTITIES)
    assert len(records) == 3 and batch.notes
    first, second, third = records
    start = EMOJI.index("Kennedy")
    assert first == {"sentence": EMOJI, "task_A": "technology",
                     "task_B": [{"text": "Kennedy Space Center", "type": "ORG", "start": start, "end": start + 20}]}
    assert [(s["text"], s["type"]) for s in second["task_B"]] == [("Ann", "PERSON"), ("Zürich", "LOC"),
                                                                  ("Friday", "DATE")]
    assert_consistent(records)
    # the project labels entities, so a task with only a topic is "annotated, no entities"
    assert third == {"sentence": "Nothing to see here.", "task_A": "other", "task_B": []}
    assert any("without annotations skipped" in k for k in batch.notes)


def test_labelstudio_topic_only_project_leaves_ner_unannotated():
    tasks = [{"data": {"body": "A quiet day."}, "annotations": [{"result": [choice("other")]}]}]
    [item] = parse_labelstudio(tasks, "t.json", text_key="body").items
    assert item.record == {"sentence": "A quiet day.", "task_A": "other", "task_B": None}


def test_labelstudio_trims_whitespace_selection():
    text = "We flew to Oslo today"
    r = ls_result(text, " Oslo ", "LOC")                  # selected with the spaces around it
    batch = parse_labelstudio([{"data": {"text": text}, "annotations": [{"result": [r]}]}], "t.json")
    assert batch.items[0].record["task_B"] == [{"text": "Oslo", "type": "LOC", "start": 11, "end": 15}]
    assert batch.notes["spans trimmed of leading/trailing whitespace"] == 1


def _one_task(r: dict) -> list[dict]:
    return [{"data": {"text": EMOJI}, "annotations": [{"result": [r]}]}]


def test_labelstudio_default_is_codepoints_and_hints_name_the_other_unit():
    r = ls_result(EMOJI, "Kennedy Space Center", "LOC", unit="utf16")   # 15:35, past the end in code points
    with pytest.raises(PipelineError) as exc:
        parse_labelstudio(_one_task(r), "e.json")
    assert str(exc.value) == ("e.json: task[0]: result[0]: value.start/end: offsets 15:35 are outside the text "
                              "(33 code points); the offsets look like UTF-16 units: use --offsets utf16")
    batch = parse_labelstudio(_one_task(r), "e.json", offsets="utf16")
    assert batch.items[0].record["task_B"][0]["text"] == "Kennedy Space Center"
    r = ls_result(EMOJI, "Launch at", "LOC", unit="utf16")              # 5:14 fits either way: value.text decides
    with pytest.raises(PipelineError) as exc:
        parse_labelstudio(_one_task(r), "e.json")
    assert str(exc.value) == ("e.json: task[0]: result[0]: value.text 'Launch at' != text[5:14] 'unch at K' "
                              "(from code point offsets 5:14); the offsets look like UTF-16 units: use --offsets utf16")
    r = ls_result(EMOJI, "Kennedy Space Center", "LOC")                 # code points read as UTF-16
    with pytest.raises(PipelineError) as exc:
        parse_labelstudio(_one_task(r), "e.json", offsets="utf16")
    assert str(exc.value) == ("e.json: task[0]: result[0]: value.text 'Kennedy Space Center' != text[11:31] "
                              "'t Kennedy Space Cent' (from UTF-16 offsets 13:33); the offsets look like code points: "
                              "use --offsets codepoints")
    r["value"]["start"] = 1
    r["value"].pop("text")
    with pytest.raises(PipelineError) as exc:
        parse_labelstudio(_one_task(r), "e.json", offsets="utf16")
    assert str(exc.value) == ("e.json: task[0]: result[0]: value.start/end: UTF-16 offset 1 is inside a surrogate "
                              "pair (a character outside the BMP, e.g. an emoji); text has 35 UTF-16 code units; "
                              "the offsets look like code points: use --offsets codepoints")


def test_labelstudio_task_without_data_wrapper():
    """Label Studio's import takes a flat task ({"text": ...}); its fields, less the task's own, are data."""
    text = "Ann flew to Oslo"
    tasks = [{"id": 7, "text": text, "record_id": "r-7", "meta": {"x": 1},
              "annotations": [{"result": [ls_result(text, "Oslo", "LOC"), choice("travel")]}]},
             {"data": {"text": "Wrapped task."}, "annotations": [{"result": [choice("other")]}]}]
    batch = parse_labelstudio(tasks, "flat.json")
    assert [i.record for i in batch.items] == [
        {"sentence": text, "task_A": "travel", "task_B": [{"text": "Oslo", "type": "LOC", "start": 12, "end": 16}],
         "id": "r-7"},
        {"sentence": "Wrapped task.", "task_A": "other", "task_B": []}]
    assert batch.notes['tasks without the "data" wrapper (their own fields taken as data)'] == 1
    with pytest.raises(PipelineError) as exc:
        parse_labelstudio([{"id": 3, "body": "x", "annotations": []}], "flat.json")
    assert str(exc.value) == "flat.json: task[0] (id=3): task has no 'text' field (task keys: body); use --text-key"


# ----------------------------------------------------------------------------------- spaCy JSONL

def spacy_lines() -> str:
    rows = [
        {"text": "Angela Merkel spoke in Berlin.", "entities": [[0, 13, "PER"], [23, 29, "GPE"]],
         "cats": {"politics": 0.9, "travel": 0.05, "other": 0.05}},
        {"text": "Apple shipped a phone in May.",
         "spans": [{"start": 0, "end": 5, "label": "ORG", "text": "Apple"}, {"start": 25, "end": 28, "label": "DATE"}],
         "cats": {"technology": 1.0, "politics": 0.0}},
        {"text": "Rome was lovely.", "spans": [[0, 4, "GPE"]], "label": "travel"},
        {"text": "Just a topic.", "cats": {"other": 1.0}},
        {"text": "Rejected by the annotator.", "answer": "reject"},
    ]
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"


def test_spacy_span_forms_cats_and_map():
    batch = parse_spacy(spacy_lines(), "docs.jsonl")
    mapping = parse_mapping(["PER=PERSON,GPE=LOC"])
    records = check_items(apply_labels(batch.items, mapping, TOPICS, ENTITIES), TOPICS, ENTITIES)
    assert [r["task_A"] for r in records] == ["politics", "technology", "travel", "other"]
    assert records[0]["task_B"] == [{"text": "Angela Merkel", "type": "PERSON", "start": 0, "end": 13},
                                    {"text": "Berlin", "type": "LOC", "start": 23, "end": 29}]
    assert [s["type"] for s in records[1]["task_B"]] == ["ORG", "DATE"]
    assert records[2]["task_B"] == [{"text": "Rome", "type": "LOC", "start": 0, "end": 4}]
    assert records[3]["task_B"] is None                   # no span key: NER not annotated
    assert batch.notes["records with answer 'reject' skipped"] == 1
    assert_consistent(records)


def test_mapping_file_and_unknown_labels(tmp_path):
    (tmp_path / "map.yaml").write_text("PER: PERSON\nGPE: LOC\n", encoding="utf-8")
    assert parse_mapping([str(tmp_path / "map.yaml"), "MISC="]) == {"PER": "PERSON", "GPE": "LOC", "MISC": None}
    batch = parse_spacy(spacy_lines(), "docs.jsonl")
    with pytest.raises(PipelineError) as exc:
        apply_labels(batch.items, {}, TOPICS, ENTITIES)
    msg = str(exc.value)
    assert "'GPE' (2, first at docs.jsonl:1)" in msg and "'PER' (1, first at docs.jsonl:1)" in msg
    assert "--map PER=PERSON,GPE=LOC" in msg and "--drop-unknown" in msg and "\n" not in msg


# --------------------------------------------------------------------------------------- CLI

def test_cli_imports_all_formats_and_validate_accepts_them(tmp_path):
    raw = tmp_path / "raw"
    (tmp_path / "eng.conll").write_text(CONLL_2003, encoding="utf-8")
    (tmp_path / "export.json").write_text(json.dumps(ls_export(), ensure_ascii=False), encoding="utf-8")
    (tmp_path / "docs.jsonl").write_text(spacy_lines(), encoding="utf-8")
    (tmp_path / "map.yaml").write_text("PER: PERSON\nGPE: LOC\nMISC: null\n", encoding="utf-8")

    proc = run_import(tmp_path, "conll", "eng.conll", "--output", raw / "conll.jsonl", "--map", "map.yaml",
                      "--split", "test")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 records" in proc.stdout and "PERSON 1, LOC 2, ORG 1, DATE 1" in proc.stdout
    conll = read_out(raw / "conll.jsonl")
    assert conll[0]["source"] == "eng.conll:3" and all(r["split"] == "test" for r in conll)

    proc = run_import(tmp_path, "labelstudio", "export.json", "--output", raw / "ls.jsonl", "--map", "PER=PERSON")
    assert proc.returncode == 0, proc.stderr
    ls = read_out(raw / "ls.jsonl")
    assert ls[0]["task_B"][0]["start"] == EMOJI.index("Kennedy") and ls[0]["source"] == "export.json:task[0] (id=1)"
    assert "note: 1 tasks without annotations skipped" in proc.stdout

    proc = run_import(tmp_path, "spacy", "docs.jsonl", "--output", raw / "spacy.jsonl", "--map", "PER=PERSON",
                      "--drop-unknown")
    assert proc.returncode == 0, proc.stderr
    assert "note: 2 spans with unknown label 'GPE' dropped" in proc.stdout
    assert all(s["type"] != "GPE" for r in read_out(raw / "spacy.jsonl") for s in r["task_B"] or [])

    proc = cli("validate", "--raw-dir", raw, "--params", PARAMS, "--out-dir", tmp_path / "validated",
               "--metrics", tmp_path / "data.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rejected 0" in proc.stdout
    assert not [w for w in proc.stderr.splitlines() if "unknown field" in w]


def test_cli_unknown_label_is_an_error(tmp_path):
    (tmp_path / "docs.jsonl").write_text(spacy_lines(), encoding="utf-8")
    proc = run_import(tmp_path, "spacy", "docs.jsonl", "--output", tmp_path / "out.jsonl")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unknown entity label(s) 'GPE' (2" in proc.stderr and "--map" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_help_has_examples(tmp_path):
    for module in ("import", "export"):
        proc = cli(module, "--help", cwd=tmp_path)
        assert proc.returncode == 0 and "examples:" in proc.stdout


# --------------------------------------------------------------------------- export round trip

PREDICTIONS = [
    {"id": "p-1", "sentence": EMOJI, "task_A": "technology",
     "task_B": [{"text": "Kennedy Space Center", "type": "LOC", "start": 13, "end": 33, "score": 0.91}],
     "topic_scores": {"travel": 0.1, "technology": 0.8, "politics": 0.05, "other": 0.05}},
    {"sentence": "José flew 🛫 to 北京 with 𝒜lice on 3 May 😀.", "task_A": "travel",
     "task_B": [{"text": "北京", "type": "LOC", "start": 15, "end": 17, "score": 0.7},
                {"text": "José", "type": "PERSON", "start": 0, "end": 4, "score": 0.95},
                {"text": "𝒜lice", "type": "PERSON", "start": 23, "end": 28, "score": 0.6},
                {"text": "3 May", "type": "DATE", "start": 32, "end": 37, "score": 0.88}],
     "topic_scores": {"travel": 0.97, "technology": 0.01, "politics": 0.01, "other": 0.01}},
    {"sentence": "Nothing found here.", "task_A": "other", "task_B": [],
     "topic_scores": {"travel": 0.2, "technology": 0.2, "politics": 0.2, "other": 0.4}},
]


def schema_only(rec: dict) -> dict:
    out = {k: rec[k] for k in ("id", "sentence", "task_A") if k in rec}
    out["task_B"] = sorted(({k: s[k] for k in ("text", "type", "start", "end")} for s in rec["task_B"]),
                           key=lambda s: s["start"])
    return out


def write_predictions(path: Path, rows=PREDICTIONS) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("unit", ["codepoints", "utf16"])
def test_export_labelstudio_then_import_round_trip(tmp_path, unit):
    preds = write_predictions(tmp_path / "predictions.jsonl")
    for r in PREDICTIONS:
        assert_consistent([r])
    flags = [] if unit == "codepoints" else ["--offsets", "utf16"]   # code points are the default both ways
    proc = cli("export", "labelstudio", preds, "--output", tmp_path / "tasks.json", "--model-version", "v7",
               "--params", PARAMS, *flags, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    first = tasks[0]
    assert first["data"] == {"text": EMOJI, "record_id": "p-1"}
    pred = first["predictions"][0]
    assert pred["model_version"] == "v7" and pred["score"] == 0.8
    at = (lambda k: u16(EMOJI, k)) if unit == "utf16" else (lambda k: k)
    assert pred["result"][0] == {"from_name": "label", "to_name": "text", "type": "labels",
                                 "value": {"start": at(13), "end": at(33),
                                           "text": "Kennedy Space Center", "labels": ["LOC"]}, "score": 0.91}
    assert pred["result"][1]["type"] == "choices" and pred["result"][1]["value"] == {"choices": ["technology"]}
    s2 = PREDICTIONS[1]["sentence"]
    for r in tasks[1]["predictions"][0]["result"]:
        if r["type"] == "labels":   # what Label Studio (code points) or a UTF-16 tool would select
            v = r["value"]
            got = s2[v["start"]:v["end"]] if unit == "codepoints" else \
                s2.encode("utf-16-le")[2 * v["start"]:2 * v["end"]].decode("utf-16-le")
            assert got == v["text"]
    assert tasks[1]["predictions"][0]["score"] == 0.6

    # as pre-annotations (predictions only) ...
    proc = run_import(tmp_path, "labelstudio", "tasks.json", "--output", tmp_path / "a.jsonl", "--use-predictions",
                      *flags)
    assert proc.returncode == 0, proc.stderr
    expected = [schema_only(r) for r in PREDICTIONS]
    assert [schema_only(r) for r in read_out(tmp_path / "a.jsonl")] == expected
    # ... and after annotators accepted them unchanged
    for t in tasks:
        t["annotations"] = [{"was_cancelled": False, "result": t.pop("predictions")[0]["result"]}]
    (tmp_path / "reviewed.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    proc = run_import(tmp_path, "labelstudio", "reviewed.json", "--output", tmp_path / "b.jsonl", *flags)
    assert proc.returncode == 0, proc.stderr
    assert [schema_only(r) for r in read_out(tmp_path / "b.jsonl")] == expected


# ----------------------------------------------------------------------------------- bad inputs

def _ls(tasks):
    return json.dumps(tasks, ensure_ascii=False)


# a zlib stream, as a DocBin begins (zlib-compressed msgpack): enough to be recognised, no spaCy needed
FAKE_DOCBIN = zlib.compress(b"\x83\xa5attrs\x90\xa6tokens\xc4\x00\xa7strings\x90")
BIG = "1" + "9" * 4000
SPAN_GROUP_HELP = 'expected a list of spans or span groups {"NAME": [spans]}'

BAD = [
    # CoNLL
    ("conll", "in.conll", "Tim B-PER\nCook I-PER\nsaid X-Y\n",
     "in.conll:3: tag 'X-Y' in the last column is not O or B-/I-/E-/S-/L-/U-TYPE (IOB2, IOB1, BIOES)"),
    ("conll", "in.conll", "lonely\n", "in.conll:1: expected TOKEN ... TAG columns, got 'lonely'"),
    ("conll", "in.conll", "Tim B-PERSON\nlonely\n",
     ("in.conll:2: columns: 1 column, but the file's first token line (in.conll:1) has 2; likely a missing column: "
     "'lonely'")),
    ("conll", "in.conll", "Ann B-PERSON\nvisited O\nNew York B-LOC\n",
     ("in.conll:3: columns: 3 columns, but the file's first token line (in.conll:1) has 2; likely a token containing "
     "a space (separate the columns with tabs: then a token may contain spaces): 'New York B-LOC'")),
    ("conll", "in.conll", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nNew York NNP B-NP B-LOC\n",
     ("in.conll:4: columns: 5 columns, but the file's first token line (in.conll:3) has 4; likely a token containing "
     "a space")),
    ("conll", "in.conll", "Ann\tB-PERSON\nNew York B-LOC\n",
     ("in.conll:2: columns: 1 tab-separated column, but the file's first token line (in.conll:1) has 2; likely "
     "columns separated by spaces instead of tabs: 'New York B-LOC'")),
    ("conll", "in.conll", "Ann\tB-PERSON\nNew\tYork\tB-LOC\n",
     ("in.conll:2: columns: 3 tab-separated columns, but the file's first token line (in.conll:1) has 2; likely "
     "a tab inside a token, or an extra column")),
    ("conll", "in.conll", b"Tim B-PERSON\n\xff O\n", "in.conll:2: invalid UTF-8 (byte 0xff)"),
    ("conll", "in.conll", FAKE_DOCBIN,
     ("in.conll: a spaCy DocBin (binary) file, not conll text; import it with `python -m pipeline import spacy "
     "in.conll ...`")),
    ("conll", "missing.conll", None, "missing.conll: not found"),
    # Label Studio
    ("labelstudio", "ls.json", '[{"data": {"text": "x"}', "ls.json:1: invalid JSON: Expecting ',' delimiter"),
    ("labelstudio", "ls.json", '{"data": {"text": "x"}}\n{"data": {"text": "y"}}\n',
     ("ls.json:2: invalid JSON: Extra data at column 1 (a Label Studio export is one JSON list; JSONL is read by the "
     "spacy format)")),
    ("labelstudio", "ls.json", '[{"data": {"text": "Hi Bob", "text": "Hi Ann"}, "annotations": []}]',
     "ls.json: invalid JSON: duplicate key 'text' in one object (only one value can be kept)"),
    ("labelstudio", "ls.json", '[{"data": {"text": "Hi"}, "annotations": [{"result": [], "lead_time": NaN}]}]',
     "ls.json: invalid JSON: NaN is not a JSON value (use null, or a number)"),
    ("labelstudio", "ls.json", FAKE_DOCBIN, "ls.json: a spaCy DocBin (binary) file, not labelstudio text"),
    ("labelstudio", "ls.json", _ls(["Hi there"]),
     "ls.json: task[0]: expected a task object (a Label Studio JSON export), got string 'Hi there'"),
    ("labelstudio", "ls.json", _ls([{"data": "Hi there"}]), ("ls.json: task[0]: data: expected an object, got string "
     "'Hi there'")),
    ("labelstudio", "ls.json", _ls([{"data": {"body": "Hi there"}, "annotations": []}]),
     "ls.json: task[0]: data has no 'text' field (data keys: body); use --text-key"),
    ("labelstudio", "ls.json", _ls([{"id": 1, "body": "Hi there", "annotations": []}]),
     "ls.json: task[0] (id=1): task has no 'text' field (task keys: body); use --text-key"),
    ("labelstudio", "ls.json", _ls([{"id": 5, "data": {"text": "Hi Bob"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 3, "end": 6, "text": "Bob", "labels": ["PERSON", "ORG"]}}]}]}]),
     "ls.json: task[0] (id=5): result[0]: value.labels must hold exactly one label, got array ['PERSON', 'ORG']"),
    ("labelstudio", "ls.json", _ls([{"data": {"text": "Hi Bob"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 3, "end": 60, "labels": ["PERSON"]}}]}]}]),
     "ls.json: task[0]: result[0]: value.start/end: offsets 3:60 are outside the text (6 code points)"),
    ("labelstudio", "ls.json", _ls([{"data": {"text": "Hi Bob"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 3, "end": int(BIG), "labels": ["PERSON"]}}]}]}]),
     ("ls.json: task[0]: result[0]: value.start/end: offsets 3:19999999999999999999... (3981 more characters) are "
     "outside the text (6 code points)")),
    ("labelstudio", "ls.json", _ls([{"data": {"text": "🎉🎉 Hi Bob"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 8, "end": 11, "text": "Bob", "labels": ["PERSON"]}}]}]}]),
     ("ls.json: task[0]: result[0]: value.start/end: offsets 8:11 are outside the text (9 code points); the offsets "
     "look like UTF-16 units: use --offsets utf16")),
    ("labelstudio", "ls.json", _ls([{"data": {"text": "Hi Bob and Bo"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 3, "end": 6, "labels": ["PERSON"]}},
        {"type": "labels", "value": {"start": 4, "end": 13, "labels": ["PERSON"]}}]}]}]),
     "ls.json: task[0]: task_B: overlapping spans 'Bob' [3:6] and 'ob and Bo' [4:13]"),
    # spaCy JSONL
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "entities": [[3, 6, "PERSON"]]}\n{"text": "x", "entities": [[0, 9, "ORG"]]}\n',
     "d.jsonl:2: entities[0]: bad offsets 0:9 for a text of length 1"),
    ("spacy", "d.jsonl", '{"text": "Hi", "entities": [[0, ' + BIG + ', "ORG"]]}\n',
     "d.jsonl:1: entities[0]: bad offsets 0:19999999999999999999... (3981 more characters) for a text of length 2"),
    ("spacy", "d.jsonl", '{"text": "Hi", "cats": {"travel": 0.5, "other": 0.5}}\n',
     "d.jsonl:1: cats: ambiguous: travel, other all score 0.5"),
    ("spacy", "d.jsonl", '{"text": "Hi", "cats": {"travel": 1e999, "other": 0.1}}\n',
     "d.jsonl:1: invalid JSON: number 1e999 is out of range (it would read as infinity)"),
    ("spacy", "d.jsonl", '{"text": "Hi", "cats": {"travel": -1e999}}\n',
     "d.jsonl:1: invalid JSON: number -1e999 is out of range (it would read as infinity)"),
    ("spacy", "d.jsonl", '{"text": "Hi", "cats": {"travel": NaN}}\n',
     "d.jsonl:1: invalid JSON: NaN is not a JSON value (use null, or a number)"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "text": "Hi Ann"}\n',
     "d.jsonl:1: invalid JSON: duplicate key 'text' in one object (only one value can be kept)"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "spans": "Bob"}\n', f"d.jsonl:1: spans: {SPAN_GROUP_HELP}, got string 'Bob'"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "entities": 3}\n',
     "d.jsonl:1: entities: expected a list of spans, got integer 3"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "ents": {"start": 3, "end": 6, "label": "PERSON"}}\n',
     "d.jsonl:1: ents: expected a list of spans, got object {'start': 3, 'end': 6, 'label': 'PERSON'}"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "spans": {"start": 3, "end": 6, "label": "PERSON"}}\n',
     f"d.jsonl:1: spans: {SPAN_GROUP_HELP}, got object {{'start': 3, 'end': 6, 'label': 'PERSON'}}"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "spans": {"people": [[3, 6, "PERSON"]], "x": []}}\n',
     "d.jsonl:1: spans: no span group 'sc' (groups: 'people', 'x'); choose one with --span-group"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "spans": {"sc": [[3, 9, "PERSON"]]}}\n',
     "d.jsonl:1: spans.sc[0]: bad offsets 3:9 for a text of length 6"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "ents": [], "spans": {"sc": [[3, 6, "PERSON"]]}}\n',
     "d.jsonl:1: both 'spans' and 'ents' given; keep one (or choose a span group with --span-group)"),
    ("spacy", "d.jsonl", '{"text": "Hi Bob", "spans": [{"start": 3, "end": 6, "label": "PERSON", "text": "Bo"}]}\n',
     "d.jsonl:1: spans[0]: text 'Bo' != text[3:6] 'Bob'"),
    ("spacy", "d.jsonl", '{"text": "Hi", "cats": {"travel": 1.0}}\nnot json\n',
     "d.jsonl:2: invalid JSON: Expecting value at column 1"),
    ("spacy", "d.jsonl", '{"text": "Hi", "label": "Travel"}\n', "unknown topic label(s) 'Travel' (1, first at d.jsonl:1)"),
    ("spacy", "d.jsonl", '{"text": "Hi", "answer": "reject"}\n',
     "no records found in d.jsonl; 1 records with answer 'reject' skipped"),
]


@pytest.mark.parametrize("fmt,name,content,expected", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line(tmp_path, capsys, fmt, name, content, expected):
    """In-process, as the CLI runs it (run_cli): anything but the one-line error would propagate and fail."""
    if content is not None:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    code = run_stage(import_stage, tmp_path, fmt, name, "--output", "out.jsonl", "--params", PARAMS)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: " + expected), err
    assert not (tmp_path / "out.jsonl").exists()


SIMPLE_SPACY = '{"text": "Hi Bob", "entities": [[3, 6, "PERSON"]]}\n'
GOOD_SPACY = '{"text": "Hi Bob", "spans": {"sc": [[3, 6, "PERSON"]], "people": [[0, 2, "PERSON"]]}, ' \
             '"ents": [[3, 6, "ORG"]]}\n'


@pytest.mark.parametrize("fmt,content,args,expected", [
    ("conll", "Tim B-PERSON\n", ["--map", "PERSON"],
     "--map: expected FROM=TO pairs separated by commas (or a .yaml file), got 'PERSON'"),
    ("conll", "Tim B-PERSON\n", ["--output", "out.json"],
     "--output out.json: must end in .jsonl (the validate stage reads .json/.jsonl)"),
    ("spacy", GOOD_SPACY, ["--span-group", "nope"],
     "in.txt:1: spans: no span group 'nope' (groups: 'sc', 'people'); choose one with --span-group"),
])
def test_bad_flags_are_one_line(tmp_path, fmt, content, args, expected):
    (tmp_path / "in.txt").write_text(content, encoding="utf-8")
    proc = run_import(tmp_path, fmt, "in.txt", "--output", "out.jsonl", *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: {expected}\n"


def test_span_group_flag_chooses_the_group_and_counts_what_it_sets_aside(tmp_path):
    (tmp_path / "d.jsonl").write_text(GOOD_SPACY, encoding="utf-8")
    proc = run_import(tmp_path, "spacy", "d.jsonl", "--output", "out.jsonl", "--span-group", "people")
    assert proc.returncode == 0, proc.stderr
    assert read_out(tmp_path / "out.jsonl")[0]["task_B"] == [{"text": "Hi", "type": "PERSON", "start": 0, "end": 2}]
    assert "note: 1 'ents' lists set aside for the span group (--span-group people)" in proc.stdout
    batch = parse_spacy('{"text": "Hi Bob", "spans": {"sc": [{"start": 3, "end": 6, "label": "PERSON"}]}}\n', "d")
    assert batch.items[0].record["task_B"] == [{"text": "Bob", "type": "PERSON", "start": 3, "end": 6}]
    lines = '{"text": "Hi Bob", "ents": [[3, 6, "PERSON"]]}\n{"text": "Hi Ann", "spans": [[3, 6, "PERSON"]]}\n'
    batch = parse_spacy(lines, "d", span_group="sc")   # asked for a group: only "spans" is read
    assert [i.record["task_B"] for i in batch.items] == [None, [{"text": "Ann", "type": "PERSON", "start": 3,
                                                                  "end": 6}]]
    assert batch.notes == {"'ents' lists set aside for the span group (--span-group sc)": 1,
                           'lines without "spans" (--span-group sc: entities taken as not annotated)': 1}


def test_fifo_input_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "in.jsonl")   # reading it would wait for a writer forever
    proc = run_import(tmp_path, "spacy", "in.jsonl", "--output", "out.jsonl")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == "error: in.jsonl: not a regular file (a FIFO, socket or device); give a file\n"


def test_docbin_without_spacy_says_what_to_install(tmp_path, monkeypatch, capsys):
    """spaCy's absence, simulated: its modules are None in sys.modules, so importing them fails."""
    for name in ("spacy", "spacy.tokens", "spacy.vocab"):
        monkeypatch.setitem(sys.modules, name, None)
    (tmp_path / "train.spacy").write_bytes(FAKE_DOCBIN)
    (tmp_path / "named.jsonl").write_bytes(FAKE_DOCBIN)   # a DocBin whatever its name
    for name in ("train.spacy", "named.jsonl"):
        assert run_stage(import_stage, tmp_path, "spacy", name, "--output", "out.jsonl", "--params", PARAMS) == 1
        err = capsys.readouterr().err
        assert err == (f"error: {name}: a spaCy DocBin file; reading it needs spaCy, which is not installed: "
                       f"pip install spacy\n")
    assert not (tmp_path / "out.jsonl").exists()


# --------------------------------------------------------------------------------------- export

def export(tmp: Path, *args) -> subprocess.CompletedProcess:
    return cli("export", "labelstudio", *args, "--params", PARAMS, cwd=tmp)


def _pred(**fields) -> str:
    rec = {"sentence": "Hi Bob", "task_A": "travel", "task_B": [{"text": "Bob", "type": "PERSON", "start": 3, "end": 6}]}
    rec.update(fields)
    return json.dumps(rec)


SPAN = '{"text": "Bob", "type": "PERSON", "start": 3, "end": 6, "score": %s}'
BAD_PREDICTIONS = [
    (_pred(task_B=[{"text": "Bob", "type": "PER", "start": 3, "end": 6}]),
     "p.jsonl:1: task_B[0].type: unknown entity type 'PER'; allowed: PERSON, LOC, ORG, DATE"),
    ('{"sentence": "Hi Bob", "task_A": "travel", "task_B": [%s]}' % (SPAN % "NaN"),
     "p.jsonl:1: invalid JSON: NaN is not a JSON value (use null, or a number)"),
    ('{"sentence": "Hi Bob", "task_A": "travel", "task_B": [%s]}' % (SPAN % "1e999"),
     "p.jsonl:1: invalid JSON: number 1e999 is out of range (it would read as infinity)"),
    ('{"sentence": "Hi Bob", "task_A": "travel", "task_B": [%s]}' % (SPAN % '"high"'),
     "p.jsonl:1: task_B[0].score: must be a finite number, got string 'high'"),
    (_pred()[:-1] + ', "topic_scores": {"travel": Infinity}}',
     "p.jsonl:1: invalid JSON: Infinity is not a JSON value (use null, or a number)"),
    (_pred()[:-1] + ', "topic_scores": {"travel": 1e999}}',
     "p.jsonl:1: invalid JSON: number 1e999 is out of range (it would read as infinity)"),
    (_pred()[:-1] + ', "topic_scores": [0.9]}', "p.jsonl:1: topic_scores: must be an object, got array [0.9]"),
    ('{"sentence": "Hi Bob", "task_A": "travel", "task_A": "other", "task_B": []}',
     "p.jsonl:1: invalid JSON: duplicate key 'task_A' in one object (only one value can be kept)"),
    ("", "p.jsonl: no records"),
]


@pytest.mark.parametrize("line,expected", BAD_PREDICTIONS, ids=[f"export-{i}" for i in range(len(BAD_PREDICTIONS))])
def test_export_bad_prediction_is_one_line(tmp_path, capsys, line, expected):
    (tmp_path / "p.jsonl").write_text(line + "\n", encoding="utf-8")
    assert run_stage(export_stage, tmp_path, "labelstudio", "p.jsonl", "--output", "t.json", "--params", PARAMS) == 1
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not (tmp_path / "t.json").exists()


def test_export_bad_prediction_as_a_command(tmp_path):
    (tmp_path / "p.jsonl").write_text(BAD_PREDICTIONS[1][0] + "\n", encoding="utf-8")
    proc = export(tmp_path, "p.jsonl", "--output", "t.json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr == f"error: {BAD_PREDICTIONS[1][1]}\n"


# ---------------------------------------------------------------------------------- outputs

def test_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    (tmp_path / "d.jsonl").write_text(SIMPLE_SPACY, encoding="utf-8")
    (tmp_path / "alias.jsonl").symlink_to("d.jsonl")
    for output in ("d.jsonl", "alias.jsonl"):
        proc = run_import(tmp_path, "spacy", "d.jsonl", "--output", output)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr == f"error: --output {output}: would replace the input d.jsonl; write the output elsewhere\n"
    preds = write_predictions(tmp_path / "p.jsonl")
    before = preds.read_bytes()
    proc = export(tmp_path, "p.jsonl", "--output", "p.jsonl")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == "error: --output p.jsonl: would replace the input p.jsonl; write the output elsewhere\n"
    assert (tmp_path / "d.jsonl").read_text(encoding="utf-8") == SIMPLE_SPACY and preds.read_bytes() == before
    assert (tmp_path / "alias.jsonl").is_symlink()


def test_outputs_that_are_not_files_are_left_as_they_were(tmp_path):
    (tmp_path / "d.jsonl").write_text(SIMPLE_SPACY, encoding="utf-8")
    write_predictions(tmp_path / "p.jsonl")
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "null.jsonl").symlink_to(os.devnull)
    runs = [  # (command, expected error)
        (lambda: run_import(tmp_path, "spacy", "d.jsonl", "--output", os.devnull),
         f"--output {os.devnull}: must end in .jsonl (the validate stage reads .json/.jsonl)"),
        (lambda: run_import(tmp_path, "spacy", "d.jsonl", "--output", "null.jsonl"),
         (f"null.jsonl (symlink to {os.devnull}): is a character device; an output must be a regular file or a new "
         f"path, and is never replaced")),
        (lambda: run_import(tmp_path, "spacy", "d.jsonl", "--output", "pipe.jsonl"),
         "pipe.jsonl: is a FIFO (named pipe); an output must be a regular file or a new path, and is never replaced"),
        (lambda: export(tmp_path, "p.jsonl", "--output", os.devnull),
         f"{os.devnull}: is a character device; an output must be a regular file or a new path, and is never replaced"),
        (lambda: export(tmp_path, "p.jsonl", "--output", "pipe.jsonl"),
         "pipe.jsonl: is a FIFO (named pipe); an output must be a regular file or a new path, and is never replaced"),
    ]
    for run, expected in runs:
        proc = run()
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr == f"error: {expected}\n"
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode) and stat.S_ISFIFO((tmp_path / "pipe.jsonl").lstat().st_mode)
    assert (tmp_path / "null.jsonl").is_symlink()


def test_symlink_outputs_are_written_through_and_kept(tmp_path):
    (tmp_path / "d.jsonl").write_text(SIMPLE_SPACY, encoding="utf-8")
    write_predictions(tmp_path / "p.jsonl")
    (tmp_path / "out").mkdir()
    for name in ("real.jsonl", "real.json"):
        (tmp_path / "out" / name).write_text("old\n", encoding="utf-8")
    (tmp_path / "link.jsonl").symlink_to("out/real.jsonl")
    (tmp_path / "link.json").symlink_to("out/real.json")
    assert run_import(tmp_path, "spacy", "d.jsonl", "--output", "link.jsonl").returncode == 0
    assert export(tmp_path, "p.jsonl", "--output", "link.json").returncode == 0
    assert (tmp_path / "link.jsonl").is_symlink() and (tmp_path / "link.json").is_symlink()
    assert read_out(tmp_path / "out" / "real.jsonl")[0]["sentence"] == "Hi Bob"
    assert len(json.loads((tmp_path / "out" / "real.json").read_text(encoding="utf-8"))) == len(PREDICTIONS)


def test_conflicting_labels_are_reported_at_import_time(tmp_path, capsys):
    """CoNLL-2003 labels "BIRMINGHAM , England" LOC in one copy and ORG in another: the importer says
    so (with where), so the user learns it now, not when `dvc repro` stops at validate."""
    copy = "BIRMINGHAM B-{}\n, O\nEngland B-LOC\n\n"
    (tmp_path / "a.conll").write_text(copy.format("LOC") + copy.format("ORG") + copy.format("LOC") + "Bob B-PERSON\n")
    assert run_stage(import_stage, tmp_path, "conll", "a.conll", "--output", "out.jsonl", "--params", PARAMS) == 0
    err = capsys.readouterr().err
    assert err == ("warning: 1 sentence(s) labelled in conflicting ways in the input (3 records; a.conll:5: task_B: "
                   "conflicts with the same sentence at a.conll:1 ('BIRMINGHAM' LOC [0:10] vs 'BIRMINGHAM' ORG "
                   "[0:10])): the validate stage will stop on them (validate.on_conflict: fail; first, majority or "
                   "drop resolve them)\n")
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4   # every record is still written


def test_no_conflict_no_warning(tmp_path, capsys):
    (tmp_path / "a.conll").write_text("Bob B-PERSON\n\nBob B-PERSON\n")
    assert run_stage(import_stage, tmp_path, "conll", "a.conll", "--output", "out.jsonl", "--params", PARAMS) == 0
    assert "conflicting" not in capsys.readouterr().err


@pytest.mark.parametrize("text, problem", [
    ("PER: PERSON\nGPE: LOC\nPER: ORG\n", ":3: invalid YAML: duplicate key 'PER' (first at line 1)"),
    ("a: &x PERSON\nb: *x\n", ":1: invalid YAML: anchor &x is not allowed in label maps"),
])
def test_label_map_file_is_read_strictly(tmp_path, text, problem):
    """A label mapped twice in a --map file was silently the last; now it is an error, as in params."""
    (tmp_path / "map.yaml").write_text(text)
    with pytest.raises(PipelineError) as exc:
        parse_mapping([str(tmp_path / "map.yaml")])
    assert str(exc.value).startswith(f"--map {tmp_path / 'map.yaml'}{problem}")
