"""Lower ``ConvTranspose`` to the zero-free sub-pixel form: Pad -> Conv -> DepthToSpace -> Slice.

Why: a transposed convolution with stride ``s`` is usually built in hardware (FINN's
``InferPixelPaddingDeconv``) by inserting ``s - 1`` zeros between input pixels and running a
stride-1 convolution over the result. In the interior, ``(s*s - 1) / (s*s)`` of those multiplies
touch an inserted zero: for the common GAN upsampler (k=4, s=2, p=1) three MACs out of four are
wasted, and the stream carries four times the pixels it needs. The sub-pixel form (REVD2 in
I. Colbert, K. Kreutz-Delgado, S. Das, "An Energy-Efficient Edge Computing Paradigm for
Convolution-Based Image Upsampling", IEEE Access 9, 2021; qonnx's ``SubPixelToDeconvolution``
is the reverse rewrite from the same paper) computes the ``s*s`` output phases as extra output
channels of one ordinary convolution on the un-inflated input, then interleaves them with
``DepthToSpace``. Every multiply touches real
data, and every node is one FINN already streams (FMPadding, SWG + MVAU) or one of ours.

Index algebra (per spatial axis, separable in H and W). With input pixel ``i``, tap ``t``, stride
``s``, begin pad ``p``: the ConvTranspose writes ``x[i] * w[t]`` to output ``y = i*s - p + t``.
Let ``Y = y + p`` be the index in the uncropped ("full") output and split the tap as
``t = s*j + q`` with phase ``q`` in ``[0, s)`` and ``j`` in ``[0, m)``, ``m = k / s``. Then
``Y = s*(i + j) + q``, so ``Y mod s = q`` and ``Y div s = n = i + j``::

    full[s*n + q] = sum_j x[n - j] * w[s*j + q],      n in [0, H + m - 1)

That is, phase ``q`` is a full (pad ``m - 1``) stride-1 correlation of ``x`` with the kernel
``K_q[u] = w[s*(m - 1 - u) + q]`` (taps of phase ``q``, reversed). Stacking the ``s*s`` phases of
both axes as output channels (CRD order: channel ``c*s*s + qh*s + qw``) and applying
``DepthToSpace(s, "CRD")`` rebuilds ``full``; cropping ``p`` from the begin and the end pad from
the end gives the ConvTranspose output exactly. Whole blocks of ``s`` cropped pixels need not be
computed at all: ``d = min(p // s, m - 1)`` blocks are removed from the padding instead
(Pad ``m - 1 - d``, crop ``p - s*d``). So k4 s2 p1 becomes Pad(1) -> Conv(k=2, 4*Cout) ->
DepthToSpace(2) -> Crop(1); k6 s2 p2 needs no crop; with ``s = 1`` it is a plain convolution
with flipped, transposed weights and padding ``k - 1 - p``. Nodes that would be identities
(Pad 0, DepthToSpace 1, crop 0) are not emitted: each node becomes a hardware layer.

Kernels that are not a multiple of the stride, and ``output_padding``: appending ``z`` zero taps
to a kernel leaves every real contribution where it was and extends the full output by ``z`` at
the end, so a ConvTranspose (k, s, p_begin, p_end, output_padding op) equals one with kernel
``k + z``, pads ``(p_begin, p_end + z - op)``. ``z`` is the fewest taps that make ``k + z`` a
multiple of ``s`` and keep that end pad non-negative (ONNX adds the output padding at the end of
each axis). CycleGAN's up-sampler k3 s2 p1 op1 is then exactly k4 s2 p1 with one zero tap per
axis; k5 s2 p2 op1 is k6 s2 p2. Exact (the zero taps quantize to zero whatever the scale); the
zero taps cost MACs here only: :mod:`.phases` drops every all-zero tap per output phase, so for
k3 s2 the phase convolutions are 2x2, 2x1, 1x2 and 1x1 and no MAC meets an inserted zero.

The crop is computed and then dropped: for k4 s2 p1 the Conv works on an (H+1) x (W+1) grid.
Once the layers are hardware, :mod:`.phases` splits such a chain into one window grid per output
phase so that nothing is computed that the crop would drop; this pass keeps to standard ONNX ops,
which every backend executes.

Only a permutation of the weights is involved, so a quantized weight (``Quant`` of
initializers, as Brevitas' QONNX export delivers it) is rearranged together with its scale, zero
point and bit width: the integers and their scales stay exactly the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.basic import get_by_name

__all__ = [
    "LowerConvTransposeToSubPixel",
    "SubPixelGeometry",
    "check_lowerable",
    "macs_zero_free",
    "macs_zero_insertion",
    "provenance",
    "provenance_tag",
    "subpixel_geometry",
    "subpixel_weight",
]

_MIN_OPSET = 11  # DepthToSpace "mode" and Pad / Slice taking their amounts as inputs
_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------------------------
# Attributes and static inputs
# --------------------------------------------------------------------------------------------


def _attr(node: NodeProto, name: str, default=None):
    """Value of a node attribute, or ``default`` when the node does not set it."""
    attr = get_by_name(node.attribute, name)
    return default if attr is None else helper.get_attribute_value(attr)


def _default_opset(model: ModelWrapper) -> int | None:
    for imp in model.model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


@dataclass
class _StaticTensor:
    """A tensor whose value is known at compile time: an initializer, or a qonnx ``Quant`` node
    whose inputs are all initializers (``quant`` is then that node and ``params`` its scale, zero
    point and bit width, in input order)."""

    name: str
    value: np.ndarray
    quant: NodeProto | None = None
    params: tuple[np.ndarray, ...] = ()


def _static_tensor(model: ModelWrapper, name: str) -> _StaticTensor | str:
    """Resolve ``name`` to a static tensor, or say why it is not one."""
    value = model.get_initializer(name)
    if value is not None:
        return _StaticTensor(name, value)
    producer = model.find_producer(name)
    if producer is None:
        return f"tensor {name!r} is a graph input, not a static initializer"
    if producer.op_type != "Quant":
        return f"tensor {name!r} is computed by a {producer.op_type} node, not a static initializer"
    inputs = [model.get_initializer(i) for i in producer.input]
    if len(inputs) != 4 or any(v is None for v in inputs):
        return f"tensor {name!r} comes from Quant node {producer.name!r} whose inputs are not all initializers"
    return _StaticTensor(name, inputs[0], producer, tuple(inputs[1:]))


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubPixelGeometry:
    """Per-node plan of the sub-pixel rewrite.

    ``stride`` is the DepthToSpace block size, ``kernel`` the ConvTranspose kernel and
    ``padded_kernel`` that kernel after appending ``padded_kernel - kernel`` zero taps per axis (a
    multiple of the stride; equal to ``kernel`` when it already is one and there is no
    ``output_padding`` to make room for), ``taps`` the new Conv kernel (``padded_kernel / s`` per
    axis), ``pad`` the Pad amounts and ``crop`` the Slice amounts, both as (top, left, bottom, right).
    """

    stride: int
    kernel: tuple[int, int]
    taps: tuple[int, int]
    pad: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    padded_kernel: tuple[int, int] = (0, 0)


def _zero_taps(k: int, s: int, p_end: int, output_padding: int) -> int:
    """Zero taps to append to a kernel of ``k`` taps: the fewest that make it a multiple of ``s``
    and cover the ``output_padding`` rows (which extend the output past the last real tap)."""
    z = (-k) % s
    while p_end + z - output_padding < 0:
        z += s
    return z


def _axis_plan(k: int, s: int, p_begin: int, p_end: int) -> tuple[int, int, int, int]:
    """(pad_begin, pad_end, crop_begin, crop_end) on one axis for a kernel ``k`` that is a
    multiple of ``s`` (after zero-tap padding); see the module docstring."""
    m = k // s
    d_begin = min(p_begin // s, m - 1)
    d_end = min(p_end // s, m - 1)
    return m - 1 - d_begin, m - 1 - d_end, p_begin - s * d_begin, p_end - s * d_end


def _padded_axes(node: NodeProto, kernel: tuple[int, int], s: int) -> list[tuple[int, int, int]]:
    """Per axis (H, W): (padded kernel, begin pad, end pad) of the equivalent ConvTranspose whose
    kernel is a multiple of ``s``: zero taps appended at the end, the end pad grown by as many and
    ``output_padding`` taken off it (ONNX adds the output padding at the end of each axis)."""
    pt, pl, pb, pr = (int(v) for v in _attr(node, "pads", [0, 0, 0, 0]))
    out_pad = [int(v) for v in _attr(node, "output_padding", [0, 0])] or [0, 0]
    axes = []
    for k, p_begin, p_end, op in zip(kernel, (pt, pl), (pb, pr), out_pad):
        z = _zero_taps(k, s, p_end, op)
        axes.append((k + z, p_begin, p_end + z - op))
    return axes


def _block_size(node: NodeProto, model: ModelWrapper, kernel: tuple[int, int]) -> int:
    """The DepthToSpace block size of the lowering: the stride, except for one input pixel."""
    s = int(_attr(node, "strides", [1, 1])[0])
    pads = [int(v) for v in _attr(node, "pads", [0, 0, 0, 0])]
    out_pad = [int(v) for v in _attr(node, "output_padding", [0, 0])]
    in_shape = model.get_tensor_shape(node.input[0])
    if in_shape is not None and tuple(in_shape[2:]) == (1, 1) and kernel[0] == kernel[1] \
            and not any(pads) and not any(out_pad):
        # One input pixel: the stride never matters, so take s = k. The layer becomes a 1x1
        # convolution (a matrix-vector product) and a DepthToSpace(k) instead of a k x k
        # convolution over a (2k-1)^2 padded image that is almost all zeros (the DCGAN stem).
        return kernel[0]
    return s


def subpixel_geometry(node: NodeProto, model: ModelWrapper) -> SubPixelGeometry:
    """Plan the rewrite of a ConvTranspose node that :func:`check_lowerable` accepted."""
    weight = _static_tensor(model, node.input[1])
    if isinstance(weight, str):
        raise ValueError(f"node {node.name!r}: {weight}")  # noqa: TRY004 (a bad model, not a bad type)
    kh, kw = (int(v) for v in weight.value.shape[2:])
    s = _block_size(node, model, (kh, kw))
    (kph, pt, pb), (kpw, pl, pr) = _padded_axes(node, (kh, kw), s)
    h = _axis_plan(kph, s, pt, pb)
    w = _axis_plan(kpw, s, pl, pr)
    return SubPixelGeometry(
        stride=s,
        kernel=(kh, kw),
        taps=(kph // s, kpw // s),
        pad=(h[0], w[0], h[1], w[1]),
        crop=(h[2], w[2], h[3], w[3]),
        padded_kernel=(kph, kpw),
    )


# --------------------------------------------------------------------------------------------
# Legality
# --------------------------------------------------------------------------------------------


def check_lowerable(node: NodeProto, model: ModelWrapper) -> str | None:
    """Return why ``node`` cannot be lowered to the sub-pixel form, or None when it can.

    The reason is written for a user: it names what is unsupported and, where there is one, the
    change that would make the layer lowerable. Callers add the node name and op type.
    """
    if node.op_type != "ConvTranspose":
        return f"op type {node.op_type} is not ConvTranspose"
    opset = _default_opset(model)
    if opset is not None and opset < _MIN_OPSET:
        return f"model opset {opset} is older than {_MIN_OPSET} (needed for DepthToSpace mode); re-export with opset >= {_MIN_OPSET}"
    if len(node.input) < 2 or not node.input[1]:
        return "ConvTranspose has no weight input"
    weight = _static_tensor(model, node.input[1])
    if isinstance(weight, str):
        return f"weight is not static: {weight}; only initializer (or Quant-of-initializer) weights can be rearranged"
    if weight.value.ndim != 4:
        return f"only 2D (NCHW) ConvTranspose is supported, weight has rank {weight.value.ndim}"
    if len(node.input) > 2 and node.input[2]:
        bias = _static_tensor(model, node.input[2])
        if isinstance(bias, str):
            return f"bias is not static: {bias}"
    group = int(_attr(node, "group", 1))
    if group != 1:
        return (f"group={group} (a grouped or depthwise transposed convolution) is not supported; use group=1, "
                f"or split the layer into {group} ConvTransposes with group=1 and concatenate their outputs")
    dilations = [int(d) for d in _attr(node, "dilations", [1, 1])]
    if any(d != 1 for d in dilations):
        return (f"dilations {dilations} are not supported; use dilation 1 (a dilated kernel is an ordinary "
                "kernel with zero taps in between: give it as such)")
    auto_pad = _attr(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad != "NOTSET":
        return f"auto_pad={auto_pad} is not supported; give explicit pads"
    out_pad = [int(v) for v in _attr(node, "output_padding", [])]
    if out_pad and (len(out_pad) != 2 or min(out_pad) < 0):
        return f"output_padding {out_pad} is not two non-negative values"
    if _attr(node, "output_shape") is not None:
        return "the output_shape attribute is not supported; give explicit pads (and output_padding)"
    kernel = tuple(int(v) for v in weight.value.shape[2:])
    kernel_attr = _attr(node, "kernel_shape")
    if kernel_attr is not None and tuple(int(v) for v in kernel_attr) != kernel:
        return f"kernel_shape {list(kernel_attr)} disagrees with the weight shape {list(kernel)}"
    strides = [int(v) for v in _attr(node, "strides", [1, 1])]
    if len(strides) != 2 or strides[0] != strides[1]:
        return f"strides {strides} differ per axis; DepthToSpace needs one block size, use equal strides"
    pads = [int(v) for v in _attr(node, "pads", [0, 0, 0, 0])]
    if len(pads) != 4 or min(pads) < 0:
        return f"pads {pads} are not four non-negative values"
    return None


# --------------------------------------------------------------------------------------------
# Weight rearrangement
# --------------------------------------------------------------------------------------------


def _pad_taps(weight: np.ndarray, padded_kernel: tuple[int, int] | None, mode: str = "constant") -> np.ndarray:
    """Append zero taps (or, for a per-tap Quant parameter, repeated edge values) to the kernel axes."""
    if padded_kernel is None or tuple(weight.shape[2:]) == tuple(padded_kernel):
        return weight
    extra = [(0, 0), (0, 0), (0, padded_kernel[0] - weight.shape[2]), (0, padded_kernel[1] - weight.shape[3])]
    return np.pad(weight, extra, mode=mode)


def subpixel_weight(weight: np.ndarray, stride: int, padded_kernel: tuple[int, int] | None = None) -> np.ndarray:
    """Rearrange ConvTranspose weights (Cin, Cout, kh, kw) into sub-pixel Conv weights
    (Cout*s*s, Cin, Kh/s, Kw/s), channel order CRD (``c*s*s + qh*s + qw``), where ``K`` is
    ``padded_kernel`` (the kernel with zero taps appended, a multiple of ``s``) or ``k``.

    ``K[c*s*s + qh*s + qw, ci, uh, uw] = W[ci, c, s*(mh-1-uh) + qh, s*(mw-1-uw) + qw]``: the taps
    of phase (qh, qw), reversed. A pure permutation (plus zeros), so dtype and values are kept exactly.
    """
    weight = _pad_taps(weight, padded_kernel)
    cin, cout, kh, kw = weight.shape
    s = stride
    mh, mw = kh // s, kw // s
    w = weight.reshape(cin, cout, mh, s, mw, s)  # (ci, c, jh, qh, jw, qw) with t = s*j + q
    w = w[:, :, ::-1, :, ::-1, :]  # u = m - 1 - j
    w = w.transpose(1, 3, 5, 0, 2, 4)  # (c, qh, qw, ci, uh, uw)
    return np.ascontiguousarray(w.reshape(cout * s * s, cin, mh, mw))


def _subpixel_weight_param(param: np.ndarray, weight_shape: tuple[int, ...], stride: int,
                           padded_kernel: tuple[int, int] | None = None) -> np.ndarray:
    """Rearrange a Quant parameter (scale, zero point, bit width) that broadcasts against the
    ConvTranspose weight so it broadcasts the same way against the sub-pixel weight.

    Scalars stay as they are; a per-output-channel tensor (1, Cout, 1, 1) becomes
    (Cout*s*s, 1, 1, 1) with each channel's value repeated for its ``s*s`` phases; anything that
    varies over the taps is broadcast to the full weight shape and permuted like the weight.
    """
    if param.size == 1:
        return param
    p = param.reshape((1,) * (4 - param.ndim) + param.shape) if param.ndim < 4 else param
    if p.shape[2:] == (1, 1):
        if p.shape[1] != 1:
            p = np.repeat(p, stride * stride, axis=1)
        return np.ascontiguousarray(p.transpose(1, 0, 2, 3))
    return subpixel_weight(_pad_taps(np.broadcast_to(p, weight_shape), padded_kernel, "edge"), stride)


def _subpixel_bias_param(param: np.ndarray, cout: int, stride: int) -> np.ndarray:
    """Repeat a per-channel bias (or bias-Quant parameter) for the ``s*s`` phases of each channel."""
    if param.size == 1:
        return param
    return np.repeat(np.broadcast_to(param.reshape(-1), (cout,)), stride * stride)


# --------------------------------------------------------------------------------------------
# Graph surgery
# --------------------------------------------------------------------------------------------


class _Namer:
    """Unique names derived from the original node name, checked against every name in use."""

    def __init__(self, model: ModelWrapper, base: str) -> None:
        g = model.graph
        self.base = base
        self.used = {x.name for x in [*g.value_info, *g.input, *g.output, *g.initializer, *g.node]}
        for n in g.node:
            self.used.update(n.input)
            self.used.update(n.output)

    def __call__(self, suffix: str) -> str:
        name, i = f"{self.base}_{suffix}", 1
        while name in self.used:
            name, i = f"{self.base}_{suffix}_{i}", i + 1
        self.used.add(name)
        return name


def _emit_static(
    model: ModelWrapper,
    src: _StaticTensor,
    value: np.ndarray,
    params: list[np.ndarray],
    namer: _Namer,
    role: str,
) -> tuple[str, list[NodeProto]]:
    """Add the rearranged static tensor; a Quant source gets a new Quant node over new
    initializers (the old one may still feed other nodes). Returns the tensor name and the nodes
    to insert before the new Conv."""
    value_name = namer(role)
    model.set_initializer(value_name, value)
    if src.quant is None:
        return value_name, []
    names = [value_name]
    for param_name, param in zip(("scale", "zeropt", "bitwidth"), params):
        names.append(namer(f"{role}_{param_name}"))
        model.set_initializer(names[-1], param)
    out = namer(f"{role}_quant_out")
    quant = helper.make_node(src.quant.op_type, names, [out], name=namer(f"{role}_quant"), domain=src.quant.domain)
    quant.attribute.extend(src.quant.attribute)
    model.set_tensor_datatype(out, model.get_tensor_datatype(src.name))
    return out, [quant]


def _drop_if_unused(model: ModelWrapper, name: str) -> None:
    """Remove a tensor we orphaned: its initializer, or its Quant producer and that node's
    initializers, once nothing consumes it any more."""
    if not name or model.find_consumers(name) or name in [o.name for o in model.graph.output]:
        return
    producer = model.find_producer(name)
    if producer is not None:
        model.graph.node.remove(producer)
        for inp in producer.input:
            _drop_if_unused(model, inp)
    elif model.get_initializer(name) is not None:
        model.del_initializer(name)
    vi = get_by_name(model.graph.value_info, name)
    if vi is not None:
        model.graph.value_info.remove(vi)


def _lower(model: ModelWrapper, node: NodeProto, index: int) -> None:
    """Replace ``node`` (at position ``index``) with its sub-pixel chain, in place."""
    geo = subpixel_geometry(node, model)
    s = geo.stride
    namer = _Namer(model, node.name or f"ConvTranspose_{index}")
    weight = _static_tensor(model, node.input[1])
    cout = weight.value.shape[1]
    new_nodes: list[NodeProto] = []

    w_name, quant_nodes = _emit_static(
        model,
        weight,
        subpixel_weight(weight.value, s, geo.padded_kernel),
        [_subpixel_weight_param(p, weight.value.shape, s, geo.padded_kernel) for p in weight.params],
        namer,
        "subpixel_weight",
    )
    new_nodes += quant_nodes
    conv_inputs = [w_name]
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if has_bias:
        bias = _static_tensor(model, node.input[2])
        b_name, quant_nodes = _emit_static(
            model,
            bias,
            _subpixel_bias_param(bias.value, cout, s),
            [_subpixel_bias_param(p, cout, s) for p in bias.params],
            namer,
            "subpixel_bias",
        )
        new_nodes += quant_nodes
        conv_inputs.append(b_name)

    x_name, y_name = node.input[0], node.output[0]
    x_dtype, y_dtype = model.get_tensor_datatype(x_name), model.get_tensor_datatype(y_name)
    need_d2s, need_crop = s > 1, any(geo.crop)
    stages = ["conv"] + ["d2s"] * need_d2s + ["crop"] * need_crop
    outputs = {st: (y_name if st == stages[-1] else namer(f"subpixel_{st}_out")) for st in stages}

    if any(geo.pad):
        pad_out = namer("subpixel_pad_out")
        pads = namer("subpixel_pad_amounts")
        t, l, b, r = geo.pad
        model.set_initializer(pads, np.array([0, 0, t, l, 0, 0, b, r], dtype=np.int64))
        new_nodes.append(
            helper.make_node("Pad", [x_name, pads], [pad_out], name=namer("subpixel_pad"), mode="constant")
        )
        model.set_tensor_datatype(pad_out, x_dtype)
        x_name = pad_out

    new_nodes.append(
        helper.make_node(
            "Conv",
            [x_name, *conv_inputs],
            [outputs["conv"]],
            name=namer("subpixel_conv"),
            kernel_shape=list(geo.taps),
            strides=[1, 1],
            pads=[0, 0, 0, 0],
            dilations=[1, 1],
            group=1,
        )
    )
    if need_d2s:
        new_nodes.append(
            helper.make_node(
                "DepthToSpace",
                [outputs["conv"]],
                [outputs["d2s"]],
                name=namer("subpixel_depth_to_space"),
                blocksize=s,
                mode="CRD",
                doc_string=provenance_tag(node.name or f"ConvTranspose_{index}"),
            )
        )
    if need_crop:
        t, l, b, r = geo.crop
        starts, ends, axes = namer("subpixel_crop_starts"), namer("subpixel_crop_ends"), namer("subpixel_crop_axes")
        model.set_initializer(starts, np.array([t, l], dtype=np.int64))
        model.set_initializer(ends, np.array([-b if b else _INT64_MAX, -r if r else _INT64_MAX], dtype=np.int64))
        model.set_initializer(axes, np.array([2, 3], dtype=np.int64))
        src = outputs["d2s"] if need_d2s else outputs["conv"]
        new_nodes.append(
            helper.make_node("Slice", [src, starts, ends, axes], [outputs["crop"]], name=namer("subpixel_crop"))
        )
    for st in stages:
        if outputs[st] != y_name:
            model.set_tensor_datatype(outputs[st], y_dtype)

    old_inputs = list(node.input[1:])
    model.graph.node.remove(node)
    for offset, new in enumerate(new_nodes):
        model.graph.node.insert(index + offset, new)
    old_vi = get_by_name(model.graph.value_info, y_name)
    if old_vi is not None:  # the shape is unchanged, but let InferShapes state it afresh
        model.graph.value_info.remove(old_vi)
    for name in old_inputs:
        _drop_if_unused(model, name)


class LowerConvTransposeToSubPixel(Transformation):
    """Rewrite every lowerable 2D ``ConvTranspose`` into Pad -> Conv -> DepthToSpace(CRD) -> Slice.

    Exact (a permutation of weights plus cropping), zero-free: see the module docstring for the
    index algebra and the reference (REVD2, Colbert et al., IEEE Access 2021). Nodes that
    :func:`check_lowerable` rejects are left alone; with ``strict=True`` the pass raises a
    ``ValueError`` naming the node, its op type and what to change instead, which is what a
    compile flow targeting hardware without a zero-insertion fallback wants.
    """

    def __init__(self, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for index, node in enumerate(model.graph.node):
            if node.op_type != "ConvTranspose":
                continue
            reason = check_lowerable(node, model)
            if reason is None:
                _lower(model, node, index)
                # one node per call: indices shift; ModelWrapper.transform re-runs to a fixed point
                return model.transform(InferShapes()), True
            if self.strict:
                raise ValueError(
                    f"node {node.name or index!r} (ConvTranspose) cannot be lowered to the sub-pixel form: {reason}"
                )
        return model, False


# --------------------------------------------------------------------------------------------
# Cost model
# --------------------------------------------------------------------------------------------


def _conv_transpose_dims(node: NodeProto, model: ModelWrapper) -> tuple[int, int, int, int, int, int, int, int, int]:
    """(Hin, Win, Hout, Wout, Cin, Cout, kh, kw, group) of a ConvTranspose, from the input shape,
    the weight shape and the attributes (the output size is computed, not read from value_info)."""
    in_shape = model.get_tensor_shape(node.input[0])
    if in_shape is None or len(in_shape) != 4:
        raise ValueError(f"node {node.name!r}: input shape unknown or not NCHW ({in_shape}); run InferShapes")
    w_shape = model.get_tensor_shape(node.input[1])
    if w_shape is None:
        w = _static_tensor(model, node.input[1])
        if isinstance(w, str):
            raise ValueError(f"node {node.name!r}: weight shape unknown ({w})")
        w_shape = w.value.shape
    group = int(_attr(node, "group", 1))
    cin, cout_per_group, kh, kw = (int(v) for v in w_shape)
    sh, sw = (int(v) for v in _attr(node, "strides", [1, 1]))
    dh, dw = (int(v) for v in _attr(node, "dilations", [1, 1]))
    pt, pl, pb, pr = (int(v) for v in _attr(node, "pads", [0, 0, 0, 0]))
    oph, opw = (int(v) for v in _attr(node, "output_padding", [0, 0]))
    hin, win = int(in_shape[2]), int(in_shape[3])
    hout = sh * (hin - 1) + oph + dh * (kh - 1) + 1 - pt - pb
    wout = sw * (win - 1) + opw + dw * (kw - 1) + 1 - pl - pr
    return hin, win, hout, wout, cin, cout_per_group * group, kh, kw, group


def _useful_taps(out: int, k: int, s: int, p_begin: int) -> int:
    """Taps summed over the ``out`` outputs of one axis that read a real input position, not one
    of the ``s - 1`` zeros inserted between input pixels: output ``y`` and tap ``t`` meet input
    ``(y + p_begin - t) / s``, a real position when that is an integer. Positions outside the
    image (the border) count as real: a window streaming over the image reads them as padding."""
    per_phase = [sum(1 for t in range(k) if (a + p_begin - t) % s == 0) for a in range(s)]
    return sum(per_phase[y % s] for y in range(out))


def macs_zero_free(node: NodeProto, model: ModelWrapper) -> int:
    """Useful MACs of one ConvTranspose per image: per output pixel, the kernel taps that do not
    meet an inserted zero, times ``Cin*Cout / group`` (separable, so the product of the per-axis
    counts of :func:`_useful_taps`). When the output is ``s`` times the input (k4 s2 p1, k3 s2 p1
    output_padding 1, ...) this is every input pixel times every tap, ``Hin*Win*Cin*Cout*kh*kw``.
    The phase-split sub-pixel form spends exactly this; zero insertion spends ``kh*kw`` per pixel."""
    _, _, hout, wout, cin, cout, kh, kw, group = _conv_transpose_dims(node, model)
    s_h, s_w = (int(v) for v in _attr(node, "strides", [1, 1]))
    if s_h == s_w:                  # one input pixel: no tap outside it is useful (see _block_size)
        s_h = s_w = _block_size(node, model, (kh, kw))
    pt, pl, _, _ = (int(v) for v in _attr(node, "pads", [0, 0, 0, 0]))
    return _useful_taps(hout, kh, s_h, pt) * _useful_taps(wout, kw, s_w, pl) * cin * cout // group


PROVENANCE_PREFIX = "fpga_gan: sub-pixel form of ConvTranspose "


def provenance_tag(name: str) -> str:
    """The ``doc_string`` the lowering gives its DepthToSpace, so that the report can pair each
    transposed convolution with the hardware that replaced it, whatever the node names become
    (every FINN stage renames nodes; a user's PixelShuffle is a DepthToSpace too)."""
    return PROVENANCE_PREFIX + name


def provenance(doc_string: str) -> str | None:
    """The ConvTranspose name in a :func:`provenance_tag`, or None."""
    return doc_string[len(PROVENANCE_PREFIX):] if doc_string.startswith(PROVENANCE_PREFIX) else None


def macs_zero_insertion(node: NodeProto, model: ModelWrapper) -> int:
    """MACs of the zero-insertion route per image: a stride-1 convolution with kernel ``k`` over
    the zero-inserted, padded input producing the ``Hout x Wout`` output,
    ``Hout*Wout*Cin*Cout*kh*kw / group``. The ratio to :func:`macs_zero_free` tends to ``s*s``."""
    _, _, hout, wout, cin, cout, kh, kw, group = _conv_transpose_dims(node, model)
    return hout * wout * cin * cout * kh * kw // group
