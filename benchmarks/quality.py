"""Real-data quality benchmark: the multi-task pipeline against single-task training and the usual peers.

    python benchmarks/quality.py --quick                  # smoke run, subsample + 2 epochs (<= 10 min, 2 CPU cores)
    python benchmarks/quality.py                          # full main table (all data, params.yaml defaults)
    python benchmarks/quality.py --ablations              # + pooling x label_subwords grid, scored on dev only
    python benchmarks/quality.py --variant lr1e-4:train.lr_encoder=1e-4 --only-variants
    python benchmarks/quality.py --encoder EleutherAI/gpt-neo-125m   # any AutoModel (hub id or directory)

Data: Re-DocRED sentences (NER only) and HuffPost headlines (topic only), both already in the
record schema (/work/shared/datasets/README.md). They are read from their paths (never copied into
the repository) and written, with an explicit `split` field, as raw files into a scratch directory.
Held-out parts are fixed by a hash: Re-DocRED by *document* (all sentences of an article land in
the same split, so names repeated within an article do not leak), HuffPost by headline text.
`dev` is what training uses for early stopping and what the ablations/variants are judged on;
`test` is never used for any choice and is reported only in the main table. Ablation and variant
runs are given data without the test part at all.

Systems in the main table (same encoder, same data, same scorer):
  multitask        the pipeline, both tasks (records carry one task each: partial labels)
  single-task NER  the pipeline on the NER data only, train.alpha: 0
  single-task topic  the pipeline on the topic data only, train.beta: 0
  HF token-cls     AutoModelForTokenClassification, the run_ner recipe (first-subword labels,
                   AdamW lr 5e-5, no weight decay, linear decay without warm-up, batch 16, 3 epochs,
                   grad-norm clip 1.0, last epoch kept), written here without Trainer
  HF seq-cls       AutoModelForSequenceClassification, the same recipe on the topic data
  TF-IDF + LR      word 1-2-gram TF-IDF + logistic regression, C by 5-fold CV (macro-F1) on train
The pipeline systems run as the stage commands (`python -m pipeline validate|featurize|train|
evaluate|predict`) in a scratch directory with a params file written here (a copy of params.yaml
with encoder.name and data.raw_dir replaced, validate.on_error: drop, and the run's overrides).
The HF peers are scored through pipeline.core.scoring.score_split (pipeline.core.inference.
predict_rows, pipeline.core.align decoding, pipeline.core.metrics), the same code the evaluate stage
uses, so every number is exact character-span micro P/R/F1 (and topic accuracy / macro-F1) on the
same validated records.

Writes <work-dir>/results.json (everything) and <work-dir>/results.md (the tables); prints the tables.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# light modules (no torch) here; the heavy ones are imported where they are used
from pipeline.core.records import hash_normalised, hash_unit, normalise
from pipeline.storage import files
from pipeline.storage import params as params_mod
from pipeline.storage.errors import PipelineError
from pipeline.storage.params import with_overrides

REPO = Path(__file__).resolve().parents[1]

DATA_DIR = REPO.parent / "shared" / "datasets"


def typed_params(tree: dict, source: str) -> params_mod.Params:
    """The typed params of a tree (checked as the stages check it); a bad key ends the run in one line."""
    try:
        return params_mod.check(tree, source)
    except PipelineError as exc:
        raise SystemExit(f"error: {exc}") from None


# ----------------------------------------------------------------------------- data and splits

def group_key(rec: dict, kind: str) -> str:
    """Re-DocRED ids are <dataset>-<doc>-<sentence>: group by document. Otherwise by normalised text."""
    if kind == "ner" and rec.get("id"):
        m = re.fullmatch(r"(.+)-\d+", rec["id"])
        if m:
            return "doc:" + m.group(1)
    return "text:" + normalise(rec["sentence"])


def assign_splits(records: list[dict], kind: str, dev: float, test: float, salt: str) -> list[dict]:
    """Explicit split per record; duplicates of one normalised sentence follow its first occurrence
    (validate merges them; it would reject one sentence pinned to two splits)."""
    first: dict[str, str] = {}
    out = []
    for rec in records:
        split = hash_normalised(group_key(rec, kind), dev, test, salt)
        split = first.setdefault(normalise(rec["sentence"]), split)
        out.append({**rec, "split": split})
    return out


def subsample(records: list[dict], caps: dict[str, int | None], salt: str) -> list[dict]:
    """At most caps[split] records per split, chosen by a hash of the id (deterministic)."""
    out = []
    for split in ("train", "dev", "test"):
        part = [r for r in records if r["split"] == split]
        cap = caps.get(split)
        if cap is not None and len(part) > cap:
            part = sorted(part, key=lambda r: hash_unit(r.get("id") or r["sentence"], salt + "/sub"))[:cap]
        out.extend(part)
    return out


# ----------------------------------------------------------------------------- running the stage CLIs

class Runner:
    def __init__(self, work: Path, base_params: dict, encoder: str, threads: int | None, log):
        self.work, self.base, self.encoder, self.threads, self.log = work, base_params, encoder, threads, log
        self.prepared: dict[str, tuple[Path, Path]] = {}

    def env(self) -> dict:
        e = dict(os.environ)
        e.setdefault("DVC_NO_ANALYTICS", "1")
        e.setdefault("TOKENIZERS_PARALLELISM", "false")
        if self.threads:
            for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                e[k] = str(self.threads)
        return e

    def params(self, raw_dir: Path, overrides: dict) -> dict:
        return with_overrides(self.base, {"encoder.name": self.encoder, "data.raw_dir": str(raw_dir),
                                          "validate.on_error": "drop", **overrides})

    def write_params(self, path: Path, p: dict) -> Path:
        import yaml

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(p, sort_keys=False))
        return path

    def stage(self, name: str, args: list[str], cwd: Path) -> float:
        cmd = [sys.executable, "-m", "pipeline", name, *args]
        t0 = time.time()
        with open(cwd / f"{name}.log", "w") as log:
            proc = subprocess.run(cmd, check=False, cwd=cwd, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        took = time.time() - t0
        if proc.returncode != 0:
            tail = (cwd / f"{name}.log").read_text()[-3000:]
            raise SystemExit(f"stage {name} failed in {cwd} ({proc.returncode}):\n{tail}")
        self.log(f"    {name}: {took:.0f}s")
        return took

    def prepare(self, data_key: str, raw_dir: Path, tok_overrides: dict) -> tuple[Path, Path, dict]:
        """validate (once per data) and featurize (once per data x tokenize params x encoder)."""
        vdir = self.work / "prep" / data_key / "validated"
        if not (vdir / "train.jsonl").exists():
            d = vdir.parent
            pp = self.write_params(d / "params.yaml", self.params(raw_dir, {}))
            self.stage("validate", ["--params", str(pp), "--raw-dir", str(raw_dir), "--out-dir", str(vdir),
                                    "--metrics", str(d / "data.headline.json"), "--details", str(d / "data.json")], d)
        tkey = hashlib.sha256(json.dumps([self.encoder, tok_overrides], sort_keys=True).encode()).hexdigest()[:10]
        tdir = self.work / "prep" / data_key / f"feat-{tkey}"
        if not (tdir / "features" / "meta.json").exists():
            tdir.mkdir(parents=True, exist_ok=True)
            pp = self.write_params(tdir / "params.yaml", self.params(raw_dir, tok_overrides))
            self.stage("featurize", ["--params", str(pp), "--in-dir", str(vdir), "--out-dir", str(tdir / "features"),
                                     "--metrics", str(tdir / "featurize.headline.json"),
                                     "--details", str(tdir / "featurize.json"), "--report", str(tdir / "misaligned.jsonl")],
                       tdir)
        data_stats = json.loads((vdir.parent / "data.json").read_text())
        return vdir, tdir / "features", data_stats

    def pipeline_run(self, name: str, data_key: str, raw_dir: Path, overrides: dict, predict_input: Path | None):
        """The pipeline's stages for one configuration; returns the evaluate metrics and timings."""
        tok_over = {k: v for k, v in overrides.items() if k.startswith("tokenize.")}
        vdir, tdir, data_stats = self.prepare(data_key, raw_dir, tok_over)
        run = self.work / "runs" / name
        run.mkdir(parents=True, exist_ok=True)
        p = self.params(raw_dir, overrides)
        pp = self.write_params(run / "params.yaml", p)
        self.log(f"  [{name}] {json.dumps(overrides)}")
        train_wall = self.stage("train", ["--params", str(pp), "--features", str(tdir), "--validated", str(vdir),
                                          "--model-dir", str(run / "model"), "--checkpoint-dir", str(run / "checkpoint"),
                                          "--metrics", str(run / "train.headline.json"), "--details", str(run / "train.json"), "--speed", str(run / "speed.json"),
                                          "--live-dir", str(run / "dvclive"),
                                          "--plot", str(run / "train_curves.png")], run)
        self.stage("evaluate", ["--params", str(pp), "--model-dir", str(run / "model"), "--features", str(tdir),
                                "--validated", str(vdir), "--metrics", str(run / "eval.headline.json"), "--details", str(run / "eval.json"),
                                "--errors", str(run / "errors.jsonl"), "--plots-dir", str(run / "plots")], run)
        train = {**json.loads((run / "train.json").read_text()), **json.loads((run / "speed.json").read_text())}
        out = {"name": name, "overrides": overrides, "train": train,
               "train_wall_s": round(train_wall, 1), "eval": json.loads((run / "eval.json").read_text()),
               "model_dir": str(run / "model"), "validated": str(vdir), "data": {k: v for k, v in data_stats.items() if not isinstance(v, dict)}}
        if predict_input is not None:  # the predict stage too, on the held-out sentences
            self.stage("predict", ["--params", str(pp), "--model", str(run / "model"), "--input", str(predict_input),
                                   "--output", str(run / "predictions.jsonl")], run)
            out["predictions"] = str(run / "predictions.jsonl")
        return out


