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


def _dequantize_input_per_axis(model, node, why: str) -> bool:
    """Give ``node`` its own per-axis copy of its per-tensor input dequantization (same scale and zero
    point on every entry of one axis, so the values are unchanged). ONNX Runtime's
    ``WeightBiasQuantization`` and its QDQ fusions take only per-tensor input scales, so they leave
    the layer in float. False when there is nothing to change (no input dequantization, or one that
    is already per axis); ``why`` words the error when no axis can carry the copy."""
    x_dq = _dequant_producer(model, node.input[0])
    shape = model.get_tensor_shape(node.input[0])
    if x_dq is None or shape is None:
        return False
    scale = model.get_initializer(x_dq.input[1])
    zero = model.get_initializer(x_dq.input[2]) if len(x_dq.input) > 2 and x_dq.input[2] else None
    if scale is None or scale.size != 1:
        return False  # already per channel: ONNX Runtime leaves it in float
    axis = _widenable_axis(model, node, shape)
    if axis is None:
        raise ArtifactExportError(f"{node.op_type} node {node.name}: {why}, and its input {shape} has no axis of "
                                  "size > 1 to keep ONNX Runtime from running it in integer arithmetic")
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
    return True


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
            why = ("its bias is finer than input scale x weight scale (quantize the bias with scale = input "
                   "scale x weight scale, Brevitas Int32Bias)")
            if _dequantize_input_per_axis(model, node, why):
                return model, True
        return model, False


# The largest int16: x86 CPUs without VNNI multiply uint8 by int8 with vpmaddubsw, which adds two
# products into a saturating int16.
_INT16_MAX = 32767
# float32 adds integers exactly up to 2**24; a layer kept in float must stay below it.
_FLOAT32_EXACT = 2 ** 24


def _clip_bounds(model, tensor: str) -> tuple[str, int | None, int | None]:
    """(the tensor before a constant Clip, its lower and upper bound) -- QCDQ narrows a code range
    below 8 bits with a Clip between QuantizeLinear and DequantizeLinear; (tensor, None, None) without one."""
    clip = model.find_producer(tensor)
    if clip is None or clip.op_type != "Clip":
        return tensor, None, None
    bounds = [model.get_initializer(t) if len(clip.input) > k and clip.input[k] else None
              for k, t in ((1, clip.input[1] if len(clip.input) > 1 else ""), (2, clip.input[2] if len(clip.input) > 2 else ""))]
    lo, hi = (int(b.reshape(-1)[0]) if b is not None and b.size else None for b in bounds)
    return clip.input[0], lo, hi


def _code_range(model, dequant) -> tuple[int, int] | None:
    """The range of the integer codes a DequantizeLinear reads, less the zero point: its datatype's,
    narrowed by a Clip in front of it."""
    source, lo, hi = _clip_bounds(model, dequant.input[0])
    codes = model.get_initializer(source)
    zero = model.get_initializer(dequant.input[2]) if len(dequant.input) > 2 and dequant.input[2] else None
    dtype = codes.dtype if codes is not None else (zero.dtype if zero is not None else None)
    if dtype is None or dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    lo, hi = max(info.min, lo if lo is not None else info.min), min(info.max, hi if hi is not None else info.max)
    offset = int(zero.reshape(-1)[0]) if zero is not None and zero.size else 0
    return lo - offset, hi - offset


def _weight_codes(model, dequant) -> np.ndarray | None:
    """The integer weight codes a DequantizeLinear reads (less the zero point): a constant, or a
    QuantizeLinear of constants (computed as ONNX defines it: round half to even, saturate), through
    a constant Clip."""
    source, lo, hi = _clip_bounds(model, dequant.input[0])
    codes = model.get_initializer(source)
    zero = model.get_initializer(dequant.input[2]) if len(dequant.input) > 2 and dequant.input[2] else None
    if codes is None:
        quant = model.find_producer(source)
        if quant is None or quant.op_type != "QuantizeLinear":
            return None
        weight, scale = model.get_initializer(quant.input[0]), model.get_initializer(quant.input[1])
        qzero = model.get_initializer(quant.input[2]) if len(quant.input) > 2 and quant.input[2] else None
        if weight is None or scale is None or qzero is None or qzero.dtype.kind not in "iu":
            return None
        if scale.size > 1:
            shape = [1] * weight.ndim
            shape[_attr(quant, "axis", 1)] = scale.size
            scale, qzero = scale.reshape(shape), qzero.reshape(shape)
        info = np.iinfo(qzero.dtype)
        codes = np.clip(np.round(weight / scale) + qzero.astype(np.int64), info.min, info.max)
    codes = np.clip(codes.astype(np.int64), lo if lo is not None else -2 ** 62, hi if hi is not None else 2 ** 62)
    if zero is not None and zero.size > 1:
        shape = [1] * codes.ndim
        shape[_attr(dequant, "axis", 1)] = zero.size
        return codes - zero.astype(np.int64).reshape(shape)
    return codes - (int(zero.reshape(-1)[0]) if zero is not None and zero.size else 0)


