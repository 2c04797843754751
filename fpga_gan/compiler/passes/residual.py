"""Residual adds (``x + f(x)``, CycleGAN ResNet blocks, SRGAN residual blocks) as streaming layers.

A residual add of two quantized tensors streamlines to ``Add(Mul(a, sA), Mul(b, sB))``: integer
codes ``a`` and ``b`` (MultiThreshold outputs), each with its power-of-two scale. In hardware it
becomes a stream fork (:class:`~fpga_gan.compiler.passes.hw.InferDuplicateStreams`), the branch,
and FINN's ``ElementwiseAdd`` (RTL backend ``ElementwiseAdd_rtl``, finn-rtllib ``eltwise``).

FINN's integer adder takes two streams of ONE datatype (same width, same signedness; it checks
this at elaboration) and adds codes, so both inputs must be on one integer grid first:

* same scale, same datatype (a shared quantizer): ``(a + b) * s``, nothing else;
* scales in an integer ratio ``sA = k * sB`` (power-of-two scales always are): ``(k*a + b) * sB``;
* different datatypes (an unsigned ReLU skip and a signed branch): both are requantized to the
  smallest datatype that holds both.

The multiply by ``k`` and the widening are a requantizing MultiThreshold on the integer input
(``y = k * x``, one threshold per output code), which FINN streams as ``Thresholding_rtl``: exact
by construction, and FINN's layout passes move it like any activation. The scale ``sB`` moves
past the add into the next MultiThreshold (FINN's streamlining). A ratio that is not an integer
cannot be aligned exactly: :class:`AlignResidualAddGrids` raises a CompileError naming the node.
"""

from __future__ import annotations

import numpy as np
from onnx import StringStringEntryProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

from ..errors import CompileError

__all__ = ["AlignResidualAddGrids", "MoveEqualTransposesPastAdd", "InferResidualAdd", "WidenResidualAddInputs", "specialize_residual_adds",
           "requantizer_thresholds", "residual_adds"]

# The widest common grid a requantizer may produce: it has 2**bits - 1 thresholds per channel.
MAX_ALIGNED_BITS = 10
# The largest scale ratio aligned by a multiply (a larger one wastes bits: share the quantizer).
MAX_RATIO = 256
_REQUANTIZER = "fpga_gan_residual_requantizer"      # metadata key of the MultiThresholds added here
_FIX = ("share one quantizer between both inputs of the add (the same Brevitas QuantIdentity / "
        "act_quant), or give both power-of-two scales")


def _dynamic(model: ModelWrapper, name: str) -> bool:
    return model.get_initializer(name) is None


def residual_adds(model: ModelWrapper) -> list:
    """Add nodes whose two inputs are both streams (not a bias: a constant on one side)."""
    return [n for n in model.graph.node if n.op_type == "Add" and not n.domain and len(n.input) == 2
            and all(_dynamic(model, i) for i in n.input)]


def _scalar_mul(model: ModelWrapper, name: str):
    """(Mul node, its scalar constant) if ``name`` is the output of a Mul by a scalar, else None."""
    node = model.find_producer(name)
    if node is None or node.op_type != "Mul":
        return None
    for i in (1, 0):
        const = model.get_initializer(node.input[i])
        if const is not None and const.size == 1 and _dynamic(model, node.input[1 - i]):
            return node, float(const.flatten()[0]), node.input[1 - i]
    return None


def _common_grid(ranges: list[tuple[int, int]]) -> DataType:
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if lo >= 0:
        return DataType[f"UINT{max(1, int(hi).bit_length())}"]
    bits = 1 + max((-lo - 1).bit_length(), int(hi).bit_length())
    return DataType[f"INT{bits}"]


