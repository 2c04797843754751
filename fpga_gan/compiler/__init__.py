"""The compile pipeline: QONNX model -> dataflow graph of RTL layers.

FINN (finn-plus) transformations do the generic work; the GAN passes in
:mod:`fpga_gan.compiler.passes` first rewrite the layers FINN handles badly or not at all, e.g.
transposed convolutions into the zero-free sub-pixel form, so that every multiply on the
board touches real data.
"""

from .passes import (
    LowerConvTransposeToSubPixel,
    check_lowerable,
    macs_zero_free,
    macs_zero_insertion,
)

__all__ = ["LowerConvTransposeToSubPixel", "check_lowerable", "macs_zero_free", "macs_zero_insertion"]
