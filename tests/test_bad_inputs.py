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


def outside_file(tmp):
    """raw/ext.jsonl -> a file outside raw/ (its contents must not end up in the outputs)."""
    (tmp / "outside").mkdir()
    (tmp / "outside" / "secret.jsonl").write_text(GOOD, encoding="utf-8")
    os.symlink(tmp / "outside" / "secret.jsonl", tmp / "raw" / "ext.jsonl")


def outside_dir(tmp):
    (tmp / "outside").mkdir()
    (tmp / "outside" / "b.jsonl").write_text(GOOD.replace("good", "other").replace("Good", "Other"), encoding="utf-8")
    os.symlink("../outside", tmp / "raw" / "more")


def inside_symlink(tmp):
    os.symlink("sub/a.jsonl", tmp / "raw" / "link.jsonl")   # resolves inside raw/: read as before (once)


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


def lines(*records: dict) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def surrogate(**fields) -> str:
    """A record line with a lone surrogate (JSON escape \\udc80) in the given field(s)."""
    return json.dumps(rec(**fields)) + "\n"   # ensure_ascii: the surrogate is written as an escape


BAD = "\udc80"
BYTE_JSON = (b'[\n {"id": "ok1", "sentence": "ok one", "task_A": "other"},\n {"id": "bad", "sentence": "caf\xe9", '
             b'"task_A": "other"},\n {"id": "ok2", "sentence": "ok two", "task_A": "other"}\n]\n')
