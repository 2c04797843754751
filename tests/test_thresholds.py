"""Batch norm, LeakyReLU / PReLU / tanh and float scales compile exactly (passes/thresholds.py).

The reference is qonnx's execution of the original QONNX graph (float32, the ONNX Runtime kernels);
every check is equality of output codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fpga_gan.compiler.pipeline import STAGES, CompileConfig, compile_model
from fpga_gan.compiler.passes.thresholds import ExactQuantThresholds, bisect_thresholds

from .test_deconv import _assert_bit_exact_rtl_one_partition

# ------------------------------------------------------------------------------------------------
# The bisection against brute force


@pytest.mark.parametrize("seed", range(12))
def test_bisection_finds_every_step_of_a_monotone_chain(seed):
    """Random monotone float32 chains (affine, leaky ReLU, tanh, clip, then a rounding quantizer),
    per channel; the steps found by bisection equal a brute-force scan of every accumulator."""
    rng = np.random.default_rng(seed)
    channels, bits = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    signed = bool(rng.integers(0, 2))
    cmin, cmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    scale = rng.uniform(1e-3, 1e-1, channels).astype(np.float32)
    gain = rng.uniform(0.0, 3.0, channels).astype(np.float32)          # 0: a constant channel
    bias = rng.uniform(-2, 2, channels).astype(np.float32)
    slope = rng.uniform(0, 1, channels).astype(np.float32)
    out_scale = np.float32(rng.uniform(0.05, 0.5))
    squash = bool(rng.integers(0, 2))

    def codes_of(acc: np.ndarray) -> np.ndarray:
        x = (acc.astype(np.float32) * scale) * gain + bias
        x = np.where(x >= 0, x, x * slope).astype(np.float32)
        if squash:
            x = np.tanh(x).astype(np.float32) * np.float32(2.0)
        return np.clip(np.round(x / out_scale), cmin, cmax).astype(np.int64)

    lo = rng.integers(-3000, 0, channels)
    hi = lo + rng.integers(0, 6000, channels)
    levels = np.arange(cmin + 1, cmax + 1)
    steps = bisect_thresholds(codes_of, lo, hi, levels)
    assert steps.shape == (channels, len(levels))
    assert np.all((steps >= lo[:, None]) & (steps <= hi[:, None] + 1))           # inside the range
    for c in range(channels):
        acc = np.arange(lo[c], hi[c] + 1)
        probe = np.zeros((len(acc), channels), np.int64)
        probe[:, c] = acc
        brute = codes_of(probe)[:, c]
        rebuilt = np.maximum(cmin, cmin + (acc[:, None] >= steps[c][None, :]).sum(axis=1))
        assert np.array_equal(np.maximum(brute, cmin), rebuilt)


def test_bisection_of_a_step_at_the_range_ends():
    """A channel always above a level (step at lo) and one never reaching it (step at hi + 1)."""
    steps = bisect_thresholds(lambda a: np.where(np.arange(2)[None, :] == 0, 5, -5) + 0 * a,
                              np.array([-4, -4]), np.array([9, 9]), np.array([1]))
    assert steps.tolist() == [[-4], [10]]


# ------------------------------------------------------------------------------------------------
# Brevitas nets as users write them


def _export(module: nn.Module, path: Path, shape=(1, 3, 8, 8)) -> Path:
    from brevitas.export import export_qonnx

    module.train()
    with torch.no_grad():                       # batch-norm statistics that are not the defaults
        for _ in range(3):
            module(torch.rand(4, *shape[1:]) * 2 - 0.5)
    module.eval()
    export_qonnx(module, torch.rand(*shape), export_path=str(path), dynamo=False)
    return path


def _random_bn(bn: nn.BatchNorm2d, rng: torch.Generator) -> None:
    with torch.no_grad():
        bn.weight.copy_(torch.rand(bn.num_features, generator=rng) * 1.7 + 0.3)
        bn.bias.copy_(torch.rand(bn.num_features, generator=rng) * 2 - 1)
        bn.running_mean.copy_(torch.rand(bn.num_features, generator=rng) - 0.5)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=rng) * 2.8 + 0.2)
        bn.momentum = 0.5


class _Pix2PixLike(nn.Module):
    """Plain Brevitas (float scales), W6A4: conv+BN+LeakyReLU, a strided conv+BN+ReLU quantizer
    feeding a signed quantizer it shares with the skip (negative thresholds on an unsigned input),
    transposed conv+BN concatenated with the skip, PReLU, and a tanh output."""

    def __init__(self) -> None:
        super().__init__()
        import brevitas.nn as qnn

        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.enc = qnn.QuantConv2d(3, 8, 3, padding=1, weight_bit_width=6)
        self.enc_bn = nn.BatchNorm2d(8)
        self.enc_act = nn.LeakyReLU(0.2)
        self.signed = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)     # shared below
        self.down = qnn.QuantConv2d(8, 8, 4, stride=2, padding=1, weight_bit_width=6)
        self.down_bn = nn.BatchNorm2d(8)
        self.down_act = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.up = qnn.QuantConvTranspose2d(8, 8, 4, stride=2, padding=1, weight_bit_width=6)
        self.up_bn = nn.BatchNorm2d(8)
        self.up_act = nn.PReLU(16)
        self.up_q = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
        self.out = qnn.QuantConv2d(16, 3, 3, padding=1, weight_bit_width=8)
        self.out_q = qnn.QuantIdentity(bit_width=8)

    def forward(self, x):
        e = self.signed(self.enc_act(self.enc_bn(self.enc(self.inp(x)))))
        d = self.signed(self.down_act(self.down_bn(self.down(e))))
        u = torch.cat([self.up_bn(self.up(d)), e], dim=1)
        return self.out_q(torch.tanh(self.out(self.up_q(self.up_act(u)))))


def test_pix2pix_style_batchnorm_leaky_prelu_tanh_compiles_exactly(tmp_path):
    torch.manual_seed(5)
    model = _Pix2PixLike()
    rng = torch.Generator().manual_seed(5)
    for bn in (model.enc_bn, model.down_bn, model.up_bn):
        _random_bn(bn, rng)
    path = _export(model, tmp_path / "pix2pix_like.onnx")
    result = compile_model(CompileConfig(model=str(path), board="kv260", out_dir=tmp_path / "build",
                                         log=lambda _: None))
    _assert_bit_exact_rtl_one_partition(result)
    ops = {n["op_type"] for n in result.report["nodes"]}
    assert {"MVAU_rtl", "Thresholding_rtl", "StreamingConcat_rtl", "DuplicateStreams_rtl",
            "DepthToSpace_rtl"} <= ops


def test_negative_thresholds_on_an_unsigned_input_compile(tmp_path):
    """BN folded into a signed quantizer that reads a ReLU quantizer's (unsigned) codes: most of
    its thresholds lie below zero; FINN's Thresholding asserts >= 0 on unsigned inputs."""
    import brevitas.nn as qnn
    from qonnx.core.modelwrapper import ModelWrapper

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.conv = qnn.QuantConv2d(3, 8, 3, padding=1, weight_bit_width=6)
            self.bn = nn.BatchNorm2d(8)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.bn2 = nn.BatchNorm2d(8)
            self.signed = qnn.QuantIdentity(bit_width=4, return_quant_tensor=True)
            self.out = qnn.QuantConv2d(8, 3, 3, padding=1, weight_bit_width=8)
            self.out_q = qnn.QuantIdentity(bit_width=8)

        def forward(self, x):
            a = self.relu(self.bn(self.conv(self.inp(x))))
            return self.out_q(self.out(self.signed(self.bn2(a))))

    torch.manual_seed(2)
    model = Net()
    rng = torch.Generator().manual_seed(2)
    _random_bn(model.bn, rng)
    _random_bn(model.bn2, rng)
    with torch.no_grad():
        model.bn2.bias.fill_(-1.5)                   # shifts the unsigned codes well below zero
    path = _export(model, tmp_path / "negative.onnx")
    result = compile_model(CompileConfig(model=str(path), board="kv260", out_dir=tmp_path / "build",
                                         log=lambda _: None))
    _assert_bit_exact_rtl_one_partition(result)
    # the requantizer on the ReLU's unsigned codes really had thresholds below zero to clip
    hw = ModelWrapper(str(result.build_dir / f"{STAGES.index('convert_to_hw'):02d}_convert_to_hw.onnx"))
    unsigned_in = [n for n in hw.graph.node if n.op_type.startswith("Thresholding")
                   and not hw.get_tensor_datatype(n.input[0]).signed()]
    assert unsigned_in
    assert all(np.all(hw.get_initializer(n.input[1]) >= 0) for n in unsigned_in)
    qonnx_to_finn = ModelWrapper(str(result.build_dir / f"{STAGES.index('qonnx_to_finn'):02d}_qonnx_to_finn.onnx"))
    relu_codes = [n for n in qonnx_to_finn.graph.node if n.op_type == "MultiThreshold"
                  and (qonnx_to_finn.find_producer(n.input[0]) or n).op_type == "Mul"
                  and (qonnx_to_finn.find_producer(qonnx_to_finn.find_producer(n.input[0]).input[0]) or n).op_type
                  == "MultiThreshold"]
    assert relu_codes and np.any(qonnx_to_finn.get_initializer(relu_codes[0].input[1]) < 0)


