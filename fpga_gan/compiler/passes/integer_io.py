"""Make the accelerator's ports carry integer codes, as the board's DMA delivers them.

Brevitas' export starts each graph input with an input quantizer on a float tensor and ends with
the output scale. On the board the input already *is* the integer code, so the quantizer is an
identity: :class:`FeedInputCodes` makes the graph take codes (a Mul by the input scale in front,
which streamlining folds into the first thresholds) and :class:`RemoveIdentityThresholds` then
drops a MultiThreshold that maps every possible code to itself, instead of spending a thresholding
layer on it. A generator may have several graph inputs (an image and a condition vector): each
gets its own codes, in graph-input order.

Float pre-processing between a graph input and its quantizer (a ReLU or Clip in front of an
unsigned quantizer, a constant positive scale ``Mul``/``Div``, a constant ``Add``/``Sub`` of whole
quantizer steps, as FINN-friendly reference models write them) is absorbed: the chain is an affine
map ``v = a*x + b`` with clamps, so the codes ``q`` of the quantizer are the user's values on the
grid ``x = (q - zero_point) * input_scale`` with ``input_scale = scale / a`` and
``zero_point = b / scale``. Whether that holds is not assumed but checked exhaustively: every code
``q`` of the quantizer, turned into ``x`` and run through the chain in float32 (what ONNX Runtime
does on the cpu backend), must quantize back to ``q``. Anything else is refused naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.custom_op.general.quant import quant as quant_values
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

__all__ = ["FeedInputCodes", "InputCodes", "RemoveIdentityThresholds", "all_input_codes", "input_codes"]

# Elementwise float ops that may stand between a graph input and its quantizer.
_PRE_OPS = ("Relu", "Clip", "Mul", "Div", "Add", "Sub")


@dataclass
class InputCodes:
    """The integer code format of one graph input: the quantizer computes ``code * scale``.

    ``input_scale`` and ``zero_point`` relate the codes to the values the user feeds the graph
    input (``value = (code - zero_point) * input_scale``); without pre-processing they are
    ``scale`` and 0. ``pre`` names the absorbed pre-processing nodes, ``quant`` the quantizer.
    """

    scale: float
    bits: int
    signed: bool
    input: str = ""
    quant: str = ""
    pre: list[str] = field(default_factory=list)
    input_scale: float | None = None
    zero_point: int = 0

    def __post_init__(self) -> None:
        self.scale, self.bits, self.signed = float(self.scale), int(self.bits), bool(self.signed)
        self.input_scale = self.scale if self.input_scale is None else float(self.input_scale)

    @property
    def datatype(self) -> DataType:
        return DataType[f"{'INT' if self.signed else 'UINT'}{self.bits}"]

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The float32 graph-input values whose quantizer codes are ``codes``."""
        return ((np.asarray(codes, np.float32) - np.float32(self.zero_point)) * np.float32(self.input_scale)) \
            .astype(np.float32)


def _attr(node, name, default):
    a = get_by_name(node.attribute, name)
    return default if a is None else helper.get_attribute_value(a)


def _scalar(model: ModelWrapper, name: str) -> float | None:
    value = model.get_initializer(name) if name else None
    return None if value is None or value.size != 1 else float(np.asarray(value).reshape(-1)[0])


