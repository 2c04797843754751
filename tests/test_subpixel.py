"""LowerConvTransposeToSubPixel: exact equality with ConvTranspose, Quant weights, rejections, MACs.

Weights and inputs are small integers (or integers times powers of two), so every float32 sum is
exact whatever order ONNX Runtime adds in: outputs are compared for equality, never closeness.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from fpga_gan.compiler import (
    LowerConvTransposeToSubPixel,
    check_lowerable,
    macs_zero_free,
    macs_zero_insertion,
)
from fpga_gan.compiler.passes import subpixel_geometry

QONNX_DOMAIN = "qonnx.custom_op.general"


# ------------------------------------------------------------------------------------------ helpers


def _out_size(n: int, k: int, s: int, p_begin: int, p_end: int, output_padding: int = 0) -> int:
    return s * (n - 1) + k - p_begin - p_end + output_padding


def _conv_transpose_model(
    k: int | tuple[int, int],
    s: int,
    pads: tuple[int, int, int, int],
    cin: int,
    cout: int,
    h: int,
    w: int,
    *,
    bias: bool = False,
    seed: int = 0,
    group: int = 1,
    quant_scale: np.ndarray | None = None,
    weight_as_input: bool = False,
    output_padding: tuple[int, int] = (0, 0),
) -> ModelWrapper:
    """One ConvTranspose with integer weights; ``quant_scale`` (1, Cout, 1, 1) routes the weight
    through a qonnx Quant node (4-bit signed), ``weight_as_input`` makes it a graph input."""
    rng = np.random.default_rng(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    hout = _out_size(h, kh, s, pads[0], pads[2], output_padding[0])
    wout = _out_size(w, kw, s, pads[1], pads[3], output_padding[1])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, hout, wout])
    w_int = rng.integers(-8, 8, size=(cin, cout // group, kh, kw)).astype(np.float32)
    inputs, nodes, inits = [x], [], []
    if quant_scale is not None:
        w_float = w_int * quant_scale
        nodes.append(
            helper.make_node(
                "Quant",
                ["w_float", "w_scale", "w_zeropt", "w_bitwidth"],
                ["w"],
                domain=QONNX_DOMAIN,
                name="WeightQuant",
                signed=1,
                narrow=0,
                rounding_mode="ROUND",
            )
        )
        inits += [("w_float", w_float), ("w_scale", quant_scale.astype(np.float32))]
        inits += [("w_zeropt", np.array(0.0, np.float32)), ("w_bitwidth", np.array(4.0, np.float32))]
    elif weight_as_input:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w_int.shape)))
    else:
        inits.append(("w", w_int))
    ct_inputs = ["x", "w"]
    if bias:
        inits.append(("b", rng.integers(-4, 5, size=(cout,)).astype(np.float32)))
        ct_inputs.append("b")
    nodes.append(
        helper.make_node(
            "ConvTranspose",
            ct_inputs,
            ["y"],
            name="Deconv",
            kernel_shape=[kh, kw],
            strides=[s, s],
            pads=list(pads),
            group=group,
            **({"output_padding": list(output_padding)} if any(output_padding) else {}),
        )
    )
    graph = helper.make_graph(nodes, "ct", inputs, [y])
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)]
    model = ModelWrapper(helper.make_model(graph, opset_imports=opsets))
    for name, value in inits:
        model.set_initializer(name, value)
    return model.transform(InferShapes())


def _random_input(model: ModelWrapper, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    shape = model.get_tensor_shape(model.graph.input[0].name)
    return np.random.default_rng(seed).integers(-4, 5, size=shape).astype(np.float32) * np.float32(scale)


def _run(model: ModelWrapper, x: np.ndarray) -> np.ndarray:
    ctx = {model.graph.input[0].name: x}
    return execute_onnx(model, ctx)[model.graph.output[0].name]


def _ops(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _assert_sorted(model: ModelWrapper) -> None:
    """Every node's inputs are produced before it (or are graph inputs / initializers)."""
    known = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        assert all(i in known for i in node.input if i), f"{node.name} reads a tensor produced later"
        known.update(node.output)


