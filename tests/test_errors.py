"""The error root, FINN's failures translated into CompileErrors, and unsupported layers named early.

The FINN checks are tripped for real: crafted streamlined graphs go through the compiler's own
``convert_to_hw`` stage (FINN's layer inference and bit-width minimisation) and its verification
(qonnx execution); the unsupported layers are real PyTorch / Brevitas exports.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from fpga_gan.compiler.errors import CompileError, explained_failures
from fpga_gan.errors import FpgaGanError, InternalError, UserError


# ------------------------------------------------------------------------------------ the root
def test_every_error_class_of_the_package_has_the_right_root():
    from fpga_gan.bitstream.deploy import DeployError
    from fpga_gan.bitstream.vivado import VivadoMissing
    from fpga_gan.data.viton import DatasetError
    from fpga_gan.export.artifact import ArtifactExportError
    from fpga_gan.models.zoo import ZooError
    from fpga_gan.runtime import ArtifactError, InputError
    from fpga_gan.runtime.board import BoardError, DmaTimeoutError
    from fpga_gan.sim.run import SimError
    from fpga_gan.sim.verilator import SimulatorError
    from fpga_gan.toolchain import ToolchainError

    for cls in (CompileError, DeployError, VivadoMissing, DatasetError, ArtifactExportError, ZooError, ArtifactError,
                InputError, BoardError, DmaTimeoutError, SimError, SimulatorError, ToolchainError):
        assert issubclass(cls, UserError) and not issubclass(cls, InternalError), cls
    assert issubclass(UserError, FpgaGanError) and issubclass(InternalError, FpgaGanError)
    # the built-in bases callers catch today stay
    assert issubclass(InputError, ValueError) and issubclass(BoardError, RuntimeError)


def test_the_cli_has_one_handler_user_errors_are_one_line_internal_errors_a_traceback(monkeypatch, tmp_path):
    from fpga_gan import cli

    monkeypatch.chdir(tmp_path)
    user = CliRunner().invoke(cli.main, ["compile", "dcgan", "--board", "zedboard"], catch_exceptions=False)
    assert user.exit_code == 2
    assert "unknown board 'zedboard'" in user.output and "Traceback" not in user.output

    def broken(_cfg):
        raise InternalError("stage table out of order")

    monkeypatch.setattr("fpga_gan.compiler.pipeline.compile_model", broken)
    internal = CliRunner().invoke(cli.main, ["compile", "dcgan", "--board", "kv260"], catch_exceptions=False)
    assert internal.exit_code == 3
    assert "Traceback" in internal.output and "stage table out of order" in internal.output
    assert "please report" in internal.output


# ---------------------------------------------------------------------- FINN's checks, translated
@pytest.fixture(scope="module")
def finn_env(tmp_path_factory):
    import os

    from finn.util.settings import initialize_dummy_settings

    os.environ["FINN_BUILD_DIR"] = str(tmp_path_factory.mktemp("finn"))
    initialize_dummy_settings()


def _threshold_graph(idt="UINT4", odt="UINT4", thresholds=None, out_scale=1.0, out_bias=0.0, channels=4):
    """A streamlined activation: MultiThreshold on an NHWC integer tensor, as FINN sees it."""
    import qonnx.core.data_layout as dl
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, channels])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, channels])
    node = helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain="qonnx.custom_op.general", name="Act_3",
                            out_dtype=odt, out_scale=out_scale, out_bias=out_bias, data_layout="NHWC")
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", [x], [y])))
    if thresholds is None:
        thresholds = np.tile(np.arange(1, 16, dtype=np.float32), (channels, 1))
    model.set_initializer("t", thresholds.astype(np.float32))
    for name, dt in (("x", idt), ("y", odt)):
        model.set_tensor_datatype(name, DataType[dt])
        model.set_tensor_layout(name, dl.NHWC)
    return model.transform(InferShapes())


def _im2col_graph(pad_value: int):
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.basic import qonnx_make_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 6, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 6, 36])
    node = helper.make_node("Im2Col", ["x"], ["y"], domain="qonnx.custom_op.general", name="Im2Col_7",
                            stride=[1, 1], kernel_size=[3, 3], pad_amount=[1, 1, 1, 1], input_shape="(1, 6, 6, 4)",
                            pad_value=pad_value, dilations=[1, 1])
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", [x], [y])))
    for name in ("x", "y"):
        model.set_tensor_datatype(name, DataType["UINT4"])
    return model.transform(InferShapes())


_STEPS = np.arange(1, 16, dtype=np.float32)
FINN_CHECKS = {
    # case: (graph, node name, op type, what FINN checked, the fix)
    # (negative thresholds on an unsigned input no longer reach FINN's assertion: convert_to_hw clips
    # them to the input's range first; tests/test_thresholds.py builds such a generator on purpose)
    "threshold channels differ from the tensor's": (
        lambda: _threshold_graph(thresholds=np.tile(_STEPS, (3, 1))), "Thresholding_Act_3", "Thresholding",
        r"`ret\.shape\[0\] == mh`.*Channels of threshold matrix", "one scale per channel"),
    "an activation still scaled": (
        lambda: _threshold_graph(out_scale=0.5), "Act_3", "MultiThreshold", "out_scale must be 1",
        "use a power-of-two or per-tensor activation scale"),
    "a fractional output bias": (
        lambda: _threshold_graph(out_bias=0.5), "Act_3", "MultiThreshold", "out_bias must be integer",
        "zero point is an integer"),
    "a signed activation without a negative bias": (
        lambda: _threshold_graph(odt="INT4"), "Act_3", "MultiThreshold", r"Signed output requires actval < 0",
        "needs a negative output bias"),
    "padding with a non-zero value": (
        lambda: _im2col_graph(3), "Im2Col_7", "Im2Col", r"conv_inp_gen\.py:\d+.*pad_val != 0", "pads zeros only"),
}


@pytest.mark.parametrize("case", list(FINN_CHECKS))
def test_a_failing_finn_check_names_stage_node_op_check_and_fix(finn_env, case):
    from fpga_gan.compiler.pipeline import _convert_to_hw

    make, node, op, check, fix = FINN_CHECKS[case]
    with pytest.raises(CompileError) as info:
        with explained_failures("convert_to_hw"):
            _convert_to_hw(make(), None)
    message = str(info.value)
    assert message.startswith(f"stage convert_to_hw failed at node '{node}' ({op}): "), message
    assert re.search(check, message), message
    assert "What to change: " in message and fix in message, message
    assert "AssertionError" not in message


def test_a_qonnx_check_during_verification_is_translated_too(finn_env):
    from fpga_gan.compiler.pipeline import execute_golden

    with pytest.raises(CompileError) as info:
        with explained_failures("streamline (verification)"):
            execute_golden(_threshold_graph(thresholds=np.tile(_STEPS, (3, 1))), np.zeros((1, 4, 4, 4), np.float32))
    message = str(info.value)
    assert "stage streamline (verification) failed at node 'Act_3' (MultiThreshold)" in message
    assert "qonnx checked `( v.shape[channel_axis] == thresholds.shape[0] ) or is_global_threshold`" in message
    assert "one scale per channel" in message


def test_an_unknown_failure_still_names_the_node_and_keeps_the_cause(finn_env):
    from fpga_gan.compiler.errors import stage_failure
    from onnx import helper

    def transformation_step(node):
        raise RuntimeError("something FINN did not foresee")

    try:
        transformation_step(helper.make_node("Foo", ["a"], ["b"], name="Foo_1"))
    except RuntimeError as err:
        message = str(stage_failure("folding", err))
    assert "stage folding failed at node 'Foo_1' (Foo)" in message
    assert "RuntimeError" in message and "something FINN did not foresee" in message
    assert "please report it with finn.log" in message


# ------------------------------------------------------------------------- unsupported layers
class _Net(nn.Module):
    """A small quantized generator with one block that no RTL layer streams."""

    def __init__(self, block: str) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, image_input, image_output, relu

        spec = QuantSpec()
        self.block = block
        self.inp = image_input(spec)
        self.a = nn.Sequential(conv2d(3, 8, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.norm = {"instancenorm": nn.InstanceNorm2d(8, affine=True), "groupnorm": nn.GroupNorm(2, 8),
                     "layernorm": nn.LayerNorm([8, 8, 8])}.get(block)
        self.b = nn.Sequential(conv2d(8, 8, 3, 1, 1, spec=spec), relu(spec, self.a[1]))
        self.out = conv2d(8, 3, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        h = self.a(self.inp(x))
        if self.norm is not None:
            h = self.norm(h)
        elif self.block == "attention":
            q = h.flatten(2)                                    # (1, C, HW)
            attn = torch.softmax(q.transpose(1, 2) @ q, dim=-1)  # (1, HW, HW)
            h = (q @ attn).reshape(h.shape)
        elif self.block == "sigmoid":
            h = torch.sigmoid(h)
        elif self.block == "bilinear":
            h = nn.functional.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out_q(self.out(self.b(h)))


UNSUPPORTED = {
    "instancenorm": [r"InstanceNormalization node '[^']+' \(InstanceNorm\): .*use BatchNorm2d"],
    "groupnorm": [r"InstanceNormalization node '[^']+' \(GroupNorm\): .*use BatchNorm2d"],
    "layernorm": [r"(LayerNormalization node '[^']+' \(LayerNorm\)|(Div|Sqrt) node '[^']+' divides by).*"
                  r"use BatchNorm2d"],
    "attention": [r"MatMul node '[^']+' multiplies two run-time tensors.*use convolutions",
                  r"Softmax node '[^']+' \(softmax \(attention\)\)"],
    "sigmoid": [r"Sigmoid node '[^']+' \(sigmoid inside the network\): .*QuantHardTanh.*after the output quantizer"],
    "bilinear": [r"Resize node '[^']+' upsamples with mode 'linear': only nearest"],
}


@pytest.mark.parametrize("block", list(UNSUPPORTED))
def test_unsupported_layers_are_named_before_any_finn_pass(tmp_path, block):
    from brevitas.export import export_qonnx

    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    torch.manual_seed(0)
    path = tmp_path / f"{block}.onnx"
    export_qonnx(_Net(block).eval(), torch.rand(1, 3, 8, 8), export_path=str(path), dynamo=False)
    with pytest.raises(CompileError) as info:
        compile_model(CompileConfig(model=str(path), board="pynq-z2", out_dir=tmp_path / "build", log=lambda _: None))
    message = str(info.value)
    assert "cannot be streamed by the RTL layers" in message
    for pattern in UNSUPPORTED[block]:
        assert re.search(pattern, message), (pattern, message)
    state = json.loads((tmp_path / "build" / "state.json").read_text()) \
        if (tmp_path / "build" / "state.json").is_file() else {}
    assert not state.get("stages")                    # stopped before the first stage


def test_all_offending_nodes_are_listed_at_once(tmp_path):
    from brevitas.export import export_qonnx

    from fpga_gan.compiler.pipeline import CompileConfig, compile_model

    class _Two(_Net):
        def forward(self, x):
            h = torch.sigmoid(self.norm(self.a(self.inp(x))))
            return self.out_q(self.out(self.b(h)))

    path = tmp_path / "two.onnx"
    export_qonnx(_Two("instancenorm").eval(), torch.rand(1, 3, 8, 8), export_path=str(path), dynamo=False)
    with pytest.raises(CompileError, match=r"2 layer\(s\) cannot be streamed") as info:
        compile_model(CompileConfig(model=str(path), board="pynq-z2", out_dir=tmp_path / "build", log=lambda _: None))
    assert "InstanceNormalization node" in str(info.value) and "Sigmoid node" in str(info.value)

