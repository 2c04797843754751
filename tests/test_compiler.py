"""End-to-end tests of ``fpga-gan compile``: real FINN transformations, real exported generators.

Every stage of every compile here is checked by the pipeline itself against the original QONNX
model (bit-exact equality); these tests assert on what the pipeline records and produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fpga_gan.compiler.errors import CompileError
from fpga_gan.compiler.pipeline import STAGES, CompileConfig, compile_model


def _compile(tmp_path: Path, model: str, board: str, **kw):
    return compile_model(CompileConfig(model=model, board=board, out_dir=tmp_path / "build", log=lambda _: None, **kw))


def _child_nodes(build_dir: Path):
    from qonnx.core.modelwrapper import ModelWrapper

    from fpga_gan.compiler.pipeline import partition_file

    parent = ModelWrapper(str(build_dir / f"{len(STAGES) - 1:02d}_{STAGES[-1]}.onnx"))
    partitions = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    return parent, partitions, ModelWrapper(str(partition_file(parent, build_dir)))


def _assert_all_rtl_one_partition(result) -> None:
    from qonnx.custom_op.registry import getCustomOp

    report = result.report
    assert [s["stage"] for s in report["verification"]] == list(STAGES)
    assert all(s["bit_exact"] for s in report["verification"])
    assert all(n["op_type"].endswith("_rtl") for n in report["nodes"])
    parent, partitions, child = _child_nodes(result.build_dir)
    assert len(partitions) == 1
    assert {n.op_type for n in parent.graph.node} <= {"StreamingDataflowPartition", "Transpose", "Mul", "Reshape"}
    assert [n.name for n in child.graph.node] == [n["name"] for n in report["nodes"]]
    for window in child.graph.node:
        consumer = child.find_consumer(window.output[0])
        if window.op_type.startswith("ConvolutionInputGenerator") and consumer is not None \
                and consumer.op_type.startswith("MVAU"):
            # window stream and MVAU input in integer ratio: no slow fractional width converter between
            # them (a parallel_window generator's beat is a whole window, SIMD x kernel elements)
            out = int(getCustomOp(window).get_folded_output_shape()[-1])
            into = int(getCustomOp(consumer).get_folded_input_shape()[-1])
            assert into % out == 0 or out % into == 0, (window.name, out, consumer.name, into)
    state = json.loads((result.build_dir / "state.json").read_text())
    assert state["complete"] is True
    for name in ("report.json", "report.md", "cycles.png"):
        assert (result.build_dir / name).is_file()


def test_dcgan_compiles_to_one_rtl_partition_on_kv260(tmp_path):
    result = _compile(tmp_path, "dcgan", "kv260")
    _assert_all_rtl_one_partition(result)
    report = result.report
    assert report["fits"] and report["totals"]["fps"] > 0
    ops = {n["op_type"] for n in report["nodes"]}
    assert {"MVAU_rtl", "DepthToSpace_rtl", "StreamingConcat_rtl", "Thresholding_rtl"} <= ops
    assert "Crop_rtl" not in ops          # every k4 s2 p1 layer is split into phases, nothing is cropped
    # the four phase MVAUs do exactly the useful MACs; FINN's zero-insertion route does 4x that
    k4s2 = [d for d in report["deconv"] if d["stride"] == 2 and d["kernel"] == 4]
    assert [d["input"] for d in k4s2] == [[4, 4], [8, 8], [16, 16], [32, 32]]
    for d in k4s2:
        assert d["phase_mvaus"] == 4
        assert d["macs_zero_free"] == d["macs_useful"]
        assert d["macs_zero_insertion"] == 4 * d["macs_useful"]
        assert d["macs_zero_insertion"] / d["macs_zero_free"] >= 3.5
        assert d["cycles_zero_insertion"] > d["cycles_zero_free"]


def test_tryon_compiles_for_pynq_z2(tmp_path):
    result = _compile(tmp_path, "tryon", "pynq-z2", target_fps=100)
    _assert_all_rtl_one_partition(result)
    ops = {n["op_type"] for n in result.report["nodes"]}
    assert {"StreamingConcat_rtl", "DuplicateStreams_rtl", "DepthToSpace_rtl"} <= ops
    assert result.report["totals"]["fps"] >= 100
    assert len(result.report["deconv"]) == 3          # two ConvTranspose + the upsample-conv
    for d in result.report["deconv"]:                  # 8x6, 16x12, 32x24 inputs: all split, ratio 4
        assert d["macs_zero_free"] == d["macs_useful"] and d["macs_zero_insertion"] == 4 * d["macs_useful"]


class _TinyUNet(nn.Module):
    """Not a zoo model: other widths, a transposed conv, upsample + conv, one concat skip."""

    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, conv_transpose2d, image_input, image_output, relu

        spec = QuantSpec(weight_bits=3, act_bits=3)
        self.inp = image_input(spec)
        self.enc = nn.Sequential(conv2d(3, 6, 3, 1, 1, spec=spec, weight_bits=8), relu(spec))
        self.down = nn.Sequential(conv2d(6, 10, 4, 2, 1, spec=spec), relu(spec))
        self.down2 = nn.Sequential(conv2d(10, 12, 4, 2, 1, spec=spec), relu(spec))
        self.up = nn.Sequential(conv_transpose2d(12, 10, 4, 2, 1, spec=spec), relu(spec))
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.up2_conv = nn.Sequential(conv2d(10, 6, 3, 1, 1, spec=spec), relu(spec, self.enc[1]))
        self.out = conv2d(12, 3, 3, 1, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        e = self.enc(self.inp(x))
        u = self.up2_conv(self.up2(self.up(self.down2(self.down(e)))))
        return self.out_q(self.out(torch.cat([u, e], dim=1)))


def export_tiny_unet(path: Path) -> Path:
    """The non-zoo generator, perturbed off its initial weights, exported as a user would."""
    from brevitas.export import export_qonnx

    torch.manual_seed(3)
    model = _TinyUNet().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    export_qonnx(model, torch.rand(1, 3, 16, 16), export_path=str(path), dynamo=False)
    return path


def test_a_generator_outside_the_zoo_compiles_bit_exactly(tmp_path):
    path = export_tiny_unet(tmp_path / "tiny_unet.onnx")
    compiled = _compile(tmp_path, str(path), "ultra96")
    _assert_all_rtl_one_partition(compiled)
    assert len(compiled.report["deconv"]) == 2


def test_float_onnx_is_rejected_with_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    path = tmp_path / "float.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), path)
    with pytest.raises(CompileError, match="float-only ONNX model, not QONNX"):
        _compile(tmp_path, str(path), "pynq-z2")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(CompileError, match="is not an ONNX model"):
        _compile(tmp_path, str(tmp_path / "junk.onnx"), "pynq-z2")


def test_unknown_board_and_unreachable_target(tmp_path):
    with pytest.raises(CompileError, match="unknown board 'zedboard'"):
        _compile(tmp_path, "dcgan", "zedboard")
    with pytest.raises(CompileError, match="does not fit kv260|no folding reaches"):
        _compile(tmp_path, "dcgan", "kv260", target_fps=1e9)
    state = json.loads((tmp_path / "build" / "state.json").read_text())
    assert state["complete"] is False and state["failed_stage"] == "folding"
    assert not (tmp_path / "build" / "report.json").exists()


def test_folding_file_is_validated_and_applied(tmp_path):
    first = _compile(tmp_path, "dcgan", "kv260")
    mvau = next(n for n in first.report["nodes"] if n["op_type"] == "MVAU_rtl")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({mvau["name"]: {"PE": 7}}))
    with pytest.raises(CompileError, match=f"{mvau['name']} \\(MVAU_rtl\\): PE=7 does not divide"):
        _compile(tmp_path, "dcgan", "kv260", folding_file=bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({n["name"]: {"PE": 1, "SIMD": 1} for n in first.report["nodes"]
                                if n["op_type"] == "MVAU_rtl"}))
    result = _compile(tmp_path, "dcgan", "kv260", folding_file=good)
    assert all(n["pe"] == 1 and n["simd"] == 1 for n in result.report["nodes"] if n["op_type"] == "MVAU_rtl")
    assert result.report["totals"]["fps"] < first.report["totals"]["fps"]
    stages = json.loads((result.build_dir / "state.json").read_text())["stages"]
    assert np.all([s["bit_exact"] for s in stages])


def test_why_not_rtl_explains_finns_rtl_mvu_rules():
    """FINN silently falls back to HLS for MVAUs its RTL MVU cannot take; we say why and what to do."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from fpga_gan.compiler.passes.hw import why_not_rtl

    def mvau(weights: np.ndarray, wdt: str, idt: str = "UINT4"):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
        node = helper.make_node("MVAU", ["x", "w"], ["y"], domain="finn.custom_op.fpgadataflow",
                                backend="fpgadataflow", name="MVAU_0", MW=4, MH=2, SIMD=1, PE=1,
                                inputDataType=idt, weightDataType=wdt, outputDataType="INT16",
                                accDataType="INT16", noActivation=1, binaryXnorMode=0)
        model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", [x], [y])))
        model.set_initializer("w", weights.astype(np.float32))
        model.set_tensor_datatype("w", DataType[wdt])
        return model, model.graph.node[0]

    full_range = np.array([[-8, 1], [2, 3], [0, 7], [1, 1]])
    zynq7000, zynq_us = "xc7z020clg400-1", "xck26-sfvc784-2LV-c"
    assert "narrow_range=True" in why_not_rtl(*mvau(full_range, "INT4"), zynq7000)
    assert "narrow" not in why_not_rtl(*mvau(full_range, "INT4"), zynq_us)
    assert "unsigned" in why_not_rtl(*mvau(np.abs(full_range), "UINT4"), zynq_us)
    assert "exceed the DSP48E2 datapath" in why_not_rtl(*mvau(full_range, "INT4", idt="UINT24"), zynq_us)


