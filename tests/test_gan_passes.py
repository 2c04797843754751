"""Unit tests of the GAN compiler passes on tiny hand-built ONNX graphs.

Every rewrite is checked three ways: the graph computes exactly the same numbers before and after
(inputs and weights are small integers times powers of two, so every float32 sum is exact whatever
order it is evaluated in: outputs are compared with ``np.array_equal``), the nodes and attributes
it leaves behind, and at least one graph the pass must leave alone.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name, qonnx_make_model

from fpga_gan.compiler.passes.hw import (
    InferDuplicateStreams,
    InferStreamingConcat,
    unsupported_nodes,
)
from fpga_gan.compiler.passes.integer_io import (
    FeedInputCodes,
    InputCodes,
    RemoveIdentityThresholds,
    input_codes,
)
from fpga_gan.compiler.passes.layout import MoveTransposePastDataMovement
from fpga_gan.compiler.passes.rounding import (
    NudgeTieThresholds,
    RoundTieThresholdsOnIntegers,
    ties_round_down,
)
from fpga_gan.compiler.passes.tidy import (
    AbsorbPadIntoConv,
    FoldBiasQuant,
    MoveAffinePastDataMovement,
)
from fpga_gan.compiler.passes.upsample import (
    UpsampleConvToConvTranspose,
    resize_conv_weight,
)
from fpga_gan.ops import DOMAIN

QONNX = "qonnx.custom_op.general"
FINN_HW = "finn.custom_op.fpgadataflow"
INT64_MAX = np.iinfo(np.int64).max


# ------------------------------------------------------------------------------------------ helpers


def _vi(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _model(nodes, inputs, outputs, inits=(), value_info=()) -> ModelWrapper:
    """A ModelWrapper; ``inputs`` / ``outputs`` are (name, shape) pairs, ``inits`` (name, array)."""
    graph = helper.make_graph(nodes, "g", [_vi(n, s) for n, s in inputs], [_vi(n, s) for n, s in outputs],
                              value_info=list(value_info))
    model = ModelWrapper(qonnx_make_model(graph))
    for name, value in inits:
        model.set_initializer(name, np.asarray(value, dtype=np.int64 if np.asarray(value).dtype.kind == "i"
                                               else np.float32))
    return model.transform(InferShapes(), cleanup=False)      # keep the input order as built


def _dyadic(rng, shape, lo=-16, hi=16, frac_bits=2) -> np.ndarray:
    """Random k * 2**-frac_bits values: exact in float32, and so are their small sums."""
    return (rng.integers(lo, hi, size=shape) * 2.0 ** -frac_bits).astype(np.float32)


def _run(model: ModelWrapper, feeds: dict) -> np.ndarray:
    out = execute_onnx(copy.deepcopy(model), feeds)
    return out[model.graph.output[0].name]


def _ops(model: ModelWrapper) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _attr(node, name):
    a = get_by_name(node.attribute, name)
    if a is None:
        return None
    v = helper.get_attribute_value(a)
    return v.decode() if isinstance(v, bytes) else v


def _node(model: ModelWrapper, op_type: str):
    found = [n for n in model.graph.node if n.op_type == op_type]
    assert len(found) == 1, (op_type, _ops(model))
    return found[0]


def _quant(inputs, output, name, *, signed=1, narrow=0, rounding_mode="ROUND"):
    return helper.make_node("Quant", list(inputs), [output], domain=QONNX, name=name, signed=signed,
                            narrow=narrow, rounding_mode=rounding_mode)


def _assert_same(before: ModelWrapper, after: ModelWrapper, feeds: dict) -> np.ndarray:
    ref = _run(before, feeds)
    got = _run(after, feeds)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)
    return ref


def _serialized(model: ModelWrapper) -> bytes:
    return model.model.SerializeToString()


def _assert_untouched(model: ModelWrapper, transformation) -> None:
    """The pass itself (not ModelWrapper.transform's cleanup) reports no change and changes nothing."""
    work = copy.deepcopy(model)
    before = _serialized(work)
    out, changed = transformation.apply(work)
    assert not changed
    assert _serialized(out) == before


@pytest.fixture(scope="module", autouse=True)
def _finn_settings():
    from finn.util.settings import initialize_dummy_settings

    initialize_dummy_settings()


# ------------------------------------------------------------------------- upsample -> ConvTranspose


def _resize_conv_model(*, s, k, p, cin=2, cout=3, h=3, w=4, per_channel=True, bias=False, ctm="asymmetric",
                       consumer="Conv", seed=0):
    rng = np.random.default_rng(seed)
    w_codes = rng.integers(-8, 8, size=(cout, cin, k, k)).astype(np.float32)
    scale = (2.0 ** -rng.integers(0, 3, size=(cout, 1, 1, 1))).astype(np.float32) if per_channel \
        else np.float32(0.25)
    ho, wo = s * h + 2 * p - k + 1, s * w + 2 * p - k + 1
    nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["up"], name="Up", mode="nearest",
                              coordinate_transformation_mode=ctm, nearest_mode="floor")]
    inits = [("roi", np.zeros(0, np.float32)), ("scales", np.array([1, 1, s, s], np.float32))]
    if consumer == "Conv":
        nodes.append(_quant(["w_f", "w_s", "w_z", "w_b"], "w_q", "WeightQuant"))
        inits += [("w_f", w_codes * scale), ("w_s", scale), ("w_z", np.float32(0)), ("w_b", np.float32(4))]
        conv_in = ["up", "w_q"]
        if bias:
            conv_in.append("bias")
            inits.append(("bias", _dyadic(rng, (cout,))))
        nodes.append(helper.make_node("Conv", conv_in, ["y"], name="Conv0", kernel_shape=[k, k], pads=[p] * 4))
        out_shape = (1, cout, ho, wo)
    else:
        nodes.append(helper.make_node("Relu", ["up"], ["y"], name="Relu0"))
        out_shape = (1, cin, s * h, s * w)
    return _model(nodes, [("x", (1, cin, h, w))], [("y", out_shape)], inits)


@pytest.mark.parametrize("s,k,p,bias", [(2, 3, 1, True), (2, 1, 0, False), (3, 3, 1, False), (2, 5, 0, True)])
def test_upsample_conv_becomes_exact_conv_transpose(s, k, p, bias):
    model = _resize_conv_model(s=s, k=k, p=p, bias=bias)
    after = copy.deepcopy(model).transform(UpsampleConvToConvTranspose())

    assert sorted(_ops(after)) == ["ConvTranspose", "Quant"]
    deconv, wq = _node(after, "ConvTranspose"), _node(after, "Quant")
    kk, pp = k + s - 1, k - 1 - p
    assert _attr(deconv, "kernel_shape") == [kk, kk]
    assert _attr(deconv, "strides") == [s, s]
    assert _attr(deconv, "pads") == [pp] * 4
    assert list(deconv.input[:2]) == ["x", wq.output[0]]
    assert list(deconv.input[2:]) == (["bias"] if bias else [])
    assert list(deconv.output) == ["y"]
    # integer codes summed: the bit width grows by 2*ceil(log2 s), the per-channel scale moves to axis 1
    assert float(after.get_initializer(wq.input[3])) == 4 + 2 * int(np.ceil(np.log2(s)))
    assert _attr(wq, "signed") == 1 and _attr(wq, "narrow") == 0 and _attr(wq, "rounding_mode") == "ROUND"
    new_scale = after.get_initializer(wq.input[1])
    assert new_scale.shape == (1, 3, 1, 1)
    old_scale = model.get_initializer("w_s")
    assert np.array_equal(new_scale.reshape(-1), old_scale.reshape(-1))
    codes = after.get_initializer(wq.input[0]) / new_scale
    old_codes = model.get_initializer("w_f") / old_scale
    assert np.array_equal(codes, resize_conv_weight(old_codes, s))
    assert after.get_tensor_shape("y") == model.get_tensor_shape("y")

    rng = np.random.default_rng(1)
    for _ in range(3):
        _assert_same(model, after, {"x": _dyadic(rng, (1, 2, 3, 4))})