BILLION_LAUGHS = ('  topics: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n'
                  + "".join(f"  t{i}: &a{i} [{', '.join(['*a' if i == 1 else f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)))
DIGITS = "1" * 4000


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
    ("duplicate_key_jsonl", {"a.jsonl": GOOD + line(id="r1").replace('"task_A": "travel"',
                                                                      '"task_A": "travel", "task_A": "politics"')},
     None, {}, 1, ("error: raw/a.jsonl:6 (id=r1): invalid JSON: duplicate key 'task_A' in one object "
     "(only one value can be kept)")),
    ("duplicate_key_json_array", {"a.json": "[\n" + line(id="ok").rstrip() + ",\n" + line(
        id="r1", sentence="Paris.", task_B=None).replace('"task_A": "travel"', '"task_A": "travel", "task_A": "politics"')
        + "]"}, None, {}, 1,
     "error: raw/a.json:3 (id=r1): invalid JSON: duplicate key 'task_A' in one object (only one value can be kept)"),
    ("duplicate_key_json_array_drop_rejects_one", {"a.json": "[\n" + line(id="ok").rstrip() + ",\n" + line(
        id="r1", sentence="Paris.", task_B=None).replace('"task_A": "travel"', '"task_A": "travel", "task_A": "politics"')
        + "]"}, None, {"validate.on_error": "drop"}, 0, "validate: read 2, kept 1 (0 merged duplicates), rejected 1"),
    ("invalid_utf8_json_rejects_one_record", {"a.json": BYTE_JSON}, None, {"validate.on_error": "drop"}, 0,
     "dropped: raw/a.json:3 (id=bad): invalid UTF-8 (byte 0xe9 at offset 90)"),
    ("invalid_utf8_json_counts_each_record", {"a.json": BYTE_JSON}, None, {"validate.on_error": "drop"}, 0,
     "validate: read 3, kept 2 (0 merged duplicates), rejected 1"),
    ("invalid_utf8_json_two_bad_records", {"a.json": BYTE_JSON.replace(b"ok two", b"ok tw\xff")}, None,
     {"validate.on_error": "drop"}, 0, "dropped: 2 problems: invalid UTF-8 ... (raw/a.json:3 (id=bad), raw/a.json:4 (id=ok2))"),
    ("invalid_utf8_json_between_records", {"a.json": b'[{"sentence": "ok", "task_A": "other"}\xff]'}, None, {}, 1,
     "error: raw/a.json:1: invalid UTF-8 (byte 0xff at offset 38)"),
    ("surrogate_in_id", {"a.jsonl": GOOD + surrogate(id="r" + BAD)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id='r\\udc80'): id: contains an unpaired surrogate '\\udc80' at index 1 (not valid Unicode text)"),
    ("surrogate_in_topic", {"a.jsonl": GOOD + surrogate(id="r1", task_A="travel" + BAD)}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): task_A: contains an unpaired surrogate '\\udc80' at index 6 (not valid Unicode text)"),
    ("surrogate_in_span_text", {"a.jsonl": GOOD + surrogate(id="r1", task_B=[PARIS | {"text": "Pari" + BAD}])}, None, {},
     1, "error: raw/a.jsonl:6 (id=r1): task_B[0].text: contains an unpaired surrogate '\\udc80' at index 4"),
    ("surrogate_in_span_type", {"a.jsonl": GOOD + surrogate(id="r1", task_B=[PARIS | {"type": "LOC" + BAD}])}, None, {},
     1, "error: raw/a.jsonl:6 (id=r1): task_B[0].type: contains an unpaired surrogate '\\udc80' at index 3"),
    ("surrogate_everywhere_drop_mode", {"a.jsonl": GOOD + surrogate(id="r" + BAD) + surrogate(id="r2", note=BAD)
                                        + surrogate(id="r3", task_A=BAD, sentence=BAD) + surrogate(**{BAD: 1, "id": "r4"})
                                        + surrogate(id="r5", task_B=[PARIS | {"text": BAD, "type": BAD}])},
     None, {"validate.on_error": "drop"}, 0, "dropped 3 record(s): see out/rejects.jsonl"),
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
    ("non_json_file_skipped", {"a.jsonl": GOOD, "README.txt": "notes"}, None, {}, 0,
     "warning: raw/README.txt: not a .json/.jsonl file, skipped"),
    ("non_json_files_summarised", {"a.jsonl": GOOD, "README.txt": "notes", "data.csv": "a,b"}, None, {}, 0,
     "warning: 2 files that are not .json/.jsonl skipped (raw/README.txt, raw/data.csv)"),
    ("upper_case_extension_read", {"A.JSONL": GOOD}, None, {}, 0, "validate: read 5, kept 5"),
    ("hidden_directory_skipped", {"a.jsonl": GOOD, ".git/x.jsonl": GOOD.replace("good", "git")}, None, {}, 0,
     "warning: raw/.git: hidden directory (name starts with '.'), skipped"),
    ("hidden_file_skipped", {"a.jsonl": GOOD, ".a.jsonl.swp.jsonl": GOOD}, None, {}, 0,
     "warning: raw/.a.jsonl.swp.jsonl: hidden file (name starts with '.'), skipped"),
    ("hidden_entries_one_warning", {"a.jsonl": GOOD, ".cache/x.json": "[]", "sub/.git/y.jsonl": "x", ".z.jsonl": "x",
                                    "sub/.notes.jsonl": "x"}, None, {}, 0,
     ("warning: 4 hidden files or directories (name starting with '.') skipped (raw/.cache, raw/.z.jsonl, "
      "raw/sub/.git, ... (all in details.json))")),
    ("symlink_outside_raw_refused", {"a.jsonl": GOOD}, outside_file, {}, 1,
     ("error: raw/ext.jsonl: symlink to {tmp}/outside/secret.jsonl, outside the raw data directory raw; not read "
      "(set validate.allow_external_symlinks: true in params.yaml to read it)")),
    ("symlinked_dir_outside_raw_refused", {"a.jsonl": GOOD}, outside_dir, {}, 1,
     ("error: raw/more: symlink to {tmp}/outside, outside the raw data directory raw; not read "
      "(set validate.allow_external_symlinks: true in params.yaml to read it)")),
    ("symlink_outside_raw_opted_in", {"a.jsonl": GOOD}, outside_file, {"validate.allow_external_symlinks": True}, 0,
     "validate: read 10, kept 10 (5 merged duplicates), rejected 0"),
    ("symlinked_dir_outside_raw_opted_in", {"a.jsonl": GOOD}, outside_dir, {"validate.allow_external_symlinks": True},
     0, "validate: read 10, kept 10 (0 merged duplicates), rejected 0"),
    ("symlink_inside_raw_read_once", {"sub/a.jsonl": GOOD}, inside_symlink, {}, 0,
     "warning: raw/sub/a.jsonl: same file as raw/link.jsonl, skipped"),
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
     "error: raw/a.jsonl:6 (id=r1): invalid JSON: NaN is not a JSON value (use null, or a number)"),
    ("offset_infinity_in_json_array", {"a.json": "[" + line(id="r1").replace('"end": 22', '"end": Infinity') + "]"},
     None, {}, 1, "error: raw/a.json:1 (id=r1): invalid JSON: Infinity is not a JSON value (use null, or a number)"),
    ("number_too_large_for_a_float", {"a.jsonl": GOOD + line(id="r1", score=1).replace('"score": 1', '"score": 1e999')},
     None, {}, 1, "error: raw/a.jsonl:6 (id=r1): invalid JSON: number 1e999 is out of range (it would read as infinity)"),
    ("number_too_large_in_json_array_drop", {"a.json": "[" + line(id="r1", score=1).replace('"score": 1', '"score": -1e400')
                                             + "," + line(id="r2", sentence="Paris.", task_B=None) + "]"}, None,
     {"validate.on_error": "drop"}, 0,
     "dropped: raw/a.json:1 (id=r1): invalid JSON: number -1e400 is out of range (it would read as infinity)"),
    ("offset_4000_digits", {"a.jsonl": GOOD + line(id="r1").replace('"start": 17', f'"start": {DIGITS}')}, None, {}, 1,
     ("error: raw/a.jsonl:6 (id=r1): task_B[0].start: offset 11111111111111111111... (3980 more characters) "
      "is beyond the sentence (length 30)")),
    ("offset_4000_digits_negative", {"a.jsonl": GOOD + line(id="r1").replace('"end": 22', f'"end": -{DIGITS}')},
     None, {}, 1, ("error: raw/a.jsonl:6 (id=r1): task_B[0].end: offset -1111111111111111111... (3981 more characters) "
     "is negative")),
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
    ("duplicates_summarised", {"a.jsonl": line(id="r1") * 5, "b.jsonl": line(id="r1")}, None, {}, 0,
     ("warning: 5 duplicate sentences merged (raw/a.jsonl:2 (id=r1), raw/a.jsonl:3 (id=r1), raw/a.jsonl:4 (id=r1), "
      "... (all in details.json))")),
    ("duplicates_summarised_error_last", {"a.jsonl": line(id="r1") * 200 + line(id="r2", sentence="x", task_A="sport",
                                                                              task_B=None)}, None, {}, 1,
     "error: raw/a.jsonl:201 (id=r2): task_A: unknown topic 'sport'; allowed: travel, technology, politics, other"),
    ("conflict_first", {"a.jsonl": line(id="r1") + line(id="r2", task_A="politics")}, None,
     {"validate.on_conflict": "first"}, 0,
     ("warning: raw/a.jsonl:2 (id=r2): task_A: conflicts with the same sentence at raw/a.jsonl:1 (id=r1) "
      "('travel' vs 'politics'); 2 copies, kept the first labelling (validate.on_conflict: first)")),
    ("conflict_majority", {"a.jsonl": line(id="r1") + line(id="r2", task_A="politics") * 2}, None,
     {"validate.on_conflict": "majority"}, 0,
     ("warning: raw/a.jsonl:2 (id=r2): task_A: conflicts with the same sentence at raw/a.jsonl:1 (id=r1) "
      "('travel' vs 'politics'); 3 copies, kept the labelling most copies give (validate.on_conflict: majority)")),
    ("conflict_drop", {"a.jsonl": GOOD + line(id="r1") + line(id="r2", task_A="politics")}, None,
     {"validate.on_conflict": "drop"}, 0, "dropped 2 record(s): see out/rejects.jsonl"),
    ("conflict_drop_everything", {"a.jsonl": line(id="r1") + line(id="r2", task_A="politics")}, None,
     {"validate.on_conflict": "drop"}, 1, "error: raw: no usable records (2 read, 2 rejected)"),
    ("conflicts_summarised", {"a.jsonl": line(id="r1") + line(id="r2", task_A="politics") + line(
        id="r3", sentence="Paris.", task_B=None) + line(id="r4", sentence="Paris.", task_A="other", task_B=None)},
     None, {"validate.on_conflict": "first"}, 0,
     ("warning: 2 sentences labelled in conflicting ways (at raw/a.jsonl:2 (id=r2), raw/a.jsonl:4 (id=r4); 4 records "
      "in all): kept the first labelling (validate.on_conflict: first)")),
    ("conflict_fail_with_drop", {"a.jsonl": GOOD + line(id="r1") + line(id="r2", task_A="politics")}, None,
     {"validate.on_error": "drop"}, 0,
     ("dropped: raw/a.jsonl:7 (id=r2): task_A: conflicts with the same sentence at raw/a.jsonl:6 (id=r1) "
      "('travel' vs 'politics')")),
    ("unknown_field_warning", {"a.jsonl": line(id="r1", lable="travel")}, None, {}, 0,
     "warning: raw/a.jsonl:1 (id=r1): lable: unknown field (ignored)"),
    ("unknown_fields_summarised", {"a.jsonl": line(id="r1", lable="travel") + line(id="r2", sentence="Paris.", lable=1,
                                                                                   task_B=None)}, None, {}, 0,
     "warning: 2 unknown fields ignored (raw/a.jsonl:1 (id=r1), raw/a.jsonl:2 (id=r2))"),
    ("no_records_summarised", {"a.jsonl": GOOD, "e1.jsonl": "", "e2.json": "[]"}, None, {}, 0,
     "warning: 2 files with no records (empty files or empty arrays) (raw/e1.jsonl, raw/e2.json)"),
    ("bad_split_value", {"a.jsonl": GOOD + line(id="r1", split="validation")}, None, {}, 1,
     "error: raw/a.jsonl:6 (id=r1): split: must be one of train, dev, test, got 'validation'"),
    # -- on_error: drop
    ("drop_mode_keeps_going", {"a.jsonl": GOOD + '{"sentence": \n' + line(id="r1", task_A="sport")}, None,
     {"validate.on_error": "drop"}, 0, "dropped 2 record(s): see out/rejects.jsonl"),
    ("drop_mode_everything_rejected", {"a.jsonl": "not json\n"}, None, {"validate.on_error": "drop"}, 1,
     "error: raw: no usable records (1 read, 1 rejected)"),
    ("drop_mode_summarised", {"a.jsonl": GOOD + "".join(line(id=f"b{i}", task_A="sport") for i in range(5))}, None,
     {"validate.on_error": "drop"}, 0,
     ("dropped: 5 problems: task_A: unknown topic ... (raw/a.jsonl:6 (id=b0), raw/a.jsonl:7 (id=b1), "
      "raw/a.jsonl:8 (id=b2), ... (all in out/rejects.jsonl))")),
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
    ("params_alias", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", r"  epochs: &e \1\n  patience: *e"), {}, 1,
     ("error: params.yaml:34: invalid YAML: anchor &e is not allowed in params (no anchors or aliases: write each "
     "value out)")),
    ("params_billion_laughs_in_a_leaf", {"a.jsonl": GOOD}, params_text(r"^  topics:\n(?:  - .*\n)+", BILLION_LAUGHS), {}, 1,
     "error: params.yaml:2: invalid YAML: anchor &a is not allowed in params"),
    ("params_complex_key", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", r"  ? [a, b]\n  : 1\n  epochs: \1"), {},
     1, ("error: params.yaml:34: invalid YAML: a complex key (`? [a, b]` or a mapping as a key) is not allowed in params: "
     "keys are names")),
    ("params_5000_deep_list", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", "  epochs: " + "[" * 5000 + "]" * 5000),
     {}, 1, "error: params.yaml:34: invalid YAML: nested more than 50 levels deep"),
    ("params_huge_value_capped", {"a.jsonl": GOOD}, params_text(r"^  epochs: (\d+)", "  epochs: [" + "1, " * 20000 + "1]"),
     {}, 1, ("error: params.yaml: 'train.epochs' must be an integer, got list [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
     "1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1... (59923 more characters)")),
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
    assert expected.replace("{tmp}", os.path.realpath(tmp_path)) in output, output
    assert max(map(len, output.splitlines()), default=0) <= 2100, "a message line is not capped"
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
