"""Reference GAN generators, written the way a FINN user writes them in plain Brevitas.

None of this uses fpga_gan's own layer helpers or zoo code: the point is to test the compiler
against models it did not grow up with. Brevitas defaults are kept wherever a user would keep them
(float per-tensor scales, float biases, ``nn.BatchNorm2d`` between convolution and activation),
and the bit widths are the kind people pick for FPGAs (8-bit image in and out, W6A4 or W4A4
inside). Each architecture is the textbook one shrunk to CI size: the same blocks, fewer channels
and smaller images.

``REFERENCE`` maps a name to ``(builder, example inputs)``; :func:`export` writes the QONNX file
exactly as a user would (``export_qonnx``, TorchScript exporter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from brevitas import nn as qnn
from torch import nn

W, A = 6, 4          # weight / activation bits inside the networks


def _image_in() -> qnn.QuantIdentity:
    """An 8-bit signed input quantizer, as in FINN's end-to-end examples."""
    return qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)


def _image_out() -> qnn.QuantIdentity:
    return qnn.QuantIdentity(bit_width=8)


def _conv(cin: int, cout: int, k: int, s: int = 1, p: int = 0, bits: int = W, bias: bool = True) -> qnn.QuantConv2d:
    return qnn.QuantConv2d(cin, cout, k, stride=s, padding=p, bias=bias, weight_bit_width=bits)


def _deconv(cin: int, cout: int, k: int, s: int, p: int, op: int = 0, bits: int = W) -> qnn.QuantConvTranspose2d:
    return qnn.QuantConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, bias=False,
                                    weight_bit_width=bits)


def _relu() -> qnn.QuantReLU:
    return qnn.QuantReLU(bit_width=A, return_quant_tensor=True)


def _act() -> qnn.QuantIdentity:
    return qnn.QuantIdentity(bit_width=A, return_quant_tensor=True)


class DCGANWithBatchNorm(nn.Module):
    """Radford et al.'s DCGAN generator: ConvTranspose -> BatchNorm -> ReLU, tanh at the end."""

    def __init__(self, nz: int = 16, ngf: int = 8) -> None:
        super().__init__()
        self.inp = _image_in()
        self.net = nn.Sequential(
            _deconv(nz, ngf * 4, 4, 1, 0), nn.BatchNorm2d(ngf * 4), _relu(),          # 1 -> 4
            _deconv(ngf * 4, ngf * 2, 4, 2, 1), nn.BatchNorm2d(ngf * 2), _relu(),     # 4 -> 8
            _deconv(ngf * 2, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), _relu(),             # 8 -> 16
            _deconv(ngf, 3, 4, 2, 1, bits=8), nn.Tanh(), _image_out(),                # 16 -> 32
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.inp(z))


class Pix2PixUNet(nn.Module):
    """Isola et al.'s U-Net: k4 s2 convolutions down with BatchNorm + LeakyReLU(0.2), transposed
    convolutions up with BatchNorm + ReLU, concat skips, tanh. Each skip's two sides share one
    quantizer (``skip_q*``), so the concat joins tensors on one integer grid."""

    def __init__(self, ngf: int = 8) -> None:
        super().__init__()
        self.inp = _image_in()
        self.skip_q1, self.skip_q2 = _act(), _act()
        self.down1 = _conv(3, ngf, 4, 2, 1)                                            # 16 -> 8, no norm
        self.down2 = nn.Sequential(_conv(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2))
        self.down3 = nn.Sequential(_conv(ngf * 2, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4))
        self.leaky = nn.LeakyReLU(0.2)
        self.bottleneck_q = _act()
        self.up3 = nn.Sequential(_deconv(ngf * 4, ngf * 2, 4, 2, 1), nn.BatchNorm2d(ngf * 2), nn.ReLU())
        self.up2 = nn.Sequential(_deconv(ngf * 4, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.ReLU())
        self.up1 = _deconv(ngf * 2, 3, 4, 2, 1, bits=8)
        self.out_q = _image_out()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.skip_q1(self.leaky(self.down1(self.inp(x))))
        d2 = self.skip_q2(self.leaky(self.down2(d1)))
        d3 = self.bottleneck_q(self.leaky(self.down3(d2)))
        u3 = self.skip_q2(self.up3(d3))
        u2 = self.skip_q1(self.up2(torch.cat([u3, d2], dim=1)))
        return self.out_q(torch.tanh(self.up1(torch.cat([u2, d1], dim=1))))


class _ResnetBlock(nn.Module):
    """CycleGAN's residual block: reflect-pad, conv, norm, ReLU, reflect-pad, conv, norm; x + f(x).
    ``shared`` quantizes both sides of the add on one grid (the caller re-quantizes the sum)."""

    def __init__(self, c: int, shared: qnn.QuantIdentity) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.ReflectionPad2d(1), _conv(c, c, 3, bias=False), nn.BatchNorm2d(c), _relu(),
                               nn.ReflectionPad2d(1), _conv(c, c, 3, bias=False), nn.BatchNorm2d(c))
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shared(self.f(x))