def _lower_and_compare(model: ModelWrapper, x: np.ndarray) -> ModelWrapper:
    lowered = model.transform(LowerConvTransposeToSubPixel())
    expected = _run(model, x)
    got = _run(lowered, x)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    if "Quant" not in _ops(lowered):  # a plain ONNX model: valid, and ONNX Runtime agrees as a whole
        onnx.checker.check_model(lowered.model, full_check=True)
        session = ort.InferenceSession(lowered.model.SerializeToString(), providers=["CPUExecutionProvider"])
        np.testing.assert_array_equal(session.run(None, {model.graph.input[0].name: x})[0], expected)
    assert "ConvTranspose" not in _ops(lowered)
    _assert_sorted(lowered)
    return lowered


# ------------------------------------------------------------------------------------ exactness

# (k, s, pads (t, l, b, r), Cin, Cout, H, W, expected ops after lowering)
CASES = [
    (4, 2, (1, 1, 1, 1), 3, 2, 8, 8, ["Pad", "Conv", "DepthToSpace", "Slice"]),  # the GAN upsampler
    (4, 2, (1, 1, 1, 1), 2, 3, 5, 7, ["Pad", "Conv", "DepthToSpace", "Slice"]),  # non-square
    (4, 2, (1, 1, 1, 1), 2, 2, 1, 1, ["Pad", "Conv", "DepthToSpace", "Slice"]),  # 1x1 input
    (2, 2, (0, 0, 0, 0), 3, 2, 4, 6, ["Conv", "DepthToSpace"]),
    (4, 1, (0, 0, 0, 0), 5, 3, 1, 1, ["Conv", "DepthToSpace"]),  # DCGAN stem: 1x1 -> 4x4 as a matrix-vector product
    (3, 1, (1, 1, 1, 1), 2, 2, 6, 5, ["Pad", "Conv"]),
    (6, 2, (2, 2, 2, 2), 2, 3, 5, 4, ["Pad", "Conv", "DepthToSpace"]),
    (4, 4, (0, 0, 0, 0), 2, 2, 3, 5, ["Conv", "DepthToSpace"]),
    (4, 2, (3, 3, 3, 3), 2, 2, 5, 6, ["Conv", "DepthToSpace", "Slice"]),  # p >= s: a whole block dropped
    (4, 2, (4, 4, 4, 4), 1, 2, 5, 5, ["Conv", "DepthToSpace", "Slice"]),  # crop beyond the pad
    (4, 2, (1, 0, 2, 3), 2, 2, 4, 5, ["Pad", "Conv", "DepthToSpace", "Slice"]),  # asymmetric pads
]


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"k{c[0]}s{c[1]}p{''.join(map(str, c[2]))}_{c[5]}x{c[6]}")
def test_lowering_is_exact(case, bias):
    k, s, pads, cin, cout, h, w, expected_ops = case
    model = _conv_transpose_model(k, s, pads, cin, cout, h, w, bias=bias, seed=k * 10 + s)
    lowered = _lower_and_compare(model, _random_input(model))
    assert _ops(lowered) == expected_ops
    conv = next(n for n in lowered.graph.node if n.op_type == "Conv")
    if (h, w) == (1, 1) and not any(pads):
        s = k                                     # one input pixel: lowered with block size k
    assert lowered.get_initializer(conv.input[1]).shape == (cout * s * s, cin, k // s, k // s)
    assert len(conv.input) == (3 if bias else 2)
    assert lowered.get_initializer(conv.input[1]).dtype == np.float32


# Kernels that are not a multiple of the stride, output_padding, asymmetric pads: the kernel gets
# zero taps appended (exact), then it is the ordinary lowering.
# (k, s, pads (t, l, b, r), output_padding, Cin, Cout, H, W, padded kernel, expected ops)
PADDED_CASES = [
    (3, 2, (1, 1, 1, 1), (1, 1), 3, 2, 5, 4, (4, 4), ["Pad", "Conv", "DepthToSpace", "Slice"]),  # CycleGAN up
    (3, 2, (1, 1, 1, 1), (0, 0), 2, 3, 4, 6, (4, 4), ["Pad", "Conv", "DepthToSpace", "Slice"]),  # 2H - 1 out
    (5, 2, (2, 2, 2, 2), (1, 1), 3, 2, 5, 4, (6, 6), ["Pad", "Conv", "DepthToSpace"]),
    (3, 2, (0, 0, 0, 0), (1, 1), 2, 2, 3, 5, (4, 4), ["Pad", "Conv", "DepthToSpace"]),
    (4, 2, (0, 0, 0, 0), (1, 1), 2, 2, 3, 4, (6, 6), ["Pad", "Conv", "DepthToSpace", "Slice"]),  # past the taps
    (1, 2, (0, 0, 0, 0), (1, 1), 3, 2, 4, 4, (2, 2), ["Conv", "DepthToSpace"]),
    (3, 3, (1, 1, 1, 1), (2, 2), 2, 2, 3, 4, (6, 6), ["Pad", "Conv", "DepthToSpace", "Slice"]),  # op > end pad
    ((5, 3), 2, (2, 1, 1, 0), (1, 0), 2, 2, 4, 5, (6, 4), ["Pad", "Conv", "DepthToSpace", "Slice"]),
    (3, 2, (2, 1, 0, 1), (1, 1), 2, 3, 5, 4, (4, 4), ["Pad", "Conv", "DepthToSpace", "Slice"]),
    (3, 1, (1, 1, 1, 1), (0, 0), 2, 2, 4, 4, (3, 3), ["Pad", "Conv"]),
]


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", PADDED_CASES, ids=lambda c: f"k{c[0]}s{c[1]}p{''.join(map(str, c[2]))}op{''.join(map(str, c[3]))}")
def test_kernel_not_a_multiple_of_the_stride_and_output_padding_are_exact(case, bias):
    k, s, pads, out_pad, cin, cout, h, w, padded, expected_ops = case
    model = _conv_transpose_model(k, s, pads, cin, cout, h, w, bias=bias, seed=7, output_padding=out_pad)
    assert check_lowerable(model.graph.node[0], model) is None
    geo = subpixel_geometry(model.graph.node[0], model)
    assert geo.padded_kernel == padded and geo.taps == (padded[0] // s, padded[1] // s)
    lowered = _lower_and_compare(model, _random_input(model))
    assert _ops(lowered) == expected_ops
    conv = next(n for n in lowered.graph.node if n.op_type == "Conv")
    weight = lowered.get_initializer(conv.input[1])
    # the same integer weights plus zeros: nothing re-quantized
    original = model.get_initializer("w")
    assert np.count_nonzero(weight) == np.count_nonzero(original)
    np.testing.assert_array_equal(np.sort(weight[weight != 0]), np.sort(original[original != 0]))


def test_quant_weight_per_channel_with_zero_taps():
    """k3 s2 p1 op1 with a per-channel Quant weight: the zero taps quantize to zero, scales repeat per phase."""
    scale = np.array([0.5, 0.25, 2.0], np.float32).reshape(1, 3, 1, 1)
    model = _conv_transpose_model(3, 2, (1, 1, 1, 1), 2, 3, 4, 5, bias=True, quant_scale=scale, output_padding=(1, 1))
    lowered = _lower_and_compare(model, _random_input(model))
    quant = next(n for n in lowered.graph.node if n.op_type == "Quant")
    assert lowered.get_initializer(quant.input[0]).shape == (12, 2, 2, 2)
    np.testing.assert_array_equal(lowered.get_initializer(quant.input[1]).reshape(-1), np.repeat(scale.reshape(-1), 4))


def test_gan_upsampler_matches_architecture_note():
    """k4 s2 p1 is Pad(1) -> Conv(k=2, 4*Cout) -> DepthToSpace(2) -> Crop(1) per side."""
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 3, 2, 8, 8)
    geo = subpixel_geometry(model.graph.node[0], model)
    assert (geo.pad, geo.taps, geo.stride, geo.crop) == ((1, 1, 1, 1), (2, 2), 2, (1, 1, 1, 1))
    lowered = model.transform(LowerConvTransposeToSubPixel())
    d2s = next(n for n in lowered.graph.node if n.op_type == "DepthToSpace")
    attrs = {a.name: helper.get_attribute_value(a) for a in d2s.attribute}
    assert attrs == {"blocksize": 2, "mode": b"CRD"}
    assert lowered.get_tensor_shape(d2s.output[0]) == [1, 2, 18, 18]
    assert lowered.get_tensor_shape("y") == [1, 2, 16, 16]
    assert all(n.name.startswith("Deconv_subpixel") for n in lowered.graph.node)
    assert lowered.get_initializer("w") is None  # the old weight is gone


def test_chain_of_two_layers_dcgan_style():
    """1x1 latent -> 4x4 (k4 s1 p0) -> 8x8 (k4 s2 p1): both lowered, order kept, exact."""
    first = _conv_transpose_model(4, 1, (0, 0, 0, 0), 4, 3, 1, 1, bias=True, seed=3)
    second = _conv_transpose_model(4, 2, (1, 1, 1, 1), 3, 2, 4, 4, bias=True, seed=4)
    g = first.graph
    ct2 = helper.make_node(
        "ConvTranspose", ["y", "w2", "b2"], ["z"], name="Deconv2", kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]
    )
    g.node.append(ct2)
    first.set_initializer("w2", second.get_initializer("w"))
    first.set_initializer("b2", second.get_initializer("b"))
    g.output.pop()
    g.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, 8, 8]))
    model = first.transform(InferShapes())
    lowered = _lower_and_compare(model, _random_input(model))
    assert _ops(lowered).count("Conv") == 2


