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
        # the graph's inputs in its order, which is model.json's (both come from the QONNX graph)
        names = [i.name for i in self._session.get_inputs()]
        if len(names) != len(artifact.inputs):
            raise ArtifactError(f"{path} takes {len(names)} inputs ({', '.join(names)}), but model.json lists "
                                f"{len(artifact.inputs)}; the ONNX file and model.json do not belong together")
        self._inputs = [(name, np.float32(spec.scale), spec.zero_point) for name, spec in zip(names, artifact.inputs)]
        self._out_scale = artifact.output.scale

    def run(self, codes) -> np.ndarray:
        """Codes (one array, or a tuple for a multi-input model) -> output codes: each input is fed
        as the value its codes stand for, ``(code - zero_point) * scale``."""
        arrays = codes if isinstance(codes, tuple) else (codes,)
        feeds = {}
        for (name, scale, zero_point), c in zip(self._inputs, arrays):
            x = c.astype(np.float32)
            if zero_point:
                x = x - np.float32(zero_point)
            feeds[name] = x * scale
        (y,) = self._session.run(None, feeds)
        return np.round(y / self._out_scale).astype(np.int64)

    def close(self) -> None:
        self._session = None


register_backend("cpu", CpuBackend)
