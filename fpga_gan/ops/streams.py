"""Stream plumbing for U-Net skip connections: DuplicateStreams (1 -> N) and StreamingConcat
(N -> 1, channel concatenation). Both keep one datatype on all ports; the FIFOs that absorb the
skew between branches are sized and inserted outside these ops.
"""

from __future__ import annotations

import numpy as np

from ._base import GanHWOp, ceil_log2, counter_luts, image_problems
from .registry import FORK, GATHER, JOIN, LintCase, OpFacts, register_op


def _dims_problems(dims) -> list[str]:
    dims = list(dims)
    if len(dims) != 2 or min(dims, default=0) < 1:
        return [f"ImgDim must be [H, W] with H, W >= 1 (got {dims})"]
    return []


@register_op
class DuplicateStreams(GanHWOp):
    """One NHWC stream (1, H, W, C) to NumOutputStreams identical outputs."""

    RTL_CORE = "duplicate_streams.sv"
    FACTS = OpFacts(stream_role=FORK)            # a skip connection starts here
    LINT_CASES = (
        LintCase("dup_2x_int4", [(1, 2, 2, 4)], [(1, 2, 2, 4)] * 2, "INT4",
                 {"ImgDim": [2, 2], "NumChannels": 4, "PE": 1, "NumOutputStreams": 2}),
        LintCase("dup_3x_uint8_pe3", [(1, 2, 2, 6)], [(1, 2, 2, 6)] * 3, "UINT8",
                 {"ImgDim": [2, 2], "NumChannels": 6, "PE": 3, "NumOutputStreams": 3}),
    )

    def get_nodeattr_types(self):
        attrs = {
            # spatial size [H, W]
            "ImgDim": ("ints", True, []),
            # channels C
            "NumChannels": ("i", True, 0),
            # channels per beat, must divide NumChannels
            "PE": ("i", False, 1),
            # number of identical outputs, >= 2
            "NumOutputStreams": ("i", True, 2),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def _simd(self):
        return self.get_nodeattr("PE")

    def _problems(self):
        out = image_problems(self, "PE")
        n = self.get_nodeattr("NumOutputStreams")
        if n < 2:
            out.append(f"NumOutputStreams must be >= 2 (got {n})")
        if len(self.onnx_node.input) != 1 or len(self.onnx_node.output) != n:
            out.append(f"needs one input and NumOutputStreams ({n}) outputs "
                       f"(node has {len(self.onnx_node.output)})")
        return out

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, self.get_nodeattr("NumChannels"))

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape()

    def make_shape_compatible_op(self, model):
        ret = super().make_shape_compatible_op(model)
        ret.output[:] = self.onnx_node.output
        return ret

    def get_number_output_values(self):
        n = int(np.prod(self.get_folded_output_shape()[:-1]))
        return {f"out{i}": n for i in range(len(self.onnx_node.output))}

    def get_exp_cycles(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def bram_estimation(self, fpgapart=None):
        return 0

    def lut_estimation(self, fpgapart=None):
        # ready AND-tree and pending flags; the data register is flip-flops
        n = self.get_nodeattr("NumOutputStreams")
        return 2 * n + 2

    def golden(self, context):
        x = np.asarray(self._check_input(context), dtype=np.float32)
        for name in self.onnx_node.output:
            context[name] = x.copy()

    def execute_node(self, context, graph):
        self.golden(context)

    def rtl_parameters(self):
        return {"DATA_WIDTH": self.get_instream_width(), "NUM_OUTPUTS": self.get_nodeattr("NumOutputStreams")}


@register_op
class StreamingConcat(GanHWOp):
    """Channel concatenation of N NHWC streams (1, H, W, C_i) -> (1, H, W, sum C_i), input order."""

    RTL_CORE = "streaming_concat.sv"
    # a skip connection ends here; and a concat of per-phase streams is one sub-pixel convolution
    FACTS = OpFacts(stream_role=JOIN, phase_role=GATHER)
    LINT_CASES = (
        LintCase("cat_2in_int4", [(1, 2, 2, 2), (1, 2, 2, 3)], [(1, 2, 2, 5)], "INT4",
                 {"ImgDim": [2, 2], "ChannelsPerStream": [2, 3], "SIMD": 1}),
        LintCase("cat_3in_uint8_s2", [(1, 2, 2, 4), (1, 2, 2, 2), (1, 2, 2, 6)], [(1, 2, 2, 12)], "UINT8",
                 {"ImgDim": [2, 2], "ChannelsPerStream": [4, 2, 6], "SIMD": 2}),
    )

    def get_nodeattr_types(self):
        attrs = {
            # spatial size [H, W] shared by all inputs
            "ImgDim": ("ints", True, []),
            # channels of each input, in input order
            "ChannelsPerStream": ("ints", True, []),
            # channels per beat on every port, must divide every ChannelsPerStream entry
            "SIMD": ("i", False, 1),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def _simd(self):
        return self.get_nodeattr("SIMD")

    def _problems(self):
        out = _dims_problems(self.get_nodeattr("ImgDim"))
        chs = list(self.get_nodeattr("ChannelsPerStream"))
        simd = self.get_nodeattr("SIMD")
        if len(chs) < 2:
            out.append(f"ChannelsPerStream needs >= 2 entries (got {chs})")
        if any(c < 1 for c in chs):
            out.append(f"every ChannelsPerStream entry must be >= 1 (got {chs})")
        if simd < 1 or any(c % simd for c in chs):
            out.append(f"SIMD ({simd}) must be >= 1 and divide every ChannelsPerStream entry {chs}")
        if len(self.onnx_node.input) != len(chs) or len(self.onnx_node.output) != 1:
            out.append(f"needs len(ChannelsPerStream) ({len(chs)}) inputs and one output "
                       f"(node has {len(self.onnx_node.input)} inputs)")
        return out

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, int(self.get_nodeattr("ChannelsPerStream")[ind]))

    def get_normal_output_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, int(sum(self.get_nodeattr("ChannelsPerStream"))))

    def get_exp_cycles(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def bram_estimation(self, fpgapart=None):
        return 0

    def lut_estimation(self, fpgapart=None):
        # N:1 data mux (about one LUT6 per 4 inputs per bit) + fold / select counters
        chs = list(self.get_nodeattr("ChannelsPerStream"))
        n = len(chs)
        mux = self.get_outstream_width() * max(1, -(-(n - 1) // 3))
        return mux + counter_luts(max(c // self._simd() for c in chs), n) + ceil_log2(n) * n + 4

    def golden(self, context):
        xs = [self._check_input(context, i) for i in range(len(self.onnx_node.input))]
        context[self.onnx_node.output[0]] = np.concatenate(xs, axis=-1).astype(np.float32)

    def execute_node(self, context, graph):
        self.golden(context)

    def rtl_parameters(self):
        chs = [int(c) for c in self.get_nodeattr("ChannelsPerStream")]
        packed = "{" + ", ".join(f"32'd{c}" for c in reversed(chs)) + "}"   # input 0 in the lowest bits
        return {
            "ELEM_BITS": self.get_input_datatype().bitwidth(),
            "SIMD": self.get_nodeattr("SIMD"),
            "NUM_INPUTS": len(chs),
            "CHANNELS": packed,
        }
