"""Residual adds (``x + f(x)``): Brevitas blocks compiled end to end, bit-exact at every stage, every
layer RTL, the add as FINN's ``ElementwiseAdd_rtl``; inputs on different grids aligned exactly;
scale ratios that cannot be aligned are a clear error; one Verilator simulation under backpressure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.pipeline import CompileConfig, compile_model

from .test_compiler import _assert_all_rtl_one_partition, _child_nodes


class _ResidualBlock(nn.Module):
    """stem -> x; f = q(conv(relu(conv(x)))); y = relu(x + f) -> 1x1 conv -> 8-bit output.

    ``grid``: "shared": x and f through one QuantIdentity (signed 4 bit, scale 2^-2);
    "relu_skip": x from an unsigned ReLU (scale 2^-2), f from a signed QuantIdentity of the same
    scale; "pow2": x from a ReLU of scale 2^-3, f from a QuantIdentity of scale 2^-4;
    "ratio": QuantIdentities of scales 0.3 and 0.2 (not power-of-two); "unquantized": f is the
    convolution's raw output.
    """

    def __init__(self, grid: str, bias: bool = True) -> None:
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.core.scaling import ScalingImplType
        from brevitas.quant import Int8ActPerTensorFloat

        from fpga_gan.models.layers import QuantSpec, _const_int_quant, _const_uint_quant, conv2d, image_input, \
            image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.stem = conv2d(3, 4, 3, 1, 1, spec=spec, weight_bits=8)
        if grid == "shared":
            self.q = qnn.QuantIdentity(act_quant=_const_int_quant(4, 2.0))
            self.skip_q = self.q
        elif grid == "unquantized":
            self.skip_q = qnn.QuantIdentity(act_quant=_const_int_quant(4, 2.0))
            self.q = nn.Identity()
        elif grid == "relu_skip":
            self.skip_q = qnn.QuantReLU(act_quant=_const_uint_quant(4, 4.0))         # 2^-2
            self.q = qnn.QuantIdentity(act_quant=_const_int_quant(4, 2.0))           # 2^-2
        elif grid == "pow2":
            self.skip_q = qnn.QuantReLU(act_quant=_const_uint_quant(4, 2.0))         # 2^-3
            self.q = qnn.QuantIdentity(act_quant=_const_int_quant(4, 0.5))           # 2^-4
        else:
            def float_quant(max_val):
                return Int8ActPerTensorFloat.let(scaling_impl_type=ScalingImplType.CONST, bit_width=4,
                                                 min_val=-max_val, max_val=max_val)
            self.skip_q = qnn.QuantIdentity(act_quant=float_quant(2.4))             # 0.3
            self.q = qnn.QuantIdentity(act_quant=float_quant(1.6))                  # 0.2
        self.c1 = conv2d(4, 4, 3, 1, 1, spec=spec)
        self.r1 = relu(spec)
        self.c2 = conv2d(4, 4, 3, 1, 1, spec=spec, bias=bias)
        self.post = relu(spec)
        self.out = conv2d(4, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        x = self.skip_q(self.stem(self.inp(x)))
        f = self.q(self.c2(self.r1(self.c1(x))))
        return self.out_q(self.out(self.post(x + f)))


def export_residual(path: Path, grid: str, bias: bool = True, seed: int = 0) -> Path:
    from brevitas.export import export_qonnx

    torch.manual_seed(seed)
    model = _ResidualBlock(grid, bias).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    export_qonnx(model, torch.rand(1, 3, 8, 8), export_path=str(path), dynamo=False)
    return path


def _compile(tmp_path: Path, path: Path, **kw):
    return compile_model(CompileConfig(model=str(path), board="kv260", out_dir=tmp_path / "build",
                                       log=lambda _: None, **kw))


@pytest.mark.parametrize("grid, bias, requantizers", [
    ("shared", True, 0),          # one quantizer: the codes add as they are
    ("shared", False, 0),
    ("relu_skip", True, 2),       # UINT4 skip + INT4 branch, one scale: both widened to INT5
    ("pow2", True, 2),            # 2^-3 vs 2^-4: the skip doubled (and widened), the branch widened: INT6
])
def test_residual_block_compiles_to_rtl_bit_exactly(tmp_path, grid, bias, requantizers):
    result = _compile(tmp_path, export_residual(tmp_path / "res.onnx", grid, bias))
    _assert_all_rtl_one_partition(result)
    _, _, child = _child_nodes(result.build_dir)
    ops = [n.op_type for n in child.graph.node]
    assert ops.count("ElementwiseAdd_rtl") == 1 and ops.count("DuplicateStreams_rtl") == 1
    # 5 quantizers (stem/skip, relu, branch, post-add relu, output) + the requantizers
    assert ops.count("Thresholding_rtl") == 5 + requantizers
    from qonnx.custom_op.registry import getCustomOp

    add = getCustomOp(child.get_nodes_by_op_type("ElementwiseAdd_rtl")[0])
    lhs, rhs, out = add.get_input_datatype(0), add.get_input_datatype(1), add.get_output_datatype()
    assert lhs == rhs and out.bitwidth() == lhs.bitwidth() + 1 and out.signed()
    expected_in = {"shared": "INT4", "relu_skip": "INT5", "pow2": "INT6"}[grid]
    assert lhs.name == expected_in
    # folded with the rest (SetFolding skips FINN's RTL adds) and costed (FINN counts no LUTs for it)
    rows = {n["name"]: n for n in result.report["nodes"]}
    row = rows[add.onnx_node.name]
    slowest_other = max(n["cycles"] for name, n in rows.items() if name != add.onnx_node.name)
    assert row["cycles"] <= slowest_other and (row["pe"] == 1 or row["cycles"] * row["pe"] > slowest_other)
    assert row["lut"] > 0


def test_scales_in_no_integer_ratio_are_a_clear_error(tmp_path):
    path = export_residual(tmp_path / "ratio.onnx", "ratio")
    with pytest.raises(CompileError, match=r"Add node '[^']+' \(residual add\): .*grids of scale 0\.3 and 0\.2.*"
                                           r"ratio 1\.5 is not an integer.*share one quantizer"):
        _compile(tmp_path, path)


def test_unquantized_branch_is_a_clear_error(tmp_path):
    path = export_residual(tmp_path / "raw.onnx", "unquantized")
    with pytest.raises(CompileError, match=r"Add node '[^']+' \(between hardware layers\) has no streaming "
                                           r"implementation; .*a residual add needs both inputs quantized"):
        _compile(tmp_path, path)


def test_non_integer_ratio_in_a_hand_built_graph_names_the_node():
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from fpga_gan.compiler.passes.residual import AlignResidualAddGrids

    shape = [1, 2, 3, 3]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b", "y")]
    nodes = [helper.make_node("Mul", ["a", "sa"], ["a_s"], name="mul_a"),
             helper.make_node("Mul", ["b", "sb"], ["b_s"], name="mul_b"),
             helper.make_node("Add", ["a_s", "b_s"], ["y"], name="skip_add")]
    model = ModelWrapper(qonnx_make_model(helper.make_graph(nodes, "g", vi[:2], vi[2:])))
    model.set_initializer("sa", np.asarray(0.375, np.float32))
    model.set_initializer("sb", np.asarray(0.25, np.float32))
    model.set_tensor_datatype("a", DataType["INT4"])
    model.set_tensor_datatype("b", DataType["UINT4"])
    with pytest.raises(CompileError, match=r"Add node 'skip_add' \(residual add\).*ratio 1\.5"):
        model.transform(AlignResidualAddGrids())


@pytest.mark.parametrize("dtype, factor, out", [("UINT4", 1, "INT5"), ("UINT4", 2, "INT6"), ("INT4", 1, "INT6"),
                                                ("INT3", 4, "INT6"), ("UINT2", 3, "UINT4")])
def test_requantizer_maps_every_code_to_factor_times_code(dtype, factor, out):
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.general.multithreshold import multithreshold

    from fpga_gan.compiler.passes.residual import requantizer_thresholds

    dt, odt = DataType[dtype], DataType[out]
    thresholds, bias = requantizer_thresholds(dt, factor, odt, channels=3)
    assert thresholds.shape == (3, 2 ** odt.bitwidth() - 1)          # every code: what FINN's RTL expects
    codes = np.arange(dt.min(), dt.max() + 1, dtype=np.float32)
    probe = np.tile(codes[:, None], (1, 3))
    for t in (thresholds, np.ceil(thresholds)):                       # as streamlined, and as in hardware
        got = multithreshold(probe, t, 1.0, float(bias))
        assert np.array_equal(got, factor * probe)


@pytest.mark.slow     # a Verilator build of its own: `make test-all`
def test_residual_block_simulates_bit_exactly_under_backpressure(tmp_path):
    """The 2^-3 / 2^-4 block (requantizer on the bypass, FINN's eltwise RTL in Verilator)."""
    from fpga_gan.sim.run import load_fifo_depths, simulate

    result = _compile(tmp_path, export_residual(tmp_path / "res.onnx", "pow2"))
    report = simulate(result.build_dir, frames=2, backpressure=0.3, log=lambda _: None)
    assert report["frames"] == 4 and report["mismatches"] == 0           # 2 throughput + 2 backpressure
    assert report["fifos"] == "sized"
    skip = set(report["skip_fifos"])
    assert skip                                          # the bypass FIFOs of the add are found ...
    depths = load_fifo_depths(result.build_dir)
    assert max(depths[name] for name in skip) > 2        # ... and hold what the branch delays


def test_finn_eltwise_rtl_elaborates_in_verilator(tmp_path):
    """FINN's generated ElementwiseAdd_rtl wrapper + finn-rtllib's eltwise sources (float-path files
    included, as FINN lists them) elaborate in our Verilator, PE > 1, signed operands."""
    from finn.util.settings import initialize_dummy_settings

    from fpga_gan.ops.elementwise_add import lint_eltwise

    initialize_dummy_settings()
    files, res = lint_eltwise(tmp_path, dtype="INT5", channels=6, pe=3)
    assert {f.name for f in files} >= {"eltwise.sv", "binopi.sv", "ElementwiseAdd_rtl_0.v"}
    assert res.returncode == 0 and "%Error" not in res.stdout + res.stderr, res.stdout + res.stderr
