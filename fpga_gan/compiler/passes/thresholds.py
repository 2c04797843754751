"""Thresholds that reproduce the float32 reference exactly, whatever sits between accumulator and quantizer.

Why: FINN turns an activation ``Quant`` into thresholds by moving every scale, bias and batch norm
across it in float arithmetic and comparing the integer accumulator with the result. With
Brevitas' float scales (and any batch norm) the reference computes ``value / scale`` in float32, and
a value within one ulp of a rounding boundary (``0.4999999``) lands on the other side of FINN's
threshold: one code differs, about once in twenty random batch-norm builds. Activations FINN
cannot move at all (LeakyReLU, PReLU, tanh) stop the compile.

What this does instead, on the QONNX graph before FINN's conversion: for every activation ``Quant``
whose input is a chain of per-channel monotone float ops (Mul / Div / Add / Sub by constants,
BatchNormalization, Relu, LeakyRelu, PRelu, Clip, Tanh, Sigmoid, ...) and channel Concats, rooted in
integer tensors (the accumulator of a convolution with quantized input and weights, the input
possibly zero-, reflection- or replication-padded, the accumulator possibly behind a sub-pixel
DepthToSpace / crop, or the codes of an earlier quantizer), the function ``accumulator -> output
code`` is monotone per channel. :func:`bisect_thresholds` finds each of its
steps by bisection over the accumulator range, evaluating the ORIGINAL nodes (the same qonnx /
ONNX Runtime kernels the reference runs) on candidate accumulators. The Quant and its chain are
replaced by a MultiThreshold per root (then a Concat of codes, then the output scale): the graph
computes exactly the same codes, so FINN's later streamlining only has to move the root's scale
into them. Each threshold sits half-way between two integers (``T - 1/2``), so float rounding while
FINN moves scales cannot flip a comparison; on the integer accumulator it is ``acc >= T``. By
construction every ``T`` lies in ``[acc_min, acc_max + 1]`` (made inside its input's range);
streamlining's RoundAndClipThresholds then makes it exactly ``T``.

Assumption (documented, not checkable): the reference convolution returns the correctly rounded
``acc * scale + bias`` up to a few ulps; exact for power-of-two scales. A tensor that does not fit
the pattern is left to FINN's own conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from onnx import StringStringEntryProto, TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.quant import quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name, qonnx_make_model

__all__ = ["EXACT_MARK", "ExactQuantThresholds", "bisect_thresholds", "root_differs_per_phase"]

EXACT_MARK = "exact"          # fpga_gan_half_even metadata of a MultiThreshold made here
_MAX_QUANT_BITS = 8


# ------------------------------------------------------------------------------------------------
# The search


def bisect_thresholds(codes_of: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                      levels: np.ndarray) -> np.ndarray:
    """Steps of a per-channel monotone (non-decreasing) integer function, by vectorised bisection.

    ``codes_of(acc)`` maps integer candidates of shape (K, C) to codes (K, C); ``lo`` / ``hi`` (C,)
    bound the accumulator of each channel; ``levels`` (K,) are the codes to reach. Returns ``T``
    (C, K): the smallest ``a`` in ``[lo, hi]`` with ``codes_of(a) >= levels[k]``, or ``hi + 1``
    if none, so ``code(a) = levels[0] - 1 + #{k : a >= T[:, k]}`` for every ``a`` in range.
    All K x C searches share one ``codes_of`` call per step (about log2 of the range).
    """
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    levels = np.asarray(levels)
    low = np.broadcast_to(lo, (len(levels), len(lo))).copy()
    high = np.broadcast_to(hi + 1, low.shape).copy()
    while np.any(low < high):
        active = low < high
        mid = np.where(active, (low + high) // 2, low)
        reached = codes_of(mid) >= levels[:, None]
        high = np.where(active & reached, mid, high)
        low = np.where(active & ~reached, mid + 1, low)
    return low.T


# ------------------------------------------------------------------------------------------------
# Graph analysis: roots (integer tensors) and the chain above them


_MOVEMENT = {"Identity", "Transpose", "Reshape", "Flatten", "DepthToSpace", "SpaceToDepth", "Slice", "Pad",
             "Resize", "Upsample", "MaxPool", "Concat"}


# Pad modes that only copy input elements (CycleGAN's reflection padding, replication): the padded
# tensor holds the same codes on the same grid, so it is as much an integer root as its input.
_COPYING_PAD_MODES = {"reflect", "edge", "wrap"}


def _const(model: ModelWrapper, name: str) -> np.ndarray | None:
    return model.get_initializer(name) if name else None


def _attr(node, name: str, default=None):
    a = get_by_name(node.attribute, name)
    return default if a is None else helper.get_attribute_value(a)


def _mode(node, default: str) -> str:
    value = _attr(node, "mode", default)
    return value.decode() if isinstance(value, bytes) else value


def _code_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1 - int(narrow)


@dataclass
class _QuantParams:
    scale: np.ndarray
    bits: int
    signed: bool
    narrow: bool
    rounding: str

    @property
    def code_range(self) -> tuple[int, int]:
        return _code_range(self.bits, self.signed, self.narrow)


def _quant_params(model: ModelWrapper, node) -> _QuantParams | None:
    """Constant scale, zero point 0 and an integer bit width, or None."""
    if node is None or node.op_type != "Quant" or len(node.input) < 4:
        return None
    scale, zero, bits = (_const(model, n) for n in node.input[1:4])
    if scale is None or zero is None or bits is None or np.any(zero != 0) or bits.size != 1:
        return None
    if float(bits) != int(bits) or not 1 <= int(bits) <= 24 or np.any(scale <= 0):
        return None
    rounding = _attr(node, "rounding_mode", "ROUND")
    return _QuantParams(scale.astype(np.float32), int(bits), bool(_attr(node, "signed", 1)),
                        bool(_attr(node, "narrow", 0)), rounding.decode() if isinstance(rounding, bytes) else rounding)


def _code_scale(model: ModelWrapper, name: str) -> tuple[float, int, int] | None:
    """(scale, min code, max code) if ``name`` holds integer codes times one per-tensor scale."""
    producer = model.find_producer(name)
    if producer is None:
        dtype = model.get_tensor_datatype(name)
        if name in [i.name for i in model.graph.input] and dtype.is_integer():
            return 1.0, int(dtype.min()), int(dtype.max())
        return None
    if producer.op_type == "Quant":
        params = _quant_params(model, producer)
        if params is None or params.scale.size != 1 or _const(model, producer.input[0]) is not None:
            return None
        return (float(params.scale.reshape(())), *params.code_range)
    if producer.op_type == "Mul":
        dynamic = [i for i in producer.input if _const(model, i) is None]
        consts = [_const(model, i) for i in producer.input if _const(model, i) is not None]
        if len(dynamic) == 1 and len(consts) == 1 and consts[0].size == 1 and float(consts[0].reshape(())) > 0:
            inner = _code_scale(model, dynamic[0])
            if inner is not None and inner[0] == 1.0:      # integers times one float: fl(code * s)
                return float(consts[0].reshape(())), inner[1], inner[2]
        return None
    if producer.op_type not in _MOVEMENT:
        return None
    zero_pad = producer.op_type == "Pad" and _mode(producer, "constant") == "constant"
    if zero_pad and len(producer.input) > 2 and producer.input[2] and np.any(_const(model, producer.input[2]) != 0):
        return None
    if producer.op_type == "Pad" and not zero_pad and _mode(producer, "constant") not in _COPYING_PAD_MODES:
        return None
    sources = [_code_scale(model, i) for i in producer.input if i and _const(model, i) is None]
    if not sources or any(s is None for s in sources) or len({s[0] for s in sources}) != 1:
        return None
    lo, hi = min(s[1] for s in sources), max(s[2] for s in sources)
    if zero_pad and not lo <= 0 <= hi:      # the code 0 it writes must be a code of the grid
        return None
    return sources[0][0], lo, hi


@dataclass
class _Root:
    """An integer tensor the chain starts from: ``value = fl(fl(a * scale) + bias)`` per channel."""

    tensor: str
    scale: np.ndarray        # (C,) float64
    bias: np.ndarray         # (C,) float32
    lo: np.ndarray           # (C,) int64, the range of a
    hi: np.ndarray
    exact_codes: bool        # True: a Quant's codes (value exactly fl(a * scale)); False: an accumulator

    def values(self, acc: np.ndarray) -> np.ndarray:
        scaled = (acc.astype(np.float64) * self.scale).astype(np.float32)
        return scaled if self.exact_codes else (scaled + self.bias).astype(np.float32)

    def threshold_values(self, steps: np.ndarray) -> np.ndarray:
        """``T - 1/2`` in the root's value domain, (C, K) float32."""
        return ((steps - 0.5) * self.scale[:, None] + self.bias[:, None].astype(np.float64)).astype(np.float32)