# ------------------------------------------------------------------------------- quantized weights


def test_quant_weight_per_channel_is_rearranged_exactly():
    scale = np.array([0.5, 0.25, 2.0], np.float32).reshape(1, 3, 1, 1)
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 2, 3, 6, 5, bias=True, quant_scale=scale)
    lowered = _lower_and_compare(model, _random_input(model))
    quant = next(n for n in lowered.graph.node if n.op_type == "Quant")
    new_scale = lowered.get_initializer(quant.input[1])
    assert new_scale.shape == (12, 1, 1, 1)
    np.testing.assert_array_equal(new_scale.reshape(-1), np.repeat(scale.reshape(-1), 4))
    # the integer codes are the old ones, permuted
    old_codes = model.get_initializer("w_float") / scale
    new_codes = lowered.get_initializer(quant.input[0]) / new_scale
    np.testing.assert_array_equal(np.sort(new_codes.reshape(-1)), np.sort(old_codes.reshape(-1)))
    assert lowered.get_initializer("w_float") is None  # the old Quant and its inputs are gone
    assert [n.op_type for n in lowered.graph.node].count("Quant") == 1


def _route_through_quant(model: ModelWrapper, name: str, scale: np.ndarray) -> None:
    """Replace initializer ``name`` (integer valued) by Quant(name * scale) (8-bit signed)."""
    codes = model.get_initializer(name)
    model.del_initializer(name)
    for suffix, value in [("float", codes * scale), ("scale", scale), ("zeropt", 0.0), ("bitwidth", 8.0)]:
        model.set_initializer(f"{name}_{suffix}", np.asarray(value, np.float32))
    quant = helper.make_node(
        "Quant",
        [f"{name}_float", f"{name}_scale", f"{name}_zeropt", f"{name}_bitwidth"],
        [name],
        domain=QONNX_DOMAIN,
        name=f"{name}_quant",
        signed=1,
        narrow=0,
        rounding_mode="ROUND",
    )
    model.graph.node.insert(0, quant)