# ----------------------------------------------------------------------------- HF recipe peers

def hf_load(loader, name: str, **kw):
    from pipeline.storage.hub import load_pretrained, quiet_transformers

    quiet_transformers()
    return load_pretrained(loader, name, **kw)


class Adapter:
    """Wrap an HF *ForTokenClassification / *ForSequenceClassification so pipeline.core.inference can run
    it (the multi-task model's interface: both heads' logits)."""

    def __init__(self, model, n_topics: int, n_tags: int, kind: str):
        self.model, self.n_topics, self.n_tags, self.kind = model, n_topics, n_tags, kind

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, input_ids, attention_mask):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        b, t = input_ids.shape
        if self.kind == "token":
            return {"ner_logits": logits, "topic_logits": logits.new_zeros(b, self.n_topics)}
        zeros = logits.new_zeros(b, t, self.n_tags)
        zeros[..., 0] = 1.0  # tag 0 is O
        return {"topic_logits": logits, "ner_logits": zeros}


def hf_train(model, rows: list[dict], target: str, pad_id: int, epochs: int, batch_size: int, lr: float,
             seed: int, log) -> float:
    """The Trainer defaults used by run_ner / run_glue: AdamW (no weight decay), linear decay from
    lr to 0 without warm-up, grad-norm clip 1.0, random order, dynamic padding; the last epoch is kept."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from pipeline.core.inference import collate

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps = math.ceil(len(rows) / batch_size) * epochs
    sched = get_linear_schedule_with_warmup(opt, 0, steps)
    model.train()
    t0 = time.time()
    for epoch in range(epochs):
        order = torch.randperm(len(rows), generator=g).tolist()
        total, n = 0.0, 0
        for b in range(0, len(order), batch_size):
            batch = collate([rows[i] for i in order[b:b + batch_size]], pad_id)
            labels = batch["ner_labels"] if target == "ner" else batch["topic_labels"]
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            total, n = total + out.loss.item(), n + 1
        log(f"    epoch {epoch + 1}/{epochs}: loss {total / max(n, 1):.4f} ({time.time() - t0:.0f}s)")
    return time.time() - t0


def hf_peer(kind: str, encoder: str, p: params_mod.Params, vdir: Path, epochs: int, lr: float, batch_size: int,
            log) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from pipeline.core.features import FeatureConfig, Featurizer
    from pipeline.core.model import ModelMeta
    from pipeline.core.scoring import score_split
    from pipeline.storage.hub import load_tokenizer

    topics, entities, tags = p.labels.topics, p.labels.entities, p.tag_names
    tok = load_tokenizer(encoder)
    t = p.tokenize
    fe = Featurizer(tok, FeatureConfig(t.max_length, t.stride, "first", t.misaligned, topics, tags))
    # what predict_rows / score_split read of a model; pooling does not apply to the HF heads
    meta = ModelMeta(encoder_name=encoder, pooling=p.encoder.pooling, topics=topics, entities=entities, tags=tags,
                     max_length=t.max_length, stride=t.stride, label_subwords="first", misaligned=t.misaligned,
                     n_prefix=len(fe.prefix))
    splits = {s: list(files.read_jsonl(vdir / f"{s}.jsonl")) for s in ("train", "dev", "test")}
    rows = {s: fe.encode(recs).rows for s, recs in splits.items()}
    torch.manual_seed(p.train.seed)  # the new classifier head's init: not left to whatever ran before
    if kind == "token":
        model = hf_load(AutoModelForTokenClassification.from_pretrained, encoder, num_labels=len(tags),
                        id2label=dict(enumerate(tags)), label2id={x: i for i, x in enumerate(tags)})
    else:
        model = hf_load(AutoModelForSequenceClassification.from_pretrained, encoder, num_labels=len(topics),
                        id2label=dict(enumerate(topics)), label2id={x: i for i, x in enumerate(topics)})
    model.config.pad_token_id = tok.pad_token_id  # GPT-style models need it to find the last token
    train_rows = rows["train"]
    if kind == "seq":  # one row per record (windows of a long sentence would repeat its label)
        train_rows = [r for r in train_rows if r["window"] == 0]
    secs = hf_train(model, train_rows, "ner" if kind == "token" else "topic", tok.pad_token_id, epochs, batch_size,
                    lr, p.train.seed, log)
    wrapped = Adapter(model, len(topics), len(tags), kind)
    ev = {}
    for s in ("dev", "test"):
        if splits[s]:
            ev[s] = score_split(wrapped, rows[s], splits[s], meta, 32, tok.pad_token_id, torch.device("cpu"))
    return {"model": wrapped, "tokenizer": tok, "featurizer": fe, "meta": meta, "train_s": round(secs, 1),
            "eval": ev}


# ----------------------------------------------------------------------------- TF-IDF + LR

def tfidf_lr(vdir: Path, topics: list[str], seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline

    from pipeline.core.metrics import topic_metrics

    splits = {s: [r for r in files.read_jsonl(vdir / f"{s}.jsonl") if r["task_A"] is not None] for s in ("train", "dev", "test")}
    x, y = [r["sentence"] for r in splits["train"]], [r["task_A"] for r in splits["train"]]
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=5000))
    grid = GridSearchCV(pipe, {"logisticregression__C": [0.1, 0.3, 1, 3, 10, 30, 100]}, scoring="f1_macro",
                        cv=StratifiedKFold(5, shuffle=True, random_state=seed), n_jobs=1)
    from threadpoolctl import threadpool_limits

    t0 = time.time()
    with threadpool_limits(limits=1):  # BLAS threads on a shared 2-core machine: ~10x slower, not faster
        grid.fit(x, y)
    secs = time.time() - t0
    ev = {}
    for s in ("dev", "test"):
        if splits[s]:
            pred = grid.predict([r["sentence"] for r in splits[s]])
            ev[s] = {"topic": topic_metrics([r["task_A"] for r in splits[s]], list(pred), topics)}
    return {"model": grid.best_estimator_, "C": grid.best_params_["logisticregression__C"], "train_s": round(secs, 1),
            "eval": ev}


# ----------------------------------------------------------------------------- throughput

def throughput(predict_fn, sentences: list[str], repeats: int = 1) -> float:
    t0 = time.time()
    for _ in range(repeats):
        predict_fn(sentences)
    return round(len(sentences) * repeats / (time.time() - t0), 1)


def pipeline_predict_fn(model_dir: str):
    from pipeline.stages.predict import load_predictor

    pred = load_predictor(model_dir, batch_size=32, device="cpu")
    return lambda sents: pred.predict([{"sentence": s} for s in sents])


def hf_predict_fn(peer: dict):
    import torch

    from pipeline.core.inference import predict_rows

    def fn(sents):
        rows = peer["featurizer"].encode([{"sentence": s} for s in sents]).rows
        return predict_rows(peer["model"], rows, sents, peer["meta"], 32, peer["tokenizer"].pad_token_id,
                            torch.device("cpu"))
    return fn


# ----------------------------------------------------------------------------- tables

def f(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def row_metrics(ev: dict, split: str, entities: list[str]) -> dict:
    m = ev.get(split, {})
    ner, topic = m.get("ner"), m.get("topic")
    out = {"ner_p": ner and ner["precision"], "ner_r": ner and ner["recall"], "ner_f1": ner and ner["f1"],
           "topic_acc": topic and topic["accuracy"], "topic_macro_f1": topic and topic["macro_f1"]}
    for t in entities:
        out[f"f1_{t}"] = ner[t]["f1"] if ner and t in ner else None
    return out


def main_table(rows: list[dict], split: str, entities: list[str]) -> str:
    head = (["system", "NER P", "NER R", "NER F1"] + [f"{t} F1" for t in entities]
            + ["topic acc", "topic macro-F1", "train s", "epochs (best)", "predict sent/s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"][split]
        cells = [r["system"], f(m["ner_p"]), f(m["ner_r"]), f(m["ner_f1"])] + [f(m[f"f1_{t}"]) for t in entities]
        cells += [f(m["topic_acc"]), f(m["topic_macro_f1"]), f"{r['train_s']:.0f}", r["epochs"],
                  "–" if r.get("sent_per_s") is None else f"{r['sent_per_s']:.0f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def variant_table(rows: list[dict], entities: list[str]) -> str:
    head = ["variant", "overrides", "dev NER F1"] + [f"{t}" for t in entities] + \
           ["dev topic acc", "dev topic macro-F1", "mean", "train s", "epochs (best)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]["dev"]
        mean = None if m["ner_f1"] is None or m["topic_macro_f1"] is None else (m["ner_f1"] + m["topic_macro_f1"]) / 2
        ov = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["overrides"].items()) or "(defaults)"
        cells = [r["system"], ov, f(m["ner_f1"])] + [f(m[f"f1_{t}"]) for t in entities] + \
                [f(m["topic_acc"]), f(m["topic_macro_f1"]), f(mean), f"{r['train_s']:.0f}", r["epochs"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_value(text: str):
    """int, float (also 1e-4, which YAML 1.1 would read as a string), else YAML (true, null, words)."""
    import yaml

    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_variant(spec: str) -> tuple[str, dict]:
    """NAME:key=value,key=value (keys dotted as in params.yaml)."""
    name, _, rest = spec.partition(":")
    over = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        over[k.strip()] = parse_value(v.strip())
    return name, over


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ner-data", type=Path, default=DATA_DIR / "redocred-dev.jsonl", help="NER-only records (default: %(default)s)")
    ap.add_argument("--topic-data", type=Path, default=DATA_DIR / "huffpost-topics.jsonl", help="topic-only records (default: %(default)s)")
    ap.add_argument("--encoder", default="sentence-transformers/all-MiniLM-L6-v2",
                    help="hub id or local directory (default: %(default)s, offline through its verified packaged "
                         "copy, pipeline.storage.packaged)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml", help="base params (default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a param for every pipeline run (e.g. train.lr_encoder=1e-4); repeatable")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/quality-bench"), help="scratch directory (default: %(default)s)")
    ap.add_argument("--dev", type=float, default=0.2, help="held-out dev fraction, for early stopping and tuning (default: %(default)s)")
    ap.add_argument("--test", type=float, default=0.2, help="held-out test fraction, never used for tuning (default: %(default)s)")
    ap.add_argument("--split-salt", default="quality-bench-v1", help="hash salt of the split (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="subsample and 2 epochs: <= 10 min on 2 CPU cores")
    ap.add_argument("--max-train", type=int, default=None, help="cap train records per dataset")
    ap.add_argument("--max-eval", type=int, default=None, help="cap dev and test records per dataset")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every neural system (default: "
                    "params train.epochs for the pipeline, 3 for the HF recipes; --quick: 2)")
    ap.add_argument("--systems", default="multitask,single_ner,single_topic,hf_token,hf_seq,tfidf",
                    help="comma-separated subset of the main table (default: all)")
    ap.add_argument("--ablations", action="store_true",
                    help="also run the multi-task pipeline for encoder.pooling x tokenize.label_subwords (dev only)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                    help="an extra pipeline run with overrides, scored on dev only; repeatable. The key data=ner or "
                    "data=topic trains on that dataset only (a single-task variant; add train.alpha=0 / train.beta=0)")
    ap.add_argument("--only-variants", action="store_true", help="skip the main table (ablations/variants only)")
    ap.add_argument("--ablation-max-train", type=int, default=None, help="cap train records per dataset for ablations/variants")
    ap.add_argument("--ablation-max-dev", type=int, default=None, help="cap dev records per dataset for ablations/variants")
    ap.add_argument("--threads", type=int, default=None, help="torch threads here and in the stage processes")
    args = ap.parse_args()
    if args.quick:
        args.max_train = args.max_train or 500
        args.max_eval = args.max_eval or 200
        args.epochs = args.epochs or 2
    return args


@dataclass
class Bench:
    """One run's settings, data and results, shared by the parts of main()."""
    args: argparse.Namespace
    work: Path
    log: Callable[[str], None]
    t_start: float
    encoder: str
    base: params_mod.Params
    global_over: dict
    epochs_over: dict
    runner: Runner
    tag: str                      # names this data selection's raw files and runs
    raw: Path                     # raw/<tag>/{ner,topic}/: the selected records with their splits
    ner: list[dict]
    top: list[dict]
    counts: dict
    heldout: list[str]            # the test sentences (dev without a test part), for throughput and predict
    heldout_file: Path
    results: dict

    @property
    def entities(self) -> list[str]:
        return self.base.labels.entities

    @property
    def topics(self) -> list[str]:
        return self.base.labels.topics

    def add_row(self, system: str, ev: dict, train_s: float, epochs: str, sps, extra=None) -> None:
        self.results["main"].append({"system": system,
                                     "metrics": {s: row_metrics(ev, s, self.entities) for s in ("dev", "test")},
                                     "train_s": train_s, "epochs": epochs, "sent_per_s": sps, "eval": ev,
                                     **(extra or {})})
        self.log(f"  {system}: {json.dumps(self.results['main'][-1]['metrics'])}  train {train_s}s, {sps} sent/s")


