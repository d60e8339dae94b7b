"""A trained model as ONNX graphs for CPU inference (models/multitask-onnx/, beside the model
directory): model.onnx (fp32: the shared encoder and both heads in one graph, inputs input_ids /
attention_mask with dynamic batch and sequence axes, outputs topic_logits / ner_logits),
optionally model.int8.onnx (ONNX Runtime dynamic quantization: int8 weights, activations
quantized per batch), and onnx.json: each graph's sha256, how closely it reproduced PyTorch on
the dev features when it was written, and the checksum of the weights it was exported from, so a
graph that no longer matches its model directory, or was changed since, is refused.

The exporter is torch.onnx's dynamo path (torch.export; the TorchScript exporter is deprecated).
onnx, onnxruntime and onnxscript are the optional extra `onnx`; importing this module needs none
of them, only using it does.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from pipeline.core.inference import collate
from pipeline.storage.errors import PipelineError, first_line
from pipeline.storage.files import dumps, json_problem, loads, read_text, sha256

RUNTIMES = ("torch", "onnx", "onnx-int8")
GRAPHS = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
MANIFEST = "onnx.json"
FORMAT_VERSION = 1
OPSET = 18
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"   # torch.onnx (dynamo) node metadata: source file and line
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("topic_logits", "ner_logits")
INSTALL = "pip install 'multitask-nlp-pipeline[onnx]' (onnx, onnxruntime, onnxscript)"


def default_dir(model_dir: str | Path) -> Path:
    """Where a model directory's graphs go unless told otherwise: models/multitask -> models/multitask-onnx."""
    path = Path(model_dir)
    return path.with_name(path.name + "-onnx")


def require(*modules: str, why: str = "export onnx") -> None:
    """One line naming the install when an optional package is missing."""
    import importlib

    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise PipelineError(f"{why}: {', '.join(missing)} not installed; {INSTALL}")


class PositionalHeads(torch.nn.Module):
    """The model's forward with positional outputs, the form an ONNX graph has."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids, attention_mask)
        return out["topic_logits"], out["ner_logits"]


def trace_sample(rows: list[dict], pad_id: int) -> dict:
    """The batch a graph is traced on: the longest and the shortest feature row (two rows and two
    lengths, so neither axis is taken for a constant)."""
    by_length = sorted(rows, key=lambda r: len(r["input_ids"]))
    batch = collate([by_length[-1], by_length[0]], pad_id, with_labels=False)
    if batch["input_ids"].shape[1] < 2:  # one-token rows only: one masked pad column more
        batch = {k: torch.nn.functional.pad(v, (0, 1), value=pad_id if k == "input_ids" else 0)
                 for k, v in batch.items()}
    return batch


def export_fp32(model, sample: dict, path: Path) -> None:
    """One graph of the model (eval mode) traced on `sample` (a collated batch of >= 2 rows), its
    batch and sequence axes left dynamic. The exporter's value_info (intermediate shapes) is
    dropped: the dynamo exporter writes some that onnx's shape inference rejects (ONNX Runtime's
    quantizer runs it), and ONNX Runtime infers them anyway."""
    require("onnx", "onnxscript", "onnxruntime")
    import onnx

    model.eval()
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    shapes = {name: {0: batch, 1: seq} for name in INPUTS}
    # The exporter prints its progress and warns about axis names and deprecations: notes for its
    # developers, kept out of the stage's output.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(PositionalHeads(model), (sample["input_ids"], sample["attention_mask"]), None,
                                        input_names=list(INPUTS), output_names=list(OUTPUTS), dynamic_shapes=shapes,
                                        opset_version=OPSET, dynamo=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 - torch.export fails in many ways on code it cannot trace
        raise PipelineError(f"ONNX export of the model failed: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        exporter_log.setLevel(level)
    graph = program.model_proto
    del graph.graph.value_info[:]
    drop_stack_traces(graph)
    onnx.save_model(graph, str(path), save_as_external_data=False)


def drop_stack_traces(graph) -> None:
    """Removes the exporter's per-node Python stack traces (metadata STACK_TRACE_KEY): they name the
    absolute path and line of the source that made each node, so the graph's bytes, and its hash in
    dvc.lock, changed with where the repository is checked out and with unrelated edits. The node's
    module path and class names (other metadata keys) stay, for debugging."""
    for node in [*graph.graph.node, *(n for f in graph.functions for n in f.node)]:
        kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE_KEY]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization (ONNX Runtime's quantizer): int8 weights with one scale per output
    channel, activations quantized with per-batch scales. Per-channel weight scales, measured on
    MiniLM's dev windows: 97.8 % topic / 98.2 % NER decisions as PyTorch's, against 95.7 / 96.2 %
    with one scale per tensor (benchmarks/SPEED.md)."""
    require("onnx", "onnxruntime")
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantizer logs its "consider pre-processing" advice (for static quantization) there
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)