def test_quant_bias_per_channel():
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 2, 3, 4, 6, bias=True, seed=9)
    _route_through_quant(model, "b", np.array([0.5, 1.0, 0.25], np.float32))
    lowered = _lower_and_compare(model.transform(InferShapes()), _random_input(model))
    conv = next(n for n in lowered.graph.node if n.op_type == "Conv")
    bias_quant = lowered.find_producer(conv.input[2])
    assert bias_quant.op_type == "Quant"
    np.testing.assert_array_equal(lowered.get_initializer(bias_quant.input[1]), np.repeat([0.5, 1.0, 0.25], 4))


def test_quant_weight_shared_by_two_layers():
    """The first lowering must not disturb the Quant weight the second layer still reads."""
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 2, 2, 5, 5, quant_scale=np.full((1, 2, 1, 1), 0.5, np.float32))
    model.graph.node.append(
        helper.make_node("ConvTranspose", ["x", "w"], ["y2"], name="Deconv2", kernel_shape=[4, 4], strides=[2, 2])
    )
    model.graph.output.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, 2, 12, 12]))
    model = model.transform(InferShapes())
    x = _random_input(model)
    lowered = model.transform(LowerConvTransposeToSubPixel())
    before = execute_onnx(model, {"x": x})
    after = execute_onnx(lowered, {"x": x})
    for out in ("y", "y2"):
        np.testing.assert_array_equal(after[out], before[out])
    assert "ConvTranspose" not in _ops(lowered) and _ops(lowered).count("Quant") == 2
    assert lowered.get_initializer("w_float") is None


