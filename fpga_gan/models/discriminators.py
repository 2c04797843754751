"""Float discriminators; only generators go to the FPGA, so these stay unquantized."""

from __future__ import annotations

from torch import nn


def _down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class PatchDiscriminator(nn.Sequential):
    """pix2pix PatchGAN: one real/fake logit per overlapping patch of (condition, image)."""

    def __init__(self, in_channels: int, ndf: int = 32) -> None:
        super().__init__(*_down(in_channels, ndf, norm=False), *_down(ndf, ndf * 2),
                         nn.Conv2d(ndf * 2, ndf * 4, 3, 1, 1), nn.InstanceNorm2d(ndf * 4, affine=True),
                         nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(ndf * 4, 1, 3, 1, 1))


class DCGANDiscriminator(nn.Sequential):
    """The DCGAN-64 discriminator (64x64 image to one logit), spectrally normalised.

    Spectral norm instead of batch norm keeps the discriminator Lipschitz, so it cannot win
    outright against a 4-bit generator that starts far from the data (the plain DCGAN recipe
    collapsed to a fixed checkerboard here).
    """

    def __init__(self, ndf: int = 32, in_channels: int = 3) -> None:
        sn = nn.utils.parametrizations.spectral_norm
        chans = [in_channels, ndf, ndf * 2, ndf * 4, ndf * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        super().__init__(*layers, sn(nn.Conv2d(ndf * 8, 1, 4, 1, 0)), nn.Flatten())


class GarmentEncoder(nn.Module):
    """Image to a Gaussian posterior over the latent (mean, log-variance); training only.

    It turns DCGAN training into VAE-GAN training: reconstruction gives the generator a dense,
    stable signal that a bias-free, norm-free 4-bit generator does not get from a discriminator
    alone (plain DCGAN training collapsed to a single garment here), while the KL term keeps the
    latent close to N(0, 1) so that sampling works without the encoder.
    """

    def __init__(self, nz: int, nef: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels, nef, nef * 2, nef * 4, nef * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(nef * 8 * 16, 2 * nz)

    def forward(self, x):
        mu, logvar = self.head(self.features(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)