def test_upsample_conv_per_tensor_scale_and_shared_weight_quant():
    model = _resize_conv_model(s=2, k=3, p=1, per_channel=False)
    after = copy.deepcopy(model).transform(UpsampleConvToConvTranspose())
    wq = _node(after, "Quant")
    assert after.get_initializer(wq.input[1]).size == 1
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(2), (1, 2, 3, 4))})

    # a weight Quant read by a second Conv stays for that one
    model.graph.node.append(helper.make_node("Conv", ["x", "w_q"], ["y2"], name="Conv1", kernel_shape=[3, 3],
                                             pads=[1, 1, 1, 1]))
    model.graph.output.append(_vi("y2", (1, 3, 3, 4)))
    after = copy.deepcopy(model).transform(UpsampleConvToConvTranspose())
    assert sorted(_ops(after)) == ["Conv", "ConvTranspose", "Quant", "Quant"]
    feeds = {"x": _dyadic(np.random.default_rng(3), (1, 2, 3, 4))}
    ref, got = execute_onnx(copy.deepcopy(model), feeds), execute_onnx(copy.deepcopy(after), feeds)
    for name in ("y", "y2"):
        assert np.array_equal(ref[name], got[name])


@pytest.mark.parametrize("case", ["half_pixel", "not_conv", "strided_conv", "scale_1", "float_weight"])
def test_upsample_conv_left_alone(case):
    if case == "half_pixel":
        model = _resize_conv_model(s=2, k=3, p=1, ctm="half_pixel")
    elif case == "not_conv":
        model = _resize_conv_model(s=2, k=3, p=1, consumer="Relu")
    else:
        model = _resize_conv_model(s=2, k=3, p=1)
        if case == "strided_conv":
            conv = _node(model, "Conv")
            conv.attribute.append(helper.make_attribute("strides", [2, 2]))
            model = model.transform(InferShapes())
        elif case == "scale_1":
            model.set_initializer("scales", np.array([1, 1, 1, 1], np.float32))
            model = model.transform(InferShapes())
        else:                                            # weight not from a Quant node
            model.graph.node.remove(_node(model, "Quant"))
            model.set_initializer("w_q", model.get_initializer("w_f"))
    _assert_untouched(model, UpsampleConvToConvTranspose())
    assert "ConvTranspose" not in _ops(copy.deepcopy(model).transform(UpsampleConvToConvTranspose()))


@pytest.mark.parametrize("s,k,p", [(2, 3, 1), (2, 1, 0), (3, 3, 1), (2, 4, 2), (3, 2, 0), (4, 5, 2)])
def test_resize_conv_weight_matches_torch(s, k, p):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    gen = torch.Generator().manual_seed(s * 100 + k * 10 + p)
    x = torch.randn(2, 3, 5, 4, generator=gen, dtype=torch.float64)
    w = torch.randn(4, 3, k, k, generator=gen, dtype=torch.float64)
    ref = F.conv2d(F.interpolate(x, scale_factor=s, mode="nearest"), w, padding=p)
    wt = torch.from_numpy(resize_conv_weight(w.numpy(), s))
    assert tuple(wt.shape) == (3, 4, k + s - 1, k + s - 1)
    got = F.conv_transpose2d(x, wt, stride=s, padding=k - 1 - p)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=0, atol=1e-12)
    # integer weights: exact
    wi = torch.randint(-8, 8, (4, 3, k, k), generator=gen).double()
    xi = torch.randint(-8, 8, (1, 3, 5, 4), generator=gen).double()
    ref = F.conv2d(F.interpolate(xi, scale_factor=s, mode="nearest"), wi, padding=p)
    got = F.conv_transpose2d(xi, torch.from_numpy(resize_conv_weight(wi.numpy(), s)), stride=s, padding=k - 1 - p)
    assert torch.equal(got, ref)


# ------------------------------------------------------------------------------------- FoldBiasQuant


def _bias_quant_model(*, scale=0.125, bits=16.0, quant_on="bias"):
    rng = np.random.default_rng(4)
    b = rng.normal(size=(3,)).astype(np.float32)                     # deliberately off the grid
    wv = rng.integers(-4, 4, size=(3, 2, 3, 3)).astype(np.float32)
    if quant_on == "bias":
        nodes = [_quant(["b_f", "b_s", "b_z", "b_b"], "b_q", "BiasQuant"),
                 helper.make_node("Conv", ["x", "w", "b_q"], ["y"], name="Conv0", kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1])]
        inits = [("b_f", b), ("w", wv)]
    else:                                                              # the weight's Quant
        nodes = [_quant(["b_f", "b_s", "b_z", "b_b"], "w_q", "WeightQuant"),
                 helper.make_node("Conv", ["x", "w_q", "bias"], ["y"], name="Conv0", kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1])]
        inits = [("b_f", wv * 0.5), ("bias", b)]
    inits += [("b_s", np.float32(scale)), ("b_z", np.float32(0)), ("b_b", np.float32(bits))]
    return _model(nodes, [("x", (1, 2, 4, 4))], [("y", (1, 3, 4, 4))], inits)


def test_fold_bias_quant():
    model = _bias_quant_model()
    after = copy.deepcopy(model).transform(FoldBiasQuant())
    assert _ops(after) == ["Conv"]
    folded = after.get_initializer("b_q")
    expected = np.round(model.get_initializer("b_f") / 0.125) * 0.125
    assert np.array_equal(folded, expected.astype(np.float32))
    assert not np.array_equal(folded, model.get_initializer("b_f"))    # the rounding really happened
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(5), (1, 2, 4, 4))})


def test_fold_bias_quant_clips_to_bit_width():
    model = _bias_quant_model(scale=0.5, bits=2.0)                   # signed 2 bit: codes -2..1
    after = copy.deepcopy(model).transform(FoldBiasQuant())
    folded = after.get_initializer("b_q")
    assert set(np.unique(folded / 0.5)) <= {-2.0, -1.0, 0.0, 1.0}
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(6), (1, 2, 4, 4))})


def test_fold_bias_quant_leaves_weight_and_activation_quants():
    model = _bias_quant_model(quant_on="weight")
    _assert_untouched(model, FoldBiasQuant())
    # an activation Quant (input not constant) stays too
    act = _model([_quant(["x", "s", "z", "b"], "y", "ActQuant")], [("x", (1, 4))], [("y", (1, 4))],
                 [("s", np.float32(0.5)), ("z", np.float32(0)), ("b", np.float32(4))])
    assert _ops(act.transform(FoldBiasQuant())) == ["Quant"]


# ---------------------------------------------------------------------------------- AbsorbPadIntoConv


def _pad_conv_model(pads, *, value=None, conv_pads=(1, 1, 1, 1), mode=None):
    rng = np.random.default_rng(7)
    h, w = 4, 5
    ph, pw = h + pads[2] + pads[6], w + pads[3] + pads[7]
    cin = 2 + pads[1] + pads[5]
    pad_in = ["x", "pads"] + (["value"] if value is not None else [])
    kw = {"mode": mode} if mode else {}
    nodes = [helper.make_node("Pad", pad_in, ["xp"], name="Pad0", **kw),
             helper.make_node("Conv", ["xp", "w"], ["y"], name="Conv0", kernel_shape=[3, 3], pads=list(conv_pads))]
    ho = ph + conv_pads[0] + conv_pads[2] - 2
    wo = pw + conv_pads[1] + conv_pads[3] - 2
    inits = [("pads", np.array(pads, np.int64)), ("w", rng.integers(-4, 4, size=(3, cin, 3, 3)).astype(np.float32))]
    if value is not None:
        inits.append(("value", np.float32(value)))
    return _model(nodes, [("x", (1, 2, h, w))], [("y", (1, 3, ho, wo))], inits)


