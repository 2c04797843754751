"""Split a sub-pixel transposed convolution into its output phases: no MAC is cropped or meets a zero tap.

Why: the sub-pixel form (:mod:`.subpixel`) computes every output phase on one window grid and
crops the border afterwards. For the common GAN upsampler (k4 s2 p1) that grid is (H+1) x (W+1)
windows for an H x W input, and one output ring is thrown away: the MVAU spends
(H+1)(W+1) / HW of the useful MACs, 27% extra at 8x8. Against FINN's zero-insertion route the
saving is then 4HW / ((H+1)(W+1)) = 3.16x at 8x8 instead of the 4x the stride promises.

The ring exists only because all phases share one grid. Output phase ``a`` of an axis (output
index ``y = s*i + a``) is full-output index ``F = crop_begin + y``, i.e. window
``n = i + (crop_begin + a) // s`` and weight phase ``q = (crop_begin + a) % s``. Each output
phase therefore has its own grid of exactly ``Hout/s`` windows, shifted by
``(crop_begin + a) // s``: give each phase its own padding (one less at the top for a shifted
grid, as much at the bottom as its windows need) and only its own weight columns, and nothing is
computed that is cropped later::

    FMPadding -> SWG -> MVAU(s*s*C, CRD order) -> DepthToSpace(CRD) -> Crop
    becomes
    DuplicateStreams -> s*s x [FMPadding -> SWG -> MVAU(C)] -> StreamingConcat -> DepthToSpace(DCR)

The concatenation is phase-major, which is DepthToSpace's DCR order; no permutation is needed.
For k4 s2 p1 the four phases are padded (top, left, bottom, right) = (1,1,0,0), (1,0,0,1),
(0,1,1,0), (0,0,1,1), and the MVAUs together spend exactly the useful MACs (ratio 4.0).

Each phase keeps only the window taps whose weights are not all zero (the bounding box per
phase). A kernel that is not a multiple of the stride arrives zero-padded from the lowering, so
for CycleGAN's k3 s2 p1 op1 the phases become 2x2, 2x1, 1x2 and 1x1 convolutions (a 1x1 phase
needs no sliding window: its MVAU reads the pixels), and k5 s2 p2 op1 gives 3x3, 3x2, 2x3, 2x2.
A phase's padding follows from its first kept tap; where that would be negative (a crop larger
than the pad), the phase crops its input instead. When the output size is not a multiple of the
stride (k3 s2 p1: 2H - 1), the later phases have one output row or column less: their MVAUs
compute only those, an FMPadding appends a zero row / column so that all phases share one grid,
and one Crop after the DepthToSpace removes it again. So in every case the MVAUs spend exactly
the useful MACs (:func:`~.subpixel.macs_zero_free`): per output pixel the taps that meet a real
input pixel, none that meets an inserted zero or is cropped later.

It works on FINN's hardware layers (after thresholds and MVAUs are inferred and their bit widths
minimised), so the phase MVAUs keep the weight, accumulator and threshold types of the original:
they compute a subset of its columns and rows and the concatenation needs one stream type. Only
weights (and threshold rows, if the MVAU has them) are selected; nothing is re-quantized.
Chains where splitting saves nothing (no crop and no zero taps, e.g. k2 s2 or k6 s2 p2) stay as
they are, which is exact too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

from ...ops import DOMAIN

__all__ = ["Phase", "PhasePlan", "SplitSubPixelPhases", "SubPixelChain", "find_subpixel_chain", "phase_macs", "phase_plan"]

_FINN_HW = "finn.custom_op.fpgadataflow"


@dataclass(frozen=True)
class SubPixelChain:
    """The hardware layers of one sub-pixel transposed convolution. ``pad``, ``swg`` and
    ``crop`` are absent when the lowering needed no padding, a 1x1 kernel or no crop."""

    pad: NodeProto | None
    swg: NodeProto | None
    mvau: NodeProto
    d2s: NodeProto
    crop: NodeProto | None

    @property
    def input(self) -> str:
        return (self.pad or self.swg or self.mvau).input[0]

    @property
    def nodes(self) -> list[NodeProto]:
        return [n for n in (self.pad, self.swg, self.mvau, self.d2s, self.crop) if n is not None]


@dataclass(frozen=True)
class Phase:
    """One output phase ``(a_h, a_w)``: it computes output pixels ``(s*i + a_h, s*j + a_w)``.

    ``weight_phase`` is the sub-pixel weight phase ``(q_h, q_w)`` it uses, ``taps`` the window
    rows and columns it keeps, as (first row, rows, first column, columns) of the sub-pixel
    kernel (its taps with any weight that is not zero), ``crop`` and ``pads`` what is cut from and
    added to the input image (top, left, bottom, right) so that its own window grid of
    ``out_dim`` windows reads exactly those taps, and ``out_pad`` the (bottom, right) rows and
    columns of zeros that bring its output to the common grid (a phase has one row or column less
    when the output size is not a multiple of the stride; the final crop removes them again).
    """

    weight_phase: tuple[int, int]
    taps: tuple[int, int, int, int]
    crop: tuple[int, int, int, int]
    pads: tuple[int, int, int, int]
    out_dim: tuple[int, int]
    out_pad: tuple[int, int]

    @property
    def kernel(self) -> tuple[int, int]:
        return self.taps[1], self.taps[3]


@dataclass(frozen=True)
class PhasePlan:
    """Per output phase, in concatenation order (phase-major, DCR), its :class:`Phase`;
    ``grid`` the common window grid (the output size divided by the stride, rounded up) and
    ``crop_end`` the (bottom, right) rows and columns cropped from the DepthToSpace output."""

    stride: int
    grid: tuple[int, int]
    phases: tuple[Phase, ...]
    crop_end: tuple[int, int]

    @property
    def out_dim(self) -> tuple[int, int]:
        return self.grid

    @property
    def pads(self) -> tuple[tuple[int, int, int, int], ...]:
        return tuple(p.pads for p in self.phases)

    @property
    def weight_phases(self) -> tuple[tuple[int, int], ...]:
        return tuple(p.weight_phase for p in self.phases)


@dataclass(frozen=True)
class _AxisPhase:
    shift: int          # window offset of the phase's first output
    q: int              # weight phase
    n: int              # outputs of the phase


def _axis_phases(size: int, pad_begin: int, pad_end: int, taps: int, s: int, crop_begin: int, crop_end: int):
    """The ``s`` output phases of one axis and the common grid, or None when the output has fewer
    than ``s`` pixels on this axis."""
    out = s * (size + pad_begin + pad_end - taps + 1) - crop_begin - crop_end
    if out < s:
        return None
    phases = []
    for a in range(s):
        shift, q = divmod(crop_begin + a, s)
        phases.append(_AxisPhase(shift, q, (out - a + s - 1) // s))
    return phases, phases[0].n, s * phases[0].n - out


def _axis_window(size: int, pad_begin: int, phase: _AxisPhase, first: int, count: int):
    """(crop_begin, crop_end, pad_begin, pad_end) of the input for one phase on one axis: its
    ``phase.n`` windows of ``count`` taps start at input row ``shift + first - pad_begin``."""
    top = pad_begin - phase.shift - first
    bottom = phase.n + count - 1 - size - top
    crop = (max(0, -top), max(0, -bottom))
    if size - crop[0] - crop[1] < 1:
        return None
    return crop[0], crop[1], max(0, top), max(0, bottom)


def _attr(node: NodeProto, name: str):
    return getCustomOp(node).get_nodeattr(name)


def _phase_taps(weights: np.ndarray, m: tuple[int, int], cin: int, channels: int, s: int, qh: int, qw: int):
    """(first row, rows, first column, columns) of the sub-pixel window taps with a weight that
    is not zero for weight phase (qh, qw): the taps a zero-padded kernel or a cropped border does
    not need are dropped. MVAU rows are ordered (row, column, input channel), columns CRD."""
    w = weights.reshape(m[0], m[1], cin, channels, s, s)[:, :, :, :, qh, qw]
    used = np.any(w != 0, axis=(2, 3))
    rows, cols = np.flatnonzero(used.any(axis=1)), np.flatnonzero(used.any(axis=0))
    if not len(rows):                                   # a phase with no weights at all: one (zero) tap
        return 0, 1, 0, 1
    return int(rows[0]), int(rows[-1] - rows[0] + 1), int(cols[0]), int(cols[-1] - cols[0] + 1)


def _chain_geometry(chain: SubPixelChain):
    """(h, w, (pt, pl, pb, pr), (m_h, m_w), cin, channels, s, crop (n, w, s, e)) of ``chain``."""
    if chain.pad is not None:
        h, w = (int(v) for v in _attr(chain.pad, "ImgDim"))
        pads = tuple(int(v) for v in _attr(chain.pad, "Padding"))
    elif chain.swg is not None:
        h, w = (int(v) for v in _attr(chain.swg, "IFMDim"))
        pads = (0, 0, 0, 0)
    else:
        h, w = (int(v) for v in _attr(chain.d2s, "ImgDim"))
        pads = (0, 0, 0, 0)
    m = tuple(int(v) for v in _attr(chain.swg, "ConvKernelDim")) if chain.swg is not None else (1, 1)
    crop = (tuple(int(_attr(chain.crop, k)) for k in ("CropNorth", "CropWest", "CropSouth", "CropEast"))
            if chain.crop is not None else (0, 0, 0, 0))
    cin = int(_attr(chain.mvau, "MW")) // (m[0] * m[1])
    return h, w, pads, m, cin, int(_attr(chain.d2s, "NumChannels")), int(_attr(chain.d2s, "BlockSize")), crop


def phase_plan(chain: SubPixelChain, weights: np.ndarray | None = None) -> PhasePlan | None:
    """How to split ``chain`` into phases, or None when that would not save a MAC (or the
    geometry has no exact split); ``weights`` is the MVAU's weight matrix (to find the taps
    each phase needs; without it every phase keeps the whole sub-pixel kernel)."""
    if chain.d2s is None or int(_attr(chain.d2s, "BlockSize")) < 2 or _attr(chain.d2s, "Mode") != "CRD":
        return None
    if chain.swg is not None and (list(_attr(chain.swg, "Stride")) != [1, 1]
                                  or list(_attr(chain.swg, "Dilation")) != [1, 1]
                                  or int(_attr(chain.swg, "depthwise"))):
        return None
    h, w, (pt, pl, pb, pr), m, cin, channels, s, (cn, cw, cs, ce) = _chain_geometry(chain)
    rows = _axis_phases(h, pt, pb, m[0], s, cn, cs)
    cols = _axis_phases(w, pl, pr, m[1], s, cw, ce)
    if rows is None or cols is None:
        return None
    (row_phases, grid_h, crop_h), (col_phases, grid_w, crop_w) = rows, cols
    phases = []
    for ph in row_phases:
        for pw in col_phases:
            taps = ((0, m[0], 0, m[1]) if weights is None
                    else _phase_taps(weights, m, cin, channels, s, ph.q, pw.q))
            row = _axis_window(h, pt, ph, taps[0], taps[1])
            col = _axis_window(w, pl, pw, taps[2], taps[3])
            if row is None or col is None:
                return None
            phases.append(Phase((ph.q, pw.q), taps, (row[0], col[0], row[1], col[1]),
                                (row[2], col[2], row[3], col[3]), (ph.n, pw.n), (grid_h - ph.n, grid_w - pw.n)))
    plan = PhasePlan(s, (grid_h, grid_w), tuple(phases), (crop_h, crop_w))
    n_h, n_w = h + pt + pb - m[0] + 1, w + pl + pr - m[1] + 1
    before = n_h * n_w * m[0] * m[1] * s * s
    return plan if phase_macs(plan) < before else None


def phase_macs(plan: PhasePlan, cin: int = 1, channels: int = 1) -> int:
    """MACs per frame of the split form (``cin`` x ``channels`` per window tap)."""
    return sum(p.out_dim[0] * p.out_dim[1] * p.kernel[0] * p.kernel[1] for p in plan.phases) * cin * channels


def _only_consumer(model: ModelWrapper, tensor: str) -> NodeProto | None:
    consumers = model.find_consumers(tensor) or []
    return consumers[0] if len(consumers) == 1 else None


def _producer_if(model: ModelWrapper, tensor: str, op_type: str, consumer: NodeProto) -> NodeProto | None:
    """The producer of ``tensor`` if it is an ``op_type`` hardware layer feeding only ``consumer``."""
    producer = model.find_producer(tensor)
    if producer is None or producer.op_type != op_type or producer.domain != _FINN_HW:
        return None
    return producer if _only_consumer(model, producer.output[0]) is consumer else None


def find_subpixel_chain(model: ModelWrapper, d2s: NodeProto) -> SubPixelChain | None:
    """The [FMPadding ->] [SWG ->] MVAU -> ``d2s`` [-> Crop] chain around ``d2s``, each layer
    feeding only the next, or None."""
    if d2s.domain != DOMAIN:
        return None
    crop = _only_consumer(model, d2s.output[0])
    if crop is not None and (crop.op_type != "Crop" or crop.domain != _FINN_HW):
        crop = None
    mvau = _producer_if(model, d2s.input[0], "MVAU", d2s)
    if mvau is None:
        return None
    swg = _producer_if(model, mvau.input[0], "ConvolutionInputGenerator", mvau)
    pad = _producer_if(model, (swg or mvau).input[0], "FMPadding", swg or mvau)
    return SubPixelChain(pad, swg, mvau, d2s, crop)


def _copy(node: NodeProto, name: str, inputs: list[str], outputs: list[str], **attrs) -> NodeProto:
    new = NodeProto()
    new.CopyFrom(node)
    new.name = name
    new.input[:] = inputs
    new.output[:] = outputs
    inst = getCustomOp(new)
    for key, value in attrs.items():
        inst.set_nodeattr(key, value)
    return new


def _fm_padding(name: str, src: str, dst: str, dim: list[int], pads: list[int], channels: int, dtype) -> NodeProto:
    return helper.make_node("FMPadding", [src], [dst], domain=_FINN_HW, backend="fpgadataflow", name=name,
                            ImgDim=dim, Padding=pads, NumChannels=channels, SIMD=1, inputDataType=dtype.name)


def _crop(name: str, src: str, dst: str, dim: list[int], crop: tuple[int, int, int, int], channels: int,
          dtype) -> NodeProto:
    north, west, south, east = crop
    return helper.make_node("Crop", [src], [dst], domain=_FINN_HW, backend="fpgadataflow", name=name,
                            DataType=dtype.name, ImgDim=dim, NumChannels=channels, CropNorth=north,
                            CropWest=west, CropSouth=south, CropEast=east, SIMD=1, numInputVectors=[1])


class _Stream:
    """Appends hardware layers to a phase's stream, giving each output its shape and type."""

    def __init__(self, model: ModelWrapper, src: str, shape: list[int], dtype, nodes: list[NodeProto]) -> None:
        self.model, self.name, self.shape, self.dtype, self.nodes = model, src, shape, dtype, nodes

    def then(self, make, shape: list[int], dtype=None) -> None:
        out = self.model.make_new_valueinfo_name()
        self.nodes.append(make(self.name, out))
        self.dtype = dtype or self.dtype
        self.model.set_tensor_shape(out, shape)
        self.model.set_tensor_datatype(out, self.dtype)
        self.name, self.shape = out, shape


