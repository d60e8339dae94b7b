"""Which fp32 ONNX graph runs fastest? (issue 19: fp32 onnx >= 1.3x the PyTorch forward pass was missed.)
The forward pass alone (no featurization, merging or decoding), on the same length-sorted batches
of real windows, best of --repeats interleaved rounds:

  torch        the model itself (what the Predictor runs)
  dynamo       the graph `export onnx` writes (torch.onnx dynamo exporter; pipeline.storage.onnx_graph)
  dynamo+ort   that graph after onnxruntime.transformers.optimizer (model_type bert: the fusions ONNX
               Runtime's transformer optimizer knows: LayerNorm, SkipLayerNorm, BiasGelu, Attention, ...)
  torchscript  the deprecated TorchScript exporter (dynamo=False, eager attention), opset 17
  ts+ort       that graph after the same optimizer

Every graph's logits are checked against torch's (max |difference|, argmax agreement) before it is
timed. Prints sentences/s per arm and the ratio to torch in the same run; the fused-operator counts
say which fusions the optimizer found.

    python benchmarks/onnx_variants.py --threads 1 --model models/multitask --data a.jsonl b.jsonl
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import _common as C


def windows(predictor, records: list[dict], batch_size: int) -> tuple[list[dict], list[dict]]:
    """(the length-sorted batches run_model would make of the records' windows, the windows)."""
    from pipeline.core.inference import collate

    rows = predictor.featurizer.encode([{"sentence": r["sentence"]} for r in records]).rows
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    pad = predictor.tokenizer.pad_token_id
    return [collate([rows[i] for i in order[b:b + batch_size]], pad, with_labels=False)
            for b in range(0, len(order), batch_size)], rows


def export_torchscript(model, sample: dict, path: Path) -> None:
    import torch

    from pipeline.storage import onnx_graph

    encoder = model.encoder
    previous = encoder.config._attn_implementation
    encoder.set_attn_implementation("eager")  # the pattern ONNX Runtime's attention fusion looks for
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(onnx_graph.PositionalHeads(model).eval(), (sample["input_ids"], sample["attention_mask"]),
                              str(path), input_names=list(onnx_graph.INPUTS), output_names=list(onnx_graph.OUTPUTS),
                              dynamic_axes={n: {0: "batch", 1: "sequence"} for n in onnx_graph.INPUTS},
                              opset_version=17, dynamo=False)
    finally:
        encoder.set_attn_implementation(previous)
        model.eval()  # the TorchScript exporter puts the module back in its mode from before: keep eval


def ort_optimized(src: Path, dst: Path, config) -> dict:
    from onnxruntime.transformers.optimizer import optimize_model

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = optimize_model(str(src), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size)
    m.save_model_to_file(str(dst))
    return {k: v for k, v in m.get_fused_operator_statistics().items() if v}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_common_args(ap)
    ap.add_argument("--model", required=True, help="a trained model directory (models/multitask); --encoder is not used")
    ap.add_argument("--sentences", type=int, help="sentences from --data (default: 1024; quick: 256)")
    ap.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    ap.add_argument("--repeats", type=int, help="interleaved rounds, best kept (default: 3; quick: 2)")
    args = ap.parse_args()
    args.sentences = args.sentences or (256 if args.quick else 1024)
    args.repeats = args.repeats or (2 if args.quick else 3)
    C.apply_threads(args)
    import numpy as np
    import torch

    from pipeline.storage import onnx_graph
    from pipeline.storage.predictor import load_predictor

    threads = args.threads or 0
    predictor = load_predictor(args.model, args.batch_size, "cpu", threads=threads)
    model = predictor.model.eval()
    batches, rows = windows(predictor, C.load_records(args.data, args.sentences), args.batch_size)
    tokens = sum(len(r["input_ids"]) for r in rows)
    C.log(f"{len(rows)} windows, {tokens} tokens, {len(batches)} batches; {C.machine()}")
    fused = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{name}.onnx" for name in ("dynamo", "dynamo+ort", "torchscript", "ts+ort")}
        onnx_graph.export_fp32(model, onnx_graph.trace_sample(rows, predictor.tokenizer.pad_token_id), paths["dynamo"])
        export_torchscript(model, onnx_graph.trace_sample(rows, predictor.tokenizer.pad_token_id), paths["torchscript"])
        fused["dynamo+ort"] = ort_optimized(paths["dynamo"], paths["dynamo+ort"], model.encoder.config)
        fused["ts+ort"] = ort_optimized(paths["torchscript"], paths["ts+ort"], model.encoder.config)
        sessions = {name: onnx_graph.OnnxModel(path, threads) for name, path in paths.items()}

        @torch.no_grad()
        def forward(name: str) -> list:
            run = model if name == "torch" else sessions[name]
            return [run(b["input_ids"], b["attention_mask"]) for b in batches]

        reference = forward("torch")
        rows_out = []
        for name in sessions:
            out = forward(name)
            diff = max(float((o[k] - r[k]).abs().max()) for o, r in zip(out, reference) for k in onnx_graph.OUTPUTS)
            agree = np.mean(np.concatenate([(o["ner_logits"].argmax(-1) == r["ner_logits"].argmax(-1)).numpy().ravel()
                                            for o, r in zip(out, reference)]))
            rows_out.append((name, diff, agree))
        times = C.interleave({name: (lambda n=name: forward(n)) for name in ["torch", *sessions]}, args.repeats, C.log)
    base = C.best(times["torch"])
    print(f"\nForward pass only, {len(rows)} windows ({tokens} tokens), batch {args.batch_size}, threads {threads}, "
          f"best of {args.repeats}; {C.machine()}")
    checks = {name: (diff, agree) for name, diff, agree in rows_out}
    C.dump_json(args.json, {"machine": C.machine(), "windows": len(rows), "tokens": tokens, "fused": fused,
                            "seconds": times, "checks": checks})
    print(C.table(["graph", "windows/s", "vs torch", "per round vs torch", "max |logit diff|", "NER argmax agree",
                   "fused by ONNX Runtime's optimizer"],
                  [[name, len(rows) / C.best(t), base / C.best(t),
                    ", ".join(f"{a[0] / b[0]:.2f}" for a, b in zip(times["torch"], t)),
                    "" if name == "torch" else f"{checks[name][0]:.1e}",
                    "" if name == "torch" else f"{checks[name][1]:.4f}",
                    ", ".join(f"{k} {v}" for k, v in fused.get(name, {}).items())] for name, t in times.items()]))


if __name__ == "__main__":
    main()
