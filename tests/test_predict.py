"""The predict stage (pipeline/stages/predict.py) on a tiny trained model: every input form, JSONL that
the validate stage accepts as training data, the pretty format, the caps, clear errors, and long
sentences split into windows and merged back into one record.

Most runs are in-process (`run_cli(main, argv)`: no interpreter start-up per case);
stdin and one error case run as real subprocesses."""
from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import KEYWORDS, prepare, run_stage, subprocess_env, toy_set, train_args, write_project, write_toy_params

from pipeline.stages import predict as predict_mod
from pipeline.stages import train as train_mod
from pipeline.stages import validate as validate_mod

TOPICS = list(KEYWORDS)
TYPES = {"PERSON", "LOC", "ORG", "DATE"}
MAX_LENGTH, STRIDE = 16, 4
LONG = ("Tim Cook talked about the flight in Paris on day 1, and then Sarah Mitchell praised the software "
        "in Denver while José Martínez discussed the election news from Frankfurt with Zoë in São Paulo.")


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_gpt_neo) -> Path:
    """A model trained briefly on the toy set with short windows (max_length 16, stride 4)."""
    root = write_project(tmp_path_factory.mktemp("predict"), tiny_gpt_neo, toy_set(40, 4, 0),
                         **{"train.epochs": 6, "tokenize.max_length": MAX_LENGTH, "tokenize.stride": STRIDE})
    prepare(root)
    assert run_stage(train_mod, root, *train_args("model")) == 0
    return root


def predict(project: Path, capsys, *args: str, params: str = "params.yaml") -> tuple[int, str, str]:
    capsys.readouterr()
    code = run_stage(predict_mod, project, "--params", params, "--model", "model", *args)
    out, err = capsys.readouterr()
    return code, out, err


