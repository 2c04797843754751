"""Nearest-neighbour upsampling by an integer factor on NHWC streams::

    out[n, h*f + fh, w*f + fw, c] = in[n, h, w, c]      for fh, fw in [0, f)

(ONNX ``Resize(mode="nearest")`` with integer scales ``f`` on H and W.) SIMD channels per beat.

Where it is used: a nearest upsample followed by a convolution never reaches hardware as such
(``compiler/passes/upsample.py`` folds the pair into a transposed convolution); a lone one (at a
generator's end, or before a concat) becomes this layer: the layout pass below moves the Resize
to the NHWC side of its Transposes and the infer pass makes it an ``UpsampleNearest``.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core import data_layout
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from ._base import (
    DOMAIN,
    GanHWOp,
    buffer_bram18,
    buffer_lutram_luts,
    ceil_log2,
    counter_luts,
    image_problems,
)
from ._layout import nchw_to_nhwc_values, swap_into_nhwc
from .registry import LintCase, OpFacts, register_op


def upsample_nearest_nhwc(x: np.ndarray, factor: int) -> np.ndarray:
    """Golden model: repeat every pixel ``factor`` times along H and W."""
    f = int(factor)
    return np.repeat(np.repeat(x, f, axis=1), f, axis=2)


@register_op
class UpsampleNearest(GanHWOp):
    """Streaming nearest upsample: (1, H, W, C) -> (1, H*f, W*f, C)."""

    RTL_CORE = "upsample_nearest.sv"
    FACTS = OpFacts(fold_knob="SIMD")            # FINN's SetFolding does not know the layer
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
        out = image_problems(self)
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


# ---------------------------------------------------------------------------------- compiler passes

def _attr(node, name: str, default):
    a = get_by_name(node.attribute, name)
    if a is None:
        return default
    value = helper.get_attribute_value(a)
    return value.decode() if isinstance(value, bytes) else value


def nearest_factors(model: ModelWrapper, node) -> list[float] | None:
    """Per-axis scales of a 4D ``Resize`` whose nearest sampling is exactly pixel repetition on
    every integer-scaled axis, else None. Exact: ``asymmetric`` + ``floor`` (PyTorch's export),
    and ``half_pixel`` with either rounding (for an integer factor no sample falls on a tie)."""
    if node.op_type != "Resize" or node.domain not in ("", "ai.onnx") or _attr(node, "mode", "nearest") != "nearest":
        return None
    coords = _attr(node, "coordinate_transformation_mode", "half_pixel")
    rounding = _attr(node, "nearest_mode", "round_prefer_floor")
    if not ((coords == "asymmetric" and rounding == "floor")
            or (coords == "half_pixel" and rounding in ("round_prefer_floor", "round_prefer_ceil"))):
        return None
    scales = model.get_initializer(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if scales is None or len(scales) != 4 or any(not float(v).is_integer() or v < 1 for v in scales):
        return None
    return [float(v) for v in scales]


def _scales_to_nhwc(model: ModelWrapper, node) -> None:
    name = model.make_new_valueinfo_name()
    model.set_initializer(name, np.asarray(nchw_to_nhwc_values(nearest_factors(model, node)), np.float32))
    node.input[2] = name


class MoveResizeIntoNHWC(Transformation):
    """Swap a lone nearest ``Resize`` with the layout Transpose next to it, so it scales NHWC
    data (:func:`fpga_gan.ops._layout.swap_into_nhwc`)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            scales = nearest_factors(model, node)
            if scales is None or scales[0] != 1 or scales[1] != 1:        # NCHW: N and C unscaled
                continue
            if swap_into_nhwc(model, node, _scales_to_nhwc):
                return model.transform(InferShapes()), True
        return model, False


class InferUpsampleNearest(Transformation):
    """NHWC nearest ``Resize`` by one integer factor on H and W of an integer stream -> ``UpsampleNearest``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            scales = nearest_factors(model, node)
            shape = model.get_tensor_shape(node.input[0])
            if scales is None or shape is None or len(shape) != 4:
                continue
            n_scale, h_scale, w_scale, c_scale = scales
            dtype = model.get_tensor_datatype(node.input[0])
            if n_scale != 1 or c_scale != 1 or h_scale != w_scale or not dtype.is_integer():
                continue
            if model.get_tensor_layout(node.input[0]) != data_layout.NHWC:
                continue                                  # streamlining annotates layouts; NCHW stays
            _, h, w, c = shape
            new = helper.make_node("UpsampleNearest", [node.input[0]], [node.output[0]], domain=DOMAIN,
                                   backend="fpgadataflow", name=node.name, ImgDim=[h, w], NumChannels=c,
                                   Factor=int(h_scale), inputDataType=dtype.name)
            at = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(at, new)
            return model, True
        return model, False


UpsampleNearest.LAYOUT_PASSES = (MoveResizeIntoNHWC,)
UpsampleNearest.INFER_PASSES = (InferUpsampleNearest,)
