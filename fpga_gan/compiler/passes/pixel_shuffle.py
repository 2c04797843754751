"""Move an activation quantizer and its per-channel float chain from behind a DepthToSpace to in front of it.

Why: a PixelShuffle up-sampler (ESPCN, SRGAN) is a convolution with ``C*r*r`` output channels, a
DepthToSpace(r) (PyTorch exports CRD order: input channel ``c*r*r + phase``) and then an
activation (PReLU, ReLU, ...) and its quantizer on ``C`` channels. When the convolution has a bias
or per-output-channel weight scales, the ``r*r`` phases of one output channel carry different
scales and biases, so behind the DepthToSpace the accumulator is no longer "integer times one
scale plus one bias per channel": :class:`~.thresholds.ExactQuantThresholds` cannot turn the
chain into thresholds there, and an activation FINN cannot move (PReLU, LeakyReLU, tanh) stops
the compile.

DepthToSpace only permutes elements, and an elementwise op whose constants are per channel (or
scalar) commutes with a permutation once its constants are permuted with it: output channel
``c`` after a CRD DepthToSpace is input channels ``c*r*r + q`` (``q`` in ``[0, r*r)``) before it,
so a constant ``p[c]`` becomes ``repeat(p, r*r)`` (DCR: input channel ``q*C + c``, so
``tile(p, r*r)``). The rewrite is therefore exact in float32, node by node: every element meets
the same float operations with the same constants, only at another position. Moving the whole
chain up to and including the quantizer puts it directly behind the convolution, where
ExactQuantThresholds makes it one MultiThreshold over the ``C*r*r`` accumulator channels, and
the DepthToSpace streams the quantizer's integer codes (narrower than accumulators).

The move is made only where it is needed (the root in front differs per phase,
:func:`~.thresholds.root_differs_per_phase`): behind the DepthToSpace the thresholds are ``r*r``
times fewer, so a chain that can be thresholded there stays there.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

from .thresholds import root_differs_per_phase

__all__ = ["MoveQuantChainAboveDepthToSpace", "param_before_depth_to_space"]

# Elementwise ops with one dynamic input and constant (per-channel or scalar) parameters: they
# commute with any permutation of the channels once the parameters are permuted alike.
_ELEMENTWISE = {"Relu", "LeakyRelu", "PRelu", "Elu", "HardSigmoid", "Tanh", "Sigmoid", "Softplus", "Identity",
                "Clip", "Mul", "Add", "Sub", "Div", "BatchNormalization", "Quant"}
_MAX_CHAIN = 32


def _attr(node: NodeProto, name: str, default=None):
    a = get_by_name(node.attribute, name)
    if a is None:
        return default
    value = helper.get_attribute_value(a)
    return value.decode() if isinstance(value, bytes) else value


def _depth_to_space(node: NodeProto) -> tuple[int, str] | None:
    """(block size, mode) of a standard-domain DepthToSpace, else None."""
    if node.op_type != "DepthToSpace" or node.domain not in ("", "ai.onnx"):
        return None
    return int(_attr(node, "blocksize")), _attr(node, "mode", "DCR")


def param_before_depth_to_space(param: np.ndarray, channels: int, block: int, mode: str,
                                vector: bool = False) -> np.ndarray | None:
    """The constant that, applied before a DepthToSpace(``block``, ``mode``) with ``channels``
    output channels, gives the same result as ``param`` applied after it; None if ``param`` is
    not a scalar or one value per channel (it would then depend on the spatial position).

    ``vector``: ``param`` is a (C,) per-channel vector by definition (BatchNormalization's
    parameters) rather than a tensor broadcast against NCHW."""
    if param.size == 1:
        return param
    if vector:
        if param.shape != (channels,):
            return None
        per_channel, shape = param, (channels * block * block,)
    else:
        full = (1,) * (4 - param.ndim) + tuple(param.shape)
        if param.ndim > 4 or full != (1, channels, 1, 1):
            return None
        per_channel = param.reshape(channels)
        shape = tuple(param.shape[:-3]) + (channels * block * block, 1, 1)
    expanded = np.repeat(per_channel, block * block) if mode == "CRD" else np.tile(per_channel, block * block)
    return np.ascontiguousarray(expanded.reshape(shape).astype(param.dtype))


def _chain_behind(model: ModelWrapper, d2s: NodeProto) -> list[NodeProto] | None:
    """The elementwise nodes from ``d2s``'s output down to and including the first activation
    Quant, each the only reader of the one before; None if the path is anything else."""
    outputs = {o.name for o in model.graph.output}
    chain, tensor = [], d2s.output[0]
    while len(chain) < _MAX_CHAIN:
        consumers = model.find_consumers(tensor) or []
        if tensor in outputs or len(consumers) != 1 or consumers[0].op_type not in _ELEMENTWISE:
            return None
        node = consumers[0]
        dynamic = [i for i in node.input if i and model.get_initializer(i) is None]
        if dynamic != [tensor] or (node.op_type not in ("Mul", "Add") and node.input[0] != tensor):
            return None
        chain.append(node)
        if node.op_type == "Quant":
            return chain
        tensor = node.output[0]
    return None


def _moved_params(model: ModelWrapper, node: NodeProto, channels: int, block: int, mode: str) -> dict | None:
    """Input index -> the constant ``node`` needs in front of the DepthToSpace; None if one of its
    constants is not per channel."""
    moved = {}
    for index, name in enumerate(node.input):
        value = model.get_initializer(name) if name else None
        if value is None:
            continue
        new = param_before_depth_to_space(value, channels, block, mode, vector=node.op_type == "BatchNormalization")
        if new is None:
            return None
        if new is not value:
            moved[index] = new
    return moved


class MoveQuantChainAboveDepthToSpace(Transformation):
    """Rewrite DepthToSpace -> (per-channel elementwise ops) -> Quant as (the same ops, their
    constants permuted to the DepthToSpace's input channels) -> Quant -> DepthToSpace, where the
    accumulator in front of the DepthToSpace has a scale or bias per channel and phase.

    Exact (see the module docstring); runs on the QONNX graph before ExactQuantThresholds. The
    Quant's output keeps its name (now the DepthToSpace's), so every reader of the codes is
    unchanged.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for d2s in model.graph.node:
            geometry = _depth_to_space(d2s)
            if geometry is None:
                continue
            block, mode = geometry
            shape = model.get_tensor_shape(d2s.output[0])
            chain = _chain_behind(model, d2s)
            if shape is None or len(shape) != 4 or chain is None or not root_differs_per_phase(model, d2s):
                continue
            moves = [_moved_params(model, node, shape[1], block, mode) for node in chain]
            if any(m is None for m in moves):
                continue
            self._move(model, d2s, chain, moves)
            return model.transform(InferShapes()), True
        return model, False

    @staticmethod
    def _move(model: ModelWrapper, d2s: NodeProto, chain: list[NodeProto], moves: list[dict]) -> None:
        for node, moved in zip(chain, moves):
            for index, value in moved.items():
                name = model.make_new_valueinfo_name()
                model.set_initializer(name, value)
                node.input[index] = name
        # rewire: x -> chain -> mid -> d2s -> (the Quant's old output)
        x, y, mid = d2s.input[0], chain[-1].output[0], model.make_new_valueinfo_name()
        stale = [d2s.output[0]] + [n.output[0] for n in chain]
        first = chain[0]
        first.input[list(first.input).index(d2s.output[0])] = x
        chain[-1].output[0] = mid
        d2s.input[0], d2s.output[0] = mid, y
        model.set_tensor_datatype(mid, model.get_tensor_datatype(y))
        for name in stale:                  # shapes change (or the tensor is gone): infer afresh
            vi = get_by_name(model.graph.value_info, name)
            if vi is not None:
                model.graph.value_info.remove(vi)
        nodes = list(model.graph.node)
        nodes.remove(d2s)
        nodes.insert(nodes.index(chain[-1]) + 1, d2s)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