def setup(args: argparse.Namespace) -> Bench:
    """Logging, threads, params, and the data: explicit splits, subsampled, written as raw files (scratch only)."""
    import torch

    t_start = time.time()
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    logf = open(work / "log.txt", "a")  # noqa: SIM115 (open for the whole run)

    def log(msg: str) -> None:
        line = f"[{time.time() - t_start:6.0f}s] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    if args.threads:
        torch.set_num_threads(args.threads)
    for flag, path in (("--ner-data", args.ner_data), ("--topic-data", args.topic_data)):
        if not path.is_file():
            raise SystemExit(f"error: {path}: no such file; the public datasets are expected in {DATA_DIR} "
                             f"(beside the repository), or pass {flag} PATH")
    encoder = args.encoder
    try:
        base = params_mod.load(args.params)
    except PipelineError as exc:
        raise SystemExit(f"error: {exc}") from None
    global_over = dict(parse_variant("x:" + ",".join(args.set))[1]) if args.set else {}
    log(f"encoder {encoder}; work dir {work}; torch threads {torch.get_num_threads()}")

    ner = assign_splits(files.read_jsonl(args.ner_data), "ner", args.dev, args.test, args.split_salt)
    top = assign_splits(files.read_jsonl(args.topic_data), "topic", args.dev, args.test, args.split_salt)
    caps = {"train": args.max_train, "dev": args.max_eval, "test": args.max_eval}
    ner, top = subsample(ner, caps, args.split_salt), subsample(top, caps, args.split_salt)
    tag = f"{'q' if args.quick else 'f'}-{args.max_train}-{args.max_eval}-{args.dev}-{args.test}-{args.split_salt}"
    raw = work / "raw" / tag
    files.write_jsonl(raw / "ner" / args.ner_data.name, ner)
    files.write_jsonl(raw / "topic" / args.topic_data.name, top)
    counts = {name: {s: sum(r["split"] == s for r in recs) for s in ("train", "dev", "test")}
              for name, recs in (("ner", ner), ("topic", top))}
    log(f"records per split: {counts}")
    heldout = [r["sentence"] for r in ner + top if r["split"] == "test"] or \
              [r["sentence"] for r in ner + top if r["split"] == "dev"]
    heldout_file = raw.parent / f"{tag}-heldout.txt"
    heldout_file.write_text("\n".join(s.replace("\n", " ") for s in heldout) + "\n", encoding="utf-8")
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "encoder": encoder,
               "args": {k: str(v) for k, v in vars(args).items()},
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                           "threads": torch.get_num_threads()},
               "records": counts, "main": [], "variants": []}
    return Bench(args, work, log, t_start, encoder, base, global_over,
                 {"train.epochs": args.epochs} if args.epochs else {}, Runner(work, base.tree(), encoder, args.threads, log),
                 tag, raw, ner, top, counts, heldout, heldout_file, results)


