"""The cpu backend: ONNX Runtime on the QCDQ graph, the fallback that runs anywhere."""

from __future__ import annotations

import numpy as np

from .accelerator import Artifact, ArtifactError, register_backend


class CpuBackend:
    def __init__(self, artifact: Artifact) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ArtifactError("the cpu backend needs onnxruntime: pip install onnxruntime") from exc
        path = artifact.file("qcdq")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            # Exports since fpga_gan.export.qdq_bias are exact under every optimisation level. An older
            # artifact carries float biases that WeightBiasQuantization (ORT >= 1.20) re-rounds onto the
            # accumulator grid; disabling it costs nothing on a new export, so it stays off for the old.
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                                 disabled_optimizers=["WeightBiasQuantization"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self._in_name = self._session.get_inputs()[0].name
        self._in_scale = np.float32(artifact.input.scale)
        self._out_scale = artifact.output.scale

    def run(self, codes: np.ndarray) -> np.ndarray:
        x = codes.astype(np.float32) * self._in_scale
        (y,) = self._session.run(None, {self._in_name: x})
        return np.round(y / self._out_scale).astype(np.int64)

    def close(self) -> None:
        self._session = None


register_backend("cpu", CpuBackend)
