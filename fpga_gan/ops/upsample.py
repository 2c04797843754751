"""Nearest-neighbour upsampling by an integer factor on NHWC streams::

    out[n, h*f + fh, w*f + fw, c] = in[n, h, w, c]      for fh, fw in [0, f)

(ONNX ``Resize(mode="nearest")`` with integer scales ``f`` on H and W.) SIMD channels per beat.
"""

from __future__ import annotations

import numpy as np

from ._base import (
    GanHWOp,
    GanRTLMixin,
    buffer_bram18,
    buffer_lutram_luts,
    ceil_log2,
    counter_luts,
)
from .registry import LintCase, register_op


def upsample_nearest_nhwc(x: np.ndarray, factor: int) -> np.ndarray:
    """Golden model: repeat every pixel ``factor`` times along H and W."""
    f = int(factor)
    return np.repeat(np.repeat(x, f, axis=1), f, axis=2)


@register_op
class UpsampleNearest(GanHWOp):
    """Streaming nearest upsample: (1, H, W, C) -> (1, H*f, W*f, C)."""

    RTL_CORE = "upsample_nearest.sv"
    RTL_DEPS = ("pingpong_row_buffer.sv",)
    LINT_CASES = (
        LintCase("ups_int4_s1", [(1, 2, 3, 3)], [(1, 4, 6, 3)], "INT4",
                 {"ImgDim": [2, 3], "NumChannels": 3, "Factor": 2, "SIMD": 1}),
        LintCase("ups_uint8_s4_f3", [(1, 4, 5, 8)], [(1, 12, 15, 8)], "UINT8",
                 {"ImgDim": [4, 5], "NumChannels": 8, "Factor": 3, "SIMD": 4}),
        LintCase("ups_bip_s2_f1", [(1, 1, 1, 2)], [(1, 1, 1, 2)], "BIPOLAR",
                 {"ImgDim": [1, 1], "NumChannels": 2, "Factor": 1, "SIMD": 2}),
    )

    def get_nodeattr_types(self):
        attrs = {
            # input spatial size [H, W]
            "ImgDim": ("ints", True, []),
            # channels C
            "NumChannels": ("i", True, 0),
            # integer upsampling factor f per spatial axis
            "Factor": ("i", True, 0),
            # channels per beat, must divide NumChannels
            "SIMD": ("i", False, 1),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def _simd(self):
        return self.get_nodeattr("SIMD")

    def _problems(self):
        out = []
        dims = list(self.get_nodeattr("ImgDim"))
        if len(dims) != 2 or min(dims, default=0) < 1:
            out.append(f"ImgDim must be [H, W] with H, W >= 1 (got {dims})")
        ch, simd = self.get_nodeattr("NumChannels"), self.get_nodeattr("SIMD")
        if ch < 1:
            out.append("NumChannels must be >= 1")
        if simd < 1 or (ch >= 1 and ch % simd):
            out.append(f"SIMD ({simd}) must be >= 1 and divide NumChannels ({ch})")
        if self.get_nodeattr("Factor") < 1:
            out.append("Factor must be >= 1")
        if len(self.onnx_node.input) != 1 or len(self.onnx_node.output) != 1:
            out.append("needs exactly one input and one output")
        return out

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, self.get_nodeattr("NumChannels"))

    def get_normal_output_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        f = self.get_nodeattr("Factor")
        return (1, h * f, w * f, self.get_nodeattr("NumChannels"))

    def _row_words(self) -> int:
        _, w = self.get_nodeattr("ImgDim")
        return w * self.get_nodeattr("NumChannels") // self._simd()

    def get_exp_cycles(self):
        # output-bound: one output beat per cycle, plus one input row of latency
        return int(np.prod(self.get_folded_output_shape()[:-1])) + self._row_words()

    def bram_estimation(self, fpgapart=None):
        return buffer_bram18(2 * self._row_words(), self.get_instream_width())

    def lut_estimation(self, fpgapart=None):
        depth = 2 * self._row_words()
        _, w = self.get_nodeattr("ImgDim")
        f = self.get_nodeattr("Factor")
        ctr = counter_luts(self._row_words(), self.get_nodeattr("NumChannels") // self._simd(), f, w, f)
        return buffer_lutram_luts(depth, self.get_instream_width()) + ctr + 3 * ceil_log2(depth) + 8

    def golden(self, context):
        x = self._check_input(context)
        y = upsample_nearest_nhwc(x, self.get_nodeattr("Factor"))
        context[self.onnx_node.output[0]] = np.asarray(y, dtype=np.float32)

    def execute_node(self, context, graph):
        self.golden(context)

    def rtl_parameters(self):
        _, w = self.get_nodeattr("ImgDim")
        return {
            "ELEM_BITS": self.get_input_datatype().bitwidth(),
            "SIMD": self.get_nodeattr("SIMD"),
            "IMG_W": w,
            "CHANNELS": self.get_nodeattr("NumChannels"),
            "FACTOR": self.get_nodeattr("Factor"),
        }
