"""Carry the GAN data-movement layers over to the NHWC streams FINN's hardware layers use.

After ``LowerConvsToMatMul`` each convolution is a MatMul on NHWC data wrapped in Transposes
back to NCHW. FINN then cancels those Transposes pairwise or absorbs them into MultiThresholds,
but only when they are adjacent: a DepthToSpace or a crop (Slice) between a convolution and its
activation blocks that, the Transposes survive, and the dataflow partition later fails with
"cycle-free graph violated". These passes move the Transpose below such a layer by replacing the
NCHW layer with its NHWC streaming hardware op: fpga_gan's ``DepthToSpace`` and FINN's ``Crop``
(which finn-plus implements in RTL).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from ...ops import DOMAIN

__all__ = ["MoveTransposePastDataMovement", "NHWC_TO_NCHW"]

NHWC_TO_NCHW = [0, 3, 1, 2]
_INT64_MAX = np.iinfo(np.int64).max


def _perm(node: NodeProto) -> list[int] | None:
    attr = get_by_name(node.attribute, "perm")
    return None if attr is None else list(helper.get_attribute_value(attr))


def _crop_amounts(model: ModelWrapper, node: NodeProto, nchw_shape: list[int]) -> tuple[int, int, int, int] | None:
    """(north, west, south, east) of a spatial Slice with unit steps, else None."""
    starts, ends = (model.get_initializer(node.input[i]) for i in (1, 2))
    axes = model.get_initializer(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = model.get_initializer(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if starts is None or ends is None or axes is None or (steps is not None and np.any(steps != 1)):
        return None
    crop = {2: [0, 0], 3: [0, 0]}
    for start, end, axis in zip(starts, ends, axes):
        axis = int(axis) % 4
        if axis not in crop:
            return None
        size = nchw_shape[axis]
        start, end = int(start), min(int(end), size) if int(end) != _INT64_MAX else size
        start, end = start + size if start < 0 else start, end + size if end < 0 else end
        crop[axis] = [start, size - end]
    return crop[2][0], crop[3][0], crop[2][1], crop[3][1]


def _nhwc_op(model: ModelWrapper, node: NodeProto, src: str, dst: str) -> NodeProto | None:
    """The NHWC hardware op doing what the NCHW ``node`` does, or None when there is none.

    The datatype comes from the NHWC source ``src``: the NCHW tensor between a Transpose and a
    standard DepthToSpace may carry qonnx's default FLOAT32 annotation, and a FLOAT32 crop would
    give the next layer a 32-bit stream in hardware.
    """
    n, c, h, w = model.get_tensor_shape(node.input[0])
    dtype = model.get_tensor_datatype(src).name
    if node.op_type == "DepthToSpace":
        mode = get_by_name(node.attribute, "mode")
        if mode is None or helper.get_attribute_value(mode) not in (b"CRD", "CRD"):
            return None                            # DCR order would need a channel permutation
        block = int(helper.get_attribute_value(get_by_name(node.attribute, "blocksize")))
        return helper.make_node("DepthToSpace", [src], [dst], domain=DOMAIN, backend="fpgadataflow",
                                name=node.name, ImgDim=[h, w], NumChannels=c // (block * block),
                                BlockSize=block, inputDataType=dtype)
    if node.op_type == "Slice":
        crop = _crop_amounts(model, node, [n, c, h, w])
        if crop is None:
            return None
        north, west, south, east = crop
        return helper.make_node("Crop", [src], [dst], domain="finn.custom_op.fpgadataflow",
                                backend="fpgadataflow", name=node.name, DataType=dtype, SIMD=1,
                                ImgDim=[h, w], NumChannels=c, CropNorth=north, CropSouth=south,
                                CropWest=west, CropEast=east, numInputVectors=[n])
    return None


class MoveTransposePastDataMovement(Transformation):
    """Rewrite Transpose(NHWC->NCHW) -> DepthToSpace / Slice as NHWC op -> Transpose(NHWC->NCHW).

    Applied to a fixed point, the Transpose travels down through a whole DepthToSpace -> crop
    chain until FINN's own passes can absorb it.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for transpose in model.graph.node:
            if transpose.op_type != "Transpose" or _perm(transpose) != NHWC_TO_NCHW:
                continue
            consumers = model.find_consumers(transpose.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type not in ("DepthToSpace", "Slice"):
                continue
            layer = consumers[0]
            if model.get_tensor_shape(layer.input[0]) is None or len(model.get_tensor_shape(layer.input[0])) != 4:
                continue
            nhwc_out = model.make_new_valueinfo_name()
            hw_node = _nhwc_op(model, layer, transpose.input[0], nhwc_out)
            if hw_node is None:
                continue
            hw_node.doc_string = layer.doc_string          # provenance (the sub-pixel lowering's tag)
            out_shape = model.get_tensor_shape(layer.output[0])
            dtype = model.get_tensor_datatype(transpose.input[0])
            new_transpose = helper.make_node("Transpose", [nhwc_out], [layer.output[0]], perm=NHWC_TO_NCHW,
                                             name=transpose.name)
            nodes = list(model.graph.node)
            at = nodes.index(transpose)
            for old in (transpose, layer):
                nodes.remove(old)
            nodes[at:at] = [hw_node, new_transpose]
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            n, c, h, w = out_shape
            model.set_tensor_shape(nhwc_out, [n, h, w, c])
            model.set_tensor_datatype(nhwc_out, dtype)
            return model.transform(InferShapes()), True
        return model, False
