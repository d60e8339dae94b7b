"""Prediction-throughput benchmark: the predict CLI's path (Predictor.predict: encode with windows,
one encoder pass per batch serving both heads, merge windows, decode entity spans) against what a
user would otherwise run: two single-task Hugging Face models one after the other,
AutoModelForTokenClassification then AutoModelForSequenceClassification on the same encoder, the
same batch size, dynamic padding (padding=True per batch), torch.inference_mode(), argmax and
BIO -> character-span decoding on the first sub-token of each word.

Two HF baselines: batches in input order (what a straightforward loop does) and batches of
length-sorted sentences (as Predictor does; the stronger baseline). Acceptance is judged on the
stronger one: Predictor sentences/s / HF sentences/s >= 1.8.

The ONNX runtimes (issue 19): the same Predictor with the forward pass replaced by the model's
exported graph (pipeline.storage.onnx_graph: fp32, and int8 by ONNX Runtime dynamic quantization),
everything else (featurization, windows, merging, span decoding) unchanged. Targets against the
PyTorch Predictor in the same run: onnx >= 1.3x, onnx-int8 >= 2.0x. Each runtime's agreement with
PyTorch on the benchmark's own windows is reported (pipeline.core.agreement), and its useful (non-pad)
tokens/s is put against the machine's fp32 matmul peak measured here at the same thread count
(GFLOP/s of a 1024x1024 matmul), as the share of that peak the encoder's matmuls reach: 2 x the
non-embedding parameters FLOPs per token (attention's length-squared term left out, so a lower
bound).

The multi-task model directory is built with 0 training steps (MultiTaskModel around the encoder,
saved with pipeline.storage.model_dir.save), or given with --model (a trained one), and loaded as
the predict stage loads it (pipeline.stages.predict.load_predictor); speed does not depend on the
weights, int8 agreement does (random heads sit near ties).

    python benchmarks/predict.py --quick
    python benchmarks/predict.py --encoder PATH --encoder PATH2 --data a.jsonl b.jsonl
    python benchmarks/predict.py --model models/multitask --data a.jsonl   # a trained model, its encoder
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _common as C

TARGET = 1.8
ONNX_TARGETS = {"onnx": 1.3, "onnx-int8": 2.0}
TORCH_ARM = "Predictor.predict (one pass, both heads)"


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


def export_graphs(model_path: Path, out: Path, rows: list[dict], pad_id: int) -> Path:
    """fp32 and int8 graphs of a model directory, as `export onnx` writes them (its self-check is
    the agreement reported below)."""
    from pipeline.storage import model_dir, onnx_graph

    model, _, _ = model_dir.load(model_path)
    out.mkdir(parents=True, exist_ok=True)
    onnx_graph.export_fp32(model, onnx_graph.trace_sample(rows, pad_id), out / onnx_graph.GRAPHS["onnx"])
    onnx_graph.quantize_int8(out / onnx_graph.GRAPHS["onnx"], out / onnx_graph.GRAPHS["onnx-int8"])
    onnx_graph.write_manifest(out, model_dir.weights_checksum(model_path), {"onnx": {}, "onnx-int8": {}})
    return out


def matmul_peak_gflops(threads: int, sizes=(1024, 2048), repeats: int = 10) -> float:
    """The machine's fp32 matmul rate at this thread count: the best of torch's and ONNX Runtime's
    GEMM over n x n products (each library's kernels are what its runtime runs on)."""
    import time

    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, None]) for n in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [None, None])])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rates = []
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        feed = {"a": a.numpy(), "b": b.numpy()}
        for run in (lambda a=a, b=b: torch.mm(a, b), lambda feed=feed: session.run(None, feed)):
            run()
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            rates.append(2 * n ** 3 / best / 1e9)
    return max(rates)


def flops_per_token(model) -> int:
    """2 x the encoder's and heads' non-embedding parameters: the matmul FLOPs one token costs."""
    import torch

    embedding = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return 2 * sum(p.numel() for p in model.parameters() if id(p) not in embedding)


