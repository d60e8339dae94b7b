"""Prediction-throughput benchmark: the predict CLI's path (Predictor.predict: encode with windows,
one encoder pass per batch serving both heads, merge windows, decode entity spans) against what a
user would otherwise run: two single-task Hugging Face models one after the other,
AutoModelForTokenClassification then AutoModelForSequenceClassification on the same encoder, the
same batch size, dynamic padding (padding=True per batch), torch.inference_mode(), argmax and
BIO -> character-span decoding on the first sub-token of each word.

Two HF baselines: batches in input order (what a straightforward loop does) and batches of
length-sorted sentences (as Predictor does; the stronger baseline). Acceptance is judged on the
stronger one: Predictor sentences/s / HF sentences/s >= 1.8.

The multi-task model directory is built with 0 training steps (MultiTaskModel around the encoder,
saved with pipeline.storage.model_dir.save) and loaded as the predict stage loads it
(pipeline.stages.predict.load_predictor); speed does not depend on the weights.

    python benchmarks/predict.py --quick
    python benchmarks/predict.py --encoder PATH --encoder PATH2 --data a.jsonl b.jsonl
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _common as C

TARGET = 1.8


def make_model_dir(encoder: str, p, out: Path) -> Path:
    """A models/multitask-style directory, untrained heads (training 0 steps)."""
    import torch

    from pipeline.core.features import special_layout
    from pipeline.core.model import ModelMeta, MultiTaskModel
    from pipeline.storage import model_dir
    from pipeline.storage.hub import load_encoder, load_tokenizer

    torch.manual_seed(0)
    rc = p.encoder.trust_remote_code
    tok = load_tokenizer(encoder, rc)
    model = MultiTaskModel(load_encoder(encoder, rc), len(p.labels.topics), len(p.tag_names), p.encoder.pooling)
    t = p.tokenize
    meta = ModelMeta(encoder_name=encoder, pooling=p.encoder.pooling, topics=p.labels.topics,
                     entities=p.labels.entities, tags=p.tag_names, max_length=t.max_length, stride=t.stride,
                     label_subwords=t.label_subwords, misaligned=t.misaligned, n_prefix=len(special_layout(tok)[0]),
                     best_epoch=0)
    model_dir.save(model, tok, out, meta)
    return out


def bio_spans(sentence: str, offsets, word_ids, tag_ids, tags: list[str]) -> list[dict]:
    """Entity spans from per-token tag ids, reading each word's first sub-token (HF convention)."""
    spans, cur, prev_word = [], None, None
    for (s, e), w, t in zip(offsets, word_ids, tag_ids):
        if w is None:
            continue
        while s < e and sentence[s].isspace():  # byte-level BPE keeps the leading space in the token
            s += 1
        if w == prev_word:  # continuation sub-token: extends the open span
            if cur is not None and e > s:
                cur["end"] = e
            continue
        prev_word = w
        tag = tags[t]
        if tag == "O":
            cur = None
            continue
        kind = tag[2:]
        if tag.startswith("B-") or cur is None or cur["type"] != kind:
            cur = {"type": kind, "start": s, "end": e}
            spans.append(cur)
        else:
            cur["end"] = e
    return [{"text": sentence[c["start"]:c["end"]], **c} for c in spans]