# ------------------------------------------------------------------------------------------------
# Many random batch norms: every FINN stage equal to the reference on several inputs


class _Branches(nn.Module):
    """Eight independent draws in one graph: conv + BN + ReLU quantizer each, with its own float
    scales, concatenated and requantized at the output (one export and streamlining for eight)."""

    def __init__(self, rng: torch.Generator, branches: int = 8) -> None:
        super().__init__()
        import brevitas.nn as qnn

        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.convs = nn.ModuleList(qnn.QuantConv2d(3, 6, 3, padding=1, weight_bit_width=6) for _ in range(branches))
        self.bns = nn.ModuleList(nn.BatchNorm2d(6) for _ in range(branches))
        self.acts = nn.ModuleList(qnn.QuantReLU(bit_width=4) for _ in range(branches))
        self.out_q = qnn.QuantIdentity(bit_width=8)
        for bn in self.bns:
            _random_bn(bn, rng)

    def forward(self, x):
        x = self.inp(x)
        return self.out_q(torch.cat([a(b(c(x))) for a, b, c in zip(self.acts, self.bns, self.convs)], dim=1))


def _stages_equal_reference(tmp_path: Path, module: nn.Module, stages: tuple[str, ...], seed: int) -> None:
    """Run ``stages`` of the pipeline; after each, FINN's execution equals the original QONNX
    model's on three random inputs."""
    from fpga_gan.compiler import pipeline
    from fpga_gan.compiler.boards import get_board
    from fpga_gan.compiler.passes.integer_io import input_codes

    path = _export(module, tmp_path / "draws.onnx")
    pipeline._finn_environment(tmp_path)
    source = pipeline._load_qonnx(path)
    codes = input_codes(source)
    rng = np.random.default_rng(seed)
    shape = source.get_tensor_shape(source.graph.input[0].name)
    inputs = [rng.integers(codes.datatype.min(), codes.datatype.max() + 1, size=shape).astype(np.float32)
              for _ in range(3)]
    expected = [pipeline.execute_golden(source, x * np.float32(codes.scale)) for x in inputs]
    ctx = pipeline._Context(CompileConfig(model=str(path)), get_board("kv260"), 200.0, tmp_path)
    model = source
    for stage in stages:
        model = pipeline._STAGE_FUNCS[stage](model, ctx)
        for x, want in zip(inputs, expected):
            assert np.array_equal(pipeline.execute_golden(model, x), want), stage
    return model


