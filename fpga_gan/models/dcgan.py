"""The garment design generator: DCGAN-64 with transposed convolutions only.

A latent vector (as an Nx``nz``x1x1 tensor) becomes a 64x64 RGB in-shop garment. ``ngf=64`` is the
classic DCGAN-64 used for benchmarks; the shipped model is narrower. There is no batch norm (it would
break bit-exactness across backends; see :mod:`fpga_gan.models.layers`).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import QuantSpec, conv_transpose2d, image_output, init_for_relu, latent_input, relu


class DCGANGenerator(nn.Module):
    """DCGAN-64 generator; ``spec=None`` builds the float twin."""

    def __init__(self, nz: int = 64, ngf: int = 32, spec: QuantSpec | None = QuantSpec(),
                 out_channels: int = 3) -> None:
        super().__init__()
        self.nz, self.ngf, self.spec = nz, ngf, spec
        io_bits = spec.io_bits if spec else None
        self.inp = latent_input(spec)
        self.body = nn.Sequential(
            conv_transpose2d(nz, ngf * 8, 4, 1, 0, spec=spec, weight_bits=io_bits), relu(spec),  # 4x4
            conv_transpose2d(ngf * 8, ngf * 4, 4, 2, 1, spec=spec), relu(spec),                  # 8x8
            conv_transpose2d(ngf * 4, ngf * 2, 4, 2, 1, spec=spec), relu(spec),                  # 16x16
            conv_transpose2d(ngf * 2, ngf, 4, 2, 1, spec=spec), relu(spec),                      # 32x32
            conv_transpose2d(ngf, out_channels, 4, 2, 1, spec=spec, weight_bits=io_bits),         # 64x64
        )
        self.out = image_output(spec, straight_through=True)
        init_for_relu(self)
        # Start from a flat mid-grey image: a generator without normalisation that starts with
        # large outputs saturates at white and stops learning.
        last = self.body[-1]
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias.fill_(0.5)

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        """The output before the output quantizer, for losses that need a gradient everywhere."""
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.body(self.inp(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.out(self.body(self.inp(z)))