def hf_peers(encoder: str, p, tok, sentences: list[str], bs: int, sink: list):
    """The two single-task HF models, one after the other per batch: a function of a sentence order
    that returns the timed run."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from pipeline.storage.hub import load_pretrained  # the pipeline's own resolution: offline via the package

    tags, topics, max_length, rc = p.tag_names, p.labels.topics, p.tokenize.max_length, p.encoder.trust_remote_code
    tc = load_pretrained(AutoModelForTokenClassification.from_pretrained, encoder, num_labels=len(tags),
                         trust_remote_code=rc).eval()
    sc = load_pretrained(AutoModelForSequenceClassification.from_pretrained, encoder, num_labels=len(topics),
                         trust_remote_code=rc).eval()
    for m in (tc, sc):
        m.config.pad_token_id = tok.pad_token_id

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
    return hf


def run_encoder(encoder: str, args, p, sentences: list[str], bs: int) -> dict:
    import torch

    from pipeline.core.agreement import compare
    from pipeline.stages.predict import CHUNK, load_predictor

    rc = p.encoder.trust_remote_code
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as work:
        model_path = Path(args.model) if args.model else make_model_dir(encoder, p, Path(work) / "multitask")
        predictor = load_predictor(str(model_path), bs, "cpu", rc)
        rows = predictor.featurizer.encode([{"sentence": s} for s in sentences]).rows
        onnx_dir = export_graphs(model_path, Path(work) / "multitask-onnx", rows, predictor.tokenizer.pad_token_id)
        runtimes = {rt: load_predictor(str(model_path), bs, "cpu", rc, rt, str(onnx_dir), threads)
                    for rt in ONNX_TARGETS}
    agreement = {rt: compare(predictor.model, r.model, rows, bs, predictor.tokenizer.pad_token_id).__dict__
                 for rt, r in runtimes.items()}
    useful_tokens = sum(len(r["input_ids"]) for r in rows)
    tok = predictor.tokenizer
    inputs = [{"sentence": s} for s in sentences]
    sink = []

    def ours(pred):
        def run():
            for i in range(0, len(inputs), CHUNK):
                sink.append(pred.predict(inputs[i:i + CHUNK]))
        return run

    hf = hf_peers(encoder, p, tok, sentences, bs, sink)
    in_order = list(range(len(sentences)))
    by_length = sorted(in_order, key=lambda i: len(tok(sentences[i], add_special_tokens=True)["input_ids"]))
    arms = {TORCH_ARM: ours(predictor),
            **{f"Predictor, --runtime {rt}": ours(r) for rt, r in runtimes.items()},
            "HF token-cls + seq-cls, input order": hf(in_order),
            "HF token-cls + seq-cls, length-sorted": hf(by_length)}
    for pred in (predictor, *runtimes.values()):  # warm-up: one batch each
        pred.predict(inputs[:bs])
    hf(list(range(bs)))()
    sink.clear()
    C.log(f"predict, {encoder}: {len(sentences)} sentences ({useful_tokens} tokens) x {args.repeats} rounds, "
          f"batch {bs}, {threads} thread(s)")
    t = C.interleave(arms, args.repeats, C.log)
    sink.clear()
    rate = {k: len(sentences) / C.best(v) for k, v in t.items()}
    per_round = [b[0] / a[0] for a, b in zip(t[TORCH_ARM], t["HF token-cls + seq-cls, length-sorted"])]
    ours_rate = rate[TORCH_ARM]
    strong = rate["HF token-cls + seq-cls, length-sorted"]
    peak = matmul_peak_gflops(threads)
    flops = flops_per_token(predictor.model)
    onnx = {rt: {"ratio_vs_torch": rate[f"Predictor, --runtime {rt}"] / ours_rate,
                 "ratio_vs_torch_per_round": [a[0] / b[0] for a, b in zip(t[TORCH_ARM], t[f"Predictor, --runtime {rt}"])],
                 "verdict": C.verdict(rate[f"Predictor, --runtime {rt}"] / ours_rate, target, higher_is_better=True),
                 "agreement": agreement[rt]} for rt, target in ONNX_TARGETS.items()}
    peak_share = {k: rate[k] * useful_tokens / len(sentences) * flops / 1e9 / peak
                  for k in (TORCH_ARM, *(f"Predictor, --runtime {rt}" for rt in ONNX_TARGETS))}
    return {
        "encoder": encoder, "model": str(args.model) if args.model else None, "sentences": len(sentences),
        "useful_tokens": useful_tokens, "batch_size": bs, "repeats": args.repeats, "threads": threads,
        "sentences_per_s": rate, "times": t, "ratio_vs_sorted": ours_rate / strong,
        "ratio_vs_sorted_per_round": per_round,
        "ratio_vs_input_order": ours_rate / rate["HF token-cls + seq-cls, input order"],
        "verdict": C.verdict(ours_rate / strong, TARGET, higher_is_better=True), "onnx": onnx,
        "matmul_peak_gflops": peak, "flops_per_token": flops, "share_of_matmul_peak": peak_share}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--sentences", type=int, help="sentences per timed run (default: 2048; quick: 512)")
    ap.add_argument("--batch-size", type=int, help="batch size, all arms (default: params predict.batch_size)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds (default: 3; quick: 2)")
    ap.add_argument("--model", help="a trained model directory to time instead of an untrained one (its encoder: "
                    "give the same --encoder, which the HF peers load)")
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
          f"{args.repeats} interleaved rounds; targets: Predictor / HF(length-sorted) >= {TARGET}, "
          + ", ".join(f"{rt} / torch >= {v}" for rt, v in ONNX_TARGETS.items()) + ")")
    rows = []
    for r in results["encoders"]:
        strong = r["sentences_per_s"]["HF token-cls + seq-cls, length-sorted"]
        torch_rate = r["sentences_per_s"][TORCH_ARM]
        for name, v in r["sentences_per_s"].items():
            rt = name.split("--runtime ")[-1] if "--runtime" in name else None
            verdict = r["verdict"] if name == TORCH_ARM else r["onnx"][rt]["verdict"] if rt else ""
            share = r["share_of_matmul_peak"].get(name)
            tokens = v * r["useful_tokens"] / r["sentences"]
            rows.append([C.short(r["encoder"]), name, round(v, 1), round(tokens, 0), round(v / torch_rate, 3),
                         round(v / strong, 3), "" if share is None else f"{share:.1%}", verdict])
    print(C.table(["encoder", "arm", "sentences/s", "useful tokens/s", "vs torch Predictor", "vs HF sorted",
                   "of matmul peak", "verdict"], rows))
    for r in results["encoders"]:
        print(f"{C.short(r['encoder'])}: Predictor / HF input order = {r['ratio_vs_input_order']:.3f}; "
              f"Predictor / HF sorted within each round: " + ", ".join(f"{x:.3f}" for x in r["ratio_vs_sorted_per_round"]))
        print(f"{C.short(r['encoder'])}: fp32 matmul peak {r['matmul_peak_gflops']:.1f} GFLOP/s at {r['threads']} "
              f"thread(s); {r['flops_per_token'] / 1e6:.1f} MFLOP per token")
        for rt, o in r["onnx"].items():
            a = o["agreement"]
            print(f"  {rt}: vs torch per round " + ", ".join(f"{x:.3f}" for x in o["ratio_vs_torch_per_round"])
                  + f"; agreement with torch: topic {a['topic_agreement']:.2%} of {a['rows']} windows, NER "
                  f"{a['token_agreement']:.2%} of {a['tokens']} tokens, max |logit diff| "
                  f"{max(a['max_abs_diff_topic'], a['max_abs_diff_ner']):.1e}")
    C.dump_json(args.json, results)


if __name__ == "__main__":
    main()
