"""Bit-exactness: PyTorch (Brevitas), qonnx execute_onnx and ONNX Runtime give identical codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fpga_gan.export import cross_check, export_generator, torch_output_codes
from fpga_gan.models import DCGANGenerator, QuantSpec, TryOnGenerator
from fpga_gan.models.zoo import load_zoo_model


def _random_codes(spec: dict, n: int, seed: int) -> np.ndarray:
    lo, hi = spec["range"]
    shape = [d for d in spec["shape"][1:]]
    return np.random.default_rng(seed).integers(lo, hi + 1, (n, *shape)).astype(spec["dtype"])


@pytest.mark.parametrize("name", ["tryon", "dcgan", "editor", "designer"])
def test_zoo_model_codes_identical_on_64_inputs(name, zoo_artifacts):
    import json

    model = load_zoo_model(name)
    spec = json.loads((zoo_artifacts[name] / "model.json").read_text())
    from fpga_gan.export import ExportResult
    from fpga_gan.export.exporter import MODEL_JSON, QCDQ_FILE, QONNX_FILE

    d = zoo_artifacts[name]
    export = ExportResult(d, d / QONNX_FILE, d / QCDQ_FILE, d / MODEL_JSON, spec)
    if name == "tryon":
        # Real try-on inputs are not uniform noise: use the synthetic world as well.
        from fpga_gan.data import render_sample, tryon_input

        items = [tryon_input(render_sample(1000 + s)) for s in range(32)]
        codes = np.concatenate([np.stack(items), _random_codes(spec["inputs"][0], 32, 0)])
    elif name == "editor":
        # and real garments with real edits for the editor
        from fpga_gan.data.edits import condition_codes, edit_examples, editor_input, render_params

        examples = edit_examples(77, per_type=4)
        source = np.stack([render_params(src) for _, src, _, _ in examples]).transpose(0, 3, 1, 2)
        x = editor_input(source, np.stack([condition_codes(e) for _, _, e, _ in examples]))
        codes = np.concatenate([x, _random_codes(spec["inputs"][0], 32, 0)])
    else:
        codes = _random_codes(spec["inputs"][0], 64, 0)
    report = cross_check(model, export, codes)
    assert report.inputs >= 64
    assert report.mismatches == {"qonnx": 0, "onnxruntime": 0}, report.summary()
    # The check must be able to fail: the codes are not all one value.
    assert len(np.unique(torch_output_codes(model, codes[:4]))) > 8


@pytest.mark.parametrize("bits", [(2, 2), (4, 4), (8, 8)])
def test_export_bit_exact_for_other_bit_widths(tmp_path, bits):
    torch.manual_seed(bits[0])
    spec = QuantSpec(weight_bits=bits[0], act_bits=bits[1])
    model = TryOnGenerator(widths=(8, 8, 16, 16), spec=spec, image_size=(32, 24))
    # Random weights leave most activations dead; a few optimiser steps spread them out.
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x = torch.randint(0, 256, (4, 24, 32, 24)).float() / 256
    for _ in range(5):
        loss = (model(x) - 0.5).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    export = export_generator(model, "tiny", (1, 24, 32, 24), tmp_path)
    codes = _random_codes(export.spec["inputs"][0], 16, 1)
    report = cross_check(model, export, codes)
    assert report.bit_exact, report.summary()


def test_model_json_describes_integer_io(tmp_path):
    model = DCGANGenerator(nz=16, ngf=4).eval()
    export = export_generator(model, "dc", (1, 16, 1, 1), tmp_path)
    inp, out = export.spec["inputs"][0], export.spec["outputs"][0]
    assert (inp["dtype"], inp["scale"], inp["range"]) == ("int8", 2 ** -5, [-128, 127])
    assert (out["dtype"], out["scale"]) == ("uint8", 2 ** -8)
    assert out["shape"] == [None, 3, 64, 64]
    for f in ("model.qonnx.onnx", "model.qcdq.onnx", "model.json"):
        assert (tmp_path / f).is_file()


def test_float_twin_cannot_be_exported(tmp_path):
    with pytest.raises(ValueError, match="float twin"):
        export_generator(DCGANGenerator(ngf=4, spec=None), "f", (1, 64, 1, 1), tmp_path)