def _split(model: ModelWrapper, chain: SubPixelChain, plan: PhasePlan) -> None:
    """Replace ``chain`` by its per-phase form, in place."""
    x = chain.input
    h, w, _, m, cin, channels, s, _ = _chain_geometry(chain)
    grid_h, grid_w = plan.grid
    weights = model.get_initializer(chain.mvau.input[1])
    thresholds = model.get_initializer(chain.mvau.input[2]) if len(chain.mvau.input) > 2 else None
    x_dtype = model.get_tensor_datatype(x)
    acc_dtype = model.get_tensor_datatype(chain.mvau.output[0])
    base = chain.d2s.name
    new_nodes, phase_outputs = [], []
    for phase in plan.phases:
        qh, qw = phase.weight_phase
        tag = f"{base}_phase{qh}{qw}"
        first_h, kh, first_w, kw = phase.taps
        out_h, out_w = phase.out_dim
        stream = _Stream(model, x, [1, h, w, cin], x_dtype, new_nodes)
        if any(phase.crop):
            t, l, b, r = phase.crop
            stream.then(lambda src, dst: _crop(f"{tag}_crop", src, dst, [h, w], phase.crop, cin, x_dtype),
                        [1, h - t - b, w - l - r, cin])
        if any(phase.pads):
            t, l, b, r = phase.pads
            dim = stream.shape[1:3]
            padded = [dim[0] + t + b, dim[1] + l + r]
            stream.then((lambda src, dst: _copy(chain.pad, f"{tag}_pad", [src], [dst], ImgDim=dim,
                                                Padding=list(phase.pads), SIMD=1)) if chain.pad is not None
                        else (lambda src, dst: _fm_padding(f"{tag}_pad", src, dst, dim, list(phase.pads), cin,
                                                           x_dtype)),
                        [1, *padded, cin])
        if kh * kw > 1:
            dim = stream.shape[1:3]
            stream.then(lambda src, dst: _copy(chain.swg, f"{tag}_swg", [src], [dst], IFMDim=dim,
                                               OFMDim=[out_h, out_w], ConvKernelDim=[kh, kw], SIMD=1),
                        [1, out_h, out_w, kh * kw * cin])
        # CRD order: channel c of weight phase (qh, qw) is column c*s*s + qh*s + qw
        columns = np.arange(channels) * s * s + qh * s + qw
        taps = weights.reshape(m[0], m[1], cin, -1)[first_h:first_h + kh, first_w:first_w + kw]
        mvau_inputs = [stream.name, model.make_new_valueinfo_name()]
        model.set_initializer(mvau_inputs[1], np.ascontiguousarray(taps[..., columns].reshape(kh * kw * cin, channels)))
        model.set_tensor_datatype(mvau_inputs[1], model.get_tensor_datatype(chain.mvau.input[1]))
        if thresholds is not None:
            mvau_inputs.append(model.make_new_valueinfo_name())
            model.set_initializer(mvau_inputs[2], np.ascontiguousarray(thresholds[columns]))
            model.set_tensor_datatype(mvau_inputs[2], model.get_tensor_datatype(chain.mvau.input[2]))
        stream.name = mvau_inputs[0]
        stream.then(lambda src, dst: _copy(chain.mvau, f"{tag}_mvau", [src, *mvau_inputs[1:]], [dst],
                                           MW=kh * kw * cin, MH=channels, PE=1, SIMD=1,
                                           numInputVectors=[1, out_h, out_w]),
                    [1, out_h, out_w, channels], acc_dtype)
        if any(phase.out_pad):
            bottom, right = phase.out_pad
            stream.then(lambda src, dst: _fm_padding(f"{tag}_fill", src, dst, [out_h, out_w], [0, 0, bottom, right],
                                                     channels, acc_dtype),
                        [1, grid_h, grid_w, channels])
        phase_outputs.append(stream.name)
    joined = model.make_new_valueinfo_name()
    model.set_tensor_shape(joined, [1, grid_h, grid_w, channels * s * s])
    model.set_tensor_datatype(joined, acc_dtype)
    new_nodes.append(helper.make_node("StreamingConcat", phase_outputs, [joined], domain=DOMAIN,
                                      backend="fpgadataflow", name=f"{base}_phases", ImgDim=[grid_h, grid_w],
                                      ChannelsPerStream=[channels] * (s * s), inputDataType=acc_dtype.name))
    y = (chain.crop or chain.d2s).output[0]
    if any(plan.crop_end):
        d2s_out = model.make_new_valueinfo_name()
        model.set_tensor_shape(d2s_out, [1, s * grid_h, s * grid_w, channels])
        model.set_tensor_datatype(d2s_out, acc_dtype)
        new_nodes.append(_copy(chain.d2s, base, [joined], [d2s_out], ImgDim=[grid_h, grid_w], Mode="DCR"))
        new_nodes.append(_crop(f"{base}_crop", d2s_out, y, [s * grid_h, s * grid_w],
                               (0, 0, *plan.crop_end), channels, acc_dtype))
    else:
        new_nodes.append(_copy(chain.d2s, base, [joined], [y], ImgDim=[grid_h, grid_w], Mode="DCR"))

    nodes = list(model.graph.node)
    at = nodes.index(chain.nodes[0])
    for old in chain.nodes:
        nodes.remove(old)
    nodes[at:at] = new_nodes
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    for name in (chain.mvau.input[1:]):
        if not model.find_consumers(name):
            model.del_initializer(name)


class SplitSubPixelPhases(Transformation):
    """Rewrite each FMPadding -> SWG -> MVAU -> DepthToSpace(CRD) -> Crop chain into one
    padded window grid and MVAU per output phase, concatenated into a DCR DepthToSpace, where
    :func:`phase_plan` finds an exact split (see the module docstring). The stream that fed
    the FMPadding is now read ``s*s`` times: run ``InferDuplicateStreams`` afterwards."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        for node in model.graph.node:
            if node.op_type != "DepthToSpace" or node.domain != DOMAIN:
                continue
            chain = find_subpixel_chain(model, node)
            plan = phase_plan(chain, model.get_initializer(chain.mvau.input[1])) if chain is not None else None
            if plan is not None:
                _split(model, chain, plan)
                return model.transform(InferShapes()), True
        return model, False
