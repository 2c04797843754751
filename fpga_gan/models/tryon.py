"""The virtual try-on generator: a small U-Net that streams.

Input is ONE tensor (agnostic person, 18 pose heatmaps and the in-shop garment stacked on channels,
see :func:`fpga_gan.data.tryon_input`), so the accelerator has one input stream. The decoder uses
both upsampling styles FINN-based GAN hardware must handle: a transposed convolution (k4 s2 p1) at
the deeper levels and a nearest upsample followed by a convolution at the last level. Skip
connections are channel concats, which the compiler turns into stream duplication plus concat.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

TRYON_IN_CHANNELS = 24


class _Block(nn.Sequential):
    """conv -> ReLU; the unit every encoder/decoder level is made of."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, spec: QuantSpec | None,
                 weight_bits: int | None = None) -> None:
        super().__init__(conv2d(cin, cout, k, stride, k // 2 if stride == 1 else 1, spec=spec,
                                weight_bits=weight_bits), relu(spec))


class TryOnGenerator(nn.Module):
    """U-Net try-on generator; ``spec=None`` builds the float twin.

    ``image_size`` (H, W) is the size it is trained and exported at. ``widths`` are the channels at
    full, 1/2, 1/4 and 1/8 resolution. The same network, fed a garment and edit condition planes,
    is the garment editor (zoo name ``editor``). Inputs are pixel codes
    divided by 256 (values in [0, 1)); outputs are RGB in [0, 1) whose codes (x 256) are pixels.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 64),
                 spec: QuantSpec | None = QuantSpec(), in_channels: int = TRYON_IN_CHANNELS,
                 out_channels: int = 3, image_size: tuple[int, int] = (64, 48),
                 straight_through_output: bool = False) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        if image_size[0] % 8 or image_size[1] % 8:
            raise ValueError(f"image size {image_size} must be divisible by 8 (three 2x downsamplings)")
        self.in_channels, self.image_size = in_channels, tuple(image_size)
        io_bits = spec.io_bits if spec else None
        self.widths, self.spec = tuple(widths), spec
        self.inp = image_input(spec)
        self.enc0 = _Block(in_channels, w0, 3, 1, spec, weight_bits=io_bits)      # H
        self.enc1 = _Block(w0, w1, 4, 2, spec)                                     # H/2
        self.enc2 = _Block(w1, w2, 4, 2, spec)                                     # H/4
        self.enc3 = _Block(w2, w3, 4, 2, spec)                                     # H/8
        self.mid = _Block(w3, w3, 3, 1, spec)
        # Each upsampled branch shares its quantizer with the skip it is concatenated with.
        self.up2 = nn.Sequential(conv_transpose2d(w3, w2, 4, 2, 1, spec=spec), relu(spec, self.enc2[1]))
        self.dec2 = _Block(2 * w2, w2, 3, 1, spec)
        self.up1 = nn.Sequential(conv_transpose2d(w2, w1, 4, 2, 1, spec=spec), relu(spec, self.enc1[1]))
        self.dec1 = _Block(2 * w1, w1, 3, 1, spec)
        self.up0 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up0_conv = nn.Sequential(conv2d(w1, w0, 3, 1, 1, spec=spec), relu(spec, self.enc0[1]))
        self.dec0 = _Block(2 * w0, w0, 3, 1, spec)
        self.head = conv2d(w0, out_channels, 3, 1, 1, spec=spec, weight_bits=io_bits)
        # Straight-through output clamp for images with near-white backgrounds (the garment
        # editor's shop images): with a plain clamp, a pixel pushed past white gets no gradient
        # and a whole background can stick there. Same forward result either way.
        self.straight_through_output = bool(straight_through_output)
        self.out = image_output(spec, straight_through=self.straight_through_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        m = self.mid(self.enc3(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        d0 = self.dec0(torch.cat([self.up0_conv(self.up0(d1)), e0], dim=1))
        return self.out(self.head(d0))
