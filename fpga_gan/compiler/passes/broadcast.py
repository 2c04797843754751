"""Condition vectors broadcast to constant planes: a streaming nearest upsample from 1x1.

A conditional generator concatenates its image with a label or condition vector tiled over the
image (``torch.cat([img, label[:, :, None, None].expand(-1, -1, H, W)], 1)``). Exported, that is
``Unsqueeze``/``Reshape`` to ``(1, C, 1, 1)`` and ``Expand`` to ``(1, C, H, W)``: no FINN layer
streams it. Tiling a 1x1 "image" to H x W is exactly a nearest upsample by H, which fpga_gan's
``UpsampleNearest`` streams in RTL, so the vector enters the accelerator as its own C-element
stream (the host sends C codes per frame, not H*W*C) and the tiling happens on the fabric.

These passes run after streamlining, when the convolutions are NHWC MatMuls and every scale has
moved into thresholds (FINN moves scalar Muls through Unsqueeze and Expand):

* :class:`MoveTransposeAboveConcat`: a channel Concat followed by the layout Transpose to NHWC
  becomes an NHWC Concat of transposed inputs (FINN's own pass moves Transposes the other way,
  below a Concat, and cannot help when an input comes straight from a graph input);
* :class:`LowerBroadcastToUpsample`: ``Expand`` of a ``(1, C, 1, 1)`` tensor to ``(1, C, H, W)``
  followed by that Transpose becomes a Reshape to ``(1, 1, 1, C)`` and ``UpsampleNearest``.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from ...ops import DOMAIN

__all__ = ["LowerBroadcastToUpsample", "MoveTransposeAboveConcat"]

NCHW_TO_NHWC = [0, 2, 3, 1]


def _is_to_nhwc(node) -> bool:
    if node is None or node.op_type != "Transpose":
        return False
    perm = get_by_name(node.attribute, "perm")
    return perm is not None and list(helper.get_attribute_value(perm)) == NCHW_TO_NHWC


def _replace(model: ModelWrapper, old: list, new: list) -> None:
    nodes = list(model.graph.node)
    at = min(nodes.index(n) for n in old)
    for n in old:
        nodes.remove(n)
    nodes[at:at] = new
    del model.graph.node[:]
    model.graph.node.extend(nodes)


class MoveTransposeAboveConcat(Transformation):
    """Concat(axis=1) -> Transpose(NCHW->NHWC)  =>  Transpose each input -> Concat(axis=3)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for concat in model.graph.node:
            if concat.op_type != "Concat" or concat.domain:
                continue
            axis = helper.get_attribute_value(get_by_name(concat.attribute, "axis"))
            shapes = [model.get_tensor_shape(i) for i in concat.input]
            if axis not in (1, -3) or any(s is None or len(s) != 4 for s in shapes):
                continue
            consumers = model.find_consumers(concat.output[0]) or []
            if len(consumers) != 1 or not _is_to_nhwc(consumers[0]) \
                    or concat.output[0] in [o.name for o in model.graph.output]:
                continue
            transpose = consumers[0]
            new, inputs = [], []
            for i, (tensor, (n, c, h, w)) in enumerate(zip(concat.input, shapes)):
                nhwc = model.make_new_valueinfo_name()
                model.set_tensor_shape(nhwc, [n, h, w, c])
                model.set_tensor_datatype(nhwc, model.get_tensor_datatype(tensor))
                new.append(helper.make_node("Transpose", [tensor], [nhwc], perm=NCHW_TO_NHWC,
                                            name=f"{transpose.name}_in{i}"))
                inputs.append(nhwc)
            new.append(helper.make_node("Concat", inputs, [transpose.output[0]], axis=3, name=concat.name))
            _replace(model, [concat, transpose], new)
            return model.transform(InferShapes()), True
        return model, False


class LowerBroadcastToUpsample(Transformation):
    """Expand (1, C, 1, 1) -> (1, C, H, W), then Transpose to NHWC  =>  Reshape to (1, 1, 1, C)
    and a streaming ``UpsampleNearest`` by H (square planes: the RTL layer has one factor)."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for expand in model.graph.node:
            if expand.op_type != "Expand":
                continue
            consumers = model.find_consumers(expand.output[0]) or []
            in_shape, out_shape = model.get_tensor_shape(expand.input[0]), model.get_tensor_shape(expand.output[0])
            if len(consumers) != 1 or not _is_to_nhwc(consumers[0]) or in_shape is None or out_shape is None \
                    or len(out_shape) != 4 or int(np.prod(in_shape)) != out_shape[1] or out_shape[0] != 1:
                continue
            _, c, h, w = out_shape
            if list(in_shape) not in ([1, c, 1, 1], [1, c]):
                continue
            if h != w:
                raise ValueError(f"Expand node {expand.name!r} tiles a {c}-element vector to {h}x{w} planes; the "
                                 "streaming tiling (a nearest upsample from 1x1) takes square planes only")
            transpose = consumers[0]
            # walk back through the Unsqueeze/Reshape that made (1, C, 1, 1) of the vector
            source, dropped = expand.input[0], []
            while True:
                producer = model.find_producer(source)
                if producer is None or producer.op_type not in ("Unsqueeze", "Reshape", "Squeeze", "Flatten") \
                        or len(model.find_consumers(source) or []) != 1:
                    break
                dropped.append(producer)
                source = producer.input[0]
            dtype = model.get_tensor_datatype(expand.input[0])
            shape_init, pixel = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(shape_init, np.array([1, 1, 1, c], np.int64))
            model.set_tensor_shape(pixel, [1, 1, 1, c])
            model.set_tensor_datatype(pixel, dtype)
            reshape = helper.make_node("Reshape", [source, shape_init], [pixel], name=f"{expand.name}_vector")
            upsample = helper.make_node("UpsampleNearest", [pixel], [transpose.output[0]], domain=DOMAIN,
                                        backend="fpgadataflow", name=expand.name, ImgDim=[1, 1], NumChannels=c,
                                        Factor=h, SIMD=1, inputDataType=dtype.name)
            _replace(model, [*dropped, expand, transpose], [reshape, upsample])
            return model.transform(InferShapes()), True
        return model, False