def run_encoder(encoder: str, args, p, sentences: list[str], bs: int) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from pipeline.stages.predict import CHUNK, load_predictor
    from pipeline.storage.hub import load_pretrained  # the pipeline's own resolution: offline via the package

    tags, topics = p.tag_names, p.labels.topics
    max_length = p.tokenize.max_length
    rc = p.encoder.trust_remote_code
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as work:
        predictor = load_predictor(str(make_model_dir(encoder, p, Path(work) / "multitask")), bs, "cpu", rc)
    tok = predictor.tokenizer
    tc = load_pretrained(AutoModelForTokenClassification.from_pretrained, encoder, num_labels=len(tags),
                         trust_remote_code=rc).eval()
    sc = load_pretrained(AutoModelForSequenceClassification.from_pretrained, encoder, num_labels=len(topics),
                         trust_remote_code=rc).eval()
    for m in (tc, sc):
        m.config.pad_token_id = tok.pad_token_id
    inputs = [{"sentence": s} for s in sentences]
    sink = []

    def ours():
        for i in range(0, len(inputs), CHUNK):
            sink.append(predictor.predict(inputs[i:i + CHUNK]))

    def hf(order):
        def run():
            out = [None] * len(sentences)
            for b in range(0, len(order), bs):
                idx = order[b:b + bs]
                batch = [sentences[i] for i in idx]
                enc = tok(batch, padding=True, truncation=True, max_length=max_length,
                          return_offsets_mapping=True, return_tensors="pt")
                offsets = enc.pop("offset_mapping").tolist()
                with torch.inference_mode():
                    tag_ids = tc(**enc).logits.argmax(-1).tolist()
                    topic_probs = sc(**enc).logits.float().softmax(-1)
                best_topic = topic_probs.argmax(-1).tolist()
                for j, i in enumerate(idx):
                    out[i] = {"sentence": batch[j], "task_A": topics[best_topic[j]],
                              "task_B": bio_spans(batch[j], offsets[j], enc.word_ids(j), tag_ids[j], tags)}
            sink.append(out)
        return run

    in_order = list(range(len(sentences)))
    by_length = sorted(in_order, key=lambda i: len(tok(sentences[i], add_special_tokens=True)["input_ids"]))
    arms = {"Predictor.predict (one pass, both heads)": ours,
            "HF token-cls + seq-cls, input order": hf(in_order),
            "HF token-cls + seq-cls, length-sorted": hf(by_length)}
    predictor.predict(inputs[:bs])  # warm-up: one batch each
    hf(list(range(bs)))()
    sink.clear()
    C.log(f"predict, {encoder}: {len(sentences)} sentences x {args.repeats} rounds, batch {bs}")
    t = C.interleave(arms, args.repeats, C.log)
    sink.clear()
    rate = {k: len(sentences) / C.best(v) for k, v in t.items()}
    per_round = [b[0] / a[0] for a, b in zip(t["Predictor.predict (one pass, both heads)"],
                                                      t["HF token-cls + seq-cls, length-sorted"])]
    ours_rate = rate["Predictor.predict (one pass, both heads)"]
    strong = rate["HF token-cls + seq-cls, length-sorted"]
    return {
        "encoder": encoder, "sentences": len(sentences), "batch_size": bs, "repeats": args.repeats,
        "sentences_per_s": rate, "times": t, "ratio_vs_sorted": ours_rate / strong,
        "ratio_vs_sorted_per_round": per_round,
        "ratio_vs_input_order": ours_rate / rate["HF token-cls + seq-cls, input order"],
        "verdict": C.verdict(ours_rate / strong, TARGET, higher_is_better=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--sentences", type=int, help="sentences per timed run (default: 2048; quick: 512)")
    ap.add_argument("--batch-size", type=int, help="batch size, all arms (default: params predict.batch_size)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds (default: 3; quick: 2)")
    args = ap.parse_args()
    args.sentences = args.sentences or (512 if args.quick else 2048)
    args.repeats = args.repeats or (2 if args.quick else 3)

    from pipeline.storage import params as params_mod

    p = params_mod.load(args.params)
    bs = args.batch_size or p.predict.batch_size
    sentences = [r["sentence"] for r in C.load_records(args.data, args.sentences)]
    C.apply_threads(args)
    info = C.machine()
    C.log(f"machine: {info}")
    results = {"machine": info, "encoders": []}
    for encoder in C.encoders(args):
        results["encoders"].append(run_encoder(encoder, args, p, sentences, bs))

    print(f"\nPrediction throughput, sentences/s ({info['cpus']} CPUs, {info['date']}; batch {bs}, best of "
          f"{args.repeats} interleaved rounds; target Predictor / HF(length-sorted) >= {TARGET})")
    rows = []
    for r in results["encoders"]:
        strong = r["sentences_per_s"]["HF token-cls + seq-cls, length-sorted"]
        for name, v in r["sentences_per_s"].items():
            rows.append([C.short(r["encoder"]), name, round(v, 1), round(v / strong, 3),
                         r["verdict"] if name.startswith("Predictor") else ""])
    print(C.table(["encoder", "arm", "sentences/s", "ratio vs HF sorted", "verdict"], rows))
    for r in results["encoders"]:
        print(f"{C.short(r['encoder'])}: Predictor / HF input order = {r['ratio_vs_input_order']:.3f}; "
              f"Predictor / HF sorted within each round: " + ", ".join(f"{x:.3f}" for x in r["ratio_vs_sorted_per_round"]))
    C.dump_json(args.json, results)


if __name__ == "__main__":
    main()