def check_record(rec: dict) -> None:
    assert rec["task_A"] in TOPICS
    assert set(rec["topic_scores"]) == set(TOPICS)
    assert sum(rec["topic_scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert rec["topic_scores"][rec["task_A"]] == max(rec["topic_scores"].values())
    ends = -1
    for span in rec["task_B"]:
        assert span["type"] in TYPES
        assert span["text"] == rec["sentence"][span["start"]:span["end"]] and span["text"].strip() == span["text"]
        assert span["start"] >= ends  # sorted, no overlaps
        ends = span["end"]
        assert 0.0 <= span["score"] <= 1.0


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# input forms -------------------------------------------------------------------------------------

def test_sentences_as_arguments(project, capsys):
    code, out, _ = predict(project, capsys, "Tim Cook talked about the flight in Paris.", "Zoë ate soup")
    assert code == 0
    recs = jsonl(out)
    assert [r["sentence"] for r in recs] == ["Tim Cook talked about the flight in Paris.", "Zoë ate soup"]
    for rec in recs:
        check_record(rec)
        assert "id" not in rec


def test_txt_file_to_output_file(project, capsys):
    (project / "in.txt").write_text("First sentence about software.\n\n   \nSecond one in Paris.\r\n", encoding="utf-8")
    code, out, err = predict(project, capsys, "--input", "in.txt", "--output", "out/pred.jsonl")
    assert code == 0 and out == ""
    assert "2 predictions written to out/pred.jsonl" in err
    recs = jsonl((project / "out" / "pred.jsonl").read_text(encoding="utf-8"))
    assert [r["sentence"] for r in recs] == ["First sentence about software.", "Second one in Paris."]
    for rec in recs:
        check_record(rec)


def test_jsonl_file_keeps_ids(project, capsys):
    lines = [{"id": "a1", "sentence": "Sarah Mitchell flew to Denver.", "task_A": "travel"},
             {"sentence": "No id here."}]
    (project / "in.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    code, out, _ = predict(project, capsys, "--input", "in.jsonl")
    assert code == 0
    recs = jsonl(out)
    assert recs[0]["id"] == "a1" and "id" not in recs[1]
    assert [r["sentence"] for r in recs] == [x["sentence"] for x in lines]


def test_directory_of_files(project, capsys):
    d = project / "indir"
    (d / "sub").mkdir(parents=True, exist_ok=True)
    (d / ".git").mkdir(exist_ok=True)
    (d / "b.txt").write_text("Beta sentence.\n", encoding="utf-8")
    (d / "a.jsonl").write_text(json.dumps({"id": "x", "sentence": "Alpha sentence."}) + "\n", encoding="utf-8")
    (d / "sub" / "c.txt").write_text("Gamma sentence.\nDelta sentence.\n", encoding="utf-8")
    (d / "E.TXT").write_text("Upper-case suffix.\n", encoding="utf-8")          # read: suffixes in any case
    (d / "f.JSONL").write_text(json.dumps({"sentence": "Loud JSONL."}) + "\n", encoding="utf-8")
    (d / "notes.md").write_text("not an input\n", encoding="utf-8")            # skipped, and said so
    (d / "x.json").write_text('[{"sentence": "an array file"}]\n', encoding="utf-8")
    (d / ".hidden.txt").write_text("a dot-file\n", encoding="utf-8")
    (d / ".git" / "notes.txt").write_text("inside a dot-folder\n", encoding="utf-8")
    os.mkfifo(d / "sub" / "pipe.txt")  # never opened (it would block)
    code, out, err = predict(project, capsys, "--input", "indir")
    assert code == 0
    assert [r["sentence"] for r in jsonl(out)] == ["Upper-case suffix.", "Alpha sentence.", "Beta sentence.",
                                                   "Loud JSONL.", "Gamma sentence.", "Delta sentence."]
    assert err == ("warning: indir: 5 path(s) skipped (only .txt and .jsonl files are read, no dot-files or "
                   "dot-folders): .git/, .hidden.txt, notes.md, x.json, sub/pipe.txt\n")
    (d / "sub" / "z.csv").write_text("x\n", encoding="utf-8")
    code, out, err = predict(project, capsys, "--input", "indir", "--output", "dir_pred.jsonl")
    assert code == 0 and err.startswith("warning: indir: 6 path(s) skipped (only .txt and .jsonl files are read, "
                                        "no dot-files or dot-folders): .git/, .hidden.txt, notes.md, x.json, "
                                        "sub/pipe.txt and 1 more\n")


def test_stdin_in_a_real_process(project):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--params", "params.yaml", "--model", "model",
                           "--input", "-"], input="Zoë visited Frankfurt.\n\nTim Cook likes soup.\n",
                          cwd=project, env=subprocess_env(), check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    recs = jsonl(proc.stdout)
    assert [r["sentence"] for r in recs] == ["Zoë visited Frankfurt.", "Tim Cook likes soup."]
    for rec in recs:
        check_record(rec)


# output contract ---------------------------------------------------------------------------------

def validate_predictions(project: Path, capsys, name: str, records: list[dict]) -> tuple[int, str]:
    raw = project / f"raw_{name}"
    raw.mkdir(exist_ok=True)
    (raw / "pred.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                    encoding="utf-8")
    write_toy_params(project / f"params_{name}.yaml", Path("unused"), **{"validate.on_error": "fail"})
    capsys.readouterr()
    code = run_stage(validate_mod, project, "--params", f"params_{name}.yaml", "--raw-dir", f"raw_{name}",
                     "--out-dir", f"val_{name}", "--metrics", f"metrics/{name}.json",
                     "--details", f"reports/{name}.json")
    return code, capsys.readouterr().err


def test_predictions_pass_validate_unchanged(project, capsys):
    sentences = [r["sentence"] for r in toy_set(20, 0, 0)] + [LONG]
    (project / "many.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    code, out, _ = predict(project, capsys, "--input", "many.txt")
    assert code == 0
    recs = jsonl(out)
    assert sum(len(r["task_B"]) for r in recs) > 0  # there are spans to check
    code, err = validate_predictions(project, capsys, "roundtrip", recs)
    assert code == 0, err
    counts = json.loads((project / "reports" / "roundtrip.json").read_text())
    assert counts["read"] == counts["kept"] == len(recs)
    assert "topic_scores" not in err  # a field our own tools write: no warning


def test_span_scores_are_not_warned_about(project, capsys):
    code, out, _ = predict(project, capsys, LONG)
    recs = jsonl(out)
    assert code == 0 and recs[0]["task_B"]
    code, err = validate_predictions(project, capsys, "scores", recs)
    assert code == 0 and "unknown field" not in err, err


PRETTY = re.compile(
    r"Sentence: (?P<sentence>[^\n]*)\n"
    r"\[Task A\] Predicted category: (?P<topic>\w+) \((?P<p>\d\.\d\d)\)\n"
    r"\[Task B\] Predicted entities:\n"
    r"(?P<entities>(?:  - [^\n]+ \((?:PERSON|LOC|ORG|DATE)\), characters \d+–\d+\n)+|  none\n)")
ENTITY = re.compile(r"  - (?P<text>[^\n]+) \((?P<type>[A-Z]+)\), characters (?P<start>\d+)–(?P<end>\d+)")


def test_pretty_format(project, capsys):
    sentences = ["Tim Cook talked about the flight in Paris.", "Hello", LONG]
    code, out, _ = predict(project, capsys, "--format", "pretty", *sentences)
    assert code == 0
    _, as_json, _ = predict(project, capsys, *sentences)
    expected = jsonl(as_json)
    pos, seen = 0, 0
    for rec in expected:
        m = PRETTY.match(out, pos)
        assert m, out[pos:pos + 300]
        assert m["sentence"] == rec["sentence"] and m["topic"] == rec["task_A"]
        assert m["p"] == f"{rec['topic_scores'][rec['task_A']]:.2f}"
        ents = [e.groupdict() for e in ENTITY.finditer(m["entities"])]
        assert ents == [{"text": s["text"], "type": s["type"], "start": str(s["start"]), "end": str(s["end"])}
                        for s in rec["task_B"]]
        for e in ents:
            assert rec["sentence"][int(e["start"]):int(e["end"])] == e["text"]
        assert (m["entities"] == "  none\n") == (not rec["task_B"])  # no entities: says so
        pos, seen = m.end(), seen + 1
    assert pos == len(out) and seen == 3  # nothing else printed


# caps and errors ---------------------------------------------------------------------------------

def one_line_error(code: int, err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_max_chars(project, capsys, tiny_gpt_neo):
    write_toy_params(project / "params_caps.yaml", tiny_gpt_neo, **{"predict.max_chars": 20, "predict.max_records": 3})
    code, out, err = predict(project, capsys, "short one", "x" * 21, params="params_caps.yaml")
    line = one_line_error(code, err)
    assert "argument 2" in line and "21 characters" in line and "predict.max_chars=20" in line
    code, out, err = predict(project, capsys, "x" * 20, params="params_caps.yaml")
    assert code == 0 and len(jsonl(out)) == 1  # at the cap is fine


def test_max_records(project, capsys, tiny_gpt_neo):
    write_toy_params(project / "params_caps.yaml", tiny_gpt_neo, **{"predict.max_chars": 20, "predict.max_records": 3})
    (project / "four.txt").write_text("a\nb\nc\nd\n", encoding="utf-8")
    code, out, err = predict(project, capsys, "--input", "four.txt", "--output", "capped.jsonl",
                             params="params_caps.yaml")
    line = one_line_error(code, re.split(r"[\r\n]+", err.strip())[-1])  # after the progress bar
    assert "Traceback" not in err
    assert "four.txt:4" in line and "predict.max_records=3" in line
    assert not (project / "capped.jsonl").exists()  # no partial output file
    (project / "three.txt").write_text("a\nb\nc\n", encoding="utf-8")
    code, out, _ = predict(project, capsys, "--input", "three.txt", params="params_caps.yaml")
    assert code == 0 and len(jsonl(out)) == 3


@pytest.mark.parametrize("args, message", [
    (["--input", "nowhere.txt"], "nowhere.txt: input not found"),
    (["", "x"], "argument 1: sentence: empty"),
    (["--input", "bad.jsonl"], "bad.jsonl:1: invalid JSON: Expecting property name enclosed in double quotes at column 2"),
    (["--input", "deep.jsonl"], "deep.jsonl:1: invalid JSON: nested too deeply"),
    (["--input", "bigint.jsonl"], "bigint.jsonl:1: invalid JSON: Exceeds the limit (4300 digits)"),
    (["--input", "noid.jsonl"], "noid.jsonl:1: id: must be a non-empty string"),
    (["a", "--input", "in.txt"], "either SENTENCE arguments or --input"),
    (["--device", "tpu", "x"], "--device 'tpu': expected cpu or cuda"),
])
def test_input_errors_are_one_line(project, capsys, args, message):
    (project / "bad.jsonl").write_text("{not json\n", encoding="utf-8")
    (project / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    (project / "bigint.jsonl").write_text('{"sentence": "s", "n": ' + "9" * 5000 + "}\n", encoding="utf-8")
    (project / "noid.jsonl").write_text(json.dumps({"id": 7, "sentence": "s"}) + "\n", encoding="utf-8")
    (project / "in.txt").write_text("a\n", encoding="utf-8")
    code, _, err = predict(project, capsys, *args)
    assert message in one_line_error(code, err)


def test_missing_model_dir_in_a_real_process(project):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--params", "params.yaml",
                           "--model", "no_such_model", "hello"],
                          cwd=project, env=subprocess_env(), check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "error: model directory 'no_such_model' not found (train it with `dvc repro train`)\n"


# windows -----------------------------------------------------------------------------------------

def test_long_sentence_is_windowed_and_merged_into_one_record(project, capsys):
    predictor = predict_mod.load_predictor(str(project / "model"), device="cpu")
    assert predictor.meta.max_length == MAX_LENGTH and predictor.meta.stride == STRIDE
    rows = predictor.featurizer.encode([{"sentence": LONG}]).rows
    assert len(rows) >= 3  # really split into windows
    n_tokens = rows[-1]["token_start"] + len(rows[-1]["starts"])
    first_window_end = max(rows[0]["ends"])

    code, out, _ = predict(project, capsys, LONG)
    assert code == 0
    recs = jsonl(out)
    assert len(recs) == 1 and recs[0]["sentence"] == LONG
    check_record(recs[0])
    spans = recs[0]["task_B"]
    assert spans and any(s["start"] >= first_window_end for s in spans)  # entities found past window 1

    from pipeline.core.inference import predict_rows
    # batch size 1: each window runs alone (no padding), yet merges to what the CLI's one batch gave
    [merged] = predict_rows(predictor.model, rows, [LONG], predictor.meta, 1, predictor.tokenizer.pad_token_id,
                            predictor.device)
    assert len(merged["tokens"].starts) == n_tokens == len(merged["pred_tags"])  # every token once
    assert merged["spans"] == spans


# text that is not valid Unicode or UTF-8 ------------------------------------------------------------

SURROGATE = "not valid Unicode: a lone surrogate \\u{:04x} at column {} (from a JSON escape?)"


@pytest.mark.parametrize("content, message", [
    ('{"sentence": "fine"}\n{"sentence": "caf\\udc80"}\n', "sur.jsonl:2: sentence: " + SURROGATE.format(0xDC80, 4)),
    ('{"id": "\\ud800", "sentence": "ok"}\n', "sur.jsonl:1: id: " + SURROGATE.format(0xD800, 1)),
    ('{"sentence": "a", "sentence": "b"}\n', ("sur.jsonl:1: invalid JSON: duplicate key 'sentence' in one object "
                                            "(only one value can be kept)")),
    ('{"sentence": "a", "score": NaN}\n', "sur.jsonl:1: invalid JSON: NaN is not a JSON value (use null, or a number)"),
])
def test_bad_jsonl_lines_are_one_line_naming_file_and_line(project, capsys, content, message):
    (project / "sur.jsonl").write_text(content, encoding="utf-8")
    code, out, err = predict(project, capsys, "--input", "sur.jsonl")
    assert one_line_error(code, err) == f"error: {message}" and out == ""


def test_bytes_that_are_not_utf8_name_the_line(project, capsys):
    (project / "bytes.txt").write_bytes(b"fine\n\n\xffbad\n")
    code, out, err = predict(project, capsys, "--input", "bytes.txt")
    assert one_line_error(code, err) == "error: bytes.txt:3: invalid UTF-8 (byte 0xff at column 1)" and out == ""
    (project / "bytes.jsonl").write_bytes(b'{"sentence": "caf\xe9"}\n')  # Latin-1, not UTF-8
    code, out, err = predict(project, capsys, "--input", "bytes.jsonl")
    assert one_line_error(code, err) == "error: bytes.jsonl:1: invalid UTF-8 (byte 0xe9 at column 18)"


@pytest.mark.parametrize("data, fmt, message", [
    (b"fine\ncaf\x9c\n", "txt", "<stdin>:2: invalid UTF-8 (byte 0x9c at column 4)"),
    (b'{"sentence": "\\udc80"}\n', "jsonl", "<stdin>:1: sentence: " + SURROGATE.format(0xDC80, 1)),
])
def test_stdin_that_is_not_valid_text_names_the_line(project, capsys, monkeypatch, data, fmt, message):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = predict(project, capsys, "--input", "-", "--input-format", fmt)
    assert one_line_error(code, err) == f"error: {message}" and out == ""


def test_an_argument_with_bytes_that_are_not_utf8_fails_before_the_model_loads(project, capsys):
    # Python decodes argv with surrogateescape: byte 0x9c arrives as U+DC9C
    code = run_stage(predict_mod, project, "--params", "params.yaml", "--model", "no_such_model", "ok", "caf\udc9c")
    assert one_line_error(code, capsys.readouterr().err) == ("error: argument 2: sentence: invalid UTF-8 "
                                                             "(byte 0x9c at column 4)")


def test_an_argument_with_bytes_that_are_not_utf8_in_a_real_process(project):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "predict", "--params", "params.yaml", "--model", "model",
                           b"ok", b"caf\x9c"], cwd=project, env=subprocess_env(), check=False, capture_output=True,
                          timeout=120)
    assert b"Traceback" not in proc.stderr
    assert (proc.returncode, proc.stdout) == (1, b"")
    assert proc.stderr == b"error: argument 2: sentence: invalid UTF-8 (byte 0x9c at column 4)\n"


# --output: never an input, never a device, FIFO or directory; symlinks written through ---------------

NEVER_REPLACED = "an output must be a regular file or a new path, and is never replaced"


def test_output_that_is_an_input_is_refused_before_the_model_loads(project, capsys):
    (project / "same.txt").write_text("Tim Cook flew to Paris.\n", encoding="utf-8")
    (project / "same_dir").mkdir(exist_ok=True)
    (project / "same_dir" / "a.txt").write_text("Zoë ate soup.\n", encoding="utf-8")
    link = project / "same_link.txt"
    link.unlink(missing_ok=True)
    link.symlink_to("same.txt")
    for given, output, message in [
        ("same.txt", "same.txt", "--output same.txt: would replace the input same.txt; write the output elsewhere"),
        ("same.txt", "same_link.txt", "--output same_link.txt: would replace the input same.txt; write the output elsewhere"),
        ("same_dir", "same_dir/a.txt", ("--output same_dir/a.txt: would replace the input same_dir; write the "
                                        "output elsewhere")),
        ("same_dir", "same_dir/new.jsonl", ("--output same_dir/new.jsonl: would replace the input same_dir; "
                                            "write the output elsewhere")),
    ]:
        # --model names nothing: the output is refused before the model would load
        code = run_stage(predict_mod, project, "--params", "params.yaml", "--model", "no_such_model",
                         "--input", given, "--output", output)
        assert one_line_error(code, capsys.readouterr().err) == f"error: {message}"
    assert (project / "same.txt").read_text(encoding="utf-8") == "Tim Cook flew to Paris.\n"
    assert (project / "same_dir" / "a.txt").read_text(encoding="utf-8") == "Zoë ate soup.\n"
    assert sorted(p.name for p in (project / "same_dir").iterdir()) == ["a.txt"]
    assert link.is_symlink()


def test_devices_fifos_and_directories_are_left_as_they_were(project, capsys):
    fifo, folder = project / "out_fifo", project / "out_dir"
    if not fifo.exists():
        os.mkfifo(fifo)
    folder.mkdir(exist_ok=True)
    link = project / "out_fifo_link"
    link.unlink(missing_ok=True)
    link.symlink_to(fifo)
    for output, message in [("/dev/null", f"/dev/null: is a character device; {NEVER_REPLACED}"),
                            ("out_fifo", f"out_fifo: is a FIFO (named pipe); {NEVER_REPLACED}"),
                            ("out_fifo_link", (f"out_fifo_link (symlink to {fifo}): is a FIFO (named pipe); "
                                              f"{NEVER_REPLACED}")),
                            ("out_dir", f"out_dir: is a directory; {NEVER_REPLACED}")]:
        code = run_stage(predict_mod, project, "--params", "params.yaml", "--model", "no_such_model",
                         "--output", output, "Tim Cook flew to Paris.")
        assert one_line_error(code, capsys.readouterr().err) == f"error: {message}"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert folder.is_dir() and not any(folder.iterdir()) and link.is_symlink()


def test_a_symlinked_output_is_written_through(project, capsys):
    (project / "real").mkdir(exist_ok=True)
    target = project / "real" / "pred.jsonl"
    target.write_text("old\n", encoding="utf-8")
    link = project / "pred_link.jsonl"
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    code, out, err = predict(project, capsys, "--output", "pred_link.jsonl", "Tim Cook flew to Paris.")
    assert code == 0 and out == "" and "1 predictions written to pred_link.jsonl" in err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [r["sentence"] for r in jsonl(target.read_text(encoding="utf-8"))] == ["Tim Cook flew to Paris."]
