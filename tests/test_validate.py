"""The validate stage (pipeline/stages/validate.py): messages carry file:line, duplicates and conflicts,
on_error=drop accounting, the error cap, and split stability."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.corpus import Corpus, Note, problem_kind, summarise
from pipeline.core.records import hash_split
from pipeline.stages.validate import validate
from pipeline.storage import files
from pipeline.storage import params as params_mod

REPO = Path(__file__).resolve().parents[1]
SENT = "Tim Cook visited Paris in May."


def load_params(**overrides) -> dict:
    """The repository's params.yaml with dotted-key overrides, e.g. {"validate.on_error": "drop"}."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return params_mod.check(tree)


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def paris(**fields):
    base = {"sentence": SENT, "task_A": "travel",
            "task_B": [{"text": "Paris", "type": "LOC", "start": 17, "end": 22}]}
    base.update(fields)
    return base


def run_stage(tmp: Path, **overrides) -> subprocess.CompletedProcess:
    """Run `python -m pipeline validate` in tmp with a params.yaml whose data.raw_dir is tmp/raw."""
    tree = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    tree["data"]["raw_dir"] = str(tmp / "raw")
    for dotted, value in overrides.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (tmp / "params.yaml").write_text(yaml.safe_dump(tree, sort_keys=False), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pipeline", "validate", "--params", "params.yaml",
                           "--out-dir", "out", "--metrics", "metrics.json", "--details", "details.json"],
                          cwd=tmp, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def read_split_files(out: Path) -> dict[str, list[dict]]:
    return {s: [json.loads(x) for x in (out / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
            for s in ("train", "dev", "test")}


# ---- every check, as reported by the stage: file:line (id=..): field: what -----------------------

CHECKS = [
    ("invalid JSON", '{"sentence": "x", "task_A": "travel"',
     "a.jsonl:1: invalid JSON: Expecting ',' delimiter at column 37"),
    ("wrong sentence type", {"id": "r1", "sentence": 5, "task_A": "travel"},
     "a.jsonl:1 (id=r1): sentence: must be a string, got integer 5"),
    ("empty sentence", {"id": "r1", "sentence": "", "task_A": "travel"}, "a.jsonl:1 (id=r1): sentence: empty"),
    ("unknown topic", paris(id="r1", task_A="sport"),
     "a.jsonl:1 (id=r1): task_A: unknown topic 'sport'; allowed: travel, technology, politics, other"),
    ("topic case", paris(id="r1", task_A="Travel"),
     "a.jsonl:1 (id=r1): task_A: unknown topic 'Travel' (did you mean 'travel'? labels are case-sensitive)"),
    ("unknown entity", paris(id="r1", task_B=[{"text": "Paris", "type": "CITY", "start": 17, "end": 22}]),
     "a.jsonl:1 (id=r1): task_B[0].type: unknown entity type 'CITY'; allowed: PERSON, LOC, ORG, DATE"),
    ("offset string", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": "17", "end": 22}]),
     "a.jsonl:1 (id=r1): task_B[0].start: offset must be an integer, got string '17'"),
    ("offset float", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": 17, "end": 22.0}]),
     "a.jsonl:1 (id=r1): task_B[0].end: offset must be an integer, got number 22.0"),
    ("offset negative", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": -3, "end": 22}]),
     "a.jsonl:1 (id=r1): task_B[0].start: offset -3 is negative"),
    ("offset beyond", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": 17, "end": 40}]),
     "a.jsonl:1 (id=r1): task_B[0].end: offset 40 is beyond the sentence (length 30)"),
    ("start >= end", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": 22, "end": 17}]),
     "a.jsonl:1 (id=r1): task_B[0]: start 22 must be < end 17"),
    ("text mismatch", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": 18, "end": 23}]),
     "a.jsonl:1 (id=r1): task_B[0].text: 'Paris' != sentence[18:23] 'aris '"),
    ("whitespace in span", paris(id="r1", task_B=[{"text": "Paris ", "type": "LOC", "start": 17, "end": 23}]),
     "a.jsonl:1 (id=r1): task_B[0]: span 'Paris ' has leading/trailing whitespace"),
    ("overlap", paris(id="r1", task_B=[{"text": "Tim Cook", "type": "PERSON", "start": 0, "end": 8},
                                       {"text": "Cook visited", "type": "PERSON", "start": 4, "end": 16}]),
     "a.jsonl:1 (id=r1): task_B: overlapping spans 'Tim Cook' [0:8] and 'Cook visited' [4:16]"),
    ("duplicate spans", paris(id="r1", task_B=[{"text": "Paris", "type": "LOC", "start": 17, "end": 22}] * 2),
     "a.jsonl:1 (id=r1): task_B: duplicate spans 'Paris' [17:22] and 'Paris' [17:22]"),
    ("neither task", {"id": "r1", "sentence": SENT}, "a.jsonl:1 (id=r1): task_A/task_B: neither task is annotated"),
    ("not an object", [SENT], "a.jsonl:1: record: must be a JSON object, got array ['Tim Cook visited Paris in May.']"),
]


@pytest.mark.parametrize("name, line, expected", CHECKS, ids=[c[0] for c in CHECKS])
def test_each_check_names_file_line_and_field(tmp_path, name, line, expected):
    write_jsonl(tmp_path / "raw" / "a.jsonl", [line])
    result = validate(tmp_path / "raw", load_params())
    (problem,) = result["problems"]
    assert problem.startswith(f"{tmp_path / 'raw'}/{expected}"), problem
    assert result["counts"]["rejected"] == 1 and result["counts"]["kept"] == 0


def test_json_array_records_report_their_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    records = [paris(id="ok"), paris(id="bad", task_A="sport", sentence="Paris is in France right now.")]
    (raw / "a.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    problems = validate(raw, load_params())["problems"]
    lines = json.dumps(records, indent=2).splitlines()
    line = [i for i, x in enumerate(lines, 1) if x == "  {"][1]   # where the 2nd record starts
    assert problems[0].startswith(f"{raw}/a.json:{line} (id=bad): task_A: unknown topic 'sport'")


def test_minified_json_array_adds_the_column(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    text = json.dumps([paris(id="ok"), paris(id="bad", task_A="sport", sentence="Other text here.")])
    (raw / "a.json").write_text(text, encoding="utf-8")
    problems = validate(raw, load_params())["problems"]
    col = text.index('{"sentence": "Other') + 1
    assert problems[0].startswith(f"{raw}/a.json:1:{col} (id=bad): task_A:")


# ---- duplicates ----------------------------------------------------------------------------------

def test_duplicate_id_with_different_sentence_is_an_error(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1"), {"id": "r1", "sentence": "Another one.", "task_A": "other"}])
    result = validate(raw, load_params())
    assert result["problems"] == [(f"{raw}/a.jsonl:2 (id=r1): id: duplicate id 'r1' "
                                  f"(first at {raw}/a.jsonl:1 (id=r1), with a different sentence)")]


def test_exact_duplicate_is_merged_with_a_warning(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1")])
    write_jsonl(raw / "copy.jsonl", [paris(id="r1")])   # e.g. the same file copied twice
    result = validate(raw, load_params())
    assert result["problems"] == []
    assert f"{raw}/copy.jsonl:1 (id=r1): duplicate of the sentence at {raw}/a.jsonl:1 (id=r1), merged" \
        in result["warnings"]
    assert result["counts"] == {"files": 2, "read": 2, "kept": 2, "rejected": 0, "merged_duplicates": 1, "unique": 1}
    assert sum(len(v) for v in result["splits"].values()) == 1


def test_complementary_partial_labels_are_merged(tmp_path):
    raw = tmp_path / "raw"
    spans = [{"text": "Paris", "type": "LOC", "start": 17, "end": 22}]
    write_jsonl(raw / "a.jsonl", [{"sentence": SENT, "task_A": "travel"},
                                  {"id": "ner-1", "sentence": SENT, "task_B": spans}])
    result = validate(raw, load_params())
    (out,) = [r for recs in result["splits"].values() for r in recs]
    assert out["task_A"] == "travel" and out["task_B"] == spans
    assert out["id"] == "ner-1"          # the id given by the second copy is kept, not lost
    assert any("duplicate of the sentence" in w for w in result["warnings"])


def test_same_sentence_with_conflicting_labels_is_an_error(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1"), paris(id="r2", task_A="politics")])
    result = validate(raw, load_params())
    assert result["problems"] == [(f"{raw}/a.jsonl:2 (id=r2): task_A: conflicts with the same sentence at "
                                  f"{raw}/a.jsonl:1 (id=r1) ('travel' vs 'politics')")]


def test_same_sentence_with_conflicting_spans_is_an_error(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(), paris(task_B=[{"text": "Paris", "type": "ORG", "start": 17, "end": 22}])])
    (problem,) = validate(raw, load_params())["problems"]
    assert problem.startswith(f"{raw}/a.jsonl:2: task_B: conflicts with the same sentence at {raw}/a.jsonl:1 (")


def test_unknown_field_is_a_warning_with_location(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1", labels="x")])
    result = validate(raw, load_params())
    assert result["problems"] == []
    assert f"{raw}/a.jsonl:1 (id=r1): labels: unknown field (ignored)" in result["warnings"]


# ---- the CLI: fail vs drop, accounting, the cap ---------------------------------------------------

def test_fail_mode_lists_problems_and_exits_1(tmp_path):
    write_jsonl(tmp_path / "raw" / "a.jsonl", [paris(id="r1"), paris(id="r2", sentence="x", task_A="Travel", task_B=None)])
    proc = run_stage(tmp_path)
    assert proc.returncode == 1
    raw = tmp_path / "raw"
    assert f"error: {raw}/a.jsonl:2 (id=r2): task_A: unknown topic 'Travel' (did you mean 'travel'?" in proc.stderr
    assert f"error: 1 problem(s) in 1 of 2 records under {raw}; fix them or set validate.on_error: drop" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_drop_mode_accounts_for_every_record(tmp_path):
    raw = tmp_path / "raw"
    good = [paris(id=f"g{i}", sentence=f"Record {i} is about Paris.",
                  task_B=[{"text": "Paris", "type": "LOC", "start": len(f"Record {i} is about "),
                           "end": len(f"Record {i} is about ") + 5}]) for i in range(20)]
    bad = ['{"sentence": "truncated', paris(id="b1", task_A="Travel"), [1, 2],
           paris(id="g0", sentence="Different text with the same id.", task_B=None)]
    write_jsonl(raw / "a.jsonl", good[:10] + bad[:2])
    write_jsonl(raw / "b.jsonl", bad[2:] + good[10:] + [good[0]])   # good[0] again: merged, not rejected
    proc = run_stage(tmp_path, **{"validate.on_error": "drop"})
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "details.json").read_text())
    assert metrics["read"] == 25 == metrics["kept"] + metrics["rejected"]
    assert (metrics["rejected"], metrics["merged_duplicates"], metrics["unique"]) == (4, 1, 20)
    assert sum(metrics[s]["records"] for s in ("train", "dev", "test")) == 20
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["location"] for r in rejects] == [f"{raw}/a.jsonl:11", f"{raw}/a.jsonl:12 (id=b1)",
                                                f"{raw}/b.jsonl:1", f"{raw}/b.jsonl:2 (id=g0)"]
    assert rejects[0]["errors"][0] == "invalid JSON: Unterminated string starting at column 14"
    assert rejects[0]["text"] == '{"sentence": "truncated'          # the unparsable line is kept, not lost
    assert rejects[1]["record"] == bad[1] and "did you mean 'travel'" in rejects[1]["errors"][0]
    assert rejects[2]["record"] == [1, 2]
    assert rejects[3]["errors"][0].startswith("id: duplicate id 'g0'")
    assert "dropped 4 record(s): see out/rejects.jsonl" in proc.stderr
    assert f"dropped: {raw}/a.jsonl:12 (id=b1): task_A: unknown topic 'Travel'" in proc.stderr
    kept = [r for recs in read_split_files(tmp_path / "out").values() for r in recs]
    assert sorted(r["id"] for r in kept) == sorted(f"g{i}" for i in range(20))


def test_problems_are_capped_with_the_total(tmp_path):
    write_jsonl(tmp_path / "raw" / "a.jsonl", [paris(id=f"r{i}", task_A="sport") for i in range(10)])
    proc = run_stage(tmp_path, **{"validate.max_errors_shown": 3})
    assert proc.returncode == 1
    error_lines = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert len(error_lines) == 5   # 3 shown, the "... more" line, the summary
    assert error_lines[3] == "error: ... and 7 more (10 in total)"
    assert error_lines[4].startswith("error: 10 problem(s) in 10 of 10 records")


def test_repeated_warnings_are_one_line_per_kind_and_kept_in_full_in_the_report(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id=f"r{i}", sentence=f"Paris {i}.", task_B=None, extra=1) for i in range(6)])
    proc = run_stage(tmp_path, **{"validate.max_errors_shown": 2})
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if x.startswith("warning: ") and "unknown field" in x]
    assert warnings == [(f"warning: 6 unknown fields ignored ({raw}/a.jsonl:1 (id=r0), {raw}/a.jsonl:2 (id=r1), "
                        f"{raw}/a.jsonl:3 (id=r2), ... (all in details.json))")]
    details = json.loads((tmp_path / "details.json").read_text())
    assert details["warnings"] == [f"{raw}/a.jsonl:{i + 1} (id=r{i}): extra: unknown field (ignored)" for i in range(6)]


def test_kinds_of_warnings_are_capped_too(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1", extra=1), paris(id="r1")])
    (raw / "empty.jsonl").write_text("")
    (raw / "notes.txt").write_text("x")
    proc = run_stage(tmp_path, **{"validate.max_errors_shown": 2})
    assert proc.returncode == 0, proc.stderr
    assert "warning: ... and 2 more (4 in total)" in proc.stderr


def test_the_error_that_stops_a_run_is_not_buried(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1")] * 179 + [paris(id="r2", sentence="Other.", task_B=None, task_A="x")])
    proc = run_stage(tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        (f"warning: 178 duplicate sentences merged ({raw}/a.jsonl:2 (id=r1), {raw}/a.jsonl:3 (id=r1), "
        f"{raw}/a.jsonl:4 (id=r1), ...)"),
        f"error: {raw}/a.jsonl:180 (id=r2): task_A: unknown topic 'x'; allowed: travel, technology, politics, other",
        f"error: 1 problem(s) in 1 of 180 records under {raw}; fix them or set validate.on_error: drop"]


def test_dropped_lines_are_summarised_and_rejects_hold_them_all(tmp_path):
    raw = tmp_path / "raw"
    bad = [paris(id=f"b{i}", task_A="sport", sentence=f"Sport {i}.", task_B=None) for i in range(4)]
    write_jsonl(raw / "a.jsonl", [paris(id="ok"), *bad, '{"broken'])
    proc = run_stage(tmp_path, **{"validate.on_error": "drop"})
    assert proc.returncode == 0, proc.stderr
    dropped = [x for x in proc.stderr.splitlines() if x.startswith("dropped")]
    assert dropped == [
        (f"dropped: 4 problems: task_A: unknown topic ... ({raw}/a.jsonl:2 (id=b0), {raw}/a.jsonl:3 (id=b1), "
        f"{raw}/a.jsonl:4 (id=b2), ... (all in out/rejects.jsonl))"),
        f"dropped: {raw}/a.jsonl:6: invalid JSON: Unterminated string starting at column 2",
        "dropped 5 record(s): see out/rejects.jsonl"]
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["location"] for r in rejects] == [f"{raw}/a.jsonl:{i} (id=b{i - 2})" for i in range(2, 6)] + \
        [f"{raw}/a.jsonl:6"]


def test_summarise_one_line_per_kind():
    notes = [Note("{n} duplicate sentences merged", f"a:{i}", f"a:{i}: duplicate, merged") for i in range(5)]
    notes.insert(1, Note("{n} unknown fields ignored", "b:1", "b:1: x: unknown field (ignored)"))
    assert summarise(notes) == ["5 duplicate sentences merged (a:0, a:1, a:2, ...)", "b:1: x: unknown field (ignored)"]
    assert summarise(notes, rest="... (see r)")[0] == "5 duplicate sentences merged (a:0, a:1, a:2, ... (see r))"
    assert summarise(notes[:3]) == ["2 duplicate sentences merged (a:0, a:1)", "b:1: x: unknown field (ignored)"]
    assert summarise([Note("{n} things (at {locs}) here", f"c:{i}", "") for i in range(4)], shown=2) == \
        ["4 things (at c:0, c:1, ...) here"]


@pytest.mark.parametrize("reason, kind", [
    ("task_B[3].start: offset 40 is beyond the sentence (length 30)", "{n} problems: task_B[i].start: offset ..."),
    ("task_A: unknown topic 'sport'; allowed: travel", "{n} problems: task_A: unknown topic ..."),
    ("sentence: empty", "{n} problems: sentence: empty"),
    ("invalid JSON: Expecting ',' delimiter at column 37", "{n} problems: invalid JSON: Expecting ',' delimiter ..."),
    ("invalid JSON: duplicate key 'a' in one object (only one value can be kept)",
     "{n} problems: invalid JSON: duplicate key ..."),
    ("invalid UTF-8 (byte 0xe9 at column 18)", "{n} problems: invalid UTF-8 ..."),
])
def test_problem_kind_leaves_the_values_out(reason, kind):
    assert problem_kind(reason) == kind


# ---- strict JSON, bytes, surrogates: one record rejected, never the file, never a crash ----------

def test_bad_bytes_in_a_json_array_reject_only_their_records(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    records = [json.dumps({"id": f"r{i}", "sentence": f"Sentence {i} here.", "task_A": "other"}).encode() for i in range(6)]
    records[1] = records[1].replace(b"here", b"h\xe9re")
    records[4] = records[4].replace(b'"r4"', b'"r\xff4"')
    data = b"\xef\xbb\xbf[\n" + b",\n".join(records) + b"\n]\n"
    (raw / "a.json").write_bytes(data)
    result = validate(raw, load_params(**{"validate.on_error": "drop"}))
    assert result["counts"] == {"files": 1, "read": 6, "kept": 4, "rejected": 2, "merged_duplicates": 0, "unique": 4}
    e9, ff = data.index(b"\xe9"), data.index(b"\xff")
    assert result["problems"] == [f"{raw}/a.json:3 (id=r1): invalid UTF-8 (byte 0xe9 at offset {e9})",
                                  f"{raw}/a.json:6 (id=r\\xff4): invalid UTF-8 (byte 0xff at offset {ff})"]
    assert [r["text"] for r in result["rejects"]] == [records[1].decode("utf-8", "backslashreplace"),
                                                      records[4].decode("utf-8", "backslashreplace")]
    kept = sorted(r["id"] for recs in result["splits"].values() for r in recs)
    assert kept == ["r0", "r2", "r3", "r5"]


def test_a_duplicate_key_in_a_json_array_rejects_one_record(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_text('[{"sentence": "One.", "task_A": "other"},\n'
                                ' {"id": "d", "sentence": "Two.", "task_A": "other", "task_A": "travel"},\n'
                                ' {"sentence": "Three.", "task_A": "other", "n": NaN}]', encoding="utf-8")
    result = validate(raw, load_params())
    assert result["problems"] == [
        f"{raw}/a.json:2 (id=d): invalid JSON: duplicate key 'task_A' in one object (only one value can be kept)",
        f"{raw}/a.json:3: invalid JSON: NaN is not a JSON value (use null, or a number)"]
    assert result["counts"]["read"] == 3 and result["counts"]["kept"] == 1


def test_rejects_are_standard_json_and_valid_utf8(tmp_path):
    raw = tmp_path / "raw"
    bad = "\udc80"
    write_jsonl(raw / "a.jsonl", [paris(id="ok"),
                                  json.dumps(paris(id="r" + bad)), json.dumps(paris(id="t", task_A=bad)),
                                  json.dumps(paris(id="s", task_B=[{"text": bad, "type": "LOC", "start": 17, "end": 22}])),
                                  json.dumps(paris(id="u", sentence="Other.", task_B=None, note=bad)),
                                  '{"id": "n", "sentence": "x", "task_A": "other", "start": NaN}',
                                  '{"id": "i", "sentence": "x", "task_A": "other", "start": -Infinity}'])
    proc = run_stage(tmp_path, **{"validate.on_error": "drop"})
    assert proc.returncode == 0, proc.stderr
    assert "dropped 5 record(s): see out/rejects.jsonl" in proc.stderr
    text = (tmp_path / "out" / "rejects.jsonl").read_bytes().decode("utf-8")   # valid UTF-8
    rejects = [files.loads(x) for x in text.splitlines()]                        # standard JSON: no NaN
    assert [r["location"].rsplit(" ", 1)[1] for r in rejects] == \
        ["(id='r\\udc80')", "(id=t)", "(id=s)", "(id=n)", "(id=i)"]
    assert rejects[0]["record"]["id"] == "r" + bad          # the escape is kept: nothing is lost
    assert rejects[3]["errors"] == ["invalid JSON: NaN is not a JSON value (use null, or a number)"]
    assert rejects[4]["errors"] == ["invalid JSON: -Infinity is not a JSON value (use null, or a number)"]
    kept = [r for recs in read_split_files(tmp_path / "out").values() for r in recs]
    assert sorted(r["id"] for r in kept) == ["ok", "u"]
    for name in ("train", "dev", "test"):
        (tmp_path / "out" / f"{name}.jsonl").read_text(encoding="utf-8").encode("utf-8")


# ---- files: hidden entries, symlinks out of the raw directory ------------------------------------

def test_hidden_files_and_directories_are_skipped_and_reported_once(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id="r1")])
    for rel in (".git/objects/x.jsonl", ".hidden.jsonl", "sub/.cache/y.json", "sub/.z.json", ".w.jsonl"):
        write_jsonl(raw / rel, [paris(id="h", sentence="Hidden.", task_B=None)])
    result = validate(raw, load_params())
    assert result["counts"]["files"] == 1 and result["counts"]["read"] == 1
    assert summarise(result["notes"]) == [
        (f"5 hidden files or directories (name starting with '.') skipped ({raw}/.git, {raw}/.hidden.jsonl, "
        f"{raw}/.w.jsonl, ...)")]
    assert f"{raw}/sub/.cache: hidden directory (name starts with '.'), skipped" in result["warnings"]


def test_symlink_outside_the_raw_directory_is_refused_unless_allowed(tmp_path):
    raw, outside = tmp_path / "raw", tmp_path / "elsewhere"
    write_jsonl(raw / "a.jsonl", [paris(id="r1")])
    write_jsonl(outside / "secret.jsonl", [{"id": "s", "sentence": "Secret text.", "task_A": "other"}])
    os.symlink(outside / "secret.jsonl", raw / "link.jsonl")
    with pytest.raises(params_mod.PipelineError) as info:
        validate(raw, load_params())
    assert str(info.value) == (f"{raw}/link.jsonl: symlink to {os.path.realpath(outside)}/secret.jsonl, outside the "
                               f"raw data directory {raw}; not read (set validate.allow_external_symlinks: true "
                               f"in params.yaml to read it)")
    result = validate(raw, load_params(**{"validate.allow_external_symlinks": True}))
    assert sorted(r["id"] for recs in result["splits"].values() for r in recs) == ["r1", "s"]


def test_raw_directory_that_is_itself_a_symlink_is_fine(tmp_path):
    write_jsonl(tmp_path / "real" / "a.jsonl", [paris(id="r1")])
    os.symlink(tmp_path / "real" / "a.jsonl", tmp_path / "real" / "b.jsonl")   # inside, through the link
    os.symlink("real", tmp_path / "raw")
    result = validate(tmp_path / "raw", load_params())
    assert result["counts"]["files"] == 1 and result["counts"]["read"] == 1


# ---- validate.on_conflict: a sentence labelled two ways ------------------------------------------

BIRMINGHAM = "BIRMINGHAM , England"


def conll(type_: str, rid: str) -> dict:
    return {"id": rid, "sentence": BIRMINGHAM, "task_A": None,
            "task_B": [{"text": "BIRMINGHAM", "type": type_, "start": 0, "end": 10},
                       {"text": "England", "type": "LOC", "start": 13, "end": 20}]}


def corpus_of(policy: str, records: list[dict]) -> Corpus:
    corpus = Corpus(["travel", "technology", "politics", "other"], ["PERSON", "LOC", "ORG", "DATE"], policy)
    for i, r in enumerate(records, 1):
        corpus.add(f"a.jsonl:{i}", r)
    return corpus


def kept_of(corpus: Corpus) -> list[dict]:
    return [r for recs in corpus.splits(0.1, 0.1, 0).values() for r in recs]


def test_on_conflict_fail_is_a_problem():
    corpus = corpus_of("fail", [conll("LOC", "c1"), conll("ORG", "c2"), conll("LOC", "c3")])
    assert corpus.problems == [("a.jsonl:2 (id=c2): task_B: conflicts with the same sentence at a.jsonl:1 (id=c1) "
                                "('BIRMINGHAM' LOC [0:10] vs 'BIRMINGHAM' ORG [0:10])")]
    assert corpus.counts(1) == {"files": 1, "read": 3, "kept": 2, "rejected": 1, "merged_duplicates": 1, "unique": 1}
    assert corpus.conflict_counts() == {"sentences": 1, "records": 3, "policy": "fail"}


def test_on_conflict_first_keeps_the_first_labelling():
    corpus = corpus_of("first", [conll("LOC", "c1"), conll("ORG", "c2"), conll("ORG", "c3")])
    (out,) = kept_of(corpus)
    assert out["id"] == "c1" and out["task_B"][0]["type"] == "LOC"
    assert corpus.problems == [] and corpus.rejects == []
    assert corpus.counts(1) == {"files": 1, "read": 3, "kept": 3, "rejected": 0, "merged_duplicates": 2, "unique": 1}
    assert corpus.conflict_counts() == {"sentences": 1, "records": 3, "policy": "first"}
    assert summarise(corpus.notes) == [
        ("a.jsonl:2 (id=c2): task_B: conflicts with the same sentence at a.jsonl:1 (id=c1) ('BIRMINGHAM' LOC [0:10] "
         "vs 'BIRMINGHAM' ORG [0:10]); 3 copies, kept the first labelling (validate.on_conflict: first)")]


def test_on_conflict_first_still_fills_what_the_first_copy_lacks():
    spans = [{"text": "Paris", "type": "LOC", "start": 17, "end": 22}]
    corpus = corpus_of("first", [paris(task_B=None), paris(task_A="politics", task_B=spans)])
    (out,) = kept_of(corpus)
    assert out["task_A"] == "travel" and out["task_B"] == spans


@pytest.mark.parametrize("labels, expected", [
    (["travel", "politics", "politics"], "politics"),
    (["travel", "politics"], "travel"),                             # a tie: the first
    (["politics", "travel", "travel", "politics"], "politics"),     # a tie: the first
    ([None, "politics", "travel", "travel"], "travel"),             # not annotated is no vote
    (["other", "travel", "politics", "travel", "other", "travel"], "travel"),
])
def test_on_conflict_majority_per_field(labels, expected):
    corpus = corpus_of("majority", [paris(id=f"c{i}", task_A=t) for i, t in enumerate(labels)])
    (out,) = kept_of(corpus)
    assert out["task_A"] == expected
    n = len(labels)
    assert corpus.counts(1) == {"files": 1, "read": n, "kept": n, "rejected": 0, "merged_duplicates": n - 1,
                                "unique": 1}


def test_on_conflict_majority_decides_each_task_field_on_its_own():
    org = [{"text": "BIRMINGHAM", "type": "ORG", "start": 0, "end": 10}]
    loc = [{"text": "BIRMINGHAM", "type": "LOC", "start": 0, "end": 10}]
    records = [{"sentence": BIRMINGHAM, "task_A": "travel", "task_B": org},
               {"sentence": BIRMINGHAM, "task_A": "politics", "task_B": loc},
               {"sentence": BIRMINGHAM, "task_A": "politics", "task_B": org},
               {"sentence": BIRMINGHAM, "task_A": None, "task_B": org}]
    (out,) = kept_of(corpus_of("majority", records))
    assert out["task_A"] == "politics" and out["task_B"] == org


def test_on_conflict_drop_rejects_every_copy():
    records = [conll("LOC", "c1"), paris(id="p"), conll("ORG", "c2"), conll("LOC", "c3"), paris(id="p")]
    corpus = corpus_of("drop", records)
    assert [r["id"] for r in kept_of(corpus)] == ["p"]
    assert corpus.counts(1) == {"files": 1, "read": 5, "kept": 2, "rejected": 3, "merged_duplicates": 1, "unique": 1}
    assert corpus.conflict_counts() == {"sentences": 1, "records": 3, "policy": "drop"}
    assert corpus.problems == []      # not a problem: on_error fail does not stop the run
    assert [(r["location"], r["record"]) for r in corpus.rejects] == [
        ("a.jsonl:1 (id=c1)", records[0]), ("a.jsonl:3 (id=c2)", records[2]), ("a.jsonl:4 (id=c3)", records[3])]
    assert corpus.rejects[0]["errors"] == [
        ("task_B: the same sentence is labelled in conflicting ways by 3 records (first at a.jsonl:1 (id=c1), "
        "conflict at a.jsonl:3 (id=c2)); every copy dropped (validate.on_conflict: drop)")]


def test_on_conflict_in_the_stage_with_counts_in_the_report(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [paris(id=f"g{i}", sentence=f"Good {i}.", task_B=None) for i in range(3)]
                + [conll("LOC", "c1"), conll("ORG", "c2"), paris(id="t1"), paris(id="t2", task_A="politics")])
    for policy, kept, rejected in (("first", 7, 0), ("majority", 7, 0), ("drop", 3, 4)):
        proc = run_stage(tmp_path, **{"validate.on_conflict": policy})
        assert proc.returncode == 0, proc.stderr
        action = {"first": "kept the first labelling", "majority": "kept the labelling most copies give",
                  "drop": "dropped every copy"}[policy]
        assert (f"warning: 2 sentences labelled in conflicting ways (at {raw}/a.jsonl:5 (id=c2), {raw}/a.jsonl:7 "
                f"(id=t2); 4 records in all): {action} (validate.on_conflict: {policy})") in proc.stderr
        details = json.loads((tmp_path / "details.json").read_text())
        assert details["conflicts"] == {"sentences": 2, "records": 4, "policy": policy}
        assert (details["kept"], details["rejected"]) == (kept, rejected)
        assert set(json.loads((tmp_path / "metrics.json").read_text())) == {"kept", "rejected", "records", "annotated"}
        assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == rejected
    assert run_stage(tmp_path).returncode == 1     # fail: as before


# ---- splits --------------------------------------------------------------------------------------

def _topic_records(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{i}", "sentence": f"{prefix} sentence number {i} about travel.", "task_A": "travel"}
            for i in range(n)]


def test_adding_a_file_never_moves_earlier_records(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", _topic_records("first", 300))
    assert run_stage(tmp_path, **{"data.split.dev": 0.2, "data.split.test": 0.2}).returncode == 0
    before = {r["id"]: s for s, recs in read_split_files(tmp_path / "out").items() for r in recs}
    assert len(before) == 300 and set(before.values()) == {"train", "dev", "test"}
    write_jsonl(raw / "00-new.jsonl", _topic_records("second", 300))   # sorts before a.jsonl
    assert run_stage(tmp_path, **{"data.split.dev": 0.2, "data.split.test": 0.2}).returncode == 0
    after = {r["id"]: s for s, recs in read_split_files(tmp_path / "out").items() for r in recs}
    assert len(after) == 600
    assert {k: after[k] for k in before} == before


def test_explicit_split_wins(tmp_path):
    raw = tmp_path / "raw"
    text = next(f"pinned sentence {i}" for i in range(100) if hash_split(f"pinned sentence {i}", 0.1, 0.1, 0) == "train")
    write_jsonl(raw / "a.jsonl", [{"id": "p", "sentence": text, "task_A": "other", "split": "test"}])
    result = validate(raw, load_params())
    assert [r["id"] for r in result["splits"]["test"]] == ["p"]
    assert result["splits"]["test"][0]["split"] == "test"


def test_same_normalised_text_never_lands_in_two_splits(tmp_path):
    raw = tmp_path / "raw"
    base = next(f"Some Sentence {i}" for i in range(100) if hash_split(f"Some Sentence {i}", 0.1, 0.1, 0) == "train")
    variants = [base, base.lower(), base.upper().replace(" ", "\u00a0 "), "  " + base + "\t"]
    records = [{"id": f"v{i}", "sentence": v, "task_A": "other"} for i, v in enumerate(variants)]
    records[2]["split"] = "dev"   # one variant pinned: all variants follow it
    write_jsonl(raw / "a.jsonl", records)
    result = validate(raw, load_params())
    assert result["problems"] == []
    where = {r["id"]: s for s, recs in result["splits"].items() for r in recs}
    assert where == {"v0": "dev", "v1": "dev", "v2": "dev", "v3": "dev"}


def test_conflicting_pinned_splits_for_the_same_text(tmp_path):
    raw = tmp_path / "raw"
    write_jsonl(raw / "a.jsonl", [{"sentence": "Hello world", "task_A": "other", "split": "dev"},
                                  {"sentence": "hello  WORLD", "task_A": "other", "split": "test"}])
    (problem,) = validate(raw, load_params())["problems"]
    assert problem == (f"{raw}/a.jsonl:2: split: 'test' conflicts with the same text pinned to 'dev' "
                       f"at {raw}/a.jsonl:1")


def test_empty_split_gives_a_warning_and_an_empty_file(tmp_path):
    write_jsonl(tmp_path / "raw" / "a.jsonl", _topic_records("x", 5))
    proc = run_stage(tmp_path, **{"data.split.dev": 0.0, "data.split.test": 0.0})
    assert proc.returncode == 0, proc.stderr
    assert "warning: the dev split is empty" in proc.stderr and "warning: the test split is empty" in proc.stderr
    assert (tmp_path / "out" / "dev.jsonl").read_text() == "" == (tmp_path / "out" / "test.jsonl").read_text()
    metrics = json.loads((tmp_path / "details.json").read_text())
    assert metrics["dev"]["records"] == 0 and metrics["train"]["records"] == 5


def test_output_records_and_metrics(tmp_path):
    write_jsonl(tmp_path / "raw" / "a.jsonl", [paris(id="r1"), {"sentence": "Budget law passed.", "task_A": "politics"}])
    assert run_stage(tmp_path).returncode == 0
    out = {r["id"]: r for recs in read_split_files(tmp_path / "out").values() for r in recs}
    assert out["r1"]["task_B"] == paris()["task_B"] and out["r1"]["task_A"] == "travel"
    (auto_id,) = [k for k in out if k != "r1"]
    assert auto_id.startswith("s-") and out[auto_id]["task_B"] is None
    metrics = json.loads((tmp_path / "details.json").read_text())
    total = {k: sum(metrics[s][k] for s in ("train", "dev", "test")) for k in ("records", "topic_annotated", "ner_annotated")}
    assert total == {"records": 2, "topic_annotated": 2, "ner_annotated": 1}
    assert sum(metrics[s]["entities"]["LOC"] for s in ("train", "dev", "test")) == 1
    headline = json.loads((tmp_path / "metrics.json").read_text())  # what dvc metrics show lists
    assert headline == {"kept": 2, "rejected": 0, "records": {s: metrics[s]["records"] for s in ("train", "dev", "test")},
                        "annotated": {"topic": 2, "ner": 1}}
