"""The sim backend: the compiled accelerator's RTL in Verilator, as a drop-in for the board.

Opens a compile build dir whose RTL ``fpga-gan sim`` has generated (and checked bit-exact);
frames go through the same packing the board uses. Slow (thousands of cycles per second): it
exists to prove hardware and software agree, not to serve images. Imports no FINN and no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .accelerator import Artifact, ArtifactError, register_backend


class SimBackend:
    def __init__(self, artifact: Artifact) -> None:
        design_path = Path(artifact.path) / "rtl" / "design.json"
        if not design_path.is_file():
            raise ArtifactError(f"{artifact.path} has no generated RTL ({design_path}); run "
                                f"`fpga-gan sim {artifact.path}` first (it generates and checks it)")
        self._design = json.loads(design_path.read_text())
        self._work = Path(artifact.path) / "sim" / "backend"
        from ..sim.verilator import SimulatorError, build

        try:
            self._build, _, _ = build(self._design["top"], self._design["sources"], Path(artifact.path) / "sim",
                                      log=lambda _: None)
        except SimulatorError as err:
            raise ArtifactError(str(err)) from err

    def run(self, codes) -> np.ndarray:
        """Codes (one array, or a tuple for a multi-input design: one stream each) -> output codes."""
        from ..sim.verilator import beats_to_frames, frames_to_beats, run_frames
        from .packing import stream_order

        d = self._design
        streams = d.get("inputs") or [{"port": "s_axis", "bits": d["in_bits"], "elems_per_beat": d["in_elems_per_beat"],
                                       "shape": d["in_shape"]}]
        arrays = codes if isinstance(codes, tuple) else (codes,)
        if len(arrays) != len(streams):
            raise ValueError(f"{len(arrays)} input arrays, the accelerator has {len(streams)} input streams")
        frames = []
        for array, st in zip(arrays, streams):
            nhwc = stream_order(array)
            if list(nhwc.shape[1:]) != list(st["shape"][1:]):
                raise ValueError(f"frames of shape {nhwc.shape[1:]} (NHWC), the accelerator's {st['port']} takes "
                                 f"{st['shape'][1:]}")
            frames.append(frames_to_beats(nhwc, st["bits"], st["elems_per_beat"]))
        run = run_frames(d["top"], self._build, frames[0] if len(frames) == 1 else frames, None, self._work,
                         ports=[st["port"] for st in streams])
        out = beats_to_frames(run.outputs, d["out_bits"], d["out_elems_per_beat"], d["out_signed"])
        return np.transpose(out.reshape(len(arrays[0]), *d["out_shape"][1:]), (0, 3, 1, 2)).astype(np.int64)

    def close(self) -> None:
        pass


register_backend("sim", SimBackend)