@pytest.mark.parametrize("pads,value,conv_pads", [
    ([0, 0, 1, 2, 0, 0, 2, 1], None, (1, 1, 1, 1)),
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.0, (0, 0, 0, 0)),
    ([0, 0, 0, 3, 0, 0, 2, 0], 0.0, (1, 0, 0, 1)),
])
def test_absorb_pad_into_conv(pads, value, conv_pads):
    model = _pad_conv_model(pads, value=value, conv_pads=conv_pads)
    after = copy.deepcopy(model).transform(AbsorbPadIntoConv())
    assert _ops(after) == ["Conv"]
    conv = after.graph.node[0]
    assert conv.input[0] == "x"
    assert _attr(conv, "pads") == [conv_pads[0] + pads[2], conv_pads[1] + pads[3],
                                   conv_pads[2] + pads[6], conv_pads[3] + pads[7]]
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(8), (1, 2, 4, 5))})


def test_absorb_pad_into_conv_without_conv_pads_attribute():
    model = _pad_conv_model([0, 0, 1, 1, 0, 0, 1, 1], conv_pads=(0, 0, 0, 0))
    conv = _node(model, "Conv")
    conv.attribute.remove(get_by_name(conv.attribute, "pads"))
    after = copy.deepcopy(model).transform(AbsorbPadIntoConv())
    assert _ops(after) == ["Conv"] and _attr(after.graph.node[0], "pads") == [1, 1, 1, 1]
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(9), (1, 2, 4, 5))})


@pytest.mark.parametrize("case", ["nonzero_value", "channel_pad", "batch_pad", "reflect", "not_conv"])
def test_absorb_pad_left_alone(case):
    if case == "nonzero_value":
        model = _pad_conv_model([0, 0, 1, 1, 0, 0, 1, 1], value=1.0)
    elif case == "channel_pad":
        model = _pad_conv_model([0, 1, 1, 1, 0, 0, 1, 1])
    elif case == "batch_pad":
        model = _pad_conv_model([1, 0, 1, 1, 0, 0, 1, 1])
        model.set_tensor_shape("y", [2, 3, 6, 7])
        model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 2
    elif case == "reflect":
        model = _pad_conv_model([0, 0, 1, 1, 0, 0, 1, 1], mode="reflect")
    else:
        model = _model([helper.make_node("Pad", ["x", "pads"], ["y"], name="Pad0")], [("x", (1, 2, 4, 5))],
                       [("y", (1, 2, 6, 7))], [("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    _assert_untouched(model, AbsorbPadIntoConv())
    assert "Pad" in _ops(copy.deepcopy(model).transform(AbsorbPadIntoConv()))


# ------------------------------------------------------------------------- MoveAffinePastDataMovement


def _affine_d2s_model(param, *, op="Mul", mode="CRD", block=2, c=3, h=2, w=3, param_first=False):
    cbb = c * block * block
    ins = ["p", "x"] if param_first else ["x", "p"]
    nodes = [helper.make_node(op, ins, ["a"], name="Affine"),
             helper.make_node("DepthToSpace", ["a"], ["y"], name="D2S", blocksize=block, mode=mode)]
    return _model(nodes, [("x", (1, cbb, h, w))], [("y", (1, c, h * block, w * block))], [("p", param)])


def _affine_slice_model(param, *, op="Add", axes=(2, 3), starts=(1, 0), ends=(-1, INT64_MAX)):
    shape = (1, 3, 5, 6)
    out = list(shape)
    for a, s, e in zip(axes, starts, ends):
        a = a % 4
        n = shape[a]
        s2 = s + n if s < 0 else s
        e2 = n if e == INT64_MAX else (e + n if e < 0 else min(e, n))
        out[a] = e2 - s2
    nodes = [helper.make_node(op, ["x", "p"], ["a"], name="Affine"),
             helper.make_node("Slice", ["a", "starts", "ends", "axes"], ["y"], name="Crop0")]
    inits = [("p", param), ("starts", np.array(starts, np.int64)), ("ends", np.array(ends, np.int64)),
             ("axes", np.array(axes, np.int64))]
    return _model(nodes, [("x", shape)], [("y", out)], inits)


@pytest.mark.parametrize("op", ["Mul", "Add"])
@pytest.mark.parametrize("param_first", [False, True])
def test_move_per_channel_affine_past_depth_to_space(op, param_first):
    per_out = np.array([0.5, -2.0, 0.25], np.float32)
    param = np.repeat(per_out, 4).reshape(1, 12, 1, 1)                 # b*b equal phases per channel
    model = _affine_d2s_model(param, op=op, param_first=param_first)
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert _ops(after) == ["DepthToSpace", op]
    d2s, affine = after.graph.node
    assert d2s.input[0] == "x" and affine.output[0] == "y"
    params = [i for i in affine.input if after.get_initializer(i) is not None]
    assert len(params) == 1 and d2s.output[0] in affine.input
    new_param = after.get_initializer(params[0])
    assert new_param.shape == (1, 3, 1, 1)
    assert np.array_equal(new_param.reshape(-1), per_out)
    assert after.get_tensor_shape(d2s.output[0]) == [1, 3, 4, 6]
    rng = np.random.default_rng(10)
    _assert_same(model, after, {"x": _dyadic(rng, (1, 12, 2, 3))})


def test_move_scalar_and_3d_param_past_depth_to_space():
    model = _affine_d2s_model(np.float32(0.75))
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert _ops(after) == ["DepthToSpace", "Mul"]
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(11), (1, 12, 2, 3))})

    param = np.repeat(np.array([1.0, 2.0, -3.0], np.float32), 4).reshape(12, 1, 1)
    model = _affine_d2s_model(param, op="Add")
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert _ops(after) == ["DepthToSpace", "Add"]
    assert after.get_initializer(after.graph.node[1].input[1]).shape == (1, 3, 1, 1)
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(12), (1, 12, 2, 3))})


def test_move_affine_through_depth_to_space_then_slice():
    """Applied to a fixed point, a per-channel Mul travels below DepthToSpace and the crop."""
    per_out = np.array([0.5, -2.0, 0.25], np.float32)
    nodes = [helper.make_node("Mul", ["x", "p"], ["a"], name="Affine"),
             helper.make_node("DepthToSpace", ["a"], ["d"], name="D2S", blocksize=2, mode="CRD"),
             helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["y"], name="Crop0")]
    model = _model(nodes, [("x", (1, 12, 3, 3))], [("y", (1, 3, 4, 4))],
                   [("p", np.repeat(per_out, 4).reshape(1, 12, 1, 1)), ("starts", np.array([1, 1], np.int64)),
                    ("ends", np.array([-1, -1], np.int64)), ("axes", np.array([2, 3], np.int64))])
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert _ops(after) == ["DepthToSpace", "Slice", "Mul"]
    assert after.graph.node[-1].output[0] == "y"
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(13), (1, 12, 3, 3))})


@pytest.mark.parametrize("param,op", [
    (np.float32(-1.5), "Add"),
    (np.array([0.5], np.float32), "Mul"),
    (np.array([0.5, 2.0, -1.0], np.float32).reshape(1, 3, 1, 1), "Mul"),
])
def test_move_affine_past_spatial_slice(param, op):
    model = _affine_slice_model(param, op=op)
    after = copy.deepcopy(model).transform(MoveAffinePastDataMovement())
    assert _ops(after) == ["Slice", op]
    sl, affine = after.graph.node
    assert sl.input[0] == "x" and affine.input[0] == sl.output[0] and affine.output[0] == "y"
    assert after.get_tensor_shape(sl.output[0]) == [1, 3, 3, 6]
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(14), (1, 3, 5, 6))})


@pytest.mark.parametrize("case", ["unequal_phases", "dcr", "channel_slice", "spatial_param_slice",
                                  "dynamic_param", "fork"])
