"""fpga_gan's hardware custom ops, FINN-compatible, in the ONNX domain ``"fpga_gan.ops"``.

qonnx resolves a node's ``domain`` to a Python module and looks its ``op_type`` up in that
module's ``custom_op`` dict, so a node with ``domain="fpga_gan.ops"`` and ``op_type="DepthToSpace"``
executes :class:`DepthToSpace` (the golden numpy model) and ``"DepthToSpace_rtl"`` its RTL
backend. Every op has a backend-neutral class (``execute_node`` is the golden model) and a
``*_rtl`` subclass whose ``generate_hdl`` writes a FINN top-level wrapper from ``hw/rtl``.

Ops: DepthToSpace (NHWC, CRD order), UpsampleNearest, DuplicateStreams, StreamingConcat.
All ports of an op carry one FINN datatype (node attribute ``inputDataType``).
"""

from ._base import DOMAIN, rtl_dir
from .depth_to_space import DepthToSpace, DepthToSpace_rtl, depth_to_space_nhwc
from .streams import (
    DuplicateStreams,
    DuplicateStreams_rtl,
    StreamingConcat,
    StreamingConcat_rtl,
)
from .upsample import UpsampleNearest, UpsampleNearest_rtl, upsample_nearest_nhwc

custom_op = {
    "DepthToSpace": DepthToSpace,
    "DepthToSpace_rtl": DepthToSpace_rtl,
    "UpsampleNearest": UpsampleNearest,
    "UpsampleNearest_rtl": UpsampleNearest_rtl,
    "DuplicateStreams": DuplicateStreams,
    "DuplicateStreams_rtl": DuplicateStreams_rtl,
    "StreamingConcat": StreamingConcat,
    "StreamingConcat_rtl": StreamingConcat_rtl,
}

__all__ = [
    "DOMAIN",
    "DepthToSpace",
    "DepthToSpace_rtl",
    "DuplicateStreams",
    "DuplicateStreams_rtl",
    "StreamingConcat",
    "StreamingConcat_rtl",
    "UpsampleNearest",
    "UpsampleNearest_rtl",
    "custom_op",
    "depth_to_space_nhwc",
    "rtl_dir",
    "upsample_nearest_nhwc",
]
