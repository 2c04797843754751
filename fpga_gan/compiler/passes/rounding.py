"""Make FINN's MultiThresholds round half to even, as Brevitas' and QONNX's ``Quant`` do.

Why: a Quant with ``rounding_mode="ROUND"`` rounds ``x / scale`` half to even (``torch.round``,
``np.round``). FINN's conversion puts a threshold at every ``(c + 0.5) * scale`` and counts
``x >= threshold``, which rounds half *up*. With power-of-two scales the values are dyadic, so
exact ties happen (rarely with trained weights, often with fresh ones) and the codes differ by
one: the integer contract of this project forbids that.

The boundary between codes ``c`` and ``c + 1`` must be crossed only by ``x > (c + 0.5) * scale``
when ``c`` is even. Two passes keep that true through the flow:

* :class:`NudgeTieThresholds` right after the QONNX conversion (float inputs): those thresholds
  move to the next float up, so ``x >= t'`` means ``x > t``.
* :class:`RoundTieThresholdsOnIntegers` after streamlining (integer accumulator inputs): a
  threshold of a half-to-even boundary that is an exact integer can be hit by a tie, so it becomes
  ``t + 1/2``; one that is not an integer can never be hit exactly and stays.
"""

from __future__ import annotations

import numpy as np
from onnx import StringStringEntryProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.util.basic import get_by_name

__all__ = ["NudgeTieThresholds", "RoundTieThresholdsOnIntegers", "ties_round_down"]


def ties_round_down(node, thresholds: np.ndarray) -> np.ndarray:
    """Boolean mask over ``thresholds`` (C, T): the boundaries whose lower code is even."""
    scale = get_by_name(node.attribute, "out_scale")
    bias = get_by_name(node.attribute, "out_bias")
    out_scale = helper.get_attribute_value(scale) if scale is not None else 1.0
    out_bias = helper.get_attribute_value(bias) if bias is not None else 0.0
    first_code = out_bias / out_scale
    if not float(first_code).is_integer():
        raise ValueError(f"MultiThreshold {node.name!r}: out_bias / out_scale = {first_code} is not an integer code")
    lower_codes = int(first_code) + np.arange(thresholds.shape[-1])
    return np.broadcast_to(lower_codes % 2 == 0, thresholds.shape)


class NudgeTieThresholds(Transformation):
    """Right after ConvertQONNXtoFINN: half-to-even boundaries become strict comparisons."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            if get_by_name(node.metadata_props, "fpga_gan_half_even", "key") is not None:
                continue
            thresholds = model.get_initializer(node.input[1])
            down = ties_round_down(node, thresholds)
            nudged = np.where(down, np.nextafter(thresholds, np.inf, dtype=thresholds.dtype), thresholds)
            model.set_initializer(node.input[1], nudged.astype(thresholds.dtype))
            node.metadata_props.append(StringStringEntryProto(key="fpga_gan_half_even", value="nudged"))
        return model, False


class RoundTieThresholdsOnIntegers(Transformation):
    """After streamlining: an integer threshold of a half-to-even boundary moves up by 1/2."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.get_nodes_by_op_type("MultiThreshold"):
            if not model.get_tensor_datatype(node.input[0]).is_integer():
                continue
            thresholds = model.get_initializer(node.input[1])
            down = ties_round_down(node, thresholds)
            on_integer = thresholds == np.floor(thresholds)
            fixed = np.where(down & on_integer, thresholds + 0.5, thresholds)
            model.set_initializer(node.input[1], fixed.astype(thresholds.dtype))
        return model, False