def test_move_affine_left_alone(case):
    if case == "unequal_phases":
        param = np.repeat(np.array([0.5, -2.0, 0.25], np.float32), 4)
        param[5] = 1.0
        model = _affine_d2s_model(param.reshape(1, 12, 1, 1))
    elif case == "dcr":
        model = _affine_d2s_model(np.repeat(np.array([0.5, -2.0, 0.25], np.float32), 4).reshape(1, 12, 1, 1),
                                  mode="DCR")
    elif case == "channel_slice":
        model = _affine_slice_model(np.float32(2.0), axes=(1,), starts=(0,), ends=(2,))
    elif case == "spatial_param_slice":                              # parameter varies along W
        model = _affine_slice_model(np.arange(6, dtype=np.float32).reshape(1, 1, 1, 6))
    elif case == "dynamic_param":
        nodes = [helper.make_node("Mul", ["x", "x2"], ["a"], name="Affine"),
                 helper.make_node("DepthToSpace", ["a"], ["y"], name="D2S", blocksize=2, mode="CRD")]
        model = _model(nodes, [("x", (1, 4, 2, 2)), ("x2", (1, 4, 2, 2))], [("y", (1, 1, 4, 4))])
    else:                                                           # Mul output read twice
        model = _affine_d2s_model(np.float32(0.5))
        model.graph.node.append(helper.make_node("Relu", ["a"], ["y2"], name="Relu0"))
        model.graph.output.append(_vi("y2", (1, 12, 2, 3)))
    _assert_untouched(model, MoveAffinePastDataMovement())


# ------------------------------------------------------------------- MoveTransposePastDataMovement


def _transpose_d2s_crop_model(*, mode="CRD", dtype="UINT4", c=2, block=2, h=3, w=4,
                              starts=(1, 0), ends=(-1, INT64_MAX), axes=(2, 3)):
    """NHWC x -> Transpose(NHWC -> NCHW) -> DepthToSpace -> spatial Slice."""
    x_shape = (1, h, w, c * block * block)
    hb, wb = h * block, w * block
    out = [1, c, hb, wb]
    for a, s, e in zip(axes, starts, ends):
        n = out[a]
        s2 = s + n if s < 0 else s
        e2 = n if e == INT64_MAX else (e + n if e < 0 else min(e, n))
        out[a] = e2 - s2
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="ToNCHW", perm=[0, 3, 1, 2]),
             helper.make_node("DepthToSpace", ["xt"], ["d"], name="D2S", blocksize=block, mode=mode),
             helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["y"], name="Crop0")]
    inits = [("starts", np.array(starts, np.int64)), ("ends", np.array(ends, np.int64)),
             ("axes", np.array(axes, np.int64))]
    model = _model(nodes, [("x", x_shape)], [("y", out)], inits)
    model.set_tensor_datatype("x", DataType[dtype])
    model = model.transform(InferDataTypes())
    # qonnx's InferDataTypes does not see through a standard DepthToSpace (FLOAT32); the sub-pixel
    # lowering annotates its output with the convolution's datatype, as done here
    model.set_tensor_datatype("d", DataType[dtype])
    return model.transform(InferDataTypes()), x_shape


def _codes(rng, dtype: str, shape) -> np.ndarray:
    dt = DataType[dtype]
    return rng.integers(int(dt.min()), int(dt.max()) + 1, size=shape).astype(np.float32)


@pytest.mark.parametrize("dtype,starts,ends", [
    ("UINT4", (1, 0), (-1, INT64_MAX)),
    ("INT8", (0, 2), (5, 7)),
    ("INT4", (2, -3), (INT64_MAX, -1)),
])
def test_move_transpose_past_depth_to_space_and_crop(dtype, starts, ends):
    model, x_shape = _transpose_d2s_crop_model(dtype=dtype, starts=starts, ends=ends)
    after = copy.deepcopy(model).transform(MoveTransposePastDataMovement())

    assert _ops(after) == ["DepthToSpace", "Crop", "Transpose"]
    d2s, crop, tr = after.graph.node
    assert d2s.domain == DOMAIN and crop.domain == FINN_HW
    assert _attr(d2s, "backend") == "fpgadataflow" and _attr(crop, "backend") == "fpgadataflow"
    assert d2s.input[0] == "x" and crop.input[0] == d2s.output[0] and tr.input[0] == crop.output[0]
    assert tr.output[0] == "y" and _attr(tr, "perm") == [0, 3, 1, 2]
    assert _attr(d2s, "ImgDim") == [3, 4] and _attr(d2s, "NumChannels") == 2 and _attr(d2s, "BlockSize") == 2
    assert _attr(d2s, "inputDataType") == dtype
    hb, wb = 6, 8
    s_h, s_w = (s + n if s < 0 else s for s, n in zip(starts, (hb, wb)))
    e_h, e_w = (n if e == INT64_MAX else (e + n if e < 0 else e) for e, n in zip(ends, (hb, wb)))
    assert _attr(crop, "ImgDim") == [hb, wb] and _attr(crop, "NumChannels") == 2
    assert (_attr(crop, "CropNorth"), _attr(crop, "CropSouth")) == (s_h, hb - e_h)
    assert (_attr(crop, "CropWest"), _attr(crop, "CropEast")) == (s_w, wb - e_w)
    assert after.get_tensor_shape(d2s.output[0]) == [1, hb, wb, 2]
    assert after.get_tensor_shape(crop.output[0]) == [1, e_h - s_h, e_w - s_w, 2]
    assert _attr(crop, "DataType") == dtype
    for name in (d2s.output[0], crop.output[0], "y"):
        assert after.get_tensor_datatype(name) == DataType[dtype]

    rng = np.random.default_rng(15)
    for _ in range(2):
        _assert_same(model, after, {"x": _codes(rng, dtype, x_shape)})


def test_move_transpose_past_crop_keeps_datatype():
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="ToNCHW", perm=[0, 3, 1, 2]),
             helper.make_node("Slice", ["xt", "starts", "ends", "axes"], ["y"], name="Crop0")]
    model = _model(nodes, [("x", (1, 5, 6, 3))], [("y", (1, 3, 3, 4))],
                   [("starts", np.array([1, 1], np.int64)), ("ends", np.array([4, 5], np.int64)),
                    ("axes", np.array([-2, -1], np.int64))])
    model.set_tensor_datatype("x", DataType["INT8"])
    model = model.transform(InferDataTypes())
    after = copy.deepcopy(model).transform(MoveTransposePastDataMovement())
    assert _ops(after) == ["Crop", "Transpose"]
    crop = after.graph.node[0]
    assert _attr(crop, "DataType") == "INT8" and after.get_tensor_datatype(crop.output[0]) == DataType["INT8"]
    assert (_attr(crop, "CropNorth"), _attr(crop, "CropSouth"), _attr(crop, "CropWest"), _attr(crop, "CropEast")) \
        == (1, 1, 1, 1)
    assert _attr(crop, "numInputVectors") == [1]
    _assert_same(model, after, {"x": _codes(np.random.default_rng(21), "INT8", (1, 5, 6, 3))})


@pytest.mark.parametrize("case", ["perm", "dcr", "channel_slice", "strided_slice"])
def test_move_transpose_left_alone(case):
    if case == "perm":
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="SwapHW", perm=[0, 1, 3, 2]),
                 helper.make_node("DepthToSpace", ["xt"], ["d"], name="D2S", blocksize=2, mode="CRD"),
                 helper.make_node("Slice", ["d", "starts", "ends", "axes"], ["y"], name="Crop0")]
        model = _model(nodes, [("x", (1, 8, 4, 3))], [("y", (1, 2, 4, 8))],
                       [("starts", np.array([1, 0], np.int64)), ("ends", np.array([-1, INT64_MAX], np.int64)),
                        ("axes", np.array([2, 3], np.int64))])
        model.set_tensor_datatype("x", DataType["UINT4"])
    elif case == "dcr":
        model, _ = _transpose_d2s_crop_model(mode="DCR")
    elif case == "channel_slice":
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="ToNCHW", perm=[0, 3, 1, 2]),
                 helper.make_node("Slice", ["xt", "starts", "ends", "axes"], ["y"], name="Crop0")]
        model = _model(nodes, [("x", (1, 3, 4, 5))], [("y", (1, 2, 3, 4))],
                       [("starts", np.array([0], np.int64)), ("ends", np.array([2], np.int64)),
                        ("axes", np.array([1], np.int64))])
        model.set_tensor_datatype("x", DataType["UINT4"])
    else:
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="ToNCHW", perm=[0, 3, 1, 2]),
                 helper.make_node("Slice", ["xt", "starts", "ends", "axes", "steps"], ["y"], name="Crop0")]
        model = _model(nodes, [("x", (1, 4, 6, 2))], [("y", (1, 2, 2, 6))],
                       [("starts", np.array([0], np.int64)), ("ends", np.array([4], np.int64)),
                        ("axes", np.array([2], np.int64)), ("steps", np.array([2], np.int64))])
        model.set_tensor_datatype("x", DataType["UINT4"])
    _assert_untouched(model, MoveTransposePastDataMovement())


