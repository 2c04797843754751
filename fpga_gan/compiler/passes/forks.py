"""Merge identical layout nodes that read the same tensor, so a fork carries one stream, not copies.

Why: lowering convolutions to NHWC MatMuls gives each convolution its own input Transpose. When
one tensor (the graph input, a skip source) feeds several convolutions, the fork then sits in
front of several identical Transposes that no later pass can clear (FINN's
``MoveTransposePastFork`` moves a single Transpose past a fork, not copies of one below it).
"""

from __future__ import annotations

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

__all__ = ["MergeIdenticalSiblings"]

_MERGEABLE = {"Transpose", "Reshape"}


def _signature(node) -> tuple:
    return node.op_type, node.domain, tuple(node.input), tuple(a.SerializeToString() for a in node.attribute)


class MergeIdenticalSiblings(Transformation):
    """Two layout nodes (Transpose, Reshape) with the same inputs and attributes become one."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        outputs = {o.name for o in model.graph.output}
        seen: dict[tuple, object] = {}
        for node in model.graph.node:
            if node.op_type not in _MERGEABLE or len(node.output) != 1 or node.output[0] in outputs:
                continue
            key = _signature(node)
            kept = seen.setdefault(key, node)
            if kept is node:
                continue
            for consumer in model.find_consumers(node.output[0]) or []:
                for i, name in enumerate(consumer.input):
                    if name == node.output[0]:
                        consumer.input[i] = kept.output[0]
            model.graph.node.remove(node)
            return model, True
        return model, False
