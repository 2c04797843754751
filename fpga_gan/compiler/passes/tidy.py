"""Graph clean-ups that let FINN's generic passes see through the GAN lowering.

Each pass is a small qonnx ``Transformation``; they keep the arithmetic exactly the same (only
exact rewrites: folding a constant quantizer, moving a per-channel scale across a pure data
movement, merging a zero pad into the convolution that reads it).
"""

from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

__all__ = ["AbsorbPadIntoConv", "FoldBiasQuant", "MoveAffinePastDataMovement", "MoveDepthToSpacePastMultiThreshold"]

_BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2}


class FoldBiasQuant(Transformation):
    """Replace the Quant of a convolution bias by its (exact, dyadic) quantized value.

    Brevitas exports the bias through a 16-bit Quant with a per-tensor scale; qonnx's
    ``ExtractBiasFromConv`` (part of FINN's QONNX conversion) can only reshape per-channel scales
    and fails on it. The bias is a constant, so its quantized value is simply computed here;
    streamlining later turns the resulting Add into threshold offsets, integers unchanged.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        changed = False
        for node in list(model.graph.node):
            if node.op_type != "Quant":
                continue
            values = [model.get_initializer(name) for name in node.input]
            consumers = model.find_consumers(node.output[0]) or []
            is_bias = consumers and all(
                c.op_type in _BIAS_INPUT and len(c.input) > _BIAS_INPUT[c.op_type]
                and c.input[_BIAS_INPUT[c.op_type]] == node.output[0] for c in consumers)
            if not is_bias or any(v is None for v in values):
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            rounding = attrs.get("rounding_mode", b"ROUND")
            folded = quant(*values, signed=attrs.get("signed", 1), narrow=attrs.get("narrow", 0),
                           rounding_mode=rounding.decode() if isinstance(rounding, bytes) else rounding)
            model.graph.node.remove(node)
            model.set_initializer(node.output[0], np.asarray(folded, np.float32))
            changed = True
        return model, changed


class AbsorbPadIntoConv(Transformation):
    """Merge a constant-zero ``Pad`` on H and W into the ``pads`` of the Conv that reads it.

    The sub-pixel lowering emits Pad -> Conv; FINN lowers a Conv's own padding into a streaming
    padder (FMPadding) in front of the sliding window, but has no streaming layer for a stand-alone
    Pad. Zero padding of a zero-point-0 activation is the same before and after quantization.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in list(model.graph.node):
            if node.op_type != "Pad":
                continue
            consumers = model.find_consumers(node.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type != "Conv":
                continue
            conv = consumers[0]
            pads = model.get_initializer(node.input[1]) if len(node.input) > 1 else None
            mode = get_by_name(node.attribute, "mode")
            if pads is None or (mode is not None and helper.get_attribute_value(mode) not in (b"constant", "constant")):
                continue
            if len(node.input) > 2 and node.input[2]:
                value = model.get_initializer(node.input[2])
                if value is None or np.any(value != 0):
                    continue
            pads = [int(p) for p in pads]
            rank = len(pads) // 2
            if rank != 4 or min(pads) < 0 or any(pads[i] or pads[i + rank] for i in (0, 1)):
                continue                                  # only spatial (H, W) zero padding
            conv_pads = get_by_name(conv.attribute, "pads")
            old = list(helper.get_attribute_value(conv_pads)) if conv_pads else [0, 0, 0, 0]
            new = [old[0] + pads[2], old[1] + pads[3], old[2] + pads[6], old[3] + pads[7]]
            if conv_pads is not None:
                conv.attribute.remove(conv_pads)
            conv.attribute.append(helper.make_attribute("pads", new))
            conv.input[0] = node.input[0]
            model.graph.node.remove(node)
            return model.transform(InferShapes()), True
        return model, False


def _static_param(model: ModelWrapper, node) -> tuple[int, np.ndarray] | None:
    """(index, value) of the one initializer input of an elementwise Mul / Add, else None."""
    found = [(i, model.get_initializer(name)) for i, name in enumerate(node.input)]
    static = [(i, v) for i, v in found if v is not None]
    return static[0] if len(static) == 1 and len(found) == 2 else None


def _param_after_depth_to_space(param: np.ndarray, channels: int, block: int) -> np.ndarray | None:
    """The parameter that gives the same result after a CRD DepthToSpace, or None if none does.

    A scalar moves unchanged. A per-channel parameter over the ``C*b*b`` phase channels moves
    only if the ``b*b`` phases of each output channel share one value (true when it came from a
    per-output-channel scale or bias of the sub-pixel convolution).
    """
    if param.size == 1:
        return param
    if param.shape != (1, channels, 1, 1) and param.shape != (channels, 1, 1):
        return None
    groups = param.reshape(channels // (block * block), block * block)
    if not np.all(groups == groups[:, :1]):
        return None
    return np.ascontiguousarray(groups[:, 0].reshape(1, -1, 1, 1))


def _slice_is_spatial(model: ModelWrapper, node) -> bool:
    axes = model.get_initializer(node.input[3]) if len(node.input) > 3 else None
    if axes is None:
        return False
    rank = len(model.get_tensor_shape(node.input[0]))
    return all(int(a) % rank in (2, 3) for a in axes)


def _depth_to_space_block(node) -> int | None:
    """The block size of a CRD DepthToSpace node, else None."""
    if node.op_type != "DepthToSpace" or node.domain not in ("", "ai.onnx"):
        return None
    mode = get_by_name(node.attribute, "mode")
    if mode is None or helper.get_attribute_value(mode) not in (b"CRD", "CRD"):
        return None
    return int(helper.get_attribute_value(get_by_name(node.attribute, "blocksize")))


def _stuck_affine_in_front(model: ModelWrapper, d2s) -> bool:
    """True when a Mul / Add right in front of ``d2s`` has a per-channel parameter that cannot
    follow it (the ``b*b`` phases of an output channel have different values)."""
    producer = model.find_producer(d2s.input[0])
    if producer is None or producer.op_type not in ("Mul", "Add"):
        return False
    static = _static_param(model, producer)
    if static is None:
        return False
    channels = model.get_tensor_shape(producer.output[0])[1]
    return _param_after_depth_to_space(static[1], channels, _depth_to_space_block(d2s)) is None


class MoveDepthToSpacePastMultiThreshold(Transformation):
    """Rewrite DepthToSpace(CRD) -> MultiThreshold as MultiThreshold -> DepthToSpace when a
    per-channel scale or bias in front of the DepthToSpace cannot move past it.

    Why: a biased convolution with per-channel weight scales in front of a PixelShuffle (which
    PyTorch exports as a CRD DepthToSpace) leaves Mul / Add nodes over the ``C*b*b`` convolution
    channels, one value per channel and phase; after the DepthToSpace that is no longer a
    per-channel parameter, so it cannot follow the data movement to the quantizer. The quantizer
    can move up instead: thresholding channel ``c`` after the DepthToSpace is thresholding each of
    its ``b*b`` phase channels ``c*b*b + q`` before it with the same thresholds. Exact; the scale
    and bias are then absorbed by FINN's streamlining as usual, and the DepthToSpace moves the
    narrow activation codes instead of accumulators.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for d2s in model.graph.node:
            block = _depth_to_space_block(d2s)
            consumers = model.find_consumers(d2s.output[0]) or []
            if block is None or len(consumers) != 1 or consumers[0].op_type != "MultiThreshold":
                continue
            thresh = consumers[0]
            thresholds = model.get_initializer(thresh.input[1])
            shape = model.get_tensor_shape(d2s.input[0])
            if thresholds is None or shape is None or len(shape) != 4 or not _stuck_affine_in_front(model, d2s):
                continue
            if d2s.output[0] in [o.name for o in model.graph.output]:
                continue
            channels = shape[1] // (block * block)
            if thresholds.shape[0] not in (1, channels):
                continue
            new_thresholds = thresholds if thresholds.shape[0] == 1 else np.repeat(thresholds, block * block, axis=0)
            t_name = model.make_new_valueinfo_name()
            model.set_initializer(t_name, new_thresholds.astype(np.float32))
            model.set_tensor_datatype(t_name, model.get_tensor_datatype(thresh.input[1]))
            # rewire: x -> thresh -> (mid) -> d2s -> (old thresh output)
            x, y, mid = d2s.input[0], thresh.output[0], model.make_new_valueinfo_name()
            thresh.input[0], thresh.input[1], thresh.output[0] = x, t_name, mid
            d2s.input[0], d2s.output[0] = mid, y
            model.set_tensor_datatype(mid, model.get_tensor_datatype(y))
            nodes = list(model.graph.node)
            nodes.remove(thresh)
            nodes.insert(nodes.index(d2s), thresh)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            return model.transform(InferShapes()), True
        return model, False


class MoveAffinePastDataMovement(Transformation):
    """Move a constant elementwise Mul / Add below DepthToSpace (CRD) and spatial Slice nodes.

    Streamlining absorbs scales and biases into the next MultiThreshold, but only when nothing
    sits between them; after the sub-pixel lowering a DepthToSpace and a crop do. Both only move
    data, so a scalar or per-channel parameter commutes with them exactly. A per-channel parameter
    that differs between the phases of a channel (a convolution in front of a PixelShuffle)
    cannot; then the quantizer behind the DepthToSpace moves up in front of it instead
    (:class:`MoveDepthToSpacePastMultiThreshold`, run as this pass's second resort).
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        model, changed = self._move_affine(model)
        if changed:
            return model, True
        model, changed = MoveDepthToSpacePastMultiThreshold().apply(model)
        return model, changed

    def _move_affine(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type not in ("Mul", "Add"):
                continue
            consumers = model.find_consumers(node.output[0]) or []
            if len(consumers) != 1 or consumers[0].op_type not in ("DepthToSpace", "Slice"):
                continue
            if node.output[0] in [o.name for o in model.graph.output]:
                continue                                      # the unscaled tensor is needed as it is
            mover = consumers[0]
            static = _static_param(model, node)
            if static is None:
                continue
            index, param = static
            if mover.op_type == "DepthToSpace":
                mode = get_by_name(mover.attribute, "mode")
                if mode is None or helper.get_attribute_value(mode) not in (b"CRD", "CRD"):
                    continue
                block = int(helper.get_attribute_value(get_by_name(mover.attribute, "blocksize")))
                channels = model.get_tensor_shape(node.output[0])[1]
                new_param = _param_after_depth_to_space(param, channels, block)
            else:
                new_param = param if _slice_is_spatial(model, mover) and param.ndim in (0, 1, 4) and (
                    param.size == 1 or param.shape[-2:] == (1, 1)) else None
            if new_param is None:
                continue
            data_in = node.input[1 - index]
            # rewire: data_in -> mover -> node -> (old mover output)
            mover_out = mover.output[0]
            mid = model.make_new_valueinfo_name()
            mover.input[0] = data_in
            mover.output[0] = mid
            node.input[1 - index] = mid
            node.output[0] = mover_out
            param_name = model.make_new_valueinfo_name()
            model.set_initializer(param_name, new_param.astype(np.float32))
            node.input[index] = param_name
            nodes = list(model.graph.node)
            nodes.remove(mover)
            nodes.insert(nodes.index(node), mover)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            return model.transform(InferShapes()), True
        return model, False
