"""Brevitas -> QONNX -> QCDQ export, plus the ``model.json`` the runtime reads.

The artifact directory is the only thing the runtime sees (it never imports torch), so everything it
needs to turn pixels into input codes and output codes back into pixels is written to ``model.json``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .artifact import (  # noqa: F401 - re-exported: the artifact format lives in .artifact
    ARTIFACT_SCHEMA_VERSION,
    MODEL_JSON,
    QCDQ_FILE,
    QONNX_FILE,
    int_dtype,
    tensor_spec,
    write_qcdq,
)


@dataclass
class ExportResult:
    out_dir: Path
    qonnx_path: Path
    qcdq_path: Path
    model_json_path: Path
    spec: dict


def _quant_io(quantizer: nn.Module) -> tuple[float, int, bool]:
    """(scale, bit width, signed) of a Brevitas QuantIdentity with a constant scale."""
    proxy = quantizer.act_quant
    scale = float(proxy.scale())
    bits = int(proxy.bit_width())
    signed = bool(proxy.is_signed)
    return scale, bits, signed


def torch_output_codes(model: nn.Module, input_codes: np.ndarray) -> np.ndarray:
    """Run a quantized generator in PyTorch on integer input codes and return integer output codes."""
    in_scale, _, _ = _quant_io(model.inp)
    out_scale, _, _ = _quant_io(model.out)
    x = torch.from_numpy(input_codes.astype(np.float32) * np.float32(in_scale))
    with torch.no_grad():
        y = model(x)
    return np.round(y.numpy() / out_scale).astype(np.int64)


def io_spec(model: nn.Module, name: str, input_shape: tuple[int, ...], output_shape: tuple[int, ...],
            extra: dict | None = None) -> dict:
    """The ``model.json`` contents: tensors, layouts, scales and integer types the runtime needs."""
    return {
        "schema_version": ARTIFACT_SCHEMA_VERSION,
        "model": name,
        "files": {"qonnx": QONNX_FILE, "qcdq": QCDQ_FILE},
        "inputs": [tensor_spec("global_in", input_shape, *_quant_io(model.inp), with_range=True)],
        "outputs": [tensor_spec("global_out", output_shape, *_quant_io(model.out))],
        **(extra or {}),
    }


def export_generator(model: nn.Module, name: str, input_shape: tuple[int, ...], out_dir: str | Path,
                     extra: dict | None = None) -> ExportResult:
    """Export a quantized generator to ``out_dir`` as QONNX, QCDQ ONNX and ``model.json``.

    The QONNX graph is the compiler's input; the QCDQ graph is what ONNX Runtime (the cpu backend)
    runs. Both are cleaned with qonnx so that shapes are static and constants folded.
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    if getattr(model, "spec", None) is None:
        raise ValueError(f"{name}: only quantized generators can be exported (this is a float twin)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros(input_shape)
    qonnx_path, qcdq_path = out_dir / QONNX_FILE, out_dir / QCDQ_FILE
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_qonnx(model, input_t=example, export_path=str(raw), dynamo=False,
                     input_names=["global_in"], output_names=["global_out"])
        qonnx_model = cleanup_model(ModelWrapper(str(raw)))
    qonnx_model.save(str(qonnx_path))
    write_qcdq(qonnx_model, qcdq_path, name)

    output_shape = tuple(qonnx_model.get_tensor_shape(qonnx_model.graph.output[0].name))
    spec = io_spec(model, name, input_shape, output_shape, extra)
    model_json = out_dir / MODEL_JSON
    model_json.write_text(json.dumps(spec, indent=2) + "\n")
    return ExportResult(out_dir, qonnx_path, qcdq_path, model_json, spec)
