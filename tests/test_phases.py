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
from fpga_gan.compiler.passes.subpixel import macs_zero_free, subpixel_geometry, subpixel_weight
from fpga_gan.ops import DOMAIN

FINN = "finn.custom_op.fpgadataflow"


def _hw(op_type: str, inputs, outputs, name: str, domain: str = FINN, **attrs):
    return helper.make_node(op_type, inputs, outputs, name=name, domain=domain, backend="fpgadataflow", **attrs)


def _subpixel_chain(h: int, w: int, cin: int, cout: int, k: int, s: int, pads: tuple[int, int, int, int],
                    seed: int = 0, output_padding: tuple[int, int] = (0, 0), weights: np.ndarray | None = None,
                    always_crop: bool = True) -> ModelWrapper:
    """The hardware layers the compiler makes of ConvTranspose(k, s, pads, output_padding) on an
    h x w input: [FMPadding ->] [SWG ->] MVAU (CRD phases) -> DepthToSpace [-> Crop], with the
    ConvTranspose ``weights`` (Cin, Cout, k, k; default random non-zero INT4) rearranged as the
    lowering does. ``always_crop`` adds a Crop even when it crops nothing."""
    rng = np.random.default_rng(seed)
    if weights is None:
        weights = rng.choice([v for v in range(-7, 8) if v], size=(cin, cout, k, k)).astype(np.float32)
    geo = _geometry(k, s, pads, output_padding, cin, cout, h, w)
    pt, pl, pb, pr = geo.pad
    ct, cl, cb, cr = geo.crop
    m = geo.taps[0]
    nh, nw = h + pt + pb - m + 1, w + pl + pr - m + 1
    out_h, out_w = s * nh - ct - cb, s * nw - cl - cr
    conv_w = subpixel_weight(weights, s, geo.padded_kernel)          # (s*s*Cout, Cin, m, m)
    matrix = conv_w.transpose(2, 3, 1, 0).reshape(m * m * cin, s * s * cout)
    nodes, src = [], "x"
    if any(geo.pad):
        nodes.append(_hw("FMPadding", [src], ["padded"], "pad", ImgDim=[h, w], Padding=[pt, pl, pb, pr],
                         NumChannels=cin, SIMD=1, inputDataType="UINT4"))
        src = "padded"
    if m > 1 or any(geo.pad):
        nodes.append(_hw("ConvolutionInputGenerator", [src], ["windows"], "swg", ConvKernelDim=[m, m],
                         IFMChannels=cin, IFMDim=[h + pt + pb, w + pl + pr], OFMDim=[nh, nw], SIMD=1,
                         Stride=[1, 1], Dilation=[1, 1], inputDataType="UINT4", outputDataType="UINT4"))
        src = "windows"
    crop = any(geo.crop) or always_crop
    nodes += [
        _hw("MVAU", [src, "weights"], ["acc"], "mvau", MW=m * m * cin, MH=s * s * cout, SIMD=1, PE=1,
            inputDataType="UINT4", weightDataType="INT4", outputDataType="INT16", accDataType="INT16",
            noActivation=1, numInputVectors=[1, nh, nw], mem_mode="internal_decoupled"),
        _hw("DepthToSpace", ["acc"], ["full" if crop else "y"], "d2s", domain=DOMAIN, ImgDim=[nh, nw],
            NumChannels=cout, BlockSize=s, inputDataType="INT16"),
    ]
    if crop:
        nodes.append(_hw("Crop", ["full"], ["y"], "crop", DataType="INT16", ImgDim=[s * nh, s * nw],
                         NumChannels=cout, CropNorth=ct, CropWest=cl, CropSouth=cb, CropEast=cr, SIMD=1,
                         numInputVectors=[1]))
    graph = helper.make_graph(nodes, "subpixel", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, h, w, cin])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_h, out_w, cout])])
    model = ModelWrapper(qonnx_make_model(graph))
    model.set_initializer("weights", matrix.astype(np.float32))
    model.set_tensor_datatype("weights", DataType["INT4"])
    model.set_tensor_datatype("x", DataType["UINT4"])
    model.set_metadata_prop("conv_transpose_weights", ",".join(str(int(v)) for v in weights.reshape(-1)))
    return model.transform(InferShapes()).transform(InferDataTypes())