def _integer_weights(model: ModelWrapper, name: str, cout: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(integer weights, per-output-channel scale (C,)) of a Quant-of-initializer weight."""
    producer = model.find_producer(name)
    params = _quant_params(model, producer)
    weight = _const(model, producer.input[0]) if producer is not None else None
    if params is None or weight is None:
        return None
    scale = params.scale
    if scale.size == 1:
        per_channel = np.full(cout, float(scale.reshape(())))
    elif scale.size == cout and scale.shape[0] == cout:
        per_channel = scale.reshape(cout).astype(np.float64)
    else:
        return None
    rounding = params.rounding
    dequant = quant(weight, params.scale, np.float32(0), np.float32(params.bits), params.signed, params.narrow,
                    rounding)
    codes = np.round(dequant / params.scale)
    if not np.array_equal(codes * params.scale, dequant):
        return None
    return codes.astype(np.int64), per_channel


def _conv_root(model: ModelWrapper, node) -> _Root | None:
    """The accumulator of a Conv with quantized input codes and quantized weights."""
    source = _code_scale(model, node.input[0])
    wshape = model.get_tensor_shape(node.input[1])
    if source is None or wshape is None or len(wshape) != 4:
        return None
    cout = wshape[0]
    weights = _integer_weights(model, node.input[1], cout)
    if weights is None:
        return None
    codes, wscale = weights
    s_in, cmin, cmax = source
    flat = codes.reshape(cout, -1)
    hi = np.maximum(flat * cmin, flat * cmax).sum(axis=1)
    lo = np.minimum(flat * cmin, flat * cmax).sum(axis=1)
    bias = _const(model, node.input[2]) if len(node.input) > 2 and node.input[2] else np.zeros(cout, np.float32)
    if bias is None or bias.size != cout:
        return None
    return _Root(node.output[0], s_in * wscale, bias.reshape(cout).astype(np.float32), lo, hi, False)


def _root_through_movement(model: ModelWrapper, node, inner: _Root) -> _Root | None:
    """Carry a per-channel root through DepthToSpace or a spatial Slice (the sub-pixel crop)."""
    if node.op_type == "Slice":
        axes = _const(model, node.input[3]) if len(node.input) > 3 else None
        if axes is None or not all(int(a) % 4 in (2, 3) for a in axes):
            return None
        return _Root(node.output[0], inner.scale, inner.bias, inner.lo, inner.hi, False)
    block = int(_attr(node, "blocksize"))
    channels = len(inner.scale) // (block * block)
    grouped = (lambda a: a.reshape(channels, block * block)) if _mode(node, "DCR") == "CRD" else (
        lambda a: a.reshape(block * block, channels).T)
    scale, bias = grouped(inner.scale), grouped(inner.bias)
    if not (np.all(scale == scale[:, :1]) and np.all(bias == bias[:, :1])):
        return None
    return _Root(node.output[0], scale[:, 0], bias[:, 0], grouped(inner.lo).min(1), grouped(inner.hi).max(1), False)


def root_differs_per_phase(model: ModelWrapper, d2s) -> bool:
    """True when the tensor in front of DepthToSpace ``d2s`` is an integer root (a convolution's
    accumulator) whose per-channel scale or bias differs between the phases of an output channel:
    then no per-channel chain behind the DepthToSpace can be thresholded on that root (a biased,
    per-channel-scaled convolution in front of a PixelShuffle)."""
    inner = _root(model, d2s.input[0])
    return inner is not None and not inner.exact_codes and _root_through_movement(model, d2s, inner) is None


def _root(model: ModelWrapper, name: str) -> _Root | None:
    shape = model.get_tensor_shape(name)
    if shape is None or len(shape) != 4:
        return None
    channels = shape[1]
    codes = _code_scale(model, name)
    if codes is not None:
        scale, cmin, cmax = codes
        return _Root(name, np.full(channels, scale), np.zeros(channels, np.float32),
                     np.full(channels, cmin, np.int64), np.full(channels, cmax, np.int64), True)
    producer = model.find_producer(name)
    if producer is None:
        return None
    if producer.op_type == "Conv":
        return _conv_root(model, producer)
    if producer.op_type in ("DepthToSpace", "Slice"):
        inner = _root(model, producer.input[0])
        return None if inner is None or inner.exact_codes else _root_through_movement(model, producer, inner)
    return None


def _per_channel(param: np.ndarray, channels: int) -> bool:
    """A constant that broadcasts against NCHW as a scalar or one value per channel."""
    if param.size == 1:
        return True
    shape = (1,) * (4 - param.ndim) + tuple(param.shape)
    return len(shape) == 4 and shape[1] == channels and shape[0] == shape[2] == shape[3] == 1


def _monotone_input(model: ModelWrapper, node) -> str | None:
    """The dynamic input of a per-channel, non-decreasing elementwise node, else None."""
    shape = model.get_tensor_shape(node.output[0])
    if shape is None or len(shape) != 4:
        return None
    channels = shape[1]
    inputs = [i for i in node.input if i]
    dynamic = [(k, i) for k, i in enumerate(inputs) if _const(model, i) is None]
    consts = [_const(model, i) for i in inputs if _const(model, i) is not None]
    if node.op_type == "BatchNormalization":       # its parameters are (C,) by definition
        if len(dynamic) != 1 or not all(c.shape == (channels,) for c in consts):
            return None
    elif len(dynamic) != 1 or not all(_per_channel(c, channels) for c in consts):
        return None
    position, name = dynamic[0]
    op = node.op_type
    if op in ("Relu", "Tanh", "Sigmoid", "Identity", "Clip", "Softplus"):
        ok = True
    elif op in ("LeakyRelu", "Elu", "HardSigmoid"):
        ok = float(_attr(node, "alpha", 0.01 if op == "LeakyRelu" else 1.0 if op == "Elu" else 0.2)) >= 0
    elif op == "PRelu":
        ok = position == 0 and bool(np.all(consts[0] >= 0))
    elif op == "Mul":
        ok = bool(np.all(consts[0] >= 0))
    elif op == "Div":
        ok = position == 0 and bool(np.all(consts[0] > 0))
    elif op in ("Add",):
        ok = True
    elif op == "Sub":
        ok = position == 0
    elif op == "BatchNormalization":
        scale, _, _, var = (_const(model, i) for i in node.input[1:5])
        ok = position == 0 and not _attr(node, "training_mode", 0) and bool(np.all(scale >= 0)) and bool(
            np.all(var + float(_attr(node, "epsilon", 1e-5)) > 0))
    else:
        ok = False
    return name if ok else None


@dataclass
class _Chain:
    """Per output channel: (root index, root channel); the chain's nodes in graph order."""

    roots: list[_Root] = field(default_factory=list)
    channels: list[tuple[int, int]] = field(default_factory=list)
    nodes: list = field(default_factory=list)


def _trace(model: ModelWrapper, name: str, chain: _Chain, depth: int = 0) -> bool:
    producer = model.find_producer(name)
    if depth < 64 and producer is not None and producer.op_type != "Quant":
        upstream = _monotone_input(model, producer)
        if upstream is not None:
            chain.nodes.append(producer)
            return _trace(model, upstream, chain, depth + 1)
        if producer.op_type == "Concat" and len(model.get_tensor_shape(name) or []) == 4 and \
                int(_attr(producer, "axis", 1)) % 4 == 1 and all(_const(model, i) is None for i in producer.input):
            chain.nodes.append(producer)
            return all(_trace(model, i, chain, depth + 1) for i in producer.input)
    root = _root(model, name)
    if root is None:
        return False
    chain.roots.append(root)
    chain.channels.extend((len(chain.roots) - 1, c) for c in range(len(root.scale)))
    return True


# ------------------------------------------------------------------------------------------------
# Evaluation of the original nodes on candidate accumulators


def _chain_model(model: ModelWrapper, chain: _Chain, quant_node, rows: int) -> ModelWrapper:
    """The chain and its Quant as a graph of its own, with a batch of ``rows`` candidates and the
    root tensors' spatial size (the kernels see the same block structure as in the reference)."""
    order = {id(n): i for i, n in enumerate(model.graph.node)}
    nodes = sorted({id(n): n for n in chain.nodes}.values(), key=lambda n: order[id(n)]) + [quant_node]
    inputs = []
    for root in {r.tensor: r for r in chain.roots}.values():
        _, c, h, w = model.get_tensor_shape(root.tensor)
        inputs.append(helper.make_tensor_value_info(root.tensor, TensorProto.FLOAT, [rows, c, h, w]))
    _, c_out, h, w = model.get_tensor_shape(quant_node.output[0])
    output = helper.make_tensor_value_info(quant_node.output[0], TensorProto.FLOAT, [rows, c_out, h, w])
    graph = helper.make_graph([helper.make_node(n.op_type, list(n.input), list(n.output), name=n.name,
                                                domain=n.domain, **{a.name: helper.get_attribute_value(a)
                                                                    for a in n.attribute}) for n in nodes],
                              "chain", inputs, [output])
    opset = [o for o in model.model.opset_import]
    sub = ModelWrapper(qonnx_make_model(graph, opset_imports=opset))
    for n in nodes:
        for i in n.input:
            value = _const(model, i)
            if value is not None:
                sub.set_initializer(i, value)
    return sub.transform(InferShapes())


def _evaluator(model: ModelWrapper, chain: _Chain, quant_node, params: _QuantParams, rows: int):
    from qonnx.core.onnx_exec import execute_onnx

    sub = _chain_model(model, chain, quant_node, rows)
    scale = params.scale.reshape(-1) if params.scale.size > 1 else params.scale.reshape(1)
    scale = np.broadcast_to(scale, (len(chain.channels),))

    def codes_of(acc: np.ndarray) -> np.ndarray:        # acc: (rows, C_out) per output channel
        feeds = {}
        for index, root in enumerate(chain.roots):
            _, c, h, w = model.get_tensor_shape(root.tensor)
            picked = np.zeros((rows, c), np.int64)
            for out_c, (r, rc) in enumerate(chain.channels):
                if r == index:
                    picked[:, rc] = acc[:, out_c]
            values = root.values(np.asarray(picked))
            feeds[root.tensor] = np.ascontiguousarray(np.broadcast_to(values[:, :, None, None], (rows, c, h, w)))
        out = execute_onnx(sub, feeds)[quant_node.output[0]]
        flat = out.reshape(rows, out.shape[1], -1)
        if not np.all(flat == flat[:, :, :1]):
            raise _PositionDependent(quant_node.name)
        return np.round(flat[:, :, 0] / scale[None, :]).astype(np.int64)

    return codes_of


class _PositionDependent(Exception):
    pass


# ------------------------------------------------------------------------------------------------
# The pass


def _runs(chain: _Chain) -> list[tuple[int, int, int]] | None:
    """(root, first output channel, count) for each root, in output order; None if a root is not
    read whole and in order (then one MultiThreshold per root cannot produce the channels)."""
    runs, start = [], 0
    while start < len(chain.channels):
        root, first = chain.channels[start]
        end = start
        while end + 1 < len(chain.channels) and chain.channels[end + 1] == (root, first + end + 1 - start):
            end += 1
        count = end - start + 1
        if first != 0 or count != len(chain.roots[root].scale):
            return None
        runs.append((root, start, count))
        start = end + 1
    roots_used = [r for r, _, _ in runs]
    tensors = {r.tensor for r in chain.roots}
    return runs if len(roots_used) == len(set(roots_used)) == len(chain.roots) == len(tensors) else None


class ExactQuantThresholds(Transformation):
    """Replace each matching activation ``Quant`` (and its float chain) by MultiThresholds that
    reproduce the reference codes exactly. Runs on the QONNX graph, before ConvertQONNXtoFINN."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        plans = []
        for node in model.graph.node:
            params = _quant_params(model, node)
            if params is None or not 2 <= params.bits <= _MAX_QUANT_BITS or _const(model, node.input[0]) is not None:
                continue
            shape = model.get_tensor_shape(node.output[0])
            if shape is None or len(shape) != 4 or shape[0] != 1:
                continue
            if params.scale.size != 1 and not _per_channel(params.scale, shape[1]):
                continue
            chain = _Chain()
            if not _trace(model, node.input[0], chain) or len(chain.channels) != shape[1]:
                continue
            runs = _runs(chain)
            if runs is None:
                continue
            cmin, cmax = params.code_range
            levels = np.arange(cmin + 1, cmax + 1)
            lo = np.array([chain.roots[r].lo[c] for r, c in chain.channels])
            hi = np.array([chain.roots[r].hi[c] for r, c in chain.channels])
            try:
                steps = bisect_thresholds(_evaluator(model, chain, node, params, len(levels)), lo, hi, levels)
            except _PositionDependent:
                continue
            plans.append((node, params, chain, runs, steps))
        for node, params, chain, runs, steps in plans:
            _rewrite(model, node, params, chain, runs, steps)
        if plans:
            _remove_dead(model)
            model = model.transform(RemoveUnusedTensors()).transform(InferShapes())
        return model, False


def _rewrite(model: ModelWrapper, node, params: _QuantParams, chain: _Chain, runs, steps: np.ndarray) -> None:
    cmin = params.code_range[0]
    dtype = DataType[f"{'INT' if params.signed else 'UINT'}{params.bits}"]
    at = list(model.graph.node).index(node)
    code_tensors, new_nodes = [], []
    _, _, h, w = model.get_tensor_shape(node.output[0])
    for index, (root_index, start, count) in enumerate(runs):
        root = chain.roots[root_index]
        thresholds = root.threshold_values(steps[start:start + count])
        t_name, out = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
        model.set_initializer(t_name, thresholds)
        mt = helper.make_node("MultiThreshold", [root.tensor, t_name], [out], domain="qonnx.custom_op.general",
                              name=f"{node.name}_exact_{index}", out_dtype=dtype.name, out_bias=float(cmin),
                              data_layout="NCHW")
        mt.metadata_props.append(StringStringEntryProto(key="fpga_gan_half_even", value=EXACT_MARK))
        model.graph.value_info.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, count, h, w]))
        model.set_tensor_datatype(out, dtype)
        new_nodes.append(mt)
        code_tensors.append(out)
    if len(code_tensors) > 1:
        joined = model.make_new_valueinfo_name()
        new_nodes.append(helper.make_node("Concat", code_tensors, [joined], axis=1, name=f"{node.name}_exact_concat"))
        model.graph.value_info.append(helper.make_tensor_value_info(joined, TensorProto.FLOAT,
                                                                    [1, len(chain.channels), h, w]))
        model.set_tensor_datatype(joined, dtype)
        code_tensors = [joined]
    scale_name = model.make_new_valueinfo_name()
    scale = params.scale if params.scale.size == 1 else params.scale.reshape(1, -1, 1, 1)
    model.set_initializer(scale_name, scale.astype(np.float32))
    new_nodes.append(helper.make_node("Mul", [code_tensors[0], scale_name], [node.output[0]],
                                      name=f"{node.name}_exact_scale"))
    model.graph.node.remove(node)
    for offset, new in enumerate(new_nodes):
        model.graph.node.insert(at + offset, new)


def _remove_dead(model: ModelWrapper) -> None:
    """Drop nodes none of whose outputs is read (the replaced chains), repeatedly."""
    outputs = {o.name for o in model.graph.output}
    while True:
        read = {i for n in model.graph.node for i in n.input}
        dead = [n for n in model.graph.node if not any(o in read or o in outputs for o in n.output)]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)
