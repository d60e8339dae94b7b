"""Label Studio offsets checked against Label Studio's own Python converter (label_studio_sdk.converter,
installed in CI by .ci/run), both ways, with emoji before the entities (where code points and UTF-16
units differ): (a) an export as Label Studio writes it, read by our importer with default flags,
gives the entity texts the SDK's CoNLL export cuts from it; (b) tasks from our `export labelstudio`
with default flags, accepted as annotations, give the SDK back the original entity texts.
Skipped where the SDK (or what its converter imports) is not installed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

sdk = pytest.importorskip("label_studio_sdk.converter.converter", reason="label-studio-sdk is not installed")

PARAMS = str(REPO / "params.yaml")
CONFIG = """<View>
  <Labels name="label" toName="text">
    <Label value="PERSON"/><Label value="LOC"/><Label value="ORG"/><Label value="DATE"/>
  </Labels>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="travel"/><Choice value="technology"/><Choice value="politics"/><Choice value="other"/>
  </Choices>
</View>"""
# several characters outside the BMP before each entity: read in the wrong unit, offsets land on
# other tokens (not just a character off inside the same one)
TEXTS = [("🎉🎉🎉🎉 Ann met Bob in Oslo on Friday", [("Ann", "PERSON"), ("Bob", "PERSON"), ("Oslo", "LOC"),
                                                   ("Friday", "DATE")]),
         ("🚀🚀 Launch at Kennedy Space Center 🛰️🛰️ by NASA", [("Kennedy Space Center", "LOC"), ("NASA", "ORG")]),
         ("Zoë 🎉 met 👩‍👩‍👧 Ann in Zürich 🇨🇭 on Friday", [("Ann", "PERSON"), ("Zürich", "LOC"), ("Friday", "DATE")])]


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", *map(str, args), "--params", PARAMS], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def sdk_entities(tasks_json: Path, out: Path) -> list[list[str]]:
    """The entity texts per task, as the SDK's CoNLL 2003 export cuts them from the annotations."""
    sdk.Converter(CONFIG, str(out.parent), download_resources=False).convert(
        str(tasks_json), str(out), "CONLL2003", is_dir=False)
    per_task, current = [], None
    for line in (out / "result.conll").read_text(encoding="utf-8").splitlines()[1:]:   # after -DOCSTART-
        if not line.strip():
            current = None
            continue
        if current is None:
            current = []
            per_task.append(current)
        token, tag = line.split(" ")[0], line.split(" ")[-1]
        if tag.startswith("B-"):
            current.append(token)
        elif tag.startswith("I-"):
            current[-1] += " " + token
    return per_task


def ls_task(i: int, text: str, entities: list[tuple[str, str]]) -> dict:
    """A task as Label Studio exports it: code-point offsets, as its frontend computes them."""
    result = [{"id": f"r{i}-{k}", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": text.index(e), "end": text.index(e) + len(e), "text": e, "labels": [label]}}
              for k, (e, label) in enumerate(entities)]
    return {"id": i + 1, "data": {"text": text}, "annotations": [{"id": i + 1, "result": result}]}


def test_a_label_studio_export_reads_as_the_sdk_reads_it(tmp_path):
    export = tmp_path / "export.json"
    export.write_text(json.dumps([ls_task(i, t, ents) for i, (t, ents) in enumerate(TEXTS)], ensure_ascii=False),
                      encoding="utf-8")
    theirs = sdk_entities(export, tmp_path / "sdk")
    assert theirs == [[e for e, _ in ents] for _, ents in TEXTS]
    proc = cli("import", "labelstudio", "export.json", "--output", "ours.jsonl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "ours.jsonl").read_text(encoding="utf-8").splitlines()]
    ours = [[r["sentence"][s["start"]:s["end"]] for s in r["task_B"]] for r in records]
    assert ours == theirs
    # the other unit does not read this file: the test tells the two apart
    proc = cli("import", "labelstudio", "export.json", "--output", "utf16.jsonl", "--offsets", "utf16", cwd=tmp_path)
    assert proc.returncode == 1 and "use --offsets codepoints" in proc.stderr, proc.stderr


def test_our_export_accepted_as_annotations_gives_the_sdk_the_original_entities(tmp_path):
    preds = [{"id": f"p-{i}", "sentence": t, "task_A": "travel",
              "task_B": [{"text": e, "type": label, "start": t.index(e), "end": t.index(e) + len(e), "score": 0.9}
                         for e, label in ents]}
             for i, (t, ents) in enumerate(TEXTS)]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in preds),
                                                encoding="utf-8")
    proc = cli("export", "labelstudio", "predictions.jsonl", "--output", "tasks.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    for i, task in enumerate(tasks):   # what Label Studio keeps when annotators accept the pre-annotations
        task["id"] = i + 1
        task["annotations"] = [{"id": i + 1, "result": task.pop("predictions")[0]["result"]}]
    (tmp_path / "accepted.json").write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    assert sdk_entities(tmp_path / "accepted.json", tmp_path / "sdk") == [[e for e, _ in ents] for _, ents in TEXTS]