class CycleGANResnet(nn.Module):
    """Zhu et al.'s ResNet generator: c7s1 with reflection padding, two stride-2 down-samplers,
    residual blocks, ConvTranspose k3 s2 p1 output_padding 1 up-samplers, c7s1 + tanh."""

    def __init__(self, ngf: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.inp = _image_in()
        self.head = nn.Sequential(nn.ReflectionPad2d(3), _conv(3, ngf, 7, bias=False), nn.BatchNorm2d(ngf), _relu(),
                                  _conv(ngf, ngf * 2, 3, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), _relu())
        self.res_q = _act()
        self.down2 = nn.Sequential(_conv(ngf * 2, ngf * 4, 3, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4))
        self.blocks = nn.Sequential(*[_ResnetBlock(ngf * 4, self.res_q) for _ in range(blocks)])
        self.up = nn.Sequential(
            _deconv(ngf * 4, ngf * 2, 3, 2, 1, op=1), nn.BatchNorm2d(ngf * 2), _relu(),
            _deconv(ngf * 2, ngf, 3, 2, 1, op=1), nn.BatchNorm2d(ngf), _relu(),
            nn.ReflectionPad2d(3), _conv(ngf, 3, 7, bits=8))
        self.out_q = _image_out()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.res_q(self.down2(self.head(self.inp(x))))
        for block in self.blocks:
            h = self.res_q(block(h))
        return self.out_q(torch.tanh(self.up(h)))


class _SRResidual(nn.Module):
    """SRGAN's residual block: conv, BN, PReLU, conv, BN, + skip (both sides on ``shared``'s grid)."""

    def __init__(self, c: int, shared: qnn.QuantIdentity) -> None:
        super().__init__()
        self.f = nn.Sequential(_conv(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c), _act(),
                               _conv(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shared(self.f(x))


class SRGANLike(nn.Module):
    """Ledig et al.'s SRResNet shape: conv + PReLU, residual blocks, a long skip, conv +
    PixelShuffle(2) + PReLU up-sampling (a biased, per-channel-scaled conv in front of the
    shuffle), conv out."""

    def __init__(self, c: int = 8, blocks: int = 2) -> None:
        super().__init__()
        self.inp = _image_in()
        self.head = nn.Sequential(_conv(3, c, 3, 1, 1, bits=8), nn.PReLU())
        self.res_q = _act()
        self.blocks = nn.ModuleList([_SRResidual(c, self.res_q) for _ in range(blocks)])
        self.sum_q = _act()
        self.up = nn.Sequential(
            qnn.QuantConv2d(c, 4 * c, 3, padding=1, bias=True, weight_bit_width=W,
                            weight_scaling_per_output_channel=True),
            nn.PixelShuffle(2), nn.PReLU(), _act())
        self.out = _conv(c, 3, 3, 1, 1, bits=8)
        self.out_q = _image_out()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.res_q(self.head(self.inp(x)))
        h = skip
        for block in self.blocks:
            h = self.res_q(block(h))
        return self.out_q(self.out(self.up(self.sum_q(h + skip))))


class ConditionalGenerator(nn.Module):
    """A pix2pix-style conditional generator with a class label: the one-hot label is quantized at
    the input (by the image's quantizer, so the concat joins one integer grid), broadcast to
    constant planes inside the network and concatenated with the image, as cGAN code does."""

    def __init__(self, classes: int = 4, ngf: int = 8) -> None:
        super().__init__()
        self.inp = _image_in()
        self.enc = nn.Sequential(_conv(3 + classes, ngf, 3, 1, 1), nn.BatchNorm2d(ngf), _relu(),
                                 _conv(ngf, ngf * 2, 4, 2, 1), nn.BatchNorm2d(ngf * 2), _relu())
        self.dec = nn.Sequential(_deconv(ngf * 2, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), _relu(),
                                 _conv(ngf, 3, 3, 1, 1, bits=8))
        self.out_q = _image_out()

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        x = self.inp(image).value
        planes = self.inp(label).value[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.out_q(torch.tanh(self.dec(self.enc(torch.cat([x, planes], dim=1)))))


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Trained-looking parameters: weights off their init, BatchNorm statistics away from (0, 1),
    PReLU slopes per channel. Brevitas' quantizer scales are calibrated on a few random batches."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, nn.PReLU):
                module.weight.uniform_(0.05, 0.3)
    return model


REFERENCE: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]]]] = {
    "dcgan_bn": (DCGANWithBatchNorm, lambda: (torch.randn(1, 16, 1, 1),)),
    "pix2pix": (Pix2PixUNet, lambda: (torch.rand(1, 3, 16, 16) * 2 - 1,)),
    "cyclegan": (CycleGANResnet, lambda: (torch.rand(1, 3, 16, 16) * 2 - 1,)),
    "srgan": (SRGANLike, lambda: (torch.rand(1, 3, 8, 8) * 2 - 1,)),
    "conditional": (ConditionalGenerator, lambda: (torch.rand(1, 3, 8, 8) * 2 - 1,
                                                   nn.functional.one_hot(torch.tensor([2]), 4).float())),
}


