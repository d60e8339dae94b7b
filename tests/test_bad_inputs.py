"""Bad-input corpus: each case runs `python -m pipeline validate` on its own raw directory and
states the exact outcome: exit status and the message (never a traceback, never a hang)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest

REPO = Path(__file__).resolve().parents[1]
SENT = "Tim Cook visited Paris in May."
PARIS = {"text": "Paris", "type": "LOC", "start": 17, "end": 22}


def rec(**fields) -> dict:
    base = {"sentence": SENT, "task_A": "travel", "task_B": [PARIS]}
    base.update(fields)
    return base


def line(**fields) -> str:
    return json.dumps(rec(**fields), ensure_ascii=False) + "\n"


GOOD = "".join(json.dumps({"id": f"good{i}", "sentence": f"Good sentence number {i}.", "task_A": "other"}) + "\n"
               for i in range(5))


def run_validate(tmp: Path, overrides: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", "validate", "--params", "params.yaml",
                           "--out-dir", "out", "--metrics", "metrics.json", "--details", "details.json"],
                          cwd=tmp, env=env, check=False, capture_output=True, text=True, timeout=timeout)


def write_params(tmp: Path, overrides: dict | None) -> None:
    helpers.write_params(tmp / "params.yaml", {"data.raw_dir": "raw", **(overrides or {})})


# setup functions, for what a dict of files cannot say ------------------------------------------------

def no_raw_dir(tmp):
    os.rmdir(tmp / "raw")


def raw_is_a_file(tmp):
    os.rmdir(tmp / "raw")
    (tmp / "raw").write_text(GOOD)


def symlink_loop_dir(tmp):
    os.symlink("..", tmp / "raw" / "sub" / "loop")          # raw/sub/loop -> raw


def symlink_loop_file(tmp):
    os.symlink("self.jsonl", tmp / "raw" / "self.jsonl")    # a link to itself: ELOOP on open


def broken_symlink(tmp):
    os.symlink("gone.jsonl", tmp / "raw" / "broken.jsonl")


def same_file_twice(tmp):
    os.symlink("a.jsonl", tmp / "raw" / "b.jsonl")


def fifo(tmp):
    os.mkfifo(tmp / "raw" / "pipe.jsonl")                 # opening it would block forever


def unreadable_file(tmp):
    (tmp / "raw" / "secret.jsonl").chmod(0)


def params_text(pattern: str, repl: str):
    """Edit the copied params.yaml by regex (first match); the pattern must match, or the case tests nothing."""
    def setup(tmp):
        p = tmp / "params.yaml"
        text, n = re.subn(pattern, repl, p.read_text(encoding="utf-8"), count=1, flags=re.MULTILINE)
        assert n == 1, f"{pattern!r} not found in params.yaml"
        p.write_text(text, encoding="utf-8")
    return setup


def deep_nesting() -> str:
    return '{"sentence": "x", "task_A": ' + "[" * 100_000 + "]" * 100_000 + "}\n"


# (name, files under raw/ (str: UTF-8 text, bytes: as is) or None, setup(tmp) or None,
#  params overrides, exit status, expected substring ({raw} = the raw directory as given in params))
CASES = [
    # -- not JSON, or not the JSON expected
    ("truncated_jsonl", {"a.jsonl": GOOD + '{"sentence": "Paris in May", "task_A": "tra'}, None, {}, 1,
     "error: raw/a.jsonl:6: invalid JSON: Unterminated string starting at column 40"),
    ("truncated_json_array", {"a.json": '[\n  {"sentence": "x", "task_A": "travel"},\n'}, None, {}, 1,
     "error: raw/a.json:3: invalid JSON: Expecting value at column 1"),
    ("object_where_array_expected", {"a.json": json.dumps(rec())}, None, {}, 1,
     ("error: raw/a.json:1: expected a JSON array of records, got a JSON object (a .json file holds [record, ...]; "
     "use .jsonl for one record per line)")),
    ("not_json_with_json_name", {"a.json": "sentence,task_A\nParis,travel\n"}, None, {}, 1,
     "error: raw/a.json:1: invalid JSON: Expecting value at column 1"),
    ("jsonl_with_two_records_on_a_line", {"a.jsonl": line().strip() + line()}, None, {}, 1,
     "error: raw/a.jsonl:1: invalid JSON: Extra data at column 137"),
    ("record_is_a_list", {"a.jsonl": GOOD + '["Paris", "travel"]\n'}, None, {}, 1,
     "error: raw/a.jsonl:6: record: must be a JSON object, got array ['Paris', 'travel']"),
    ("record_is_a_number", {"a.json": "[1]"}, None, {}, 1,
     "error: raw/a.json:1: record: must be a JSON object, got integer 1"),
    ("deeply_nested_json", {"a.jsonl": GOOD + deep_nesting()}, None, {}, 1,
     "error: raw/a.jsonl:6: invalid JSON: nested too deeply"),
    ("integer_too_long", {"a.jsonl": GOOD + '{"sentence": "x", "task_A": "other", "n": ' + "9" * 5000 + "}\n"},
     None, {}, 1, "error: raw/a.jsonl:6: invalid JSON: Exceeds the limit (4300 digits)"),
    # -- encodings and bytes
    ("invalid_utf8_jsonl", {"a.jsonl": GOOD.encode() + b'{"sentence": "caf\xe9", "task_A": "other"}\n'}, None, {}, 1,
     "error: raw/a.jsonl:6: invalid UTF-8 (byte 0xe9 at column 18)"),
    ("invalid_utf8_json", {"a.json": b'[\n {"sentence": "ok", "task_A": "other"},\n {"sentence": "\xff"}\n]'},
     None, {}, 1, "error: raw/a.json:3: invalid UTF-8 (byte 0xff at offset 57)"),
    ("utf16_file", {"a.jsonl": line().encode("utf-16")}, None, {}, 1,
     "error: raw/a.jsonl:1: invalid UTF-8 (byte 0xff at column 1); the file looks like UTF-16: save it as UTF-8"),
    ("nul_byte_in_line", {"a.jsonl": GOOD + '{"sentence": "Par\x00is", "task_A": "travel"}\n'}, None, {}, 1,
     "error: raw/a.jsonl:6: invalid JSON: Invalid control character at column 18"),
    ("file_of_nul_bytes", {"a.jsonl": b"\x00" * 4096}, None, {}, 1,
     "error: raw/a.jsonl:1: invalid JSON: Expecting value at column 1"),
    ("unpaired_surrogate_escape", {"a.jsonl": GOOD + '{"sentence": "Paris \\ud83d", "task_A": "travel"}\n'},
     None, {}, 1,
     "error: raw/a.jsonl:6: sentence: contains an unpaired surrogate '\\ud83d' at index 6 (not valid Unicode text)"),
    ("bom_jsonl_accepted", {"a.jsonl": "\ufeff" + GOOD}, None, {}, 0, "validate: read 5, kept 5"),
    ("bom_json_accepted", {"a.json": "\ufeff" + json.dumps([rec()])}, None, {}, 0, "validate: read 1, kept 1"),
    ("crlf_jsonl_accepted", {"a.jsonl": GOOD.replace("\n", "\r\n")}, None, {}, 0, "validate: read 5, kept 5"),
    ("crlf_json_accepted", {"a.json": json.dumps([rec(), rec(sentence="Paris.", task_B=None)], indent=1)
                            .replace("\n", "\r\n")}, None, {}, 0, "validate: read 2, kept 2"),
    ("one_mb_sentence_accepted", {"a.jsonl": json.dumps({"sentence": "Paris " + "word " * 200_000 + "end.",
                                                          "task_A": "travel", "task_B": [PARIS | {"start": 0, "end": 5}]})
                                  + "\n"}, None, {}, 0, "validate: read 1, kept 1"),
    # -- files and directories
    ("empty_file_with_other_data", {"a.jsonl": GOOD, "empty.jsonl": ""}, None, {}, 0,
     "warning: raw/empty.jsonl: no records (empty file or empty array)"),
    ("empty_file_alone", {"empty.jsonl": ""}, None, {}, 1, "error: raw: no usable records (0 read, 0 rejected)"),
    ("empty_array_alone", {"a.json": "[]"}, None, {}, 1, "error: raw: no usable records (0 read, 0 rejected)"),
    ("whitespace_only_file", {"a.json": "  \n\n", "b.jsonl": GOOD}, None, {}, 0,
     "warning: raw/a.json: no records (empty file or empty array)"),
    ("empty_raw_dir", {}, None, {}, 1, "error: raw: no .json or .jsonl files found (params.yaml data.raw_dir)"),
    ("missing_raw_dir", None, no_raw_dir, {}, 1, "error: raw: raw data directory not found (params.yaml data.raw_dir)"),
    ("raw_dir_is_a_file", None, raw_is_a_file, {}, 1, "error: raw: raw data directory is not a directory"),
    ("symlink_loop_dir", {"sub/a.jsonl": GOOD}, symlink_loop_dir, {}, 0,
     "warning: raw/sub/loop: symlink loop or repeated directory, skipped"),
    ("symlink_loop_file", {"a.jsonl": GOOD}, symlink_loop_file, {}, 0,
     "warning: raw/self.jsonl: broken symlink or not a regular file, skipped"),
    ("broken_symlink", {"a.jsonl": GOOD}, broken_symlink, {}, 0,
     "warning: raw/broken.jsonl: broken symlink or not a regular file, skipped"),
    ("same_file_twice_via_symlink", {"a.jsonl": GOOD}, same_file_twice, {}, 0,
     "warning: raw/b.jsonl: same file as raw/a.jsonl, skipped"),
    ("fifo_does_not_hang", {"a.jsonl": GOOD}, fifo, {}, 0,
     "warning: raw/pipe.jsonl: broken symlink or not a regular file, skipped"),
    ("non_json_file_skipped", {"a.jsonl": GOOD, "README.txt": "notes", "data.csv": "a,b"}, None, {}, 0,
     "warning: raw/README.txt: not a .json/.jsonl file, skipped"),
    ("upper_case_extension_read", {"A.JSONL": GOOD}, None, {}, 0, "validate: read 5, kept 5"),
    ("nested_directories_read", {"x/y/z/a.jsonl": GOOD, "x/b.json": json.dumps([rec()])}, None, {}, 0,
     "validate: read 6, kept 6"),
    # -- record contents
    ("missing_sentence", {"a.jsonl": GOOD + '{"id": "r1", "task_A": "travel"}\n'}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): sentence: missing"),
    ("sentence_not_a_string", {"a.jsonl": GOOD + line(id="r1", sentence=["Paris"], task_B=None)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): sentence: must be a string, got array ['Paris']"),
    ("sentence_empty", {"a.jsonl": GOOD + line(id="r1", sentence="", task_B=None)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): sentence: empty"),
    ("task_A_as_a_list", {"a.jsonl": GOOD + line(id="r1", task_A=["travel"])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_A: must be a topic string or null, got array ['travel']"),
    ("topic_case_mismatch", {"a.jsonl": GOOD + line(id="r1", task_A="Travel")}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_A: unknown topic 'Travel' (did you mean 'travel'? labels are case-sensitive)"),
    ("task_B_as_a_dict", {"a.jsonl": GOOD + line(id="r1", task_B=PARIS)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B: must be a list of spans or null, got object {'text': 'Paris'"),
    ("neither_task", {"a.jsonl": GOOD + line(id="r1", task_A=None, task_B=None)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_A/task_B: neither task is annotated"),
    ("span_missing_fields", {"a.jsonl": GOOD + line(id="r1", task_B=[{"text": "Paris", "start": 17}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0]: missing field(s) type, end"),
    ("span_type_lower_case", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"type": "loc"}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0].type: unknown entity type 'loc' (did you mean 'LOC'?"),
    ("offsets_as_strings", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"start": "17", "end": "22"}])},
     None, {}, 1, "error: raw/a.jsonl:6 (id=r1): task_B[0].end: offset must be an integer, got string '22'"),
    ("offsets_as_floats", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"start": 17.0}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0].start: offset must be an integer, got number 17.0"),
    ("offset_nan", {"a.jsonl": GOOD + line(id="r1").replace('"start": 17', '"start": NaN')}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0].start: offset must be an integer, got number nan"),
    ("offsets_beyond_sentence", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"start": 40, "end": 45}])},
     None, {}, 1, "error: raw/a.jsonl:6 (id=r1): task_B[0].start: offset 40 is beyond the sentence (length 30)"),
    ("offsets_negative", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"start": -5}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0].start: offset -5 is negative"),
    ("offsets_reversed", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"start": 22, "end": 17}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0]: start 22 must be < end 17"),
    ("span_text_mismatch", {"a.jsonl": GOOD + line(id="r1", task_B=[PARIS | {"text": "Rome"}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B[0].text: 'Rome' != sentence[17:22] 'Paris'"),
    ("overlapping_spans", {"a.jsonl": GOOD + line(id="r1", task_B=[
        PARIS, {"text": "Cook visited", "type": "PERSON", "start": 4, "end": 16},
        {"text": "Tim Cook", "type": "PERSON", "start": 0, "end": 8}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B: overlapping spans 'Tim Cook' [0:8] and 'Cook visited' [4:16]"),
    ("nested_spans", {"a.jsonl": GOOD + line(id="r1", task_B=[
        {"text": "Cook", "type": "PERSON", "start": 4, "end": 8},
        {"text": "Tim Cook", "type": "PERSON", "start": 0, "end": 8}])}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_B: nested spans 'Tim Cook' [0:8] and 'Cook' [4:8]"),
    ("duplicate_ids", {"a.jsonl": GOOD, "b.jsonl": json.dumps({"id": "good3", "sentence": "Other.", "task_A": "other"})},
     None, {}, 1, ("error: raw/b.jsonl:1 (id=good3): id: duplicate id 'good3' (first at raw/a.jsonl:4 (id=good3), "
                  "with a different sentence)")),
    ("conflicting_duplicate", {"a.jsonl": line(id="r1") + line(id="r2", task_A="politics")}, None, {}, 1,
     ("error: raw/a.jsonl:2 (id=r2): task_A: conflicts with the same sentence at raw/a.jsonl:1 (id=r1) "
     "('travel' vs 'politics')")),
    ("exact_duplicate_merged", {"a.jsonl": line(id="r1") + line(id="r1")}, None, {}, 0,
     "warning: raw/a.jsonl:2 (id=r1): duplicate of the sentence at raw/a.jsonl:1 (id=r1), merged"),
    ("unknown_field_warning", {"a.jsonl": line(id="r1", lable="travel")}, None, {}, 0,
     "warning: raw/a.jsonl:1 (id=r1): lable: unknown field (ignored)"),
    ("bad_split_value", {"a.jsonl": GOOD + line(id="r1", split="validation")}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): split: must be one of train, dev, test, got 'validation'"),
    # -- on_error: drop
    ("drop_mode_keeps_going", {"a.jsonl": GOOD + '{"sentence": \n' + line(id="r1", task_A="sport")}, None,
     {"validate.on_error": "drop"}, 0, "dropped 2 record(s): see out/rejects.jsonl"),
    ("drop_mode_everything_rejected", {"a.jsonl": "not json\n"}, None, {"validate.on_error": "drop"}, 1,
     "error: raw: no usable records (1 read, 1 rejected)"),
    ("unreadable_file", {"a.jsonl": GOOD, "secret.jsonl": GOOD}, unreadable_file, {}, 1,
     "error: raw/secret.jsonl: cannot read file: Permission denied"),
    # -- params.yaml
    ("params_unknown_key", {"a.jsonl": GOOD}, None, {"train.learning_rate": 0.001}, 1,
     "error: params.yaml: unknown key 'train.learning_rate'; did you mean 'train.lr_encoder' or 'train.lr_heads'?"),
    ("params_batch_size_zero", {"a.jsonl": GOOD}, None, {"train.batch_size": 0}, 1,
     "error: params.yaml: 'train.batch_size' must be >= 1 (got 0)"),
    ("params_negative_alpha", {"a.jsonl": GOOD}, None, {"train.alpha": -1.0}, 1,
     "error: params.yaml: 'train.alpha' must be >= 0.0 (got -1.0)"),
    ("params_unknown_pooling", {"a.jsonl": GOOD}, None, {"encoder.pooling": "max"}, 1,
     "error: params.yaml: 'encoder.pooling' must be one of mean, last, weighted_mean (got 'max')"),
    ("params_duplicate_labels", {"a.jsonl": GOOD}, None, {"labels.entities": ["PERSON", "LOC", "PERSON"]}, 1,
     "error: params.yaml: 'labels.entities' has duplicates: PERSON"),
    ("params_epochs_string", {"a.jsonl": GOOD}, None, {"train.epochs": "3"}, 1,
     "error: params.yaml: 'train.epochs' must be an integer, got string '3' (remove the quotes)"),
    ("params_invalid_yaml", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", r"  epochs: [\1"), {}, 1,
     "error: params.yaml:"),
    ("params_duplicate_key", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", r"  epochs: \1\n  epochs: 5"), {}, 1,
     "invalid YAML: duplicate key 'epochs'"),
]


@pytest.mark.parametrize("name, files, setup, overrides, status, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, name, files, setup, overrides, status, expected):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_params(tmp_path, overrides)
    for rel, content in (files or {}).items():
        path = raw / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    if setup:
        setup(tmp_path)
    if name == "unreadable_file" and os.access(raw / "secret.jsonl", os.R_OK):
        pytest.skip("running as a user that can read a mode-000 file (root)")
    proc = run_validate(tmp_path)
    output = proc.stderr + proc.stdout
    assert "Traceback" not in output, output
    assert proc.returncode == status, output
    assert expected in output, output
    if status:
        # the failure is summed up in one line, and nothing was written for later stages to pick up
        assert proc.stderr.splitlines()[-1].startswith("error: "), proc.stderr
        assert not (tmp_path / "out").exists()
    else:
        assert {p.name for p in (tmp_path / "out").iterdir()} == {"train.jsonl", "dev.jsonl", "test.jsonl",
                                                                  "rejects.jsonl"}
        metrics = json.loads((tmp_path / "details.json").read_text())
        assert metrics["read"] == metrics["kept"] + metrics["rejected"]


def test_corpus_is_large_enough():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_one_mb_sentence_is_kept_intact(tmp_path):
    (tmp_path / "raw").mkdir()
    write_params(tmp_path, {})
    sentence = "Paris " + "mot\u00a0😀 " * 150_000 + "fin."
    (tmp_path / "raw" / "a.jsonl").write_text(json.dumps({"id": "big", "sentence": sentence, "task_A": "travel",
                                                          "task_B": [PARIS | {"start": 0, "end": 5}]}) + "\n",
                                              encoding="utf-8")
    proc = run_validate(tmp_path)
    assert proc.returncode == 0, proc.stderr
    (out,) = [json.loads(x) for s in ("train", "dev", "test")
              for x in (tmp_path / "out" / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert out["sentence"] == sentence and out["task_B"] == [PARIS | {"start": 0, "end": 5}]


def test_200k_records_in_reasonable_time_and_memory(tmp_path):
    (tmp_path / "raw").mkdir()
    write_params(tmp_path, {})
    with open(tmp_path / "raw" / "big.jsonl", "w", encoding="utf-8") as fh:
        for i in range(200_000):
            s = f"Record {i} mentions Paris on day {i % 31}."
            start = s.index("Paris")
            fh.write(json.dumps({"id": f"r{i}", "sentence": s, "task_A": "travel",
                                 "task_B": [{"text": "Paris", "type": "LOC", "start": start, "end": start + 5}]}) + "\n")
    # Run the stage in a child that reports its own peak RSS (ru_maxrss: KiB on Linux).
    code = ("import resource, sys, runpy; sys.argv = ['validate', '--params', 'params.yaml', '--out-dir', 'out', "
            "'--metrics', 'metrics.json', '--details', 'details.json']\n"
            "try:\n    runpy.run_module('pipeline.stages.validate', run_name='__main__')\n"
            "finally:\n    print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "validate: read 200000, kept 200000 (0 merged duplicates), rejected 0" in proc.stdout
    peak_mib = int(proc.stderr.split("peak_rss_kib")[1].split()[0]) / 1024
    assert elapsed < 45, f"validate took {elapsed:.1f}s on 200k records"
    assert peak_mib < 1024, f"validate peaked at {peak_mib:.0f} MiB on 200k records"
    metrics = json.loads((tmp_path / "details.json").read_text())
    assert metrics["read"] == 200_000 == sum(metrics[s]["records"] for s in ("train", "dev", "test"))