def run_pipeline_systems(b: Bench, systems: list[str]) -> None:
    """The main table's pipeline rows: multi-task, single-task NER, single-task topic."""
    specs = {"multitask": ("multi-task (pipeline)", "both", b.raw, {}),
             "single_ner": ("single-task NER (pipeline, alpha 0)", "ner", b.raw / "ner", {"train.alpha": 0.0}),
             "single_topic": ("single-task topic (pipeline, beta 0)", "topic", b.raw / "topic", {"train.beta": 0.0})}
    for key, (label, data_key, raw_dir, over) in specs.items():
        if key not in systems:
            continue
        res = b.runner.pipeline_run(f"{b.tag}-{key}", f"{b.tag}-{data_key}", raw_dir,
                                    {**b.global_over, **b.epochs_over, **over},
                                    b.heldout_file if key == "multitask" else None)
        sps = throughput(pipeline_predict_fn(res["model_dir"]), b.heldout)
        tr = res["train"]
        extra = {"train_wall_s": res["train_wall_s"], "data": res["data"]}
        if "predictions" in res:  # the predict stage's output, scored: must equal evaluate's test numbers
            extra["predict_stage_check"] = score_predictions(res["predictions"], b.ner + b.top, b.entities, b.topics)
        b.add_row(label, res["eval"], tr["train_seconds"], f"{tr['epochs_run']} ({tr['best_epoch']})", sps, extra)