def build(name: str, seed: int = 0) -> nn.Module:
    """The reference generator ``name`` with calibrated quantizers, in eval mode."""
    cls, example = REFERENCE[name]
    torch.manual_seed(seed)
    model = _randomise(cls(), seed)
    model.train()
    with torch.no_grad():                         # let the activation quantizers see real ranges
        for _ in range(4):
            model(*example())
    return model.eval()


def export(name: str, path: Path, seed: int = 0) -> Path:
    """Export reference generator ``name`` to QONNX at ``path``, as a user would."""
    from brevitas.export import export_qonnx

    model = build(name, seed)
    export_qonnx(model, args=example_inputs(name), export_path=str(path), dynamo=False)
    return path


def example_inputs(name: str) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(1234)
    return REFERENCE[name][1]()


def export_all(out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """``out_dir/<name>.qonnx.onnx`` for each reference generator (all by default).

    An unchanged export leaves the file as it was: the compiler caches its stages by the file's
    bytes, so ``make bench`` reuses the compile of an unchanged generator and recompiles a changed one.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(REFERENCE):
        path = out_dir / f"{name}.qonnx.onnx"
        tmp = export(name, out_dir / f".{name}.partial.onnx")
        if path.is_file() and path.read_bytes() == tmp.read_bytes():
            tmp.unlink()
        else:
            tmp.replace(path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.reference_generators --out DIR [NAME ...]`` exports (``make bench`` does);
    ``--names`` prints the architectures' names, one a line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.reference_generators", description=main.__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"which generators (default: all of {', '.join(REFERENCE)})")
    parser.add_argument("--out", type=Path, help="directory for <name>.qonnx.onnx")
    parser.add_argument("--names", dest="list_names", action="store_true", help="print the names and stop")
    args = parser.parse_args(argv)
    if args.list_names:
        print("\n".join(REFERENCE))
        return
    if args.out is None:
        parser.error("--out is required to export")
    unknown = [name for name in args.names if name not in REFERENCE]
    if unknown:
        parser.error(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(REFERENCE)}")
    for path in export_all(args.out, args.names):
        print(path)


if __name__ == "__main__":
    main()