class _PreStep:
    """One absorbed pre-processing node, as a float32 function and its affine part."""

    def __init__(self, model: ModelWrapper, node, tensor: str) -> None:
        self.node, op, where = node, node.op_type, f"{node.op_type} node {node.name!r}"
        self.lo = self.hi = None
        self.mul, self.add = 1.0, 0.0
        if op == "Relu":
            self.lo = 0.0
            return
        if op == "Clip":
            lo = _scalar(model, node.input[1]) if len(node.input) > 1 and node.input[1] else _attr(node, "min", None)
            hi = _scalar(model, node.input[2]) if len(node.input) > 2 and node.input[2] else _attr(node, "max", None)
            named = [i for i in node.input[1:] if i]
            if any(model.get_initializer(i) is None or model.get_initializer(i).size != 1 for i in named):
                raise ValueError(f"{where} in front of the input quantizer clips to non-constant or per-element "
                                 "bounds; only constant scalar bounds can be absorbed")
            self.lo, self.hi = lo, hi
            return
        others = [i for i in node.input if i != tensor]
        const = _scalar(model, others[0]) if len(others) == 1 else None
        if const is None:
            raise ValueError(f"{where} in front of the input quantizer takes a non-constant or per-channel "
                             "operand; only one constant scalar folds into the input scale (apply per-channel "
                             "normalisation on the host, or fold it into the first convolution)")
        if op in ("Div", "Sub") and node.input[0] != tensor:
            raise ValueError(f"{where} in front of the input quantizer computes constant {op.lower()} input "
                             f"(the input is its second operand), which flips the input's direction; it "
                             "cannot be absorbed into the input codes")
        if op in ("Mul", "Div"):
            if not const > 0 or not np.isfinite(const):
                raise ValueError(f"{where} in front of the input quantizer scales by {const:g}; only a "
                                 "positive constant folds into the input scale")
            self.mul = const if op == "Mul" else 1.0 / const
        else:
            self.add = const if op == "Add" else -const
        self.const, self.op = np.float32(const), op

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The node on float32 values, as ONNX computes it."""
        op = self.node.op_type
        if op in ("Relu", "Clip"):
            lo = -np.inf if self.lo is None else self.lo
            hi = np.inf if self.hi is None else self.hi
            return np.clip(x, np.float32(lo), np.float32(hi)).astype(np.float32)
        fn = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}[op]
        return fn(x, self.const).astype(np.float32)


def _input_codes_of(model: ModelWrapper, name: str) -> InputCodes:
    steps: list[_PreStep] = []
    tensor = name
    while True:
        consumers = model.find_consumers(tensor) or []
        if len(consumers) == 1 and consumers[0].op_type == "Quant":
            break
        source = f"graph input {name!r}" if tensor == name else f"{steps[-1].node.op_type} {steps[-1].node.name!r}"
        if len(consumers) != 1:
            found = ", ".join(f"{c.op_type} {c.name!r}" for c in consumers) or "nothing"
            raise ValueError(f"{source} feeds {found}; the compiler needs each graph input to reach exactly one "
                             "input Quant (export the generator with an input quantizer, as fpga_gan's models have)")
        node = consumers[0]
        if node.op_type not in _PRE_OPS:
            raise ValueError(f"{source} feeds {node.op_type} {node.name!r} before its input Quant; the compiler "
                             f"absorbs only {', '.join(_PRE_OPS)} with constant scalar operands there (export "
                             "the generator with the input quantizer first)")
        steps.append(_PreStep(model, node, tensor))
        tensor = node.output[0]
    quant = consumers[0]
    scale, zero, bits = (model.get_initializer(i) for i in quant.input[1:4])
    if scale is None or scale.size != 1 or zero is None or np.any(zero != 0) or bits is None:
        raise ValueError(f"input Quant {quant.name!r} must have a constant per-tensor scale and zero point 0")
    signed = bool(_attr(quant, "signed", 1))
    if float(bits) != int(bits) or not 2 <= int(bits) <= 8:
        raise ValueError(f"input Quant {quant.name!r} has {float(bits)} bits; the RTL layers take 2..8-bit inputs")
    codes = InputCodes(float(scale), int(bits), signed, input=name, quant=quant.name,
                       pre=[s.node.name for s in steps])
    if not steps:
        return codes
    mul = float(np.prod([s.mul for s in steps]))
    add = 0.0
    for s in steps:                    # v = a*x + b, composed node by node
        add = add * s.mul + s.add
    zero_point = add / codes.scale
    if zero_point != round(zero_point):
        shift = next(s for s in steps if s.add)
        raise ValueError(f"{shift.node.op_type} node {shift.node.name!r} in front of input Quant {quant.name!r} "
                         f"shifts the input by {zero_point:g} quantizer steps, not a whole number; only shifts of "
                         "whole steps keep the input codes integers")
    codes.input_scale, codes.zero_point = codes.scale / mul, int(round(zero_point))
    _check_absorbed(codes, steps, quant)
    return codes


def _check_absorbed(codes: InputCodes, steps: list[_PreStep], quant) -> None:
    """Every code, as the user's value, must come out of chain + quantizer as itself."""
    dt = codes.datatype
    q = np.arange(dt.min(), dt.max() + 1, dtype=np.float32)
    v = codes.values(q)
    for step in steps:
        v = step(v)
    rounding = _attr(quant, "rounding_mode", "ROUND")
    rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
    got = quant_values(v, np.float32(codes.scale), np.float32(0), np.float32(codes.bits), signed=int(codes.signed),
                       narrow=int(_attr(quant, "narrow", 0)), rounding_mode=rounding)
    bad = np.nonzero(np.asarray(got) / np.float32(codes.scale) != q)[0]
    if bad.size:
        code = int(q[bad[0]])
        clamps = [s.node for s in steps if s.node.op_type in ("Relu", "Clip")]
        culprit = f"{clamps[0].op_type} node {clamps[0].name!r}" if clamps else \
            f"{steps[0].node.op_type} node {steps[0].node.name!r}"
        raise ValueError(f"graph input {codes.input!r} feeds {culprit} in front of input Quant {quant.name!r}, "
                         "which changes what the quantizer sees: "
                         f"code {code} ({bad.size} of {q.size} codes of {dt.name}) does not survive it, so it cannot "
                         "be absorbed (a ReLU is irrelevant only before an unsigned quantizer, a Clip only if it "
                         "keeps the quantizer's whole range)")


