"""Brevitas generators (and their float twins) for try-on and garment design."""

from .dcgan import DCGANGenerator
from .layers import QuantSpec, count_macs
from .tryon import TRYON_IN_CHANNELS, TryOnGenerator

__all__ = ["DCGANGenerator", "QuantSpec", "TRYON_IN_CHANNELS", "TryOnGenerator", "count_macs"]