class _SubPixelSR(nn.Module):
    """A sub-pixel super-resolution net: conv -> PixelShuffle (exported as DepthToSpace, CRD) -> conv."""

    def __init__(self) -> None:
        super().__init__()
        from fpga_gan.models.layers import QuantSpec, conv2d, image_input, image_output, relu

        spec = QuantSpec()
        self.inp = image_input(spec)
        self.body = nn.Sequential(conv2d(3, 8, 3, 1, 1, spec=spec, weight_bits=8), relu(spec),
                                  conv2d(8, 12, 3, 1, 1, spec=spec), relu(spec))
        self.shuffle = nn.PixelShuffle(2)
        self.out = conv2d(3, 3, 3, 1, 1, spec=spec, weight_bits=8)
        self.out_q = image_output(spec)

    def forward(self, x):
        return self.out_q(self.out(self.shuffle(self.body(self.inp(x)))))


def test_pixel_shuffle_streams_as_depth_to_space(tmp_path):
    from brevitas.export import export_qonnx

    torch.manual_seed(1)
    path = tmp_path / "sr.onnx"
    export_qonnx(_SubPixelSR().eval(), torch.rand(1, 3, 8, 8), export_path=str(path), dynamo=False)
    result = _compile(tmp_path, str(path), "zcu104")
    _assert_all_rtl_one_partition(result)
    assert "DepthToSpace_rtl" in {n["op_type"] for n in result.report["nodes"]}