def test_move_transpose_stops_at_dcr_after_crop_moved():
    """DCR DepthToSpace stays NCHW, a spatial Slice directly after a Transpose still moves."""
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="ToNCHW", perm=[0, 3, 1, 2]),
             helper.make_node("Slice", ["xt", "starts", "ends", "axes"], ["s"], name="Crop0"),
             helper.make_node("DepthToSpace", ["s"], ["y"], name="D2S", blocksize=2, mode="DCR")]
    model = _model(nodes, [("x", (1, 5, 4, 8))], [("y", (1, 2, 6, 8))],
                   [("starts", np.array([1, 0], np.int64)), ("ends", np.array([4, 4], np.int64)),
                    ("axes", np.array([2, 3], np.int64))])
    model.set_tensor_datatype("x", DataType["INT4"])
    model = model.transform(InferDataTypes())
    after = copy.deepcopy(model).transform(MoveTransposePastDataMovement())
    assert _ops(after) == ["Crop", "Transpose", "DepthToSpace"]
    assert after.graph.node[2].domain == ""
    _assert_same(model, after, {"x": _codes(np.random.default_rng(16), "INT4", (1, 5, 4, 8))})


# ------------------------------------------------------------- MoveQuantChainAboveDepthToSpace


def _shuffle_model(*, mode: str, bias: np.ndarray, wscale: np.ndarray, slope: np.ndarray) -> ModelWrapper:
    """INT4 codes x (1, 2, 3, 4) -> Conv(Quant(w), bias) 8 ch -> DepthToSpace(2, mode) -> PRelu(slope)
    -> Quant(4 bit, 0.25) -> y (1, 2, 6, 8): a biased per-channel conv in front of a PixelShuffle."""
    rng = np.random.default_rng(3)
    nodes = [_quant(["w_f", "w_s", "w_z", "w_b"], "w_q", "WeightQuant"),
             helper.make_node("Conv", ["x", "w_q", "b"], ["acc"], name="Conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["acc"], ["d"], name="Shuffle", blocksize=2, mode=mode),
             helper.make_node("PRelu", ["d", "slope"], ["p"], name="PReLU"),
             _quant(["p", "q_s", "q_z", "q_b"], "y", "ActQuant")]
    model = _model(nodes, [("x", (1, 2, 3, 4))], [("y", (1, 2, 6, 8))], inits=[
        ("w_f", rng.normal(size=(8, 2, 3, 3)) * wscale * 4), ("w_s", wscale), ("w_z", 0.0), ("w_b", 4.0),
        ("b", bias), ("slope", slope), ("q_s", 0.25), ("q_z", 0.0), ("q_b", 4.0)])
    model.set_tensor_datatype("x", DataType["INT4"])
    return model


# a value per channel AND phase; power-of-two weight scales keep the convolution's float sums exact
_PHASE_BIAS = (np.arange(8, dtype=np.float32) - 3.5) * 0.375
_PHASE_SCALE = (2.0 ** -np.array([1, 2, 3, 1, 2, 3, 4, 2], np.float32)).reshape(8, 1, 1, 1)


def _shuffle_feeds(seed: int) -> dict:
    return {"x": np.random.default_rng(seed).integers(-8, 8, size=(1, 2, 3, 4)).astype(np.float32)}


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
@pytest.mark.parametrize("slope", [np.array([[[0.25]]]), np.array([0.25, 0.125]).reshape(2, 1, 1)],
                         ids=["shared_slope", "per_channel_slope"])
def test_quant_chain_moves_above_a_pixel_shuffle_and_becomes_thresholds(mode, slope):
    from fpga_gan.compiler.passes.pixel_shuffle import MoveQuantChainAboveDepthToSpace
    from fpga_gan.compiler.passes.thresholds import ExactQuantThresholds

    model = _shuffle_model(mode=mode, bias=_PHASE_BIAS, wscale=_PHASE_SCALE, slope=slope.astype(np.float32))
    moved = copy.deepcopy(model).transform(MoveQuantChainAboveDepthToSpace())
    assert _ops(moved) == ["Quant", "Conv", "PRelu", "Quant", "DepthToSpace"]
    assert _node(moved, "DepthToSpace").output[0] == "y"
    new_slope = moved.get_initializer(_node(moved, "PRelu").input[1])
    if slope.size > 1:       # output channel c is input channels 4c..4c+3 (CRD) or c, c+2, ... (DCR)
        expected = np.repeat(slope.reshape(2), 4) if mode == "CRD" else np.tile(slope.reshape(2), 4)
        np.testing.assert_array_equal(new_slope.reshape(8), expected)
    thresholded = copy.deepcopy(moved).transform(ExactQuantThresholds())
    ops = _ops(thresholded)
    assert "PRelu" not in ops and ops.index("MultiThreshold") < ops.index("DepthToSpace")
    for seed in range(4):
        feeds = _shuffle_feeds(seed)
        ref = _assert_same(model, moved, feeds)
        assert np.array_equal(_run(thresholded, feeds), ref)


def test_quant_chain_behind_a_phase_uniform_pixel_shuffle_stays():
    """Bias and scale shared by the phases of each output channel: the thresholds can sit behind
    the DepthToSpace (4x fewer), so the pass leaves the graph alone."""
    from fpga_gan.compiler.passes.pixel_shuffle import MoveQuantChainAboveDepthToSpace

    model = _shuffle_model(mode="CRD", bias=np.repeat(np.array([0.5, -0.75], np.float32), 4),
                           wscale=np.float32(0.125), slope=np.array([[[0.25]]], np.float32))
    _assert_untouched(model, MoveQuantChainAboveDepthToSpace())


def test_quant_chain_with_a_second_reader_stays():
    from fpga_gan.compiler.passes.pixel_shuffle import MoveQuantChainAboveDepthToSpace

    model = _shuffle_model(mode="CRD", bias=_PHASE_BIAS, wscale=_PHASE_SCALE, slope=np.array([[[0.25]]], np.float32))
    model.graph.output.append(_vi("p", (1, 2, 6, 8)))          # the float PReLU output is read as well
    _assert_untouched(model, MoveQuantChainAboveDepthToSpace())


def test_param_before_depth_to_space():
    from fpga_gan.compiler.passes.pixel_shuffle import param_before_depth_to_space

    p = np.array([1.0, 2.0, 3.0], np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(param_before_depth_to_space(p, 3, 2, "CRD").reshape(-1), np.repeat([1, 2, 3], 4))
    np.testing.assert_array_equal(param_before_depth_to_space(p, 3, 2, "DCR").reshape(-1), np.tile([1, 2, 3], 4))
    assert param_before_depth_to_space(np.float32(2.0), 3, 2, "CRD") == 2.0
    assert param_before_depth_to_space(np.ones((1, 3, 2, 1), np.float32), 3, 2, "CRD") is None   # spatial
    assert param_before_depth_to_space(np.ones(3, np.float32), 3, 2, "CRD", vector=True).shape == (12,)


# ------------------------------------------------------------------------------------ integer I/O


def _identity_thresholds(dtype: str, channels: int) -> tuple[np.ndarray, float]:
    dt = DataType[dtype]
    t = np.arange(dt.min(), dt.max(), dtype=np.float32) + 0.5           # between consecutive codes
    return np.tile(t, (channels, 1)), float(dt.min())


def _mt_model(thresholds, *, dtype, out_bias, out_scale=1.0, c=2, tail=True, out_dtype=None):
    out_dtype = out_dtype or dtype
    nodes = [helper.make_node("MultiThreshold", ["x", "thr"], ["m"] if tail else ["y"], domain=QONNX,
                              name="MT0", out_dtype=out_dtype, out_scale=out_scale, out_bias=out_bias)]
    if tail:
        nodes.append(helper.make_node("Mul", ["m", "half"], ["y"], name="OutScale"))
    inits = [("thr", thresholds)] + ([("half", np.float32(0.5))] if tail else [])
    model = _model(nodes, [("x", (1, c, 4, 4))], [("y", (1, c, 4, 4))], inits)
    model.set_tensor_datatype("x", DataType[dtype])
    return model


@pytest.mark.parametrize("dtype,channels", [("INT8", 2), ("UINT4", 2), ("UINT4", 1), ("INT2", 2)])
def test_remove_identity_thresholds(dtype, channels):
    thr, bias = _identity_thresholds(dtype, channels)
    model = _mt_model(thr, dtype=dtype, out_bias=bias)
    after = copy.deepcopy(model).transform(RemoveIdentityThresholds())
    assert _ops(after) == ["Mul"]
    assert after.graph.node[0].input[0] == "x"
    rng = np.random.default_rng(17)
    for _ in range(3):
        _assert_same(model, after, {"x": _codes(rng, dtype, (1, 2, 4, 4))})


@pytest.mark.parametrize("case", ["off_by_one", "one_channel_differs", "float_input", "graph_output",
                                  "shifted_bias", "scaled"])
def test_identity_thresholds_kept(case):
    dtype = "UINT4"
    thr, bias = _identity_thresholds(dtype, 2)
    kw = {}
    if case == "off_by_one":
        thr[:, 3] += 1.0                                              # code 4 -> 3
    elif case == "one_channel_differs":
        thr[1, -1] = 100.0                                           # channel 1 saturates at 14
    elif case == "shifted_bias":
        bias += 1.0
    elif case == "scaled":
        kw["out_scale"] = 2.0
    model = _mt_model(thr, dtype=dtype, out_bias=bias, tail=case != "graph_output", **kw)
    if case == "float_input":
        model.set_tensor_datatype("x", DataType["FLOAT32"])
    _assert_untouched(model, RemoveIdentityThresholds())
    if case not in ("float_input", "graph_output"):                   # and the thresholds really matter
        feeds = {"x": np.tile(np.arange(16, dtype=np.float32), 2).reshape(1, 2, 4, 4)}
        assert not np.array_equal(_run(model, feeds), feeds["x"] * 0.5)


def _input_quant_model(*, scale=0.25, bits=4.0, signed=1, zero=0.0, head="Quant"):
    if head == "Quant":
        nodes = [_quant(["x", "s", "z", "b"], "q", "InputQuant", signed=signed),
                 helper.make_node("Relu", ["q"], ["y"], name="Relu0")]
    else:
        nodes = [helper.make_node("Relu", ["x"], ["q"], name="Relu0"),
                 _quant(["q", "s", "z", "b"], "y", "InputQuant", signed=signed)]
    return _model(nodes, [("x", (1, 2, 3, 3))], [("y", (1, 2, 3, 3))],
                  [("s", np.float32(scale)), ("z", np.float32(zero)), ("b", np.float32(bits))])


@pytest.mark.parametrize("signed,bits,scale", [(1, 4, 0.25), (0, 8, 0.5), (1, 2, 2.0)])
def test_feed_input_codes(signed, bits, scale):
    model = _input_quant_model(scale=scale, bits=float(bits), signed=signed)
    codes = input_codes(model)
    assert (codes.scale, codes.bits, codes.signed) == (scale, bits, bool(signed))
    dt = DataType[f"{'INT' if signed else 'UINT'}{bits}"]
    assert codes.datatype == dt

    after = copy.deepcopy(model).transform(FeedInputCodes(codes))
    assert _ops(after) == ["Mul", "Quant", "Relu"]
    mul = after.graph.node[0]
    assert mul.name == "InputScale" and mul.input[0] == "x"
    assert float(after.get_initializer(mul.input[1])) == scale
    assert after.graph.node[1].input[0] == mul.output[0]
    assert after.get_tensor_datatype("x") == dt
    assert after.graph.input[0].name == "x"

    c = _codes(np.random.default_rng(18), dt.name, (1, 2, 3, 3))
    all_codes = np.arange(dt.min(), dt.max() + 1, dtype=np.float32)
    c.reshape(-1)[: min(18, all_codes.size)] = all_codes[:18]
    # the codes graph on code c computes exactly what the float graph does on c * scale
    assert np.array_equal(_run(after, {"x": c}), _run(model, {"x": (c * scale).astype(np.float32)}))

    # already taking codes: nothing more to do
    _assert_untouched(after, FeedInputCodes(codes))


@pytest.mark.parametrize("case,match", [
    ("not_quant", "feeds Relu"),
    ("zero_point", "zero point 0"),
    ("bits", "2..8-bit"),
    ("fraction_bits", "2..8-bit"),
    ("per_channel", "per-tensor"),
])
def test_input_codes_rejects(case, match):
    if case == "not_quant":
        model = _input_quant_model(head="Relu")
    elif case == "zero_point":
        model = _input_quant_model(zero=1.0)
    elif case == "bits":
        model = _input_quant_model(bits=12.0)
    elif case == "fraction_bits":
        model = _input_quant_model(bits=4.5)
    else:
        model = _input_quant_model()
        model.set_initializer("s", np.array([0.5, 0.25], np.float32).reshape(1, 2, 1, 1))
    with pytest.raises(ValueError, match=match):
        input_codes(model)


def test_input_codes_datatype():
    assert InputCodes(0.5, 3, False).datatype == DataType["UINT3"]
    assert InputCodes(1, 8, True).datatype == DataType["INT8"]


# ---------------------------------------------------------------------------------------- rounding


def _relu_quant_model(*, bits=4.0, scale=0.5):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="Relu0"),
             _quant(["r", "s", "z", "b"], "y", "ActQuant", signed=0)]
    model = _model(nodes, [("x", (1, 2, 4, 4))], [("y", (1, 2, 4, 4))],
                   [("s", np.float32(scale)), ("z", np.float32(0)), ("b", np.float32(bits))])
    return model.transform(InferDataTypes())


