"""GAN graph passes of our own, each a qonnx ``Transformation`` named for what it does.

They run between Brevitas' QONNX export and FINN's dataflow conversion, turning layers FINN
lacks efficient hardware for into ones it streams (or into fpga_gan's RTL ops).
"""

from . import subpixel
from .subpixel import *  # noqa: F403 - the pass and its helpers, listed in subpixel.__all__

__all__ = list(subpixel.__all__)
