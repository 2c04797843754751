"""Reflection and replication padding on NHWC streams (FINN's FMPadding pads zeros only).

CycleGAN / pix2pix-style generators pad with ``nn.ReflectionPad2d`` (or ``nn.ReplicationPad2d``)
before their 7x7 convolutions; exported to ONNX that is ``Pad(mode="reflect" | "edge")``::

    out[n, oh, ow, c] = in[n, src(oh - top, H), src(ow - left, W), c]
    reflect:   src(i, n) = -i for i < 0, 2(n - 1) - i for i >= n      (numpy / ONNX "reflect")
    replicate: src(i, n) = clamp(i, 0, n - 1)                          (numpy / ONNX "edge")

Everything the compiler and the simulator need is in this module: the golden model, the op with
its estimates and lint cases, the layout pass that turns an NCHW Pad between layout Transposes
into an NHWC Pad, and the infer pass that makes that Pad this op. The RTL is
``hw/rtl/streaming_pad.sv`` (a line buffer of ``max(top, bottom) + 2`` rows for reflection).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core import data_layout
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from ._base import DOMAIN, GanHWOp, buffer_bram18, buffer_lutram_luts, ceil_log2, counter_luts, image_problems
from ._layout import nchw_to_nhwc_values, swap_into_nhwc
from .registry import LintCase, OpFacts, register_op

MODES = ("reflect", "replicate")
# ONNX Pad mode -> our Mode (and numpy.pad's name for it)
_ONNX_MODES = {"reflect": "reflect", "edge": "replicate"}
_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge"}


def pad_nhwc(x: np.ndarray, padding, mode: str) -> np.ndarray:
    """Golden model: pad the H and W axes of NHWC ``x`` by ``padding`` = [top, left, bottom, right]."""
    if mode not in MODES:
        raise ValueError(f"StreamingPad mode {mode!r} is not one of {MODES}")
    top, left, bottom, right = (int(p) for p in padding)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=_NUMPY_MODES[mode])


def line_buffer_rows(padding, mode: str) -> int:
    """Row slots of the RTL line buffer (its NB): the rows reflection must hold, plus the one being
    written."""
    top, _, bottom, _ = (int(p) for p in padding)
    return max(top, bottom) + 2 if mode == "reflect" else 2


@register_op
class StreamingPad(GanHWOp):
    """Streaming reflection / replication padding: (1, H, W, C) -> (1, H+top+bottom, W+left+right, C)."""

    RTL_CORE = "streaming_pad.sv"
    FACTS = OpFacts(fold_knob="SIMD")            # FINN's SetFolding does not know the layer
    LINT_CASES = (
        LintCase("pad_reflect_int4_p1", [(1, 3, 4, 2)], [(1, 5, 6, 2)], "INT4",
                 {"ImgDim": [3, 4], "NumChannels": 2, "Padding": [1, 1, 1, 1], "Mode": "reflect"}),
        LintCase("pad_reflect_uint8_p3_s3", [(1, 7, 5, 6)], [(1, 13, 9, 6)], "UINT8",
                 {"ImgDim": [7, 5], "NumChannels": 6, "Padding": [3, 2, 3, 2], "SIMD": 3, "Mode": "reflect"}),
        LintCase("pad_replicate_int3_uneven", [(1, 2, 3, 1)], [(1, 6, 4, 1)], "INT3",
                 {"ImgDim": [2, 3], "NumChannels": 1, "Padding": [3, 0, 1, 1], "Mode": "replicate"}),
        LintCase("pad_reflect_bip_p0", [(1, 1, 1, 2)], [(1, 1, 1, 2)], "BIPOLAR",
                 {"ImgDim": [1, 1], "NumChannels": 2, "Padding": [0, 0, 0, 0], "SIMD": 2, "Mode": "reflect"}),
    )

    def get_nodeattr_types(self):
        attrs = {
            # input spatial size [H, W]
            "ImgDim": ("ints", True, []),
            # channels C
            "NumChannels": ("i", True, 0),
            # padding in pixels [top, left, bottom, right] (FINN FMPadding's order)
            "Padding": ("ints", True, []),
            # "reflect" (mirror, edge not repeated) or "replicate" (edge pixel repeated)
            "Mode": ("s", False, "reflect", set(MODES)),
            # channels per beat, must divide NumChannels
            "SIMD": ("i", False, 1),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    def _simd(self):
        return self.get_nodeattr("SIMD")

    def _problems(self):
        out = image_problems(self)
        dims = list(self.get_nodeattr("ImgDim"))
        pads = list(self.get_nodeattr("Padding"))
        if len(pads) != 4 or min(pads, default=0) < 0:
            out.append(f"Padding must be [top, left, bottom, right], each >= 0 (got {pads})")
        elif len(dims) == 2 and self.get_nodeattr("Mode") == "reflect":
            h, w = dims
            if max(pads[0], pads[2]) >= h or max(pads[1], pads[3]) >= w:
                out.append(f"reflection padding {pads} needs top, bottom < H ({h}) and left, right < W ({w}); "
                           "use replicate padding or pad less")
        if len(self.onnx_node.input) != 1 or len(self.onnx_node.output) != 1:
            out.append("needs exactly one input and one output")
        return out

    def get_normal_input_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        return (1, h, w, self.get_nodeattr("NumChannels"))

    def get_normal_output_shape(self, ind=0):
        h, w = self.get_nodeattr("ImgDim")
        top, left, bottom, right = self.get_nodeattr("Padding")
        return (1, h + top + bottom, w + left + right, self.get_nodeattr("NumChannels"))

    def _row_words(self) -> int:
        _, w = self.get_nodeattr("ImgDim")
        return w * self.get_nodeattr("NumChannels") // self._simd()

    def _slots(self) -> int:
        return line_buffer_rows(self.get_nodeattr("Padding"), self.get_nodeattr("Mode"))

    def get_exp_cycles(self):
        # output-bound: one output beat per cycle, after the rows the first output row needs
        first = self.get_nodeattr("Padding")[0] + 1 if self.get_nodeattr("Mode") == "reflect" else 1
        return int(np.prod(self.get_folded_output_shape()[:-1])) + first * self._row_words()

    def bram_estimation(self, fpgapart=None):
        return buffer_bram18(self._slots() * self._row_words(), self.get_instream_width())

    def lut_estimation(self, fpgapart=None):
        depth = self._slots() * self._row_words()
        oh, ow = self.get_normal_output_shape()[1:3]
        ctr = counter_luts(self._row_words(), self.get_nodeattr("NumChannels") // self._simd(), ow, oh, oh,
                           self._slots())
        # buffer (if LUTRAM) + counters + read / write / slot address adders and modulo corrections
        return buffer_lutram_luts(depth, self.get_instream_width()) + ctr + 6 * ceil_log2(depth + 1) + 12

    def golden(self, context):
        x = self._check_input(context)
        y = pad_nhwc(x, self.get_nodeattr("Padding"), self.get_nodeattr("Mode"))
        context[self.onnx_node.output[0]] = np.asarray(y, dtype=np.float32)

    def execute_node(self, context, graph):
        self.golden(context)

    def rtl_parameters(self):
        h, w = self.get_nodeattr("ImgDim")
        top, left, bottom, right = self.get_nodeattr("Padding")
        return {
            "ELEM_BITS": self.get_input_datatype().bitwidth(),
            "SIMD": self.get_nodeattr("SIMD"),
            "IMG_H": h,
            "IMG_W": w,
            "CHANNELS": self.get_nodeattr("NumChannels"),
            "PAD_TOP": top,
            "PAD_LEFT": left,
            "PAD_BOTTOM": bottom,
            "PAD_RIGHT": right,
            "REFLECT": int(self.get_nodeattr("Mode") == "reflect"),
        }


# ---------------------------------------------------------------------------------- compiler passes

def _onnx_pad(model: ModelWrapper, node) -> tuple[str, list[int]] | None:
    """(our mode, ONNX pads over all 4 axes) of a reflect / edge ``Pad`` with constant pads, else None."""
    if node.op_type != "Pad" or node.domain not in ("", "ai.onnx"):
        return None
    mode = get_by_name(node.attribute, "mode")
    mode = helper.get_attribute_value(mode) if mode is not None else b"constant"
    mode = _ONNX_MODES.get(mode.decode() if isinstance(mode, bytes) else mode)
    shape = model.get_tensor_shape(node.input[0])
    pads = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
    if mode is None or pads is None or shape is None or len(shape) != 4:
        return None
    pads = [int(p) for p in pads]
    axes = model.get_initializer(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if axes is not None:                                  # opset 18: pads only for the listed axes
        full = [0] * 8
        for i, axis in enumerate(int(a) % 4 for a in axes):
            full[axis], full[axis + 4] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 8 or min(pads) < 0:
        return None
    return mode, pads


def _nhwc_pads(pads: list[int]):
    """A ``to_nhwc`` rewrite for :func:`swap_into_nhwc`: the NCHW ``pads`` (begin and end halves)
    permuted to NHWC, as a new initializer of the Pad."""
    def rewrite(model: ModelWrapper, node) -> None:
        name = model.make_new_valueinfo_name()
        nhwc = nchw_to_nhwc_values(pads[:4]) + nchw_to_nhwc_values(pads[4:])
        model.set_initializer(name, np.asarray(nhwc, np.int64))
        del node.input[1:]                 # constant value and axes do not matter for reflect / edge
        node.input.append(name)
    return rewrite


class MovePadIntoNHWC(Transformation):
    """Swap a reflect / edge ``Pad`` with the layout Transpose next to it, so it pads NHWC data
    (:func:`fpga_gan.ops._layout.swap_into_nhwc`). Zero (constant) pads are left to FINN's conv
    padding and ``AbsorbPadIntoConv``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            found = _onnx_pad(model, node)
            if found is not None and swap_into_nhwc(model, node, _nhwc_pads(found[1])):
                return model.transform(InferShapes()), True
        return model, False