def test_nudge_tie_thresholds_makes_finn_round_half_to_even():
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN

    model = _relu_quant_model()
    # every quarter step from -1 to 8.75: all ties (c + 0.5) * 0.5 and the values between them
    x = (np.arange(-4, 36, dtype=np.float32) * 0.25)[:32].reshape(1, 2, 4, 4)
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.25], np.float32)
    ref = _run(model, {"x": x})
    assert np.array_equal(ref, np.clip(np.round(np.maximum(x, 0) / 0.5), 0, 15) * 0.5)   # half to even
    tie_out = _run(model, {"x": np.resize(ties, 32).reshape(1, 2, 4, 4)}).reshape(-1)[:5]
    assert np.array_equal(tie_out, [0.0, 1.0, 1.0, 2.0, 2.0])

    finn = copy.deepcopy(model).transform(ConvertQONNXtoFINN())
    assert "MultiThreshold" in _ops(finn) and "Quant" not in _ops(finn)
    plain = _run(finn, {"x": x})
    assert not np.array_equal(plain, ref)                              # FINN alone rounds ties up
    diff = plain != ref
    assert np.all(np.isin(x[diff], np.arange(0.25, 7.5, 1.0)))        # only at ties with an even lower code

    nudged = copy.deepcopy(finn).transform(NudgeTieThresholds())
    assert np.array_equal(_run(nudged, {"x": x}), ref)
    mt = _node(nudged, "MultiThreshold")
    assert get_by_name(mt.metadata_props, "fpga_gan_half_even", "key").value == "nudged"
    t_old = finn.get_initializer(_node(finn, "MultiThreshold").input[1])
    t_new = nudged.get_initializer(mt.input[1])
    assert np.array_equal(t_new[:, 0::2], np.nextafter(t_old[:, 0::2], np.float32(np.inf)))
    assert np.array_equal(t_new[:, 1::2], t_old[:, 1::2])             # odd lower code: ties already go up

    # marked: a second application does not nudge again
    twice = copy.deepcopy(nudged).transform(NudgeTieThresholds())
    assert np.array_equal(twice.get_initializer(_node(twice, "MultiThreshold").input[1]), t_new)


