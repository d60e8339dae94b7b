"""The few numbers people compare across runs (metrics/*.json, what `dvc exp show` and `dvc metrics
diff` list), taken from each stage's full report (reports/*.json, same keys, every detail).

Few on purpose: after a one-param training experiment, `dvc exp show --only-changed` must fit a
200-column terminal with every cell readable. DVC names each column by its full key
(`test.topic.macro_f1`) and adds one for each changed dependency (a model directory's hash is 36
characters), so measured on a train.* experiment: the kept epoch, the epochs run, and per split
topic macro-F1 and NER F1 fit (about 190 columns); topic accuracy too did not. Accuracy, per-class
and per-type scores, precision/recall, seqeval, counts and timings stay in the reports and plots.
"""
from __future__ import annotations

from pipeline.core.records import SPLITS


def data_headline(report: dict) -> dict:
    """validate: records kept and rejected, per split, and annotated per task."""
    return {"kept": report["kept"], "rejected": report["rejected"],
            "records": {s: report[s]["records"] for s in SPLITS},
            "annotated": {"topic": sum(report[s]["topic_annotated"] for s in SPLITS),
                          "ner": sum(report[s]["ner_annotated"] for s in SPLITS)}}


def featurize_headline(report: dict, encoder_source: str) -> dict:
    """featurize: how many sentences needed windows, how many spans did not align, and where the
    encoder came from (directory | package | cache | hub)."""
    return {"windowed_records": report["windowed_records"],
            "misaligned_spans": report["spans"] - report["aligned"], "encoder_source": encoder_source}


def train_headline(report: dict) -> dict:
    """train: the kept epoch and how many ran."""
    return {"best_epoch": report["best_epoch"], "epochs_run": report["epochs_run"]}


def eval_headline(report: dict) -> dict:
    """evaluate, per split: topic macro-F1 and NER exact-span F1 (absent where the report has
    nothing to score, never 0)."""
    out = {}
    for split, result in report.items():
        out[split] = {}
        if "topic" in result:
            out[split]["topic"] = {"macro_f1": result["topic"]["macro_f1"]}
        if "ner" in result:
            out[split]["ner"] = {"f1": result["ner"]["f1"]}
    return out