class InferStreamingPad(Transformation):
    """NHWC ``Pad(mode="reflect" | "edge")`` of H and W on an integer stream -> ``StreamingPad``."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            found = _onnx_pad(model, node)
            if found is None:
                continue
            mode, pads = found
            if pads[0] or pads[3] or pads[4] or pads[7]:
                continue                                  # pads N or C: not an NHWC spatial pad
            dtype = model.get_tensor_datatype(node.input[0])
            if not dtype.is_integer():
                continue
            if model.get_tensor_layout(node.input[0]) != data_layout.NHWC:
                continue                                  # streamlining annotates layouts; NCHW stays
            _, h, w, c = model.get_tensor_shape(node.input[0])
            new = helper.make_node("StreamingPad", [node.input[0]], [node.output[0]], domain=DOMAIN,
                                   backend="fpgadataflow", name=node.name, ImgDim=[h, w], NumChannels=c,
                                   Padding=[pads[1], pads[2], pads[5], pads[6]], Mode=mode,
                                   inputDataType=dtype.name)
            at = list(model.graph.node).index(node)
            model.graph.node.remove(node)
            model.graph.node.insert(at, new)
            return model, True
        return model, False


StreamingPad.LAYOUT_PASSES = (MovePadIntoNHWC,)
StreamingPad.INFER_PASSES = (InferStreamingPad,)