@pytest.mark.parametrize("seed", range(5))
def test_forty_random_batch_norms_give_exact_thresholds(tmp_path, seed):
    """5 x 8 independent draws; the thresholds are made (and checked) at qonnx_to_finn."""
    torch.manual_seed(100 + seed)
    model = _stages_equal_reference(tmp_path, _Branches(torch.Generator().manual_seed(100 + seed)),
                                    ("tidy", "gan_lowering", "qonnx_to_finn"), seed)
    exact = [n for n in model.graph.node if n.op_type == "MultiThreshold"
             and any(p.key == "fpga_gan_half_even" and p.value == "exact" for p in n.metadata_props)]
    assert len(exact) == 8 + 1 + 8              # the input, each branch's ReLU, the output's per branch
    assert not model.get_nodes_by_op_type("BatchNormalization")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_random_batch_norms_stay_exact_through_streamlining(tmp_path, seed):
    """Fewer draws, but through FINN's streamlining (integer accumulators) and the HW conversion."""
    torch.manual_seed(200 + seed)
    _stages_equal_reference(tmp_path, _Branches(torch.Generator().manual_seed(200 + seed), branches=3),
                            ("tidy", "gan_lowering", "qonnx_to_finn", "streamline", "convert_to_hw"), seed)


def test_decreasing_channel_is_left_to_finns_conversion(tmp_path):
    """A negative batch-norm gain makes one channel decreasing: no MultiThreshold can express it,
    so the pass leaves that quantizer as it is (and replaces the monotone ones)."""
    import brevitas.nn as qnn
    from qonnx.transformation.infer_shapes import InferShapes

    from fpga_gan.compiler import pipeline

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.conv = qnn.QuantConv2d(3, 4, 3, padding=1, weight_bit_width=6)
            self.bn = nn.BatchNorm2d(4)
            self.act = qnn.QuantReLU(bit_width=4)

        def forward(self, x):
            return self.act(self.bn(self.conv(self.inp(x))))

    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.bn.weight.copy_(torch.tensor([1.0, -0.5, 1.2, 0.8]))
    source = pipeline._load_qonnx(_export(model, tmp_path / "decreasing.onnx"))
    tidy = pipeline._tidy(source, None).transform(InferShapes())
    done = tidy.transform(ExactQuantThresholds())
    activations = [n for n in done.graph.node if n.op_type == "Quant" and done.get_initializer(n.input[0]) is None]
    assert [done.find_producer(n.input[0]).op_type for n in activations] == ["Relu"]      # the input's went
    assert any(n.op_type == "MultiThreshold" for n in done.graph.node)
    assert done.get_nodes_by_op_type("BatchNormalization")


