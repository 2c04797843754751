"""Moving a spatial ONNX op to the NHWC side of the layout Transpose next to it.

After ``LowerConvsToMatMul`` every convolution reads NHWC through Transposes, so an ONNX op
between two convolutions (a Pad, a Resize) stays in NCHW between ``Transpose(to NCHW)`` and
``Transpose(to NHWC)``, or at the graph input in front of ``Transpose(to NHWC)``. An op that only
moves pixels commutes with a permutation of the axes (its parameters permuted along), so it can
swap places with either Transpose; FINN's ``AbsorbConsecutiveTransposes`` then cancels the pair
that meets, and the op is NHWC, ready to become a streaming layer.
"""

from __future__ import annotations

from typing import Callable

from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import get_by_name

NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


def _perm(node) -> list[int] | None:
    attr = get_by_name(node.attribute, "perm")
    return None if attr is None else list(helper.get_attribute_value(attr))


def swap_into_nhwc(model: ModelWrapper, node, to_nhwc: Callable[[ModelWrapper, object], None]) -> bool:
    """Swap NCHW ``node`` with the layout Transpose in front of it (to NCHW) or behind it (to
    NHWC), whichever there is; ``to_nhwc(model, node)`` rewrites its parameters for NHWC data.
    Returns whether the graph changed (then shapes are re-inferred)."""
    producer = model.find_producer(node.input[0])
    consumers = model.find_consumers(node.output[0]) or []
    mid = model.make_new_valueinfo_name()
    if (producer is not None and producer.op_type == "Transpose" and _perm(producer) == NHWC_TO_NCHW
            and len(model.find_consumers(producer.output[0]) or []) == 1):
        # Transpose(NHWC->NCHW) -> node  =>  node(NHWC) -> Transpose
        first, second = node, producer
        nhwc_in, out = producer.input[0], node.output[0]
        node.input[0], node.output[0] = nhwc_in, mid
        producer.input[0], producer.output[0] = mid, out
    elif len(consumers) == 1 and consumers[0].op_type == "Transpose" and _perm(consumers[0]) == NCHW_TO_NHWC:
        # node -> Transpose(NCHW->NHWC)  =>  Transpose -> node(NHWC)
        transpose = consumers[0]
        first, second = transpose, node
        nchw_in, out = node.input[0], transpose.output[0]
        transpose.input[0], transpose.output[0] = nchw_in, mid
        node.input[0], node.output[0] = mid, out
    else:
        return False
    to_nhwc(model, node)
    model.set_tensor_datatype(mid, model.get_tensor_datatype(first.input[0]))
    nodes = list(model.graph.node)
    at = min(nodes.index(first), nodes.index(second))
    nodes.remove(first)
    nodes.remove(second)
    nodes[at:at] = [first, second]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return True


def nchw_to_nhwc_values(values: list) -> list:
    """Per-axis values (N, C, H, W) in NHWC order (N, H, W, C)."""
    return [values[i] for i in NCHW_TO_NHWC]