class OnnxModel:
    """An ONNX Runtime session that answers like MultiTaskModel's forward (a dict of torch tensors
    "topic_logits", "ner_logits"), so pipeline.core.inference runs it unchanged. CPU only."""

    def __init__(self, path: Path, threads: int = 0):
        require("onnxruntime", why="the onnx runtimes")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's default, one per physical core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own (Fail, InvalidGraph, ...)
            raise PipelineError(f"{path}: not a usable ONNX graph: {first_line(exc)}") from None
        self.path = path

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        topic, ner = self.session.run(list(OUTPUTS), feed)
        return {"topic_logits": torch.from_numpy(topic), "ner_logits": torch.from_numpy(ner)}


def write_manifest(out_dir: Path, weights_sha256: str, checks: dict[str, dict]) -> None:
    """onnx.json: what was exported from what, each graph's checksum and its agreement check."""
    import onnxruntime

    manifest = {"format_version": FORMAT_VERSION, "source_weights_sha256": weights_sha256, "opset": OPSET,
                "exporter": f"torch.onnx dynamo (torch {torch.__version__.split('+')[0]})",
                "onnxruntime": onnxruntime.__version__,
                "graphs": {rt: {"file": GRAPHS[rt], "sha256": sha256(out_dir / GRAPHS[rt]), "check": check}
                           for rt, check in checks.items()}}
    (out_dir / MANIFEST).write_text(dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _manifest(onnx_dir: Path, remedy: str) -> dict:
    if not (onnx_dir / MANIFEST).is_file():
        what = "not found" if not onnx_dir.exists() else f"has no {MANIFEST}"
        raise PipelineError(f"ONNX directory '{onnx_dir}' {what}; {remedy}")
    try:
        manifest = loads(read_text(onnx_dir / MANIFEST))
    except ValueError as exc:
        raise PipelineError(f"{onnx_dir / MANIFEST}: {json_problem(exc)}; {remedy}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION \
            or not isinstance(manifest.get("graphs"), dict):
        raise PipelineError(f"{onnx_dir / MANIFEST}: not an export manifest of format {FORMAT_VERSION}; {remedy}")
    return manifest


def _remedy(model_dir) -> str:
    return f"export it with `python -m pipeline export onnx --model {model_dir} --int8` (or `dvc repro`)"


def exported(onnx_dir: str | Path, model_dir: str | Path = "the model directory") -> list[str]:
    """The runtimes onnx_dir's manifest lists ([] when nothing was exported there)."""
    if not (Path(onnx_dir) / MANIFEST).is_file():
        return []
    return [rt for rt in GRAPHS if rt in _manifest(Path(onnx_dir), _remedy(model_dir))["graphs"]]


def load(onnx_dir: str | Path, runtime: str, weights_sha256: str, threads: int = 0,
         model_dir: str | Path = "the model directory") -> OnnxModel:
    """The `runtime` graph (onnx | onnx-int8) of `onnx_dir`, checked: exported from the weights
    with this checksum, and unchanged since (its sha256 is the one onnx.json recorded)."""
    onnx_dir = Path(onnx_dir)
    remedy = _remedy(model_dir)
    require("onnxruntime", why=f"--runtime {runtime}")
    manifest = _manifest(onnx_dir, remedy)
    if manifest.get("source_weights_sha256") != weights_sha256:
        raise PipelineError(f"ONNX directory '{onnx_dir}' was exported from other weights than {model_dir} "
                            f"holds now; {remedy}")
    entry = manifest["graphs"].get(runtime)
    if not isinstance(entry, dict) or entry.get("file") != GRAPHS.get(runtime):
        raise PipelineError(f"ONNX directory '{onnx_dir}' has no {runtime} graph; {remedy}")
    path = onnx_dir / GRAPHS[runtime]
    if not path.is_file():
        raise PipelineError(f"{path}: not found; {remedy}")
    if sha256(path) != entry.get("sha256"):
        raise PipelineError(f"{path}: changed since it was exported (sha256 differs from {MANIFEST}); {remedy}")
    return OnnxModel(path, threads)