# ------------------------------------------------------------------------------------------------
# Reflection / replication padding in front of a convolution (CycleGAN's c7s1 layers)


class _PaddedTanh(nn.Module):
    """CycleGAN's pattern, small: a reflect- (or edge-) padded conv + BN + ReLU quantizer, then a
    padded, biased conv, tanh and an 8-bit output quantizer. FINN cannot move tanh, so the output
    quantizer compiles only if its thresholds are made exactly on the conv accumulator, which the
    padding (a copy of integer codes) must not hide."""

    def __init__(self, pad: type[nn.Module]) -> None:
        super().__init__()
        import brevitas.nn as qnn

        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.head = nn.Sequential(pad(1), qnn.QuantConv2d(3, 4, 3, bias=False, weight_bit_width=6), nn.BatchNorm2d(4),
                                  qnn.QuantReLU(bit_width=4, return_quant_tensor=True))
        self.tail = nn.Sequential(pad(2), qnn.QuantConv2d(4, 3, 5, bias=True, weight_bit_width=8))
        self.out_q = qnn.QuantIdentity(bit_width=8)

    def forward(self, x):
        return self.out_q(torch.tanh(self.tail(self.head(self.inp(x)))))


@pytest.mark.parametrize("pad", [nn.ReflectionPad2d, nn.ReplicationPad2d])
def test_padded_conv_tanh_quantizer_gets_exact_thresholds(tmp_path, pad):
    torch.manual_seed(3)
    module = _PaddedTanh(pad)
    _random_bn(module.head[2], torch.Generator().manual_seed(3))
    model = _stages_equal_reference(tmp_path, module, ("tidy", "gan_lowering", "qonnx_to_finn"), 3)
    exact = [n for n in model.graph.node if n.op_type == "MultiThreshold"
             and any(p.key == "fpga_gan_half_even" and p.value == "exact" for p in n.metadata_props)]
    assert len(exact) == 3                      # the input, the ReLU behind the pad, the tanh output
    assert not model.get_nodes_by_op_type("Tanh") and not model.get_nodes_by_op_type("BatchNormalization")
    # the padding itself stays (a StreamingPad later), reading the codes the thresholds were made for
    assert [p for p in model.get_nodes_by_op_type("Pad")]
