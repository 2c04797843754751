"""fpga_gan: FPGA-accelerated GAN inference for fashion imagery."""

__version__ = "0.1.0"