def test_quant_weight_scalar_scale_and_s1():
    model = _conv_transpose_model(4, 1, (0, 0, 0, 0), 3, 2, 1, 1, quant_scale=np.array(0.125, np.float32))
    _lower_and_compare(model, _random_input(model))


def test_brevitas_quant_conv_transpose_exact(tmp_path):
    torch = pytest.importorskip("torch")
    qnn = pytest.importorskip("brevitas.nn")
    from brevitas.export import export_qonnx
    from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint
    from qonnx.util.cleanup import cleanup_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConvTranspose2d(
            4, 3, 4, 2, 1, weight_bit_width=4, weight_quant=Int8WeightPerChannelFixedPoint, bias=False
        ),
    ).eval()
    path = tmp_path / "deconv.onnx"
    export_qonnx(net, input_t=torch.zeros(1, 4, 8, 8), export_path=str(path), dynamo=False)
    model = cleanup_model(ModelWrapper(str(path)))
    act_quant = next(n for n in model.graph.node if n.op_type == "Quant" and n.input[0] == model.graph.input[0].name)
    in_scale = float(model.get_initializer(act_quant.input[1]))
    x = np.random.default_rng(5).integers(-128, 128, size=(1, 4, 8, 8)).astype(np.float32) * np.float32(in_scale)
    lowered = _lower_and_compare(model, x)
    assert {"Pad", "Conv", "DepthToSpace", "Slice"} <= set(_ops(lowered))
    conv = next(n for n in lowered.graph.node if n.op_type == "Conv")
    weight_quant = lowered.find_producer(conv.input[1])
    assert weight_quant.op_type == "Quant"
    assert lowered.get_initializer(weight_quant.input[1]).shape == (12, 1, 1, 1)


# ------------------------------------------------------------------------------------- rejection


def _node_bytes(model: ModelWrapper) -> list[bytes]:
    return [n.SerializeToString() for n in model.graph.node]