@pytest.mark.parametrize("parallel_window, width, fits_98", [(0, 8, False), (1, 8 * 7 * 7, True)])
def test_window_stream_width_counts_a_parallel_window(parallel_window, width, fits_98):
    """CycleGAN's last c7s1 layer as SetFolding leaves it: window generator SIMD 8 on 8 channels,
    MVAU SIMD 98 of MW 392. With parallel_window the generator emits a whole 7x7 window (392
    elements) a beat, an integer multiple of 98; without it 8 elements, no integer ratio."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from fpga_gan.compiler.folding import _simd_fits_window, _window_simd

    swg = helper.make_node("ConvolutionInputGenerator_rtl", ["x"], ["w"], name="Window",
                           domain="finn.custom_op.fpgadataflow.rtl", backend="fpgadataflow",
                           ConvKernelDim=[7, 7], IFMChannels=8, IFMDim=[22, 22], OFMDim=[16, 16], SIMD=8,
                           Stride=[1, 1], Dilation=[1, 1], inputDataType="UINT4", outputDataType="UINT4",
                           depthwise=0, parallel_window=parallel_window)
    mvau = helper.make_node("MVAU_rtl", ["w", "weights"], ["y"], name="Mvau",
                            domain="finn.custom_op.fpgadataflow.rtl", backend="fpgadataflow")
    graph = helper.make_graph([swg, mvau], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 22, 22, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 16, 3])])
    model = ModelWrapper(qonnx_make_model(graph))
    assert _window_simd(model, mvau) == width
    assert _simd_fits_window(98, _window_simd(model, mvau)) is fits_98
    assert _simd_fits_window(49, width) is fits_98            # 392 = 8 x 49
    assert _simd_fits_window(56, width)                       # 7 x 8: fits either way
