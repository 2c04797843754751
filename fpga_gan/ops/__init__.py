"""fpga_gan's hardware custom ops, FINN-compatible, in the ONNX domain ``"fpga_gan.ops"``.

qonnx resolves a node's ``domain`` to a Python module and looks its ``op_type`` up in that
module's ``custom_op`` dict, so a node with ``domain="fpga_gan.ops"`` and ``op_type="DepthToSpace"``
executes :class:`DepthToSpace` (the golden numpy model) and ``"DepthToSpace_rtl"`` its RTL
backend. Every op is one module here: a backend-neutral class (``execute_node`` is the golden
model) decorated with :func:`~fpga_gan.ops.registry.register_op`, which makes the ``*_rtl``
backend (filling ``hw/rtl/op_wrapper_template.v`` for the op's core) and registers both, here and
in FINN's RTL domain. The op modules are found by importing every public module of this package,
so adding an op means adding its module; nothing here lists it.

All ports of an op carry one FINN datatype (node attribute ``inputDataType``).
"""

import importlib
import pkgutil

from . import finn_facts  # noqa: F401 - facts of FINN's layers (simulator, folding, estimates)
from ._base import DOMAIN, rtl_dir
from .registry import FINN_RTL_DOMAIN, custom_op, facts_of, registered_ops

# modules that are not ops: the registry, FINN's facts, `make lint`
_NOT_OPS = {"registry", "finn_facts", "lint"}
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in _NOT_OPS:
        importlib.import_module(f"{__name__}.{_module.name}")

# the ops' classes and golden functions as package attributes (``from fpga_gan.ops import X``)
from .depth_to_space import DepthToSpace, DepthToSpace_rtl, depth_to_space_nhwc  # noqa: E402
from .streams import DuplicateStreams, DuplicateStreams_rtl, StreamingConcat, StreamingConcat_rtl  # noqa: E402
from .upsample import UpsampleNearest, UpsampleNearest_rtl, upsample_nearest_nhwc  # noqa: E402


__all__ = [
    "DOMAIN",
    "FINN_RTL_DOMAIN",
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
    "facts_of",
    "registered_ops",
    "rtl_dir",
    "upsample_nearest_nhwc",
]
