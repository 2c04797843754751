"""Streamlining for generators: FINN's ``Streamline`` plus the moves GAN graphs need.

FINN's streamlining collects every scale and bias into the next MultiThreshold. In a generator,
three things sit in the way: the sub-pixel DepthToSpace / crop after a convolution, U-Net skip
Concats whose branches each carry their (shared) scale, and forks feeding a skip. The extra moves
here push scales through those (all exact), then FINN's own passes finish the job. After the
convolutions are lowered to NHWC MatMuls the same happens to the layout Transposes.
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.lower_convs_to_matmul import LowerConvsToMatMul

from .forks import MergeIdenticalSiblings
from ...ops.registry import op_passes
from .integer_io import RemoveIdentityThresholds
from .layout import MoveTransposePastDataMovement
from .residual import AlignResidualAddGrids, MoveEqualTransposesPastAdd
from .rounding import RoundTieThresholdsOnIntegers
from .tidy import MoveAffinePastDataMovement

__all__ = ["StreamlineGAN"]

_MAX_ROUNDS = 50


def _to_fixed_point(model: ModelWrapper, passes: list[Transformation]) -> ModelWrapper:
    for _ in range(_MAX_ROUNDS):
        before = model.model.SerializeToString()
        for p in passes:
            model = model.transform(p)
        if model.model.SerializeToString() == before:
            return model
    return model


class StreamlineGAN(Transformation):
    """Streamline, lower convolutions to NHWC MatMuls, and clear every layout Transpose inside."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        from finn.transformation.streamline import Streamline, absorb, reorder
        from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

        model = model.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
        model = _to_fixed_point(model, [
            Streamline(), MoveAffinePastDataMovement(), reorder.MoveMulPastJoinConcat(),
            reorder.MoveAddPastJoinConcat(), reorder.MoveLinearPastFork(),
            # residual adds: one scale past the add, or both inputs aligned on one grid (.residual)
            reorder.MoveLinearPastEltwiseAdd(), AlignResidualAddGrids(),
        ])
        model = model.transform(LowerConvsToMatMul())
        model = _to_fixed_point(model, [
            *op_passes("layout"),           # each fpga_gan op's own moves (fpga_gan.ops.registry)
            MoveTransposePastDataMovement(), reorder.MoveTransposePastJoinConcat(), reorder.MoveTransposePastFork(),
            absorb.AbsorbTransposeIntoMultiThreshold(), absorb.AbsorbConsecutiveTransposes(), Streamline(),
            MoveEqualTransposesPastAdd(),
        ])
        # once, after the moves: FINN's MoveTransposePastFork would push a merged Transpose back down
        model = model.transform(MergeIdenticalSiblings())
        model = model.transform(RoundTieThresholdsOnIntegers())
        # integer thresholds inside the range of the accumulator they compare (after the tie rounding,
        # which needs the unrounded boundaries): FINN's Thresholding asserts >= 0 on unsigned inputs
        model = model.transform(RoundAndClipThresholds()).transform(RemoveIdentityThresholds())
        model = model.transform(InferDataLayouts()).transform(InferDataTypes()).transform(RemoveUnusedTensors())
        return model, False
