"""Biases in the QCDQ graph, written so that every ONNX Runtime session computes them exactly.

QONNX folds a layer's bias quantizer to a float constant. ONNX Runtime (>= 1.20, at the default and at
``ORT_ENABLE_BASIC``) then applies ``WeightBiasQuantization`` to every Conv / ConvTranspose / Gemm
whose input is a per-tensor ``DequantizeLinear``: it re-rounds the float bias onto the accumulator grid
(input scale x weight scale), and the later QDQ fusion (``QLinearConv``) adds a dequantized int32 bias
as if it lay on that grid, whatever its own scale. A Brevitas bias with its own (finer) scale, as a
16-bit internally scaled bias has, is on neither: the session's codes then differ from QONNX's.

Two passes, applied in order, leave nothing for the runtime to re-round:

* :class:`QuantizeBiasOnAccumulatorGrid`: a bias that is an exact integer multiple of input scale x
  weight scale becomes ``DequantizeLinear(int32, scale = s_in * s_w)``, the standard QDQ form every
  ONNX Runtime fusion computes exactly (and fast, as ``QLinearConv``).
* :class:`KeepOffGridBiasLayersInFloat`: a bias finer than that grid has no standard form; the
  layer's input dequantization is given the same scale once per channel (``axis=1``). The graph means
  exactly the same, but ONNX Runtime's weight/bias quantization and its QDQ fusions take only
  per-tensor input scales, so the layer runs in float, where the bias (a float32 constant, as in
  QONNX) is exact.
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.transformation.base import Transformation

from .artifact import ArtifactExportError

BIASED_OPS = ("Conv", "ConvTranspose", "Gemm")


def _attr(node, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _dequant_producer(model, tensor: str):
    node = model.find_producer(tensor)
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def _widenable_axis(model, node, shape) -> int | None:
    """An axis of the layer's input with more than one entry, for a per-axis scale: the reduction
    channels where they have several (any such axis means the same; a one-entry scale counts as per-tensor)."""
    if node.op_type in ("Conv", "ConvTranspose"):
        preferred = 1
    elif node.op_type == "Gemm":
        preferred = 0 if _attr(node, "transA", 0) else 1
    else:
        preferred = len(shape) - 1  # MatMul
    sizes = [d if isinstance(d, int) else 0 for d in shape]
    return next((a for a in (preferred, *range(len(sizes))) if sizes[a] > 1), None)


def _weight_output_axis(node) -> int | None:
    """The axis of the weight tensor that indexes output channels (the bias's axis), if there is one."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1 if _attr(node, "group", 1) == 1 else None
    return 0 if _attr(node, "transB", 0) else 1  # Gemm


def _float_bias(model, node) -> tuple[str, np.ndarray] | None:
    """(name, values) of a layer's float constant bias: its third input, or a following constant Add."""
    if node.op_type in BIASED_OPS:
        if len(node.input) > 2 and node.input[2]:
            value = model.get_initializer(node.input[2])
            if value is not None and value.dtype == np.float32:
                return node.input[2], value
        return None
    consumers = model.find_consumers(node.output[0]) or []  # MatMul + Add, which ONNX Runtime fuses to Gemm
    if len(consumers) == 1 and consumers[0].op_type == "Add":
        other = [t for t in consumers[0].input if t != node.output[0]]
        value = model.get_initializer(other[0]) if len(other) == 1 else None
        if value is not None and value.dtype == np.float32:
            return other[0], value
    return None


class QuantizeBiasOnAccumulatorGrid(Transformation):
    """Write a float bias that lies exactly on the accumulator grid as an int32 ``DequantizeLinear``.

    The grid is input scale x weight scale (per output channel when the weight is quantized per
    channel); the int32 codes times that scale reproduce the float bias bit for bit, or the bias is
    left alone for :class:`KeepOffGridBiasLayersInFloat`.
    """

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in BIASED_OPS or _float_bias(model, node) is None:
                continue
            name, bias = _float_bias(model, node)
            x_dq, w_dq = _dequant_producer(model, node.input[0]), _dequant_producer(model, node.input[1])
            if x_dq is None or w_dq is None or bias.ndim != 1:
                continue
            s_x, s_w = model.get_initializer(x_dq.input[1]), model.get_initializer(w_dq.input[1])
            if s_x is None or s_w is None or s_x.size != 1:
                continue
            if s_w.size == 1:
                scale = (s_x.reshape(()) * s_w.reshape(())).astype(np.float32)
                grid = np.full(bias.shape, scale, np.float32)
            else:
                if s_w.size != bias.size or _attr(w_dq, "axis", 1) != _weight_output_axis(node):
                    continue
                scale = (s_x.reshape(()) * s_w.reshape(-1)).astype(np.float32)
                grid = scale
            codes = np.round(bias.astype(np.float64) / grid.astype(np.float64))
            if np.any(np.abs(codes) >= 2 ** 31) or not np.array_equal(codes.astype(np.float32) * grid, bias):
                continue
            codes_name, scale_name = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
            model.set_initializer(codes_name, codes.astype(np.int32))
            model.set_initializer(scale_name, scale)
            dequant = helper.make_node("DequantizeLinear", [codes_name, scale_name], [name],
                                       name=f"{node.name}_bias_dequant", **({"axis": 0} if scale.ndim else {}))
            model.del_initializer(name)
            model.graph.node.insert(list(model.graph.node).index(node), dequant)
            return model, True
        return model, False


class KeepOffGridBiasLayersInFloat(Transformation):
    """Give each layer with a remaining float bias its own per-channel copy of its input dequantization.

    Same scale and zero point on every channel (on another axis of size > 1 when the input has a
    single channel), so the values are unchanged; ONNX Runtime's
    ``WeightBiasQuantization`` and its QDQ fusions require a per-tensor input scale, so they leave the
    layer (and its bias) in float, where it is exact.
    """

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in (*BIASED_OPS, "MatMul") or _float_bias(model, node) is None:
                continue
            x_dq = _dequant_producer(model, node.input[0])
            shape = model.get_tensor_shape(node.input[0])
            if x_dq is None or shape is None:
                continue
            scale = model.get_initializer(x_dq.input[1])
            zero = model.get_initializer(x_dq.input[2]) if len(x_dq.input) > 2 and x_dq.input[2] else None
            if scale is None or scale.size != 1:
                continue  # already per channel: ONNX Runtime leaves it in float
            axis = _widenable_axis(model, node, shape)
            if axis is None:
                raise ArtifactExportError(f"{node.op_type} node {node.name}: its bias is finer than input scale x weight "
                                 f"scale and its input {shape} has no axis of size > 1 to keep ONNX Runtime "
                                 "from re-rounding it; quantize the bias with scale = input scale x weight scale "
                                 "(Brevitas Int32Bias)")
            inputs = [x_dq.input[0], model.make_new_valueinfo_name()]
            model.set_initializer(inputs[1], np.full(shape[axis], scale.reshape(()), scale.dtype))
            if zero is not None:
                inputs.append(model.make_new_valueinfo_name())
                model.set_initializer(inputs[2], np.full(shape[axis], zero.reshape(()), zero.dtype))
            out = model.make_new_valueinfo_name()
            model.graph.node.insert(list(model.graph.node).index(node), helper.make_node(
                "DequantizeLinear", inputs, [out], name=f"{node.name}_input_dequant_per_axis", axis=axis))
            model.set_tensor_shape(out, shape)
            node.input[0] = out
            return model, True
        return model, False