def _conv_transpose(k, s, pads, output_padding, cin, cout, h, w, weights=None) -> ModelWrapper:
    """The ONNX ConvTranspose itself (NCHW), for the reference output and the MAC counts."""
    hout = s * (h - 1) + k - pads[0] - pads[2] + output_padding[0]
    wout = s * (w - 1) + k - pads[1] - pads[3] + output_padding[1]
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="Deconv", kernel_shape=[k, k], strides=[s, s],
                            pads=list(pads), output_padding=list(output_padding))
    graph = helper.make_graph([node], "ct", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, hout, wout])])
    model = ModelWrapper(qonnx_make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    model.set_initializer("w", np.zeros((cin, cout, k, k), np.float32) if weights is None else weights)
    return model.transform(InferShapes())


def _geometry(k, s, pads, output_padding, cin, cout, h, w):
    model = _conv_transpose(k, s, pads, output_padding, cin, cout, h, w)
    return subpixel_geometry(model.graph.node[0], model)


def _split(model: ModelWrapper) -> ModelWrapper:
    return model.transform(SplitSubPixelPhases()).transform(InferDuplicateStreams()).transform(InferShapes())


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    return execute_onnx(model, {"x": x})["y"]


def _macs(model: ModelWrapper) -> int:
    return sum(mac_count(getCustomOp(n)) for n in model.graph.node if n.op_type == "MVAU")


GEOMETRIES = [  # (h, w, cin, cout, k, s, ConvTranspose pads, output_padding)
    (3, 5, 2, 3, 4, 2, (1, 1, 1, 1), (0, 0)),        # the GAN upsampler
    (8, 6, 3, 2, 4, 2, (1, 1, 1, 1), (0, 0)),        # try-on's first upsampler geometry
    (2, 3, 1, 2, 8, 2, (3, 3, 3, 3), (0, 0)),        # wider kernel: 4 taps per phase, crop 1
    (3, 4, 2, 2, 4, 2, (1, 0, 1, 2), (0, 0)),        # crop on rows only; columns padded unevenly
    (2, 2, 2, 1, 9, 3, (4, 4, 2, 2), (0, 0)),        # stride 3: nine phases, cropped unevenly
    (4, 5, 2, 3, 3, 2, (1, 1, 1, 1), (1, 1)),        # CycleGAN's up-sampler: phases 2x2, 2x1, 1x2, 1x1
    (4, 3, 2, 2, 5, 2, (2, 2, 2, 2), (1, 1)),        # k5 s2 p2 op1: phases 3x3, 3x2, 2x3, 2x2, no crop
    (4, 5, 2, 3, 3, 2, (1, 1, 1, 1), (0, 0)),        # k3 s2 p1: 2H - 1 rows, the odd phases one short
    (3, 4, 2, 2, 3, 2, (2, 1, 0, 1), (1, 1)),        # asymmetric pads
    (3, 3, 2, 2, 3, 2, (0, 0, 0, 0), (1, 1)),        # no pads: 2H + 2
    (3, 3, 2, 2, 4, 2, (0, 0, 0, 0), (1, 1)),        # output_padding past the last tap: 2H + 3
    (2, 2, 2, 1, 6, 3, (1, 1, 1, 1), (0, 0)),        # k6 s3 p1: 3H + 1 rows
    (3, 3, 2, 2, 4, 2, (3, 3, 3, 3), (0, 0)),        # crop beyond the pad: phases crop their input
    (4, 4, 1, 2, 3, 3, (1, 1, 1, 1), (2, 2)),        # k3 s3 op2
]


def _ids(g):
    return f"k{g[4]}s{g[5]}p{''.join(map(str, g[6]))}op{''.join(map(str, g[7]))}_{g[0]}x{g[1]}"


def _reference(h, w, cin, cout, k, s, pads, out_pad, model: ModelWrapper, x: np.ndarray):
    """The ONNX ConvTranspose's own output (NHWC) and useful MACs for the chain's weights."""
    weights = np.array([float(v) for v in model.get_metadata_prop("conv_transpose_weights").split(",")],
                       np.float32).reshape(cin, cout, k, k)
    ct = _conv_transpose(k, s, pads, out_pad, cin, cout, h, w, weights)
    y = execute_onnx(ct, {"x": x.transpose(0, 3, 1, 2)})["y"].transpose(0, 2, 3, 1)
    return y, macs_zero_free(ct.graph.node[0], ct)


@pytest.mark.parametrize("h,w,cin,cout,k,s,pads,out_pad", GEOMETRIES, ids=[_ids(g) for g in GEOMETRIES])
def test_split_is_exact_and_spends_only_useful_macs(h, w, cin, cout, k, s, pads, out_pad):
    model = _subpixel_chain(h, w, cin, cout, k, s, pads, seed=h * w + k, output_padding=out_pad)
    x = np.random.default_rng(k).integers(0, 16, size=(1, h, w, cin)).astype(np.float32)
    expected, useful = _reference(h, w, cin, cout, k, s, pads, out_pad, model, x)
    np.testing.assert_array_equal(_run(model, x), expected)       # the unsplit chain is the ConvTranspose
    split = _split(model)
    ops = [n.op_type for n in split.graph.node]
    assert ops.count("MVAU") == s * s
    assert ops[0] == "DuplicateStreams" and "StreamingConcat" in ops
    d2s = next(n for n in split.graph.node if n.op_type == "DepthToSpace")
    assert getCustomOp(d2s).get_nodeattr("Mode") == "DCR"
    # at most one Crop after the DepthToSpace, only when the output size is not a multiple of s
    assert ops[-1] == ("Crop" if expected.shape[1] % s or expected.shape[2] % s else "DepthToSpace")
    np.testing.assert_array_equal(_run(split, x), expected)
    # no MAC meets an inserted zero, none is cropped afterwards: exactly the useful MACs
    assert _macs(split) == useful
    assert _macs(split) < _macs(model)


def test_cyclegan_upsampler_phases_have_their_own_kernels():
    """k3 s2 p1 op1: the four phase MVAUs are 2x2, 2x1, 1x2 and 1x1 convolutions of an H x W grid."""
    model = _subpixel_chain(6, 6, 2, 3, 3, 2, (1, 1, 1, 1), output_padding=(1, 1))
    chain = find_subpixel_chain(model, next(n for n in model.graph.node if n.op_type == "DepthToSpace"))
    plan = phase_plan(chain, model.get_initializer("weights"))
    assert plan.grid == (6, 6) and plan.crop_end == (0, 0)
    assert sorted(p.kernel for p in plan.phases) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(p.out_dim == (6, 6) and p.out_pad == (0, 0) and p.crop == (0, 0, 0, 0) for p in plan.phases)
    split = _split(model)
    mws = sorted(getCustomOp(n).get_nodeattr("MW") for n in split.graph.node if n.op_type == "MVAU")
    assert mws == [2, 4, 4, 8]                            # Cin times the taps of each phase
    swgs = [getCustomOp(n).get_nodeattr("ConvKernelDim") for n in split.graph.node
            if n.op_type == "ConvolutionInputGenerator"]
    assert sorted(map(tuple, swgs)) == [(1, 2), (2, 1), (2, 2)]   # the 1x1 phase reads pixels directly


def test_odd_output_size_fills_the_short_phases_with_zeros():
    """k3 s2 p1 (2H - 1 rows): odd phases compute H - 1 rows, a zero row fills them to the grid."""
    model = _subpixel_chain(4, 4, 1, 1, 3, 2, (1, 1, 1, 1))
    chain = find_subpixel_chain(model, next(n for n in model.graph.node if n.op_type == "DepthToSpace"))
    plan = phase_plan(chain, model.get_initializer("weights"))
    assert plan.grid == (4, 4) and plan.crop_end == (1, 1)
    assert {p.weight_phase: (p.out_dim, p.out_pad) for p in plan.phases} == {
        (1, 1): ((4, 4), (0, 0)), (1, 0): ((4, 3), (0, 1)), (0, 1): ((3, 4), (1, 0)), (0, 0): ((3, 3), (1, 1))}


def test_k4s2p1_phase_plan():
    """Phase (0, 0) of the output reads weight phase (1, 1) on a grid padded on top and left only."""
    model = _subpixel_chain(8, 8, 1, 1, 4, 2, (1, 1, 1, 1))
    plan = phase_plan(find_subpixel_chain(model, model.graph.node[3]))
    assert plan.out_dim == (8, 8)
    assert plan.pads == ((1, 1, 0, 0), (1, 0, 0, 1), (0, 1, 1, 0), (0, 0, 1, 1))
    assert plan.weight_phases == ((1, 1), (1, 0), (0, 1), (0, 0))


@pytest.mark.parametrize("k,s,pads", [(2, 2, (0, 0, 0, 0)), (6, 2, (2, 2, 2, 2)), (4, 2, (2, 2, 2, 2))])
def test_chains_that_waste_nothing_are_left_alone(k, s, pads):
    model = _subpixel_chain(3, 3, 1, 2, k, s, pads)    # their Crop crops nothing, every tap is used
    before = model.model.SerializeToString()
    assert _split(model).model.SerializeToString() == before


def test_trained_zero_taps_are_dropped_too():
    """A border row of taps whose weights are all zero (pruned, or never trained) costs no MACs."""
    weights = np.random.default_rng(0).choice([-3, -1, 2, 5], size=(2, 2, 4, 4)).astype(np.float32)
    weights[:, :, 0, :] = 0                                 # tap row 0: weight phase 0, window row 1
    model = _subpixel_chain(4, 4, 2, 2, 4, 2, (1, 1, 1, 1), weights=weights)
    x = np.random.default_rng(1).integers(0, 16, size=(1, 4, 4, 2)).astype(np.float32)
    split = _split(model)
    np.testing.assert_array_equal(_run(split, x), _run(model, x))
    # rows: 4 even outputs x 2 taps + 4 odd outputs x 1 tap; columns: 8 outputs x 2 taps; Cin x Cout = 4
    assert _macs(split) == (4 * 2 + 4 * 1) * (8 * 2) * 4