def _int_mt(thresholds, *, out_bias=0.0, dtype="INT8", out_dtype="UINT4"):
    nodes = [helper.make_node("MultiThreshold", ["x", "thr"], ["y"], domain=QONNX, name="MT0",
                              out_dtype=out_dtype, out_bias=out_bias)]
    model = _model(nodes, [("x", (1, 1, 16, 16))], [("y", (1, 1, 16, 16))],
                   [("thr", np.asarray(thresholds, np.float32))])
    model.set_tensor_datatype("x", DataType[dtype])
    return model


ALL_INT8 = np.arange(-128, 128, dtype=np.float32).reshape(1, 1, 16, 16)


def test_round_ties_on_integers_requantizer_is_half_to_even():
    # y = clip(round(x / 2), 0, 15): the boundary between c and c + 1 is x = 2c + 1, an integer tie
    model = _int_mt(np.arange(15, dtype=np.float32)[None, :] * 2 + 1)
    expect = np.clip(np.round(ALL_INT8 / 2), 0, 15)
    before = _run(model, {"x": ALL_INT8})
    assert not np.array_equal(before, expect)                          # x = 1 -> 1 (half up)
    after = copy.deepcopy(model).transform(RoundTieThresholdsOnIntegers())
    t = after.get_initializer("thr")
    assert np.array_equal(t[0, 0::2], np.arange(0, 15, 2) * 2 + 1.5)  # even lower code: moved by 1/2
    assert np.array_equal(t[0, 1::2], np.arange(1, 15, 2) * 2 + 1.0)  # odd: unchanged
    assert np.array_equal(_run(after, {"x": ALL_INT8}), expect)
    # all other inputs give what they gave before
    ties = np.isin(ALL_INT8, np.arange(0, 15, 2) * 2 + 1)
    assert np.array_equal(_run(after, {"x": ALL_INT8})[~ties], before[~ties])


def test_round_ties_on_integers_with_out_bias_and_fractions():
    thr = np.array([[-3.0, 0.0, 2.5, 4.0, 7.0]], np.float32)
    # lower codes -1, 0, 1, 2, 3 (out_bias -1): even are columns 1 and 3; 2.5 is no tie on integers
    model = _int_mt(thr, out_bias=-1.0, out_dtype="INT4")
    after = copy.deepcopy(model).transform(RoundTieThresholdsOnIntegers())
    assert np.array_equal(after.get_initializer("thr"), [[-3.0, 0.5, 2.5, 4.5, 7.0]])
    ref, got = _run(model, {"x": ALL_INT8}), _run(after, {"x": ALL_INT8})
    moved = np.isin(ALL_INT8, [0.0, 4.0])
    assert np.array_equal(got[~moved], ref[~moved])
    assert np.array_equal(got[moved], ref[moved] - 1)


def test_round_ties_on_integers_leaves_float_inputs():
    model = _int_mt([[1.0, 3.0]], dtype="FLOAT32")
    _assert_untouched(model, RoundTieThresholdsOnIntegers())


def _mt_node(out_bias=None, out_scale=None):
    kw = {}
    if out_bias is not None:
        kw["out_bias"] = out_bias
    if out_scale is not None:
        kw["out_scale"] = out_scale
    return helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=QONNX, name="MT", out_dtype="INT4", **kw)


@pytest.mark.parametrize("out_bias,out_scale,expect", [
    (None, None, [True, False, True, False]),
    (-1.0, None, [False, True, False, True]),
    (-8.0, None, [True, False, True, False]),
    (-3.0, 1.0, [False, True, False, True]),
    (4.0, 2.0, [True, False, True, False]),                              # first code 2
    (6.0, 2.0, [False, True, False, True]),                              # first code 3
])
def test_ties_round_down(out_bias, out_scale, expect):
    mask = ties_round_down(_mt_node(out_bias, out_scale), np.zeros((3, 4), np.float32))
    assert mask.shape == (3, 4)
    assert np.array_equal(mask, np.tile(expect, (3, 1)))


def test_ties_round_down_rejects_fractional_first_code():
    with pytest.raises(ValueError, match="not an integer code"):
        ties_round_down(_mt_node(-0.5), np.zeros((1, 3), np.float32))


# ---------------------------------------------------------------------------------------- hw ops


def _fork_concat_model(*, dtypes=("INT4", "INT4"), rank4=True):
    """x -> Neg -> a; a is read by a channel Concat (with x2) and by an Abs."""
    shape_a = (1, 2, 3, 3) if rank4 else (6, 3)
    shape_b = (1, 2, 3, 2) if rank4 else (6, 2)
    cat = (1, 2, 3, 5) if rank4 else (6, 5)
    nodes = [helper.make_node("Neg", ["x"], ["a"], name="Producer"),
             helper.make_node("Concat", ["a", "x2"], ["y"], name="Cat0", axis=3 if rank4 else 1),
             helper.make_node("Abs", ["a"], ["y2"], name="Other")]
    model = _model(nodes, [("x", shape_a), ("x2", shape_b)], [("y", cat), ("y2", shape_a)])
    model.set_tensor_datatype("x", DataType[dtypes[0]])
    model.set_tensor_datatype("a", DataType[dtypes[0]])
    model.set_tensor_datatype("x2", DataType[dtypes[1]])
    return model


def _fork_concat_feeds(seed=19):
    rng = np.random.default_rng(seed)
    return {"x": _codes(rng, "INT4", (1, 2, 3, 3)), "x2": _codes(rng, "INT4", (1, 2, 3, 2))}


def test_infer_streaming_concat_and_duplicate_streams():
    model = _fork_concat_model()
    after = copy.deepcopy(model).transform(InferStreamingConcat()).transform(InferDuplicateStreams())
    assert _ops(after) == ["Neg", "DuplicateStreams", "StreamingConcat", "Abs"]
    _, dup, cat, other = after.graph.node
    assert dup.domain == DOMAIN and cat.domain == DOMAIN
    assert _attr(cat, "backend") == "fpgadataflow" and _attr(dup, "backend") == "fpgadataflow"
    assert _attr(cat, "ImgDim") == [2, 3] and _attr(cat, "ChannelsPerStream") == [3, 2]
    assert _attr(cat, "inputDataType") == "INT4" and list(cat.output) == ["y"]
    assert _attr(dup, "ImgDim") == [2, 3] and _attr(dup, "NumChannels") == 3
    assert _attr(dup, "NumOutputStreams") == 2 and _attr(dup, "inputDataType") == "INT4"
    assert list(dup.input) == ["a"] and len(dup.output) == 2
    assert cat.input[0] == dup.output[0] and cat.input[1] == "x2" and other.input[0] == dup.output[1]
    for copy_name in dup.output:
        assert after.get_tensor_shape(copy_name) == [1, 2, 3, 3]
        assert after.get_tensor_datatype(copy_name) == DataType["INT4"]
    assert after.find_consumers("a") == [dup]

    feeds = _fork_concat_feeds()
    ref, got = execute_onnx(copy.deepcopy(model), feeds), execute_onnx(copy.deepcopy(after), feeds)
    for name in ("y", "y2"):
        assert np.array_equal(ref[name], got[name])

    # fixed point: nothing left to infer
    again = copy.deepcopy(after).transform(InferStreamingConcat()).transform(InferDuplicateStreams())
    assert _ops(again) == _ops(after)


