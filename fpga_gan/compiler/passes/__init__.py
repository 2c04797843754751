"""GAN graph passes of our own, each a qonnx ``Transformation`` named for what it does.

They run between Brevitas' QONNX export and FINN's dataflow conversion, turning layers FINN
lacks efficient hardware for into ones it streams (or into fpga_gan's RTL ops).
"""

from .subpixel import (
    LowerConvTransposeToSubPixel,
    SubPixelGeometry,
    check_lowerable,
    macs_zero_free,
    macs_zero_insertion,
    subpixel_geometry,
    subpixel_weight,
)

__all__ = [
    "LowerConvTransposeToSubPixel",
    "SubPixelGeometry",
    "check_lowerable",
    "macs_zero_free",
    "macs_zero_insertion",
    "subpixel_geometry",
    "subpixel_weight",
]