def run_peers(b: Bench, systems: list[str]) -> None:
    """The main table's peers: the HF run_ner / run_glue recipes and TF-IDF + LR."""
    p_all = typed_params(b.runner.params(b.raw, b.global_over), f"{b.args.params} with --set overrides")
    hf_epochs = b.args.epochs or 3
    for key, kind, data_key, label in (("hf_token", "token", "ner", "HF AutoModelForTokenClassification (run_ner recipe)"),
                                       ("hf_seq", "seq", "topic", "HF AutoModelForSequenceClassification (same recipe)")):
        if key not in systems:
            continue
        vdir, _, _ = b.runner.prepare(f"{b.tag}-{data_key}", b.raw / data_key, {})
        b.log(f"  [{key}] lr 5e-5, batch 16, {hf_epochs} epochs")
        peer = hf_peer(kind, b.encoder, p_all, vdir, hf_epochs, 5e-5, 16, b.log)
        b.add_row(label, peer["eval"], peer["train_s"], str(hf_epochs), throughput(hf_predict_fn(peer), b.heldout))
        del peer
    if "tfidf" in systems:
        from threadpoolctl import threadpool_limits

        vdir, _, _ = b.runner.prepare(f"{b.tag}-topic", b.raw / "topic", {})
        res = tfidf_lr(vdir, b.topics, b.base.train.seed)
        with threadpool_limits(limits=1):
            sps = throughput(lambda s: res["model"].predict(s), b.heldout, repeats=3)
        b.add_row(f"TF-IDF 1-2-gram + LR (C={res['C']} by 5-fold CV)", res["eval"], res["train_s"], "–", sps)


