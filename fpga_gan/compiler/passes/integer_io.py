"""Make the accelerator's ports carry integer codes, as the board's DMA delivers them.

Brevitas' export starts with an input quantizer on a float tensor and ends with the output
scale. On the board the input already *is* the integer code, so the quantizer is an identity:
:class:`FeedInputCodes` makes the graph take codes (a Mul by the input scale in front, which
streamlining folds into the first thresholds) and :class:`RemoveIdentityThresholds` then drops a
MultiThreshold that maps every possible code to itself, instead of spending a thresholding layer
on it.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

__all__ = ["FeedInputCodes", "InputCodes", "RemoveIdentityThresholds", "input_codes"]


class InputCodes:
    """The integer code format of the graph input: ``value = code * scale``."""

    def __init__(self, scale: float, bits: int, signed: bool) -> None:
        self.scale, self.bits, self.signed = float(scale), int(bits), bool(signed)

    @property
    def datatype(self) -> DataType:
        return DataType[f"{'INT' if self.signed else 'UINT'}{self.bits}"]


def input_codes(model: ModelWrapper) -> InputCodes:
    """Read the input quantizer (a per-tensor, zero-point-0 ``Quant`` on the graph input)."""
    name = model.graph.input[0].name
    consumers = model.find_consumers(name) or []
    if len(consumers) != 1 or consumers[0].op_type != "Quant":
        found = ", ".join(f"{c.op_type} {c.name!r}" for c in consumers) or "nothing"
        raise ValueError(f"graph input {name!r} feeds {found}; the compiler needs exactly one input Quant "
                         "(export the generator with an input quantizer, as fpga_gan's models have)")
    quant = consumers[0]
    scale, zero, bits = (model.get_initializer(i) for i in quant.input[1:4])
    if scale is None or scale.size != 1 or zero is None or np.any(zero != 0) or bits is None:
        raise ValueError(f"input Quant {quant.name!r} must have a constant per-tensor scale and zero point 0")
    signed = bool(helper.get_attribute_value(get_by_name(quant.attribute, "signed")))
    if float(bits) != int(bits) or not 2 <= int(bits) <= 8:
        raise ValueError(f"input Quant {quant.name!r} has {float(bits)} bits; the RTL layers take 2..8-bit inputs")
    return InputCodes(float(scale), int(bits), signed)


class FeedInputCodes(Transformation):
    """Make the graph input the integer codes: ``x = codes * scale`` computed by a Mul in front."""

    def __init__(self, codes: InputCodes) -> None:
        super().__init__()
        self.codes = codes

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        graph_in = model.graph.input[0]
        if model.get_tensor_datatype(graph_in.name) == self.codes.datatype:
            return model, False
        scaled = model.make_new_valueinfo_name()
        scale = model.make_new_valueinfo_name()
        model.set_initializer(scale, np.asarray(self.codes.scale, np.float32))
        for consumer in model.find_consumers(graph_in.name) or []:
            for i, name in enumerate(consumer.input):
                if name == graph_in.name:
                    consumer.input[i] = scaled
        model.graph.node.insert(0, helper.make_node("Mul", [graph_in.name, scale], [scaled], name="InputScale"))
        shape = model.get_tensor_shape(graph_in.name)
        model.graph.value_info.append(helper.make_tensor_value_info(scaled, TensorProto.FLOAT, shape))
        model.set_tensor_datatype(graph_in.name, self.codes.datatype)
        return model, False


def _attr(node, name, default):
    a = get_by_name(node.attribute, name)
    return default if a is None else helper.get_attribute_value(a)


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
