"""Quantization-aware training loops (try-on: pix2pix; design: DCGAN) and metrics."""

from .dcgan import DCGANTrainConfig, train_dcgan
from .metrics import psnr_ssim
from .tryon import TryOnTrainConfig, train_tryon

__all__ = ["DCGANTrainConfig", "TryOnTrainConfig", "psnr_ssim", "train_dcgan", "train_tryon"]