def run_variants(b: Bench) -> None:
    """--ablations and --variant runs, on data without its test part, scored on dev only."""
    args = b.args
    variants = []
    if args.ablations:
        for pooling in ("mean", "last", "weighted_mean"):
            for lab in ("first", "last", "all"):
                variants.append((f"{pooling}/{lab}", {"encoder.pooling": pooling, "tokenize.label_subwords": lab}))
    variants += [parse_variant(v) for v in args.variant]
    if not variants:
        return
    b.log("ablations / variants (dev only; their data has no test part)")
    vraw = b.work / "raw" / f"{b.tag}-notest-{args.ablation_max_train}-{args.ablation_max_dev}"
    vcaps = {"train": args.ablation_max_train, "dev": args.ablation_max_dev, "test": 0}
    vner = subsample([r for r in b.ner if r["split"] != "test"], vcaps, args.split_salt)
    vtop = subsample([r for r in b.top if r["split"] != "test"], vcaps, args.split_salt)
    files.write_jsonl(vraw / "ner" / args.ner_data.name, vner)
    files.write_jsonl(vraw / "topic" / args.topic_data.name, vtop)
    b.results["variant_records"] = {name: {s: sum(r["split"] == s for r in recs) for s in ("train", "dev")}
                                    for name, recs in (("ner", vner), ("topic", vtop))}
    b.log(f"variant records per split: {b.results['variant_records']}")
    for name, over in variants:
        over = {**b.global_over, **b.epochs_over, **over}
        data_key = over.get("data", "both")  # data=ner / data=topic: a single-task run on that dataset only
        if data_key not in ("both", "ner", "topic"):
            raise SystemExit(f"error: variant {name!r}: data={data_key!r}, expected both, ner or topic")
        params_over = {k: v for k, v in over.items() if k != "data"}
        res = b.runner.pipeline_run(f"{vraw.name}-{re.sub(r'[^A-Za-z0-9_.=-]+', '_', name)}", f"{vraw.name}-{data_key}",
                                    vraw if data_key == "both" else vraw / data_key, params_over, None)
        tr = res["train"]
        row = {"system": name, "overrides": over, "metrics": {"dev": row_metrics(res["eval"], "dev", b.entities)},
               "train_s": tr["train_seconds"], "epochs": f"{tr['epochs_run']} ({tr['best_epoch']})", "eval": res["eval"]}
        b.results["variants"].append(row)
        b.log(f"  {name}: {json.dumps(row['metrics']['dev'])}  train {tr['train_seconds']}s")
        (b.work / "results.json").write_text(json.dumps(b.results, indent=1))


