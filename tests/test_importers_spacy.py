"""spaCy DocBin (`.spacy`) import, read with spaCy itself: doc.ents, span groups, doc.cats, and a
DocBin recognised by its bytes whatever its name. Skipped where spaCy is not installed (the "not
installed" message is tested in test_importers.py, with spaCy's absence simulated)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, run_stage

from pipeline.formats.spacy_docs import looks_like_docbin, parse_docbin
from pipeline.stages import import_ as import_stage
from pipeline.storage.errors import PipelineError

spacy = pytest.importorskip("spacy")
from spacy.tokens import DocBin

PARAMS = str(REPO / "params.yaml")
TEXT = "🚀 Angela Merkel flew to Berlin."


def docbin(cats: dict | None = None, groups: dict | None = None) -> bytes:
    """Three docs: entities, cats and span groups; entities only; no annotation at all."""
    nlp = spacy.blank("en")
    first = nlp.make_doc(TEXT)
    first.ents = [first.char_span(2, 15, "PER"), first.char_span(24, 30, "LOC")]
    first.cats = cats if cats is not None else {"politics": 0.8, "travel": 0.2}
    for name, spans in (groups if groups is not None else {"sc": [(2, 8, "PERSON")]}).items():
        first.spans[name] = [first.char_span(s, e, label) for s, e, label in spans]
    second = nlp.make_doc("Nothing here.")
    second.ents = []                      # NER annotated: no entities
    third = nlp.make_doc("Not annotated.")   # no doc.ents set: NER not annotated, no cats: skipped
    return DocBin(docs=[first, second, third]).to_bytes()


def cli_import(tmp: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", "import", "spacy", *map(str, args), "--params", PARAMS],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=120, check=False)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_docbin_entities_cats_and_locations():
    batch = parse_docbin(docbin(), "train.spacy")
    assert [i.loc for i in batch.items] == ["train.spacy: doc[0]", "train.spacy: doc[1]", "train.spacy: doc[2]"]
    assert [i.record for i in batch.items] == [
        {"sentence": TEXT, "task_A": "politics",
         "task_B": [{"text": "Angela Merkel", "type": "PER", "start": 2, "end": 15},
                    {"text": "Berlin", "type": "LOC", "start": 24, "end": 30}]},
        {"sentence": "Nothing here.", "task_A": None, "task_B": []},
        {"sentence": "Not annotated.", "task_A": None, "task_B": None}]


def test_docbin_span_group_on_request():
    batch = parse_docbin(docbin(), "train.spacy", span_group="sc")
    assert batch.items[0].record["task_B"] == [{"text": "Angela", "type": "PERSON", "start": 2, "end": 8}]
    assert [i.record["task_B"] for i in batch.items[1:]] == [None, None]
    assert batch.notes == {"docs whose doc.ents were set aside for the span group (--span-group sc)": 1,
                           "docs without span groups (--span-group sc: entities taken as not annotated)": 2}
    nlp = spacy.blank("en")
    one, two = nlp.make_doc("Ann met Bob."), nlp.make_doc("Bob met Ann.")
    one.spans["people"] = [one.char_span(0, 3, "PERSON")]
    two.spans["places"] = []                     # other groups, but not the one asked for
    with pytest.raises(PipelineError) as exc:
        parse_docbin(DocBin(docs=[one, two]).to_bytes(), "train.spacy", span_group="people")
    assert str(exc.value) == ("train.spacy: doc[1]: spans: no span group 'people' (groups: 'places'); "
                              "choose one with --span-group")
    with pytest.raises(PipelineError) as exc:
        parse_docbin(docbin(groups={"people": [], "places": []}), "train.spacy", span_group="sc")
    assert str(exc.value) == ("train.spacy: spans: no doc has span group 'sc' (groups: 'people', 'places'); "
                              "choose one with --span-group")


@pytest.mark.parametrize("cats,expected", [
    ({"politics": float("inf"), "travel": 0.1},
     "train.spacy: doc[0]: cats: score of 'politics' is inf; scores must be finite numbers"),
    ({"politics": 0.5, "travel": 0.5}, "train.spacy: doc[0]: cats: ambiguous: politics, travel all score 0.5"),
    ({"politics": 0.0}, "train.spacy: doc[0]: cats: no category has a score above 0"),
])
def test_docbin_cats_follow_the_jsonl_rule(cats, expected):
    with pytest.raises(PipelineError) as exc:
        parse_docbin(docbin(cats=cats), "train.spacy")
    assert str(exc.value) == expected


def test_cli_imports_a_docbin_by_suffix_and_by_its_bytes(tmp_path):
    data = docbin()
    assert looks_like_docbin(data)
    (tmp_path / "train.spacy").write_bytes(data)
    (tmp_path / "named.jsonl").write_bytes(data)
    proc = cli_import(tmp_path, "train.spacy", "--output", "a.jsonl", "--map", "PER=PERSON")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 records" in proc.stdout and "note: 1 records left without any annotation skipped" in proc.stdout
    first = records(tmp_path / "a.jsonl")[0]
    assert first["source"] == "train.spacy:doc[0]" and first["task_B"][0]["type"] == "PERSON"
    proc = cli_import(tmp_path, "named.jsonl", "--output", "b.jsonl", "--map", "PER=PERSON")
    assert proc.returncode == 0, proc.stderr
    assert "note: 1 files read as spaCy DocBin by their content (name not ending in .spacy)" in proc.stdout
    assert [r["task_B"] for r in records(tmp_path / "b.jsonl")] == [r["task_B"] for r in records(tmp_path / "a.jsonl")]


@pytest.mark.parametrize("name,content,args,expected", [
    ("train.spacy", b'{"text": "Hi"}\n', [],
     "train.spacy: not a readable spaCy DocBin (ValueError: [E1014] Error loading DocBin data)"),
    ("train.spacy", b"x\x9c\x03\x00\x00\x00\x00\x01", [],   # an empty zlib stream: no msgpack inside
     "train.spacy: not a readable spaCy DocBin ("),
    ("train.spacy", None, ["--span-group", "people"],
     "train.spacy: spans: no doc has span group 'people' (groups: 'sc'); choose one with --span-group"),
    ("train.spacy", None, [],
     "unknown entity label(s) 'PER' (1, first at train.spacy: doc[0])"),
])
def test_bad_docbin_is_one_line(tmp_path, capsys, name, content, args, expected):
    (tmp_path / name).write_bytes(docbin() if content is None else content)
    code = run_stage(import_stage, tmp_path, "spacy", name, "--output", "out.jsonl", "--params", PARAMS, *args)
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {expected}"), err
    assert not (tmp_path / "out.jsonl").exists()
