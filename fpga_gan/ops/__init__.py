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

FINN_RTL_DOMAIN = "finn.custom_op.fpgadataflow.rtl"


def register_with_finn() -> None:
    """Make our ``*_rtl`` classes resolvable in FINN's RTL domain.

    FINN's tooling (``is_rtl_node``, dataflow analysis, SetFolding, PrepareIP, IP stitching) only
    recognises specialized layers whose domain is ``finn.custom_op.fpgadataflow.rtl``. The
    backend-neutral ops stay in our own domain; after specialization a node moves to FINN's RTL
    domain, where qonnx finds the class through this registration (FINN's plugin mechanism is
    this same dict). Idempotent; the names do not collide with FINN's own layers.
    """
    import finn.custom_op.fpgadataflow.rtl as finn_rtl

    for name, cls in custom_op.items():
        if name.endswith("_rtl"):
            existing = finn_rtl.custom_op.get(name)
            if existing is not None and existing is not cls:
                raise RuntimeError(f"FINN already defines {name}; fpga_gan's op would shadow it")
            finn_rtl.custom_op[name] = cls


register_with_finn()

__all__ = [
    "DOMAIN",
    "FINN_RTL_DOMAIN",
    "register_with_finn",
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