# name: (positional args of _conv_transpose_model, keyword args, expected part of the reason)
REJECTED = {
    "group2": ((4, 2, (1, 1, 1, 1), 4, 4, 5, 5), {"group": 2}, "group=2"),
    "group2_k3": ((3, 2, (1, 1, 1, 1), 4, 4, 5, 5), {"group": 2, "output_padding": (1, 1)}, "use group=1"),
    "dynamic_weight": ((4, 2, (1, 1, 1, 1), 2, 2, 5, 5), {"weight_as_input": True}, "not static"),
}


@pytest.mark.parametrize("case", REJECTED.values(), ids=REJECTED.keys())
def test_rejected_nodes_are_left_alone(case):
    args, kwargs, reason_part = case
    model = _conv_transpose_model(*args, **kwargs)
    reason = check_lowerable(model.graph.node[0], model)
    assert reason is not None and reason_part in reason
    lowered = model.transform(LowerConvTransposeToSubPixel())
    assert _node_bytes(lowered) == _node_bytes(model)
    with pytest.raises(ValueError, match="Deconv.*ConvTranspose"):
        model.transform(LowerConvTransposeToSubPixel(strict=True))


def test_other_rejections_give_reasons():
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 2, 2, 5, 5)
    node = model.graph.node[0]
    assert check_lowerable(node, model) is None
    node.attribute.append(helper.make_attribute("output_padding", [1, 1]))
    assert check_lowerable(node, model) is None
    node.attribute.pop()
    node.attribute.append(helper.make_attribute("output_padding", [1, -1]))
    assert "output_padding [1, -1]" in check_lowerable(node, model)
    node.attribute.pop()
    node.attribute.append(helper.make_attribute("dilations", [2, 2]))
    assert "dilations [2, 2] are not supported; use dilation 1" in check_lowerable(node, model)


# ----------------------------------------------------------------------------------------- MACs


@pytest.mark.parametrize("size", [8, 16])
def test_mac_ratio_k4s2p1_is_four(size):
    model = _conv_transpose_model(4, 2, (1, 1, 1, 1), 3, 2, size, size)
    node = model.graph.node[0]
    free, inserted = macs_zero_free(node, model), macs_zero_insertion(node, model)
    assert free == size * size * 3 * 2 * 16
    assert inserted == 4 * free


@pytest.mark.parametrize("k,pads,out_pad,per_axis", [
    (3, (1, 1, 1, 1), (1, 1), lambda n: 3 * n),          # output 2H: every input pixel times every tap
    (5, (2, 2, 2, 2), (1, 1), lambda n: 5 * n),
    (3, (1, 1, 1, 1), (0, 0), lambda n: 3 * n - 2),      # output 2H - 1: the taps of the missing row
    (4, (1, 1, 1, 1), (0, 0), lambda n: 4 * n),
])
def test_useful_macs_count_the_taps_that_meet_real_pixels(k, pads, out_pad, per_axis):
    """Useful MACs: per output pixel, the taps that do not meet an inserted zero (brute force here)."""
    h, w, cin, cout, s = 5, 3, 2, 3, 2
    model = _conv_transpose_model(k, s, pads, cin, cout, h, w, output_padding=out_pad)
    node = model.graph.node[0]
    hout, wout = model.get_tensor_shape("y")[2:]
    brute = sum(1 for y in range(hout) for x in range(wout) for th in range(k) for tw in range(k)
                if (y + pads[0] - th) % s == 0 and (x + pads[1] - tw) % s == 0)
    assert macs_zero_free(node, model) == brute * cin * cout == per_axis(h) * per_axis(w) * cin * cout
    assert macs_zero_insertion(node, model) == hout * wout * k * k * cin * cout


def test_useful_macs_of_one_input_pixel_are_its_taps():
    """The DCGAN stem (1x1 -> 4x4, k4 s1 p0): every tap of the one pixel, nothing of the padding."""
    model = _conv_transpose_model(4, 1, (0, 0, 0, 0), 5, 3, 1, 1)
    assert macs_zero_free(model.graph.node[0], model) == 16 * 5 * 3
