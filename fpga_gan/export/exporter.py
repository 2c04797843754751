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

ARTIFACT_SCHEMA_VERSION = 1
QONNX_FILE = "model.qonnx.onnx"
QCDQ_FILE = "model.qcdq.onnx"
MODEL_JSON = "model.json"


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


def _int_dtype(bits: int, signed: bool) -> str:
    if bits > 16:
        raise ValueError(f"{bits}-bit I/O is not supported (at most 16)")
    return ("int" if signed else "uint") + ("8" if bits <= 8 else "16")


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
    in_scale, in_bits, in_signed = _quant_io(model.inp)
    out_scale, out_bits, out_signed = _quant_io(model.out)
    return {
        "schema_version": ARTIFACT_SCHEMA_VERSION,
        "model": name,
        "files": {"qonnx": QONNX_FILE, "qcdq": QCDQ_FILE},
        "inputs": [{
            "name": "global_in", "shape": [None, *input_shape[1:]], "layout": "NCHW",
            "dtype": _int_dtype(in_bits, in_signed), "bits": in_bits, "signed": in_signed,
            "scale": in_scale, "zero_point": 0,
            "range": [-(2 ** (in_bits - 1)) if in_signed else 0,
                      2 ** (in_bits - 1) - 1 if in_signed else 2 ** in_bits - 1],
        }],
        "outputs": [{
            "name": "global_out", "shape": [None, *output_shape[1:]], "layout": "NCHW",
            "dtype": _int_dtype(out_bits, out_signed), "bits": out_bits, "signed": out_signed,
            "scale": out_scale, "zero_point": 0,
        }],
        **(extra or {}),
    }


class FoldConstantQuant:
    """Replace Quant nodes whose inputs are all constants by their (exact, dyadic) result.

    QCDQ only expresses 2..8-bit quantizers; the 16-bit bias quantizers are constant anyway, so
    ONNX Runtime gets the quantized bias values as plain initializers.
    """

    def apply(self, model):
        from qonnx.custom_op.general.quant import quant

        graph = model.graph
        for node in list(graph.node):
            if node.op_type != "Quant":
                continue
            values = [model.get_initializer(i) for i in node.input]
            if any(v is None for v in values):
                continue
            attrs = {a.name: a.i for a in node.attribute if a.name in ("signed", "narrow")}
            folded = quant(*values, signed=attrs.get("signed", 1), narrow=attrs.get("narrow", 0),
                           rounding_mode="ROUND")
            model.set_initializer(node.output[0], folded.astype(np.float32))
            graph.node.remove(node)
        return model


def _make_batch_dynamic(proto) -> None:
    """Let ONNX Runtime take any batch size: symbolic first dim, no stale intermediate shapes."""
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del proto.graph.value_info[:]


def export_generator(model: nn.Module, name: str, input_shape: tuple[int, ...], out_dir: str | Path,
                     extra: dict | None = None) -> ExportResult:
    """Export a quantized generator to ``out_dir`` as QONNX, QCDQ ONNX and ``model.json``.

    The QONNX graph is the compiler's input; the QCDQ graph is what ONNX Runtime (the cpu backend)
    runs. Both are cleaned with qonnx so that shapes are static and constants folded.
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
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
    qcdq_model = FoldConstantQuant().apply(qonnx_model.transform(QuantToQCDQ()))
    qcdq_model = cleanup_model(qcdq_model, preserve_qnt_ops=True)
    leftover = [n.name for n in qcdq_model.graph.node if n.op_type == "Quant"]
    if leftover:
        raise RuntimeError(f"{name}: Quant nodes {leftover} have no QCDQ form (bit width > 8 on a "
                           "non-constant tensor?); ONNX Runtime could not run this model")
    _make_batch_dynamic(qcdq_model.model)
    qcdq_model.save(str(qcdq_path))

    output_shape = tuple(qonnx_model.get_tensor_shape(qonnx_model.graph.output[0].name))
    spec = io_spec(model, name, input_shape, output_shape, extra)
    model_json = out_dir / MODEL_JSON
    model_json.write_text(json.dumps(spec, indent=2) + "\n")
    return ExportResult(out_dir, qonnx_path, qcdq_path, model_json, spec)
