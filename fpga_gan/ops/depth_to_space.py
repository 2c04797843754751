"""DepthToSpace on NHWC streams (the interleaving step of the sub-pixel transposed convolution).

Two channel orders, exactly ONNX's two modes applied to the equivalent NCHW tensor. ``Mode="CRD"``
(the default): input channel ``c*b*b + qh*b + qw`` of pixel ``(h, w)`` becomes channel ``c`` of
output pixel ``(h*b + qh, w*b + qw)``::

    out[n, h*b + qh, w*b + qw, c] = in[n, h, w, c*b*b + qh*b + qw]          # CRD
    out[n, h*b + qh, w*b + qw, c] = in[n, h, w, (qh*b + qw)*C + c]          # DCR

CRD is the order ``fpga_gan.compiler.passes.subpixel`` uses for the stacked output phases of one
convolution (and PyTorch's PixelShuffle exports). DCR is what a channel concatenation of ``b*b``
per-phase streams delivers (``fpga_gan.compiler.passes.phases``), so that form needs no
channel permutation in between.

The RTL (``hw/rtl/depth_to_space.sv``) moves one element per beat: the upstream MVAU's PE output
is narrowed by a data width converter. Its ping-pong row buffer (``pingpong_row_buffer.sv``)
holds two input rows.
"""

from __future__ import annotations

import numpy as np

from ._base import (
    GanHWOp,
    buffer_bram18,
    buffer_lutram_luts,
    ceil_log2,
    counter_luts,
)
from .registry import INTERLEAVE, LintCase, OpFacts, register_op

MODES = ("CRD", "DCR")


def depth_to_space_nhwc(x: np.ndarray, block: int, mode: str = "CRD") -> np.ndarray:
    """Golden model: NHWC DepthToSpace in ``mode`` channel order (see the module docstring)."""
    n, h, w, cbb = x.shape
    b = int(block)
    if cbb % (b * b):
        raise ValueError(f"channels {cbb} not divisible by block^2 = {b * b}")
    if mode not in MODES:
        raise ValueError(f"DepthToSpace mode {mode!r} is not one of {MODES}")
    c = cbb // (b * b)
    if mode == "CRD":
        y = x.reshape(n, h, w, c, b, b).transpose(0, 1, 4, 2, 5, 3)   # [n, h, w, c, qh, qw] -> [n, h, qh, w, qw, c]
    else:
        y = x.reshape(n, h, w, b, b, c).transpose(0, 1, 3, 2, 4, 5)   # [n, h, w, qh, qw, c] -> [n, h, qh, w, qw, c]
    return y.reshape(n, h * b, w * b, c)


@register_op
class DepthToSpace(GanHWOp):
    """Streaming NHWC DepthToSpace (CRD or DCR order): (1, H, W, C*b*b) -> (1, H*b, W*b, C)."""

    RTL_CORE = "depth_to_space.sv"
    RTL_DEPS = ("pingpong_row_buffer.sv",)
    # the end of a sub-pixel convolution: the report pairs it with the MVAUs of its phases
    FACTS = OpFacts(phase_role=INTERLEAVE)
    LINT_CASES = (
        LintCase("d2s_int4_w4_c2_b2", [(1, 3, 4, 8)], [(1, 6, 8, 2)], "INT4",
                 {"ImgDim": [3, 4], "NumChannels": 2, "BlockSize": 2}),
        LintCase("d2s_uint8_w1_c1_b1", [(1, 1, 1, 1)], [(1, 1, 1, 1)], "UINT8",
                 {"ImgDim": [1, 1], "NumChannels": 1, "BlockSize": 1}),
        LintCase("d2s_int3_w7_c5_b3", [(1, 2, 7, 45)], [(1, 6, 21, 5)], "INT3",
                 {"ImgDim": [2, 7], "NumChannels": 5, "BlockSize": 3}),
        LintCase("d2s_int5_w3_c6_b2_dcr", [(1, 2, 3, 24)], [(1, 4, 6, 6)], "INT5",
                 {"ImgDim": [2, 3], "NumChannels": 6, "BlockSize": 2, "Mode": "DCR"}),
    )

    def get_nodeattr_types(self):
        attrs = {
            # input spatial size [H, W]
            "ImgDim": ("ints", True, []),
            # output channels C (the input carries C * BlockSize^2)
            "NumChannels": ("i", True, 0),
            # block size b (upscaling per spatial axis)
            "BlockSize": ("i", True, 0),
            # input channel order: "CRD" (c*b*b + qh*b + qw) or "DCR" ((qh*b + qw)*C + c)
            "Mode": ("s", False, "CRD", set(MODES)),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def _problems(self):
        out = []
        dims = list(self.get_nodeattr("ImgDim"))
        if len(dims) != 2 or min(dims, default=0) < 1:
            out.append(f"ImgDim must be [H, W] with H, W >= 1 (got {dims})")
        if self.get_nodeattr("NumChannels") < 1:
            out.append("NumChannels must be >= 1")
        if self.get_nodeattr("BlockSize") < 1:
            out.append("BlockSize must be >= 1")
        if len(self.onnx_node.input) != 1 or len(self.onnx_node.output) != 1:
            out.append("needs exactly one input and one output")
        return out

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        b = self.get_nodeattr("BlockSize")
        return (1, h, w, self.get_nodeattr("NumChannels") * b * b)

    def get_normal_output_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        b = self.get_nodeattr("BlockSize")
        return (1, h * b, w * b, self.get_nodeattr("NumChannels"))

    def _row_elems(self) -> int:
        _, w = self.get_nodeattr("ImgDim")
        return w * int(np.prod(self.get_normal_input_shape()[3:]))

    def get_exp_cycles(self):
        # one element per cycle on both ports, plus one input row of latency
        return int(np.prod(self.get_normal_input_shape())) + self._row_elems()

    def bram_estimation(self, fpgapart=None):
        return buffer_bram18(2 * self._row_elems(), self.get_input_datatype().bitwidth())

    def lut_estimation(self, fpgapart=None):
        # buffer (if LUTRAM) + counters (write, c, qw, w, qh) + 4 address adders + control
        depth = 2 * self._row_elems()
        aw = ceil_log2(depth)
        _, w = self.get_nodeattr("ImgDim")
        b = self.get_nodeattr("BlockSize")
        ctr = counter_luts(self._row_elems(), self.get_nodeattr("NumChannels"), b, w, b)
        return buffer_lutram_luts(depth, self.get_input_datatype().bitwidth()) + ctr + 5 * aw + 8

    def golden(self, context):
        x = self._check_input(context)
        y = depth_to_space_nhwc(x, self.get_nodeattr("BlockSize"), self.get_nodeattr("Mode"))
        context[self.onnx_node.output[0]] = np.asarray(y, dtype=np.float32)

    def execute_node(self, context, graph):
        self.golden(context)

    def rtl_parameters(self):
        _, w = self.get_nodeattr("ImgDim")
        return {
            "ELEM_BITS": self.get_input_datatype().bitwidth(),
            "IMG_W": w,
            "CHANNELS": self.get_nodeattr("NumChannels"),
            "BLOCK": self.get_nodeattr("BlockSize"),
            "DCR": int(self.get_nodeattr("Mode") == "DCR"),
        }
