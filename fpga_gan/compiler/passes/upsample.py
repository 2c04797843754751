"""Rewrite nearest upsample -> convolution as one transposed convolution, exactly.

Why: a U-Net decoder's "resize-convolution" computes a k x k convolution on an image that is
s*s times larger but holds only repeated pixels. As a transposed convolution (then lowered to
the zero-free sub-pixel form) it reads the small image once per phase: for s=2, k=3 that is
2.25x fewer MACs, and the upsampled image never exists in a stream.

Index algebra (per axis): with ``up[j] = x[j // s]`` and the convolution
``y[o] = sum_t w[t] * up[o - p + t]``, the taps ``t`` reading input pixel ``i`` are the ``s``
consecutive ones with ``(o - p + t) // s == i``. That is a ConvTranspose with stride ``s``, kernel
``K = k + s - 1``, padding ``P = k - 1 - p`` and weight ``W[tau] = sum_{r<s} w[k - 1 - tau + r]``
(taps outside ``[0, k)`` omitted); both give ``s*H + 2p - k + 1`` outputs. qonnx's
``ResizeConvolutionToDeconvolution`` does the same rewrite on float weights; with quantized
weights it re-quantizes the summed taps at the old bit width and clips them. Here the integer
codes are summed and the bit width grows by ``2*ceil(log2 s)``, so the result is exact.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

__all__ = ["UpsampleConvToConvTranspose", "resize_conv_weight"]


def _attr(node, name, default=None):
    a = get_by_name(node.attribute, name)
    if a is None:
        return default
    value = helper.get_attribute_value(a)
    return value.decode() if isinstance(value, bytes) else value


def resize_conv_weight(w: np.ndarray, s: int) -> np.ndarray:
    """Conv weight (Cout, Cin, k, k) of upsample(s)->conv as ConvTranspose weight (Cin, Cout, K, K)."""
    cout, cin, kh, kw = w.shape
    out = np.zeros((cin, cout, kh + s - 1, kw + s - 1), w.dtype)
    for th in range(kh + s - 1):
        for tw in range(kw + s - 1):
            for rh in range(s):
                for rw in range(s):
                    a, b = kh - 1 - th + rh, kw - 1 - tw + rw
                    if 0 <= a < kh and 0 <= b < kw:
                        out[:, :, th, tw] += w[:, :, a, b].T
    return out


def _nearest_scale(model: ModelWrapper, node) -> int | None:
    """The integer upsampling factor of a nearest Resize that equals ``x[j // s]``, else None."""
    if node.op_type not in ("Resize", "Upsample") or _attr(node, "mode") != "nearest":
        return None
    if node.op_type == "Resize" and (_attr(node, "coordinate_transformation_mode", "half_pixel") != "asymmetric"
                                     or _attr(node, "nearest_mode", "round_prefer_floor") != "floor"):
        return None
    scales = model.get_initializer(node.input[2] if node.op_type == "Resize" else node.input[1])
    if scales is None or len(scales) != 4 or scales[0] != 1 or scales[1] != 1 or scales[2] != scales[3]:
        return None
    s = float(scales[2])
    return int(s) if s.is_integer() and s >= 2 else None


class UpsampleConvToConvTranspose(Transformation):
    """Nearest upsample (integer factor) -> stride-1 Conv with Quant weights => ConvTranspose."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for resize in model.graph.node:
            s = _nearest_scale(model, resize)
            consumers = model.find_consumers(resize.output[0]) or []
            if s is None or len(consumers) != 1 or consumers[0].op_type != "Conv":
                continue
            conv = consumers[0]
            pads = [int(p) for p in _attr(conv, "pads", [0, 0, 0, 0])]
            if (int(_attr(conv, "group", 1)) != 1 or any(int(v) != 1 for v in _attr(conv, "strides", [1, 1]))
                    or any(int(v) != 1 for v in _attr(conv, "dilations", [1, 1])) or len(set(pads)) != 1):
                continue
            wq = model.find_producer(conv.input[1])
            if wq is None or wq.op_type != "Quant":
                continue
            w, scale, zero, bits = (model.get_initializer(i) for i in wq.input)
            if any(v is None for v in (w, scale, zero, bits)) or np.any(zero != 0):
                continue
            if scale.size != 1 and scale.shape != (w.shape[0], 1, 1, 1):
                continue
            k, p = w.shape[2], pads[0]
            if w.shape[2] != w.shape[3] or k - 1 - p < 0:
                continue
            signed = int(_attr(wq, "signed", 1))
            narrow = int(_attr(wq, "narrow", 0))
            rounding = _attr(wq, "rounding_mode", "ROUND")
            codes = quant(w, scale, zero, bits, signed=signed, narrow=narrow, rounding_mode=rounding) / scale
            new_codes = resize_conv_weight(np.round(codes).astype(np.float64), s)
            new_bits = float(bits) + 2 * math.ceil(math.log2(s))
            new_scale = scale if scale.size == 1 else scale.reshape(1, -1, 1, 1)
            prefix = conv.name or "ResizeConv"
            names = [f"{prefix}_deconv_{x}" for x in ("w", "scale", "zero", "bits", "wq")]
            model.set_initializer(names[0], (new_codes * new_scale).astype(np.float32))
            model.set_initializer(names[1], np.asarray(new_scale, np.float32))
            model.set_initializer(names[2], np.asarray(0.0, np.float32))
            model.set_initializer(names[3], np.asarray(new_bits, np.float32))
            new_wq = helper.make_node("Quant", names[:4], [names[4]], name=f"{prefix}_deconv_weight_quant",
                                      domain=wq.domain, signed=signed, narrow=0, rounding_mode="ROUND")
            K, P = k + s - 1, k - 1 - p
            inputs = [resize.input[0], names[4]] + list(conv.input[2:])
            deconv = helper.make_node("ConvTranspose", inputs, list(conv.output), name=f"{prefix}_deconv",
                                      kernel_shape=[K, K], strides=[s, s], pads=[P, P, P, P])
            weight_shared = len(model.find_consumers(wq.output[0]) or []) > 1
            nodes = list(model.graph.node)
            at = nodes.index(resize)
            nodes.remove(resize)
            nodes.remove(conv)
            nodes[at:at] = [new_wq, deconv]
            if not weight_shared:
                nodes.remove(wq)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            return model.transform(InferShapes()), True
        return model, False