def write_report(b: Bench) -> None:
    """results.json and results.md in the work dir; the tables on stdout."""
    import torch

    results = b.results
    results["total_s"] = round(time.time() - b.t_start, 1)
    md = [(f"encoder `{b.encoder}`, {results['date']}, {os.cpu_count()} CPU cores, torch threads "
           f"{torch.get_num_threads()}, total {results['total_s']:.0f}s; records {b.counts}")]
    if results["main"]:
        for split in ("dev", "test"):
            md += [f"\n**{split}**\n", main_table(results["main"], split, b.entities)]
    if results["variants"]:
        md += [f"\n**ablations / variants (dev; records {results['variant_records']})**\n",
               variant_table(results["variants"], b.entities)]
    text = "\n".join(md) + "\n"
    (b.work / "results.md").write_text(text)
    (b.work / "results.json").write_text(json.dumps(results, indent=1))
    print("\n" + text)
    b.log(f"done in {results['total_s']:.0f}s; {b.work / 'results.md'}")


def main() -> None:
    b = setup(parse_args())
    if not b.args.only_variants:
        b.log("main table")
        systems = [s.strip() for s in b.args.systems.split(",") if s.strip()]
        run_pipeline_systems(b, systems)
        run_peers(b, systems)
    run_variants(b)
    write_report(b)


def score_predictions(path: str, records: list[dict], entities: list[str], topics: list[str]) -> dict:
    """Score the predict stage's JSONL against the gold held-out records (by sentence)."""
    from pipeline.core.metrics import span_metrics, topic_metrics

    preds = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            preds[r["sentence"]] = r
    gold = [r for r in records if r["split"] == "test" and r["sentence"] in preds] or \
           [r for r in records if r["split"] == "dev" and r["sentence"] in preds]
    out = {"n": len(gold)}
    ner = span_metrics([r["task_B"] for r in gold], [preds[r["sentence"]]["task_B"] for r in gold], entities)
    top = topic_metrics([r["task_A"] for r in gold], [preds[r["sentence"]]["task_A"] for r in gold], topics)
    out["ner_f1"] = ner and ner["f1"]
    out["topic_macro_f1"] = top and top["macro_f1"]
    return out


if __name__ == "__main__":
    main()