def requantizer_thresholds(dtype: DataType, factor: int, out: DataType, channels: int) -> tuple[np.ndarray, int]:
    """Thresholds and out_bias of a MultiThreshold mapping integer codes ``x`` of ``dtype`` to
    ``factor * x`` on the grid ``out``.

    One threshold per output code above ``out.min()`` (all ``2**bits - 1``, the shape FINN's RTL
    thresholding expects): code ``v`` is reached iff ``factor * x >= v``, i.e. ``x >= ceil(v / factor)``,
    clipped to the input's range (below it: always reached; above: never). Each threshold sits
    half a code below that integer, which on integer inputs is the same comparison and marks it
    as no rounding boundary (``RoundTieThresholdsOnIntegers`` moves only integer thresholds);
    :class:`WidenResidualAddInputs` rounds it back up after streamlining (FINN's thresholding
    layer wants thresholds inside the input's range).
    """
    bias = int(out.min())
    levels = np.arange(bias + 1, int(out.max()) + 1, dtype=np.int64)
    thresholds = -(-levels // factor)                                       # ceil division
    thresholds = np.clip(thresholds, int(dtype.min()), int(dtype.max()) + 1).astype(np.float32) - 0.5
    return np.tile(thresholds[None, :], (channels, 1)), bias


def _insert_requantizer(model: ModelWrapper, add, index: int, source: str, factor: int, out: DataType) -> None:
    """Feed ``add.input[index]`` from a new MultiThreshold computing ``factor * source`` on ``out``."""
    dtype = model.get_tensor_datatype(source)
    shape = model.get_tensor_shape(source)
    channels_last = model.get_tensor_layout(source) == ["N", "H", "W", "C"]
    channels = shape[-1] if channels_last else shape[1]             # NCHW before the layout passes
    thresholds, bias = requantizer_thresholds(dtype, factor, out, channels)
    param, result = model.make_new_valueinfo_name(), model.make_new_valueinfo_name()
    model.set_initializer(param, thresholds)
    model.set_tensor_datatype(param, DataType["FLOAT32"])
    node = helper.make_node("MultiThreshold", [source, param], [result], domain="qonnx.custom_op.general",
                            name=f"{add.name}_align{index}", out_dtype=out.name, out_bias=float(bias),
                            data_layout="NHWC" if channels_last else "NCHW")
    node.metadata_props.append(StringStringEntryProto(key=_REQUANTIZER, value=str(factor)))
    model.set_tensor_shape(result, shape)
    model.set_tensor_datatype(result, out)
    if model.get_tensor_layout(source) is not None:
        model.set_tensor_layout(result, model.get_tensor_layout(source))
    add.input[index] = result
    model.graph.node.insert(list(model.graph.node).index(add), node)


class AlignResidualAddGrids(Transformation):
    """Put both inputs of a residual add on one integer grid (streamlining; see the module doc).

    ``Add(Mul(a, sA), Mul(b, sB))`` with integer ``a``, ``b`` and scalar scales becomes
    ``Mul(Add(a', b'), min(sA, sB))``, where ``a'`` / ``b'`` are ``a`` / ``b`` requantized (times
    ``sA / min``, ``sB / min``) onto one datatype; an ``Add(a, b)`` of integers of different
    datatypes is requantized the same way. A scale ratio that is not an integer is a CompileError.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for add in residual_adds(model):
            muls = [_scalar_mul(model, i) for i in add.input]
            if all(m is not None for m in muls):
                sources = [m[2] for m in muls]
                scales = [m[1] for m in muls]
            else:
                sources, scales = list(add.input), [1.0, 1.0]
            dtypes = [model.get_tensor_datatype(s) for s in sources]
            if not all(d.is_integer() for d in dtypes) or any(s <= 0 for s in scales):
                continue
            if all(m is not None for m in muls) and scales[0] == scales[1] and dtypes[0] == dtypes[1]:
                continue                                   # FINN's MoveLinearPastEltwiseAdd does it
            if not all(m is not None for m in muls):
                continue                # one side not yet streamlined, or no scales: WidenResidualAddInputs
            small = min(scales)
            factors = []
            for scale, name in zip(scales, sources):
                ratio = scale / small
                factor = round(ratio)
                if factor < 1 or factor > MAX_RATIO or factor * small != scale:
                    raise CompileError(
                        f"Add node {add.name!r} (residual add): its inputs are on integer grids of scale "
                        f"{scales[0]:g} and {scales[1]:g}, whose ratio {max(scales) / small:g} is not an integer "
                        f"up to {MAX_RATIO}, so the two codes cannot be added exactly in integer arithmetic; {_FIX}")
                factors.append(factor)
            target = _common_grid([(f * int(d.min()), f * int(d.max())) for f, d in zip(factors, dtypes)])
            if target.bitwidth() > MAX_ALIGNED_BITS:
                raise CompileError(
                    f"Add node {add.name!r} (residual add): aligning its inputs ({dtypes[0].name} x{factors[0]}, "
                    f"{dtypes[1].name} x{factors[1]}) needs {target.name}, wider than {MAX_ALIGNED_BITS} bits; "
                    f"quantize both inputs with 8 bits or fewer and {_FIX}")
            for index, (factor, source) in enumerate(zip(factors, sources)):
                add.input[index] = source
                if factor != 1:          # a factor-1 widening would look like an identity threshold
                    _insert_requantizer(model, add, index, source, factor, target)   # now: WidenResidualAddInputs
            for m in muls:
                if m is not None and not model.find_consumers(m[0].output[0]):
                    model.graph.node.remove(m[0])
            scaled, out = model.make_new_valueinfo_name(), add.output[0]
            const = model.make_new_valueinfo_name()
            model.set_initializer(const, np.asarray(small, np.float32))
            add.output[0] = scaled
            model.set_tensor_shape(scaled, model.get_tensor_shape(out))
            mul = helper.make_node("Mul", [scaled, const], [out], name=f"{add.name}_scale")
            model.graph.node.insert(list(model.graph.node).index(add) + 1, mul)
            return model, True
        return model, False


class WidenResidualAddInputs(Transformation):
    """A residual add of integer NHWC streams of two datatypes (say an unsigned ReLU skip and a
    signed branch, on one scale): requantize each input not already on the smallest datatype
    holding both (a MultiThreshold mapping every code to itself). Runs after streamlining, which
    would drop such a threshold as an identity."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            if get_by_name(node.metadata_props, _REQUANTIZER, "key") is not None:
                thresholds = model.get_initializer(node.input[1])
                model.set_initializer(node.input[1], np.ceil(thresholds).astype(np.float32))
        for add in residual_adds(model):
            dtypes = [model.get_tensor_datatype(i) for i in add.input]
            shapes = [model.get_tensor_shape(i) for i in add.input]
            if dtypes[0] == dtypes[1] or not all(d.is_integer() for d in dtypes) or len(shapes[0] or []) != 4:
                continue
            target = _common_grid([(int(d.min()), int(d.max())) for d in dtypes])
            if target.bitwidth() > MAX_ALIGNED_BITS:
                raise CompileError(f"Add node {add.name!r} (residual add): its inputs are {dtypes[0].name} and "
                                   f"{dtypes[1].name}; one grid for both needs {target.name}, wider than "
                                   f"{MAX_ALIGNED_BITS} bits: quantize both inputs with 8 bits or fewer")
            for index, (dtype, source) in enumerate(zip(dtypes, list(add.input))):
                if dtype != target:
                    _insert_requantizer(model, add, index, source, 1, target)
                    node = model.find_producer(add.input[index])
                    model.set_initializer(node.input[1], np.ceil(model.get_initializer(node.input[1])))
            return model, True
        return model, False


class MoveEqualTransposesPastAdd(Transformation):
    """``Add(Transpose(a), Transpose(b))`` with one permutation -> ``Transpose(Add(a, b))``.

    FINN's ``MoveTransposePastJoinAdd`` does this too, but (finn-plus 1.6.1) does not reject
    different permutations; this one does, and then reuses FINN's rewiring.
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.streamline.reorder import MoveTransposePastJoinAdd

        for add in residual_adds(model):
            producers = [model.find_producer(i) for i in add.input]
            if any(p is None or p.op_type != "Transpose" for p in producers):
                continue
            perms = [list(get_by_name(p.attribute, "perm").ints) for p in producers]
            if perms[0] != perms[1]:
                continue
            return model.transform(MoveTransposePastJoinAdd()), True
        return model, False


def _is_aligned_residual(model: ModelWrapper, node) -> bool:
    if node.op_type != "Add" or node.domain or len(node.input) != 2:
        return False
    if not all(_dynamic(model, i) for i in node.input):
        return False
    shapes = [model.get_tensor_shape(i) for i in node.input]
    dtypes = [model.get_tensor_datatype(i) for i in node.input]
    return (shapes[0] == shapes[1] and shapes[0] is not None and len(shapes[0]) == 4
            and dtypes[0] == dtypes[1] and dtypes[0].is_integer())


class InferResidualAdd(Transformation):
    """Residual adds of two NHWC streams on one integer grid -> FINN's ``ElementwiseAdd``.

    FINN's own ``InferElementwiseBinaryOperation``, restricted to those adds (the output scale
    and anything not yet aligned stay untouched and are reported by ``unsupported_nodes``).
    """

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.fpgadataflow.convert_to_hw.elementwise_binary_operation import (
            InferElementwiseBinaryOperation,
        )

        if not any(_is_aligned_residual(model, n) for n in model.graph.node):
            return model, False
        return model.transform(InferElementwiseBinaryOperation(_is_aligned_residual)), False


def specialize_residual_adds(model: ModelWrapper) -> ModelWrapper:
    """Give integer ``ElementwiseAdd`` nodes FINN's RTL backend, ``ElementwiseAdd_rtl``.

    FINN's ``SpecializeLayers`` picks RTL elementwise layers only on Versal and never for two
    integer inputs, because its float paths use DSP58 / DSPFP32 primitives. The integer add path
    (finn-rtllib ``binopi``, ``a + b`` in LUTs) uses no primitive, so on any part it is the right
    backend; it needs both inputs of one width and signedness, which the alignment guarantees
    (checked again here).
    """
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.op_type != "ElementwiseAdd" or node.domain != "finn.custom_op.fpgadataflow":
            continue
        inst = getCustomOp(node)
        lhs, rhs = inst.get_input_datatype(0), inst.get_input_datatype(1)
        styles = (inst.get_nodeattr("lhs_style"), inst.get_nodeattr("rhs_style"))
        if lhs != rhs or not lhs.is_integer() or styles != ("input", "input"):
            raise CompileError(f"ElementwiseAdd node {node.name!r}: the RTL add needs two streams of one integer "
                               f"datatype, got {lhs.name} and {rhs.name} ({styles[0]} / {styles[1]}); {_FIX}")
        if inst.get_output_datatype().bitwidth() != lhs.bitwidth() + 1:
            raise CompileError(f"ElementwiseAdd node {node.name!r}: output {inst.get_output_datatype().name} is not "
                               f"one bit wider than its inputs ({lhs.name}), as finn-rtllib's eltwise produces")
        node.op_type = "ElementwiseAdd_rtl"
        node.domain = "finn.custom_op.fpgadataflow.rtl"
    return model

