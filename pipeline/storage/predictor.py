"""A trained model directory loaded as a ready Predictor: PyTorch, or the model's exported ONNX
graph. Shared by the predict and select stages (and `pipeline.stages.predict.load_predictor`, the
Python entry point the model card names)."""
from __future__ import annotations

from pipeline.core.device import pick_device, set_threads
from pipeline.core.inference import Predictor
from pipeline.storage import model_dir, onnx_graph
from pipeline.storage.errors import PipelineError


def load_predictor(model_path: str, batch_size: int = 32, device: str | None = None,
                   trust_remote_code: bool = False, runtime: str = "torch", onnx_dir: str | None = None,
                   threads: int = 0) -> Predictor:
    """A Predictor for a trained model directory. runtime torch: on `device` (default: CUDA when
    present); onnx / onnx-int8: the model's exported graph (onnx_dir, default beside the model
    directory) on CPU, with the same featurization, windows, merging and decoding."""
    set_threads(threads)
    if runtime != "torch":
        if device not in (None, "cpu"):
            raise PipelineError(f"--runtime {runtime} runs on the CPU; leave out --device {device}")
        onnx_graph.require("onnxruntime", why=f"--runtime {runtime}")
        device = "cpu"
    try:
        torch_device = pick_device(device)
    except ValueError as exc:
        raise PipelineError(f"--device {exc}") from None
    model, tokenizer, meta = model_dir.load(model_path, str(torch_device), trust_remote_code)
    if runtime != "torch":
        model = onnx_graph.load(onnx_dir or onnx_graph.default_dir(model_path), runtime,
                                model_dir.weights_checksum(model_path), threads, model_path)
    return Predictor(model, tokenizer, meta, batch_size, torch_device)
