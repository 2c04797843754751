"""Generators: shapes, power-of-two quantizers, float twins, zoo loading."""

from __future__ import annotations

import pytest
import torch

from fpga_gan.models import DCGANGenerator, QuantSpec, TryOnGenerator, count_macs
from fpga_gan.models.zoo import ZooError, build, load_generator, load_zoo_model, model_config, save_generator


def test_tryon_shapes_and_output_grid():
    model = TryOnGenerator().eval()
    y = model(torch.randint(0, 256, (2, 24, 64, 48)).float() / 256)
    assert y.shape == (2, 3, 64, 48)
    codes = y * 256
    assert torch.equal(codes, codes.round()) and codes.min() >= 0 and codes.max() <= 255


def test_tryon_128x96_and_size_check():
    assert TryOnGenerator(image_size=(128, 96))(torch.zeros(1, 24, 128, 96)).shape == (1, 3, 128, 96)
    with pytest.raises(ValueError, match="divisible by 8"):
        TryOnGenerator(image_size=(60, 48))


def test_classic_dcgan64_constructible():
    model = DCGANGenerator(nz=100, ngf=64).eval()
    z = torch.randn(1, 100, 1, 1)
    assert model(z).shape == (1, 3, 64, 64)
    # 5 transposed convolutions of the classic DCGAN-64 (zero-free MAC count)
    assert count_macs(model, z) == 100 * 512 * 16 + 16 * 512 * 256 * 16 + 64 * 256 * 128 * 16 \
        + 256 * 128 * 64 * 16 + 1024 * 64 * 3 * 16


def test_weight_scales_are_powers_of_two():
    model = TryOnGenerator()
    for m in model.modules():
        if hasattr(m, "quant_weight"):
            scale = m.quant_weight().scale
            assert torch.equal(torch.log2(scale), torch.log2(scale).round())


@pytest.mark.parametrize("arch", ["tryon", "dcgan"])
def test_float_twin_has_the_same_architecture(arch):
    q = build(arch, {"spec": {"weight_bits": 4, "act_bits": 4, "io_bits": 8, "act_max": 4.0}})
    f = build(arch, {"spec": None})
    assert [tuple(p.shape) for p in q.parameters() if p.dim() > 1] == \
        [tuple(p.shape) for p in f.parameters() if p.dim() > 1]


def test_save_and_load_round_trip(tmp_path):
    model = TryOnGenerator(widths=(8, 8, 16, 16), spec=QuantSpec(weight_bits=3, act_bits=5))
    save_generator(model, tmp_path / "g.pt")
    loaded = load_generator(tmp_path / "g.pt")
    assert model_config(loaded) == model_config(model)
    x = torch.rand(1, 24, 64, 48)
    assert torch.equal(model.eval()(x), loaded(x))


def test_zoo_errors(tmp_path):
    with pytest.raises(ZooError, match="unknown model 'pix2pix'"):
        load_zoo_model("pix2pix")
    with pytest.raises(ZooError, match="not found"):
        load_generator(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match="bad.pt"):
        load_generator(tmp_path / "bad.pt")


@pytest.mark.parametrize("name", ["tryon", "dcgan", "editor", "designer"])
def test_zoo_models_load(name):
    assert load_zoo_model(name).spec is not None
    assert load_zoo_model(name, float_twin=True).spec is None
