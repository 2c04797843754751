"""SplitSubPixelPhases: a cropped sub-pixel chain of FINN hardware layers becomes one window grid
and MVAU per output phase, with identical outputs (FINN's own Python execution of every layer) and
exactly the useful MACs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import qonnx_make_model

from fpga_gan.compiler.estimates import mac_count
from fpga_gan.compiler.passes.hw import InferDuplicateStreams
from fpga_gan.compiler.passes.phases import (
    SplitSubPixelPhases,
    find_subpixel_chain,
    phase_plan,
)
from fpga_gan.compiler.passes.subpixel import _axis_plan
from fpga_gan.ops import DOMAIN

FINN = "finn.custom_op.fpgadataflow"


def _hw(op_type: str, inputs, outputs, name: str, domain: str = FINN, **attrs):
    return helper.make_node(op_type, inputs, outputs, name=name, domain=domain, backend="fpgadataflow", **attrs)


def _subpixel_chain(h: int, w: int, cin: int, cout: int, k: int, s: int, pads: tuple[int, int, int, int],
                    seed: int = 0) -> ModelWrapper:
    """The hardware layers the compiler makes of ConvTranspose(k, s, pads) on an h x w input:
    FMPadding -> SWG -> MVAU (CRD phases) -> DepthToSpace -> Crop, with random INT4 weights."""
    m = k // s
    pt, pb, ct, cb = _axis_plan(k, s, pads[0], pads[2])
    pl, pr, cl, cr = _axis_plan(k, s, pads[1], pads[3])
    nh, nw = h + pt + pb - m + 1, w + pl + pr - m + 1
    out_h, out_w = s * nh - ct - cb, s * nw - cl - cr
    nodes = [
        _hw("FMPadding", ["x"], ["padded"], "pad", ImgDim=[h, w], Padding=[pt, pl, pb, pr], NumChannels=cin,
            SIMD=1, inputDataType="UINT4"),
        _hw("ConvolutionInputGenerator", ["padded"], ["windows"], "swg", ConvKernelDim=[m, m], IFMChannels=cin,
            IFMDim=[h + pt + pb, w + pl + pr], OFMDim=[nh, nw], SIMD=1, Stride=[1, 1], Dilation=[1, 1],
            inputDataType="UINT4", outputDataType="UINT4"),
        _hw("MVAU", ["windows", "weights"], ["acc"], "mvau", MW=m * m * cin, MH=s * s * cout, SIMD=1, PE=1,
            inputDataType="UINT4", weightDataType="INT4", outputDataType="INT16", accDataType="INT16",
            noActivation=1, numInputVectors=[1, nh, nw], mem_mode="internal_decoupled"),
        _hw("DepthToSpace", ["acc"], ["full"], "d2s", domain=DOMAIN, ImgDim=[nh, nw], NumChannels=cout,
            BlockSize=s, inputDataType="INT16"),
        _hw("Crop", ["full"], ["y"], "crop", DataType="INT16", ImgDim=[s * nh, s * nw], NumChannels=cout,
            CropNorth=ct, CropWest=cl, CropSouth=cb, CropEast=cr, SIMD=1, numInputVectors=[1]),
    ]
    graph = helper.make_graph(nodes, "subpixel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, h, w, cin])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_h, out_w, cout])])
    model = ModelWrapper(qonnx_make_model(graph))
    rng = np.random.default_rng(seed)
    model.set_initializer("weights", rng.integers(-7, 8, size=(m * m * cin, s * s * cout)).astype(np.float32))
    model.set_tensor_datatype("weights", DataType["INT4"])
    model.set_tensor_datatype("x", DataType["UINT4"])
    return model.transform(InferShapes()).transform(InferDataTypes())


def _split(model: ModelWrapper) -> ModelWrapper:
    return model.transform(SplitSubPixelPhases()).transform(InferDuplicateStreams()).transform(InferShapes())


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x})["y"]


def _macs(model: ModelWrapper) -> int:
    return sum(mac_count(getCustomOp(n)) for n in model.graph.node if n.op_type == "MVAU")


GEOMETRIES = [  # (h, w, cin, cout, k, s, ConvTranspose pads)
    (3, 5, 2, 3, 4, 2, (1, 1, 1, 1)),        # the GAN upsampler
    (8, 6, 3, 2, 4, 2, (1, 1, 1, 1)),        # try-on's first upsampler geometry
    (2, 3, 1, 2, 8, 2, (3, 3, 3, 3)),        # wider kernel: 4 taps per phase, crop 1
    (3, 4, 2, 2, 4, 2, (1, 0, 1, 2)),        # crop on rows only; columns padded unevenly
    (2, 2, 2, 1, 9, 3, (4, 4, 2, 2)),        # stride 3: nine phases, cropped unevenly
]


@pytest.mark.parametrize("h,w,cin,cout,k,s,pads", GEOMETRIES, ids=[f"k{g[4]}s{g[5]}p{''.join(map(str, g[6]))}_{g[0]}x{g[1]}"
                                                                   for g in GEOMETRIES])
def test_split_is_exact_and_spends_only_useful_macs(h, w, cin, cout, k, s, pads):
    model = _subpixel_chain(h, w, cin, cout, k, s, pads, seed=h * w + k)
    x = np.random.default_rng(k).integers(0, 16, size=(1, h, w, cin)).astype(np.float32)
    expected = _run(model, x)
    split = _split(model)
    ops = [n.op_type for n in split.graph.node]
    assert ops.count("MVAU") == s * s and "Crop" not in ops
    assert ops[0] == "DuplicateStreams" and ops[-2:] == ["StreamingConcat", "DepthToSpace"]
    assert getCustomOp(split.graph.node[-1]).get_nodeattr("Mode") == "DCR"
    np.testing.assert_array_equal(_run(split, x), expected)
    # k/s x k/s taps per output pixel and nothing computed that is cropped afterwards
    out_h, out_w = expected.shape[1:3]
    assert _macs(split) == out_h * out_w * (k // s) ** 2 * cin * cout
    assert _macs(split) < _macs(model)


def test_k4s2p1_phase_plan():
    """Phase (0, 0) of the output reads weight phase (1, 1) on a grid padded on top and left only."""
    model = _subpixel_chain(8, 8, 1, 1, 4, 2, (1, 1, 1, 1))
    plan = phase_plan(find_subpixel_chain(model, model.graph.node[3]))
    assert plan.out_dim == (8, 8)
    assert plan.pads == ((1, 1, 0, 0), (1, 0, 0, 1), (0, 1, 1, 0), (0, 0, 1, 1))
    assert plan.weight_phases == ((1, 1), (1, 0), (0, 1), (0, 0))


@pytest.mark.parametrize("k,s,pads", [(2, 2, (0, 0, 0, 0)), (6, 2, (2, 2, 2, 2)), (4, 2, (2, 2, 2, 2))])
def test_chains_without_a_crop_are_left_alone(k, s, pads):
    model = _subpixel_chain(3, 3, 1, 2, k, s, pads)    # their Crop crops nothing
    before = model.model.SerializeToString()
    assert _split(model).model.SerializeToString() == before


def test_output_not_a_multiple_of_the_stride_keeps_the_crop():
    """k6 s3 p1: 3H + 1 output rows cannot be cut into three equal phases; the crop stays."""
    model = _subpixel_chain(2, 2, 1, 1, 6, 3, (1, 1, 1, 1))
    assert "Crop" in [n.op_type for n in model.graph.node]
    assert [n.op_type for n in _split(model).graph.node] == [n.op_type for n in model.graph.node]
