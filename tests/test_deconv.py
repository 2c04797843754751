"""Every transposed convolution users bring compiles zero-free and bit-exact (issue 12).

End to end: small Brevitas generators with CycleGAN's up-sampler (k3 s2 p1 output_padding 1),
k5 s2 p2 op1 and k3 s2 p1 (an odd output size), per-channel weight scales and biases on the
first, hidden and last layers, and a biased per-channel convolution in front of a PixelShuffle.
Each compile checks every stage bit-exactly against the original QONNX model itself; the tests
check that the hardware is all RTL in one partition and that the report's MAC figures are the
useful ones. Plus the tiny-graph test of the pass that lets a PixelShuffle's bias through.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model
from torch import nn

from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.passes.tidy import MoveAffinePastDataMovement, MoveDepthToSpacePastMultiThreshold
from fpga_gan.compiler.pipeline import STAGES, CompileConfig, compile_model

# ------------------------------------------------------------------ the quantizer moves above a PixelShuffle


def _affine_d2s_threshold_model(param: np.ndarray, thresholds: np.ndarray) -> ModelWrapper:
    """x (1, 12, 2, 3) -> Add(param) -> DepthToSpace(2, CRD) -> MultiThreshold -> y (1, 3, 4, 6)."""
    nodes = [helper.make_node("Add", ["x", "p"], ["a"], name="Bias"),
             helper.make_node("DepthToSpace", ["a"], ["d"], name="Shuffle", blocksize=2, mode="CRD"),
             helper.make_node("MultiThreshold", ["d", "t"], ["y"], name="Quant", domain="qonnx.custom_op.general",
                              out_dtype="UINT2", out_scale=1.0, out_bias=0.0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12, 2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 6])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("p", param.astype(np.float32))
    model.set_initializer("t", thresholds.astype(np.float32))
    return model.transform(InferShapes())


def _threshold_feeds(seed: int) -> dict:
    return {"x": np.random.default_rng(seed).integers(-8, 9, size=(1, 12, 2, 3)).astype(np.float32)}


@pytest.mark.parametrize("per_channel_thresholds", [True, False], ids=["per_channel", "per_tensor"])
def test_quantizer_moves_above_a_pixel_shuffle_whose_bias_cannot_follow(per_channel_thresholds):
    bias = np.arange(12, dtype=np.float32).reshape(1, 12, 1, 1) - 6      # a value per channel AND phase
    thresholds = (np.array([[-2, 0, 3], [-1, 1, 2], [0, 4, 5]]) if per_channel_thresholds
                  else np.array([[-1, 1, 4]]))
    model = _affine_d2s_threshold_model(bias, thresholds)
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert [n.op_type for n in after.graph.node] == ["Add", "MultiThreshold", "DepthToSpace"]
    mt = after.graph.node[1]
    new_t = after.get_initializer(mt.input[1])
    assert new_t.shape == ((12, 3) if per_channel_thresholds else (1, 3))
    if per_channel_thresholds:                       # channel c's thresholds for each of its 4 phases
        np.testing.assert_array_equal(new_t, np.repeat(thresholds, 4, axis=0))
    assert after.get_tensor_shape(mt.output[0]) == [1, 12, 2, 3]
    for seed in range(3):
        feeds = _threshold_feeds(seed)
        assert np.array_equal(execute_onnx(after, feeds)["y"], execute_onnx(model, feeds)["y"])


def test_quantizer_stays_when_the_bias_can_follow_the_pixel_shuffle():
    """A bias shared by the phases of each channel moves below the DepthToSpace instead."""
    bias = np.repeat(np.array([1.0, -2.0, 3.0], np.float32), 4).reshape(1, 12, 1, 1)
    model = _affine_d2s_threshold_model(bias, np.array([[-1, 1, 4]]))
    before = model.model.SerializeToString()
    _, changed = MoveDepthToSpacePastMultiThreshold().apply(copy.deepcopy(model))
    assert not changed and model.model.SerializeToString() == before
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert [n.op_type for n in after.graph.node] == ["DepthToSpace", "Add", "MultiThreshold"]


# -------------------------------------------------------------------------------------------- end to end


def _compile(tmp_path: Path, net: nn.Module, size: int, board: str = "kv260"):
    from brevitas.export import export_qonnx

    path = tmp_path / "net.onnx"
    export_qonnx(net.eval(), torch.rand(1, 3, size, size), export_path=str(path), dynamo=False)
    return compile_model(CompileConfig(model=str(path), board=board, out_dir=tmp_path / "build", log=lambda _: None))


def _assert_bit_exact_rtl_one_partition(result) -> None:
    from fpga_gan.compiler.pipeline import partition_file

    from qonnx.custom_op.registry import getCustomOp

    report = result.report
    assert [s["stage"] for s in report["verification"]] == list(STAGES)
    assert all(s["bit_exact"] for s in report["verification"])
    assert all(n["op_type"].endswith("_rtl") for n in report["nodes"])
    parent = ModelWrapper(str(result.build_dir / f"{len(STAGES) - 1:02d}_{STAGES[-1]}.onnx"))
    partitions = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    assert len(partitions) == 1
    assert {n.op_type for n in parent.graph.node} <= {"StreamingDataflowPartition", "Transpose", "Mul"}
    child = ModelWrapper(str(partition_file(parent, result.build_dir)))
    assert [n.name for n in child.graph.node] == [n["name"] for n in report["nodes"]]
    assert json.loads((result.build_dir / "state.json").read_text())["complete"] is True


def _perturbed(net: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return net


class _CycleGANStyleUp(nn.Module):
    """Conv -> ReLU -> three transposed convs that are not k % s == 0 -> conv -> output quantizer.

    The first transposed conv is Brevitas' own QuantConvTranspose2d with float per-output-channel
    weight scales (the default quantizer, per channel) and no bias; the others use the project's
    power-of-two per-channel weights with biases. Every layer has per-channel weight scales."""

    def __init__(self) -> None:
        super().__init__()
        import brevitas.nn as qnn

        from fpga_gan.models.layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 6, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.up1 = nn.Sequential(qnn.QuantConvTranspose2d(6, 5, 3, 2, 1, output_padding=1, weight_bit_width=4,
                                                          weight_scaling_per_output_channel=True, bias=False),
                                 relu(spec, self.a[1]))
        self.up2 = nn.Sequential(conv_transpose2d(5, 4, 5, 2, 2, spec=spec), relu(spec, self.a[1]))
        self.up2[0].output_padding = (1, 1)                 # k5 s2 p2 op1: 2H
        self.up3 = nn.Sequential(conv_transpose2d(4, 4, 3, 2, 1, spec=spec), relu(spec, self.a[1]))   # 2H - 1
        self.out = conv2d(4, 3, 3, 1, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.up3(self.up2(self.up1(self.a(self.inp(x)))))))


def test_transposed_convs_of_any_kernel_compile_zero_free_and_bit_exact(tmp_path):
    result = _compile(tmp_path, _perturbed(_CycleGANStyleUp(), 0), 4)
    _assert_bit_exact_rtl_one_partition(result)
    deconv = {tuple(d["kernel_shape"] + d["output_padding"]): d for d in result.report["deconv"]}
    assert set(deconv) == {(3, 3, 1, 1), (5, 5, 1, 1), (3, 3, 0, 0)}
    for d in deconv.values():
        assert d["phase_mvaus"] == 4
        assert d["macs_zero_free"] == d["macs_useful"]               # no MAC meets an inserted zero
        assert d["ratio_zero_insertion"] == pytest.approx(d["macs_zero_insertion"] / d["macs_zero_free"], abs=1e-4)
    # k3 s2 p1 op1 on 4x4 and k5 s2 p2 op1 on 8x8: every input pixel times every tap, 4x zero insertion
    assert deconv[(3, 3, 1, 1)]["macs_useful"] == 4 * 4 * 6 * 5 * 9
    assert deconv[(5, 5, 1, 1)]["macs_useful"] == 8 * 8 * 5 * 4 * 25
    assert deconv[(3, 3, 1, 1)]["ratio_zero_insertion"] == 4.0 == deconv[(5, 5, 1, 1)]["ratio_zero_insertion"]
    # the phases have their own kernels: 1x1, 2x1, 1x2, 2x2 taps of Cin x Cout for an H x W grid
    assert sorted(deconv[(3, 3, 1, 1)]["phase_macs"]) == [16 * 30 * t for t in (1, 2, 2, 4)]
    # k3 s2 p1 on 16x16: 31 x 31 outputs, (3*16 - 2)^2 useful taps of 4 x 4 channels
    odd = deconv[(3, 3, 0, 0)]
    assert odd["macs_useful"] == (3 * 16 - 2) ** 2 * 16 and odd["macs_zero_insertion"] == 31 * 31 * 9 * 16
    ops = [n["op_type"] for n in result.report["nodes"]]
    assert ops.count("Crop_rtl") == 1                                 # only the odd output size crops


class _ShuffleAndDeconv(nn.Module):
    """A biased per-channel conv right in front of a PixelShuffle (no activation between, as in
    ESPCN / SRGAN up-samplers), then a transposed conv, so the report must not mistake one for
    the other."""

    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 6, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.b = conv2d(6, 16, 3, 1, 1, spec=spec)                  # bias + per-channel scales
        self.shuffle = nn.PixelShuffle(2)
        self.q = relu(spec, self.a[1])
        self.up = nn.Sequential(conv_transpose2d(4, 4, 3, 2, 1, spec=spec), relu(spec, self.a[1]))
        self.up[0].output_padding = (1, 1)
        self.out = conv2d(4, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.up(self.q(self.shuffle(self.b(self.a(self.inp(x))))))))


def test_biased_conv_before_pixel_shuffle_and_report_pairing(tmp_path):
    result = _compile(tmp_path, _perturbed(_ShuffleAndDeconv(), 1), 4)
    _assert_bit_exact_rtl_one_partition(result)
    ops = [n["op_type"] for n in result.report["nodes"]]
    assert ops.count("DepthToSpace_rtl") == 2
    # the PixelShuffle's DepthToSpace comes first in the graph; the report pairs by provenance
    [d] = result.report["deconv"]
    assert d["kernel_shape"] == [3, 3] and d["input"] == [8, 8] and d["phase_mvaus"] == 4
    assert d["macs_zero_free"] == d["macs_useful"] == 8 * 8 * 4 * 4 * 9
    assert d["ratio_zero_insertion"] == 4.0


class _GroupedDeconv(nn.Module):
    def __init__(self, groups: int = 1, dilation: int = 1) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, image_input, image_output, relu
        import brevitas.nn as qnn

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 4, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.up = nn.Sequential(qnn.QuantConvTranspose2d(4, 4, 3, 2, 1, output_padding=1, groups=groups,
                                                         dilation=dilation, weight_bit_width=4, bias=False),
                                relu(spec, self.a[1]))
        self.out = conv2d(4, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.up(self.a(self.inp(x)))))


@pytest.mark.parametrize("kwargs, expected", [
    ({"groups": 2}, r"node 'ConvTranspose_0' \(ConvTranspose\) cannot be lowered .*group=2 .*use group=1, or split"),
    ({"dilation": 2}, r"node 'ConvTranspose_0' \(ConvTranspose\) cannot be lowered .*dilations \[2, 2\] "
                      r"are not supported; use dilation 1"),
])
def test_grouped_and_dilated_transposed_convs_name_the_node_and_the_fix(tmp_path, kwargs, expected):
    with pytest.raises(CompileError, match=expected):
        _compile(tmp_path, _GroupedDeconv(**kwargs), 4)


class _TwoOddUpsamplers(nn.Module):
    """k3 s2 p1 op1 (phases 2x2, 2x1, 1x2, 1x1) then k3 s2 p1 (2H - 1: zero-filled short phases and
    a crop), small enough for a quick Verilator run."""

    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 4, 1, spec=spec, weight_bits=8), relu(spec))
        self.up1 = nn.Sequential(conv_transpose2d(4, 3, 3, 2, 1, spec=spec), relu(spec, self.a[1]))
        self.up1[0].output_padding = (1, 1)
        self.up2 = nn.Sequential(conv_transpose2d(3, 3, 3, 2, 1, spec=spec), relu(spec, self.a[1]))
        self.out = conv2d(3, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.up2(self.up1(self.a(self.inp(x))))))


@pytest.mark.slow     # a Verilator build of its own: `make test-all`
def test_odd_transposed_convs_simulate_bit_exactly_in_rtl(tmp_path):
    """The per-phase kernels, the zero fill and the crop agree with the golden model in Verilator."""
    from fpga_gan.sim.run import simulate

    result = _compile(tmp_path, _perturbed(_TwoOddUpsamplers(), 2), 3)
    _assert_bit_exact_rtl_one_partition(result)
    assert [d["macs_zero_free"] == d["macs_useful"] for d in result.report["deconv"]] == [True, True]
    report = simulate(result.build_dir, frames=2, backpressure=0.3, log=lambda _: None)
    assert report["frames"] >= 2 and report["mismatches"] == 0