def _remove_if_unused(model, tensor: str) -> None:
    """Delete the nodes that computed ``tensor`` (through single-consumer chains) once nothing reads it."""
    while tensor and not model.find_consumers(tensor) and tensor not in [o.name for o in model.graph.output]:
        node = model.find_producer(tensor)
        if node is None:
            return
        model.graph.node.remove(node)
        tensor = next((t for t in node.input if t and model.get_initializer(t) is None), "")


def _weights_to_float(model, node, w_dq, codes: np.ndarray) -> None:
    """Replace the layer's dequantized weights (and an int32-dequantized bias) by float32 constants of
    the same values (codes x power-of-two scales: exact), so no QDQ fusion can take the layer."""
    scale = model.get_initializer(w_dq.input[1])
    if scale.size > 1:
        shape = [1] * codes.ndim
        shape[_attr(w_dq, "axis", 1)] = scale.size
        scale = scale.reshape(shape)
    values = (codes.astype(np.float64) * scale.astype(np.float64)).astype(np.float32)
    if not np.array_equal(values.astype(np.float64), codes * scale.astype(np.float64)):
        raise ArtifactExportError(f"{node.op_type} node {node.name}: its weights are not exact in float32")
    old, name = node.input[1], model.make_new_valueinfo_name()
    model.set_initializer(name, values)
    node.input[1] = name
    _remove_if_unused(model, old)
    if len(node.input) > 2 and node.input[2]:
        b_dq = _dequant_producer(model, node.input[2])
        bias_codes = model.get_initializer(b_dq.input[0]) if b_dq is not None else None
        if bias_codes is not None:
            bias_scale = model.get_initializer(b_dq.input[1]).astype(np.float64)
            bias = bias_codes.astype(np.float64) * bias_scale
            if np.all(np.abs(bias_codes.astype(np.int64)) < 2 ** 24):
                old, name = node.input[2], model.make_new_valueinfo_name()
                model.set_initializer(name, bias.astype(np.float32))
                node.input[2] = name
                _remove_if_unused(model, old)


class KeepSaturatingInt8LayersInFloat(Transformation):
    """Keep in float every QDQ layer whose 8-bit products could saturate ONNX Runtime's integer kernel.

    Why: ONNX Runtime fuses a QDQ convolution into ``QLinearConv`` (at ``ORT_ENABLE_ALL``, its
    default), and on x86 CPUs without VNNI (AVX2 only, e.g. many AMD EPYC and older Xeons) its uint8 x
    int8 kernel adds pairs of products into a saturating int16. A layer whose input codes reach 255
    and whose weight codes pass 64 (an 8-bit first layer) then gives other codes than QONNX on those
    machines only, while CPUs with VNNI compute it exactly. Such a layer (two products that can
    exceed 32,767 together) runs in float instead, where its integer sums are exact as long as they
    stay below 2**24 (checked here, per output channel, from the weight codes and the input's range).
    """

    def apply(self, model):
        for node in model.graph.node:
            if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                continue
            x_dq, w_dq = _dequant_producer(model, node.input[0]), _dequant_producer(model, node.input[1])
            weights = _weight_codes(model, w_dq) if w_dq is not None else None
            x_range = _code_range(model, x_dq) if x_dq is not None else None
            if weights is None or x_range is None:
                continue
            x_max = max(abs(x_range[0]), abs(x_range[1]))
            if 2 * int(np.abs(weights).max()) * x_max <= _INT16_MAX:
                continue
            # Per output channel, the sum of all its |weight codes| bounds every output's sum (a
            # transposed convolution's output sees only some of them).
            axis = _weight_output_axis(node)
            per_output = (np.abs(np.moveaxis(weights, axis, 0)).reshape(weights.shape[axis], -1).sum(1)
                          if axis is not None and weights.ndim > 1 else np.array([np.abs(weights).sum()]))
            b_dq = _dequant_producer(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
            bias_codes = model.get_initializer(b_dq.input[0]) if b_dq is not None else None
            bias_max = int(np.abs(bias_codes.astype(np.int64)).max()) if bias_codes is not None else 0
            if int(per_output.max()) * x_max + bias_max >= _FLOAT32_EXACT:
                raise ArtifactExportError(
                    f"{node.op_type} node {node.name}: its 8-bit products can saturate ONNX Runtime's integer "
                    f"kernel on CPUs without VNNI, and in float its sums (up to {int(per_output.max()) * x_max:,} "
                    f"input x weight codes) pass 2**24, where float32 stops adding integers exactly; use fewer "
                    "input channels or narrower weights in this layer")
            _weights_to_float(model, node, w_dq, weights)
            _dequantize_input_per_axis(model, node, "its 8-bit products can saturate ONNX Runtime's integer kernel")
            return model, True
        return model, False