def all_input_codes(model: ModelWrapper) -> list[InputCodes]:
    """The code format of every graph input (initializers excluded), in graph-input order."""
    static = {i.name for i in model.graph.initializer}
    return [_input_codes_of(model, i.name) for i in model.graph.input if i.name not in static]


def input_codes(model: ModelWrapper) -> InputCodes:
    """The code format of the first graph input (the only one of a single-input generator)."""
    return _input_codes_of(model, model.graph.input[0].name)


class FeedInputCodes(Transformation):
    """Make each graph input the integer codes: the absorbed pre-processing removed and
    ``x = codes * scale`` computed by a Mul in front of the input quantizer."""

    def __init__(self, codes: InputCodes | list[InputCodes]) -> None:
        super().__init__()
        self.codes = [codes] if isinstance(codes, InputCodes) else list(codes)

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for index, codes in enumerate(self.codes):
            graph_in = next((i for i in model.graph.input if i.name == codes.input), None) \
                if codes.input else model.graph.input[index]
            if graph_in is None or model.get_tensor_datatype(graph_in.name) == codes.datatype:
                continue
            for name in codes.pre:                          # the chain, checked exact by input_codes
                node = get_by_name(model.graph.node, name)
                if node is not None:
                    for consumer in model.find_consumers(node.output[0]) or []:
                        consumer.input[list(consumer.input).index(node.output[0])] = graph_in.name
                    model.graph.node.remove(node)
            scaled = model.make_new_valueinfo_name()
            scale = model.make_new_valueinfo_name()
            model.set_initializer(scale, np.asarray(codes.scale, np.float32))
            for consumer in model.find_consumers(graph_in.name) or []:
                for i, name in enumerate(consumer.input):
                    if name == graph_in.name:
                        consumer.input[i] = scaled
            mul_name = "InputScale" if index == 0 else f"InputScale_{index}"
            model.graph.node.insert(0, helper.make_node("Mul", [graph_in.name, scale], [scaled], name=mul_name))
            shape = model.get_tensor_shape(graph_in.name)
            model.graph.value_info.append(helper.make_tensor_value_info(scaled, TensorProto.FLOAT, shape))
            model.set_tensor_datatype(graph_in.name, codes.datatype)
        return model, False


class RemoveIdentityThresholds(Transformation):
    """Drop a MultiThreshold on an integer tensor that maps every code of its datatype to itself.

    Checked exhaustively (all codes, every channel), so the removal is exact by construction.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type != "MultiThreshold":
                continue
            dtype = model.get_tensor_datatype(node.input[0])
            thresholds = model.get_initializer(node.input[1])
            if thresholds is None or not dtype.is_integer() or dtype.bitwidth() > 16:
                continue
            codes = np.arange(dtype.min(), dtype.max() + 1, dtype=np.float32)
            channels = thresholds.shape[0]
            probe = np.tile(codes[:, None], (1, channels))            # (codes, C) as an "NC" batch
            out = multithreshold(probe, thresholds, float(_attr(node, "out_scale", 1.0)),
                                 float(_attr(node, "out_bias", 0.0)))
            if not np.array_equal(out, probe):
                continue
            if node.output[0] in [o.name for o in model.graph.output]:
                continue
            for consumer in model.find_consumers(node.output[0]) or []:
                for i, name in enumerate(consumer.input):
                    if name == node.output[0]:
                        consumer.input[i] = node.input[0]
            model.graph.node.remove(node)
            return model, True
        return model, False
