"""Output codes of PyTorch, qonnx ``execute_onnx`` and ONNX Runtime, compared for equality."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from .exporter import ExportResult, torch_output_codes


@dataclass
class CrossCheckReport:
    inputs: int
    mismatches: dict[str, int] = field(default_factory=dict)  # backend -> differing codes vs torch

    @property
    def bit_exact(self) -> bool:
        return all(v == 0 for v in self.mismatches.values())

    def summary(self) -> str:
        parts = [f"{k}: {'identical' if v == 0 else f'{v} codes differ'}" for k, v in self.mismatches.items()]
        return f"{self.inputs} inputs; torch vs " + ", ".join(parts)


def qonnx_output_codes(qonnx_path: str | Path, input_codes: np.ndarray, in_scale: float,
                       out_scale: float) -> np.ndarray:
    """qonnx's reference execution, one sample at a time (as FINN's verification does)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(str(qonnx_path))
    iname, oname = model.graph.input[0].name, model.graph.output[0].name
    outs = []
    for sample in input_codes:
        x = (sample[None].astype(np.float32) * np.float32(in_scale))
        outs.append(execute_onnx(model, {iname: x})[oname])
    return np.round(np.concatenate(outs) / out_scale).astype(np.int64)


def cross_check(model: nn.Module, export: ExportResult, input_codes: np.ndarray) -> CrossCheckReport:
    """Compare the output codes of every software backend on the same integer inputs."""
    from fpga_gan.runtime import Accelerator

    reference = torch_output_codes(model, input_codes)
    in_spec, out_spec = export.spec["inputs"][0], export.spec["outputs"][0]
    report = CrossCheckReport(inputs=len(input_codes))
    q = qonnx_output_codes(export.qonnx_path, input_codes, in_spec["scale"], out_spec["scale"])
    report.mismatches["qonnx"] = int(np.count_nonzero(q != reference))
    with Accelerator.open(export.out_dir, backend="cpu") as acc:
        ort = acc.run(input_codes.astype(acc.input_dtype))
    report.mismatches["onnxruntime"] = int(np.count_nonzero(ort.astype(np.int64) != reference))
    return report