def test_duplicate_streams_three_consumers():
    nodes = [helper.make_node("Neg", ["x"], ["a"], name="Producer")]
    nodes += [helper.make_node("Abs", ["a"], [f"y{i}"], name=f"Abs{i}") for i in range(3)]
    model = _model(nodes, [("x", (1, 2, 2, 4))], [(f"y{i}", (1, 2, 2, 4)) for i in range(3)])
    model.set_tensor_datatype("a", DataType["UINT4"])
    after = copy.deepcopy(model).transform(InferDuplicateStreams())
    dup = _node(after, "DuplicateStreams")
    assert _attr(dup, "NumOutputStreams") == 3 and len(dup.output) == 3
    assert _attr(dup, "inputDataType") == "UINT4"
    assert sorted(n.input[0] for n in after.graph.node if n.op_type == "Abs") == sorted(dup.output)
    feeds = {"x": _codes(np.random.default_rng(20), "INT4", (1, 2, 2, 4))}
    ref, got = execute_onnx(copy.deepcopy(model), feeds), execute_onnx(copy.deepcopy(after), feeds)
    for i in range(3):
        assert np.array_equal(ref[f"y{i}"], got[f"y{i}"])


@pytest.mark.parametrize("case", ["axis1", "mixed_dtypes", "float", "rank2"])
def test_streaming_concat_left_alone(case):
    if case == "axis1":
        nodes = [helper.make_node("Concat", ["x", "x2"], ["y"], name="Cat0", axis=1)]
        model = _model(nodes, [("x", (1, 2, 3, 3)), ("x2", (1, 1, 3, 3))], [("y", (1, 3, 3, 3))])
        model.set_tensor_datatype("x", DataType["INT4"])
        model.set_tensor_datatype("x2", DataType["INT4"])
    elif case == "mixed_dtypes":
        model = _fork_concat_model(dtypes=("INT4", "UINT4"))
    elif case == "float":
        model = _fork_concat_model(dtypes=("FLOAT32", "FLOAT32"))
    else:
        model = _fork_concat_model(rank4=False)
    _assert_untouched(model, InferStreamingConcat())
    if case == "rank2":                                                   # and no 2D fork duplication
        _assert_untouched(model, InferDuplicateStreams())


def test_unsupported_nodes():
    model = _fork_concat_model()
    # nothing is a hardware layer yet
    problems = unsupported_nodes(model)
    assert len(problems) == 1 and "no node became a hardware layer" in problems[0]

    hw = copy.deepcopy(model).transform(InferStreamingConcat()).transform(InferDuplicateStreams())
    problems = unsupported_nodes(hw)
    # Neg before the first hardware layer, Abs after the last: both at the boundary, both unsupported
    assert len(problems) == 2
    assert problems[0].startswith("Neg node 'Producer' (at the graph boundary) has no streaming implementation")
    assert problems[1].startswith("Abs node 'Other' (at the graph boundary)")

    # a leftover Add between hardware layers is named with its hint; layout / scale ops at the ends are fine
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], name="InTranspose", perm=[0, 1, 2, 3]),
             helper.make_node("Concat", ["xt", "x2"], ["c"], name="Cat0", axis=3),
             helper.make_node("Add", ["c", "bias"], ["d"], name="LeftoverAdd"),
             helper.make_node("Concat", ["d", "x2"], ["e"], name="Cat1", axis=3),
             helper.make_node("Mul", ["e", "scale"], ["y"], name="OutScale")]
    model = _model(nodes, [("x", (1, 2, 3, 3)), ("x2", (1, 2, 3, 2))], [("y", (1, 2, 3, 7))],
                   [("bias", np.float32(1.0)), ("scale", np.float32(0.5))])
    for name in ("x", "xt", "x2", "c", "d"):
        model.set_tensor_datatype(name, DataType["INT4"])
    hw = model.transform(InferStreamingConcat())
    assert _ops(hw) == ["Transpose", "StreamingConcat", "Add", "StreamingConcat", "Mul"]
    problems = unsupported_nodes(hw)
    assert problems == [("Add node 'LeftoverAdd' (between hardware layers) has no streaming implementation; "
                         "fold the bias into the convolution; a residual add needs both inputs quantized "
                         "(QuantIdentity / QuantReLU) with power-of-two scales, best one shared quantizer")]

    # a leftover tanh: it was not on a conv -> quantizer chain, which is what the hint says to write
    nodes[2] = helper.make_node("Tanh", ["c"], ["d"], name="LeftoverTanh")
    model = _model(nodes, [("x", (1, 2, 3, 3)), ("x2", (1, 2, 3, 2))], [("y", (1, 2, 3, 7))],
                   [("scale", np.float32(0.5))])
    for name in ("x", "xt", "x2", "c", "d"):
        model.set_tensor_datatype(name, DataType["INT4"])
    problems = unsupported_nodes(model.transform(InferStreamingConcat()))
    assert len(problems) == 1 and problems[0].startswith("Tanh node 'LeftoverTanh' (between hardware layers)")
    assert "quantize its output directly" in problems[0] and "reflection or replication padding" in problems[0]


# ----------------------------------------------------------------------------------- regressions
# Bugs these tests found in the passes (fixed): each test states what the pass must do.


def test_regression_absorb_negative_pad():
    model = _pad_conv_model([0, 0, -1, 0, 0, 0, 0, 0], conv_pads=(1, 1, 1, 1))   # crop the top row
    after = copy.deepcopy(model).transform(AbsorbPadIntoConv())
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(30), (1, 2, 4, 5))})


def test_regression_upsample_conv_ignores_weight_rounding_mode():
    model = _resize_conv_model(s=2, k=3, p=1)
    wq = _node(model, "Quant")
    get_by_name(wq.attribute, "rounding_mode").s = b"FLOOR"
    model.set_initializer("w_f", model.get_initializer("w_f") + 0.7 * model.get_initializer("w_s"))  # off grid
    after = copy.deepcopy(model).transform(UpsampleConvToConvTranspose())
    _assert_same(model, after, {"x": _dyadic(np.random.default_rng(31), (1, 2, 3, 4))})


def test_regression_move_affine_drops_graph_output():
    nodes = [helper.make_node("Mul", ["x", "p"], ["a"], name="Affine"),
             helper.make_node("DepthToSpace", ["a"], ["y"], name="D2S", blocksize=2, mode="CRD")]
    model = _model(nodes, [("x", (1, 12, 2, 3))], [("y", (1, 3, 4, 6)), ("a", (1, 12, 2, 3))],
                   [("p", np.float32(0.5))])
    _assert_untouched(model, MoveAffinePastDataMovement())


def test_regression_duplicate_streams_graph_input_fork():
    nodes = [helper.make_node("Concat", ["x", "x2"], ["y"], name="Cat0", axis=3),
             helper.make_node("Abs", ["x"], ["y2"], name="Other")]
    model = _model(nodes, [("x", (1, 2, 3, 3)), ("x2", (1, 2, 3, 2))], [("y", (1, 2, 3, 5)), ("y2", (1, 2, 3, 3))])
    for name in ("x", "x2"):
        model.set_tensor_datatype(name, DataType["INT4"])
    after = copy.deepcopy(model).transform(InferStreamingConcat()).transform(InferDuplicateStreams())
    assert "DuplicateStreams" in _ops(after)


def test_regression_duplicate_streams_same_tensor_twice():
    nodes = [helper.make_node("Neg", ["x"], ["a"], name="Producer"),
             helper.make_node("Concat", ["a", "a"], ["y"], name="Cat0", axis=3)]
    model = _model(nodes, [("x", (1, 2, 3, 3))], [("y", (1, 2, 3, 6))])
    model.set_tensor_datatype("a", DataType["INT4"])
    model, _ = InferDuplicateStreams().apply(model)        # one step at a time: transform() would hang
    model, changed = InferDuplicateStreams().apply(model)
    assert not changed
    dup = _node(model, "DuplicateStreams")
    assert sorted(_node(model, "Concat").input) == sorted(dup.output)          # each copy read once
