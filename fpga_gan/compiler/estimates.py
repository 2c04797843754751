"""Per-layer estimates for the report, and the zero-free vs zero-insertion comparison.

The zero-insertion figures are not a formula of ours: each transposed convolution is rebuilt as
a one-layer model, lowered by FINN's own ``InferPixelPaddingDeconv`` route, converted to FINN's
MVAU and folded to the same PE x SIMD as our sub-pixel MVAU, and FINN's estimates are read off.
"""

from __future__ import annotations

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

__all__ = ["deconv_comparison", "mac_count", "node_estimates", "subpixel_mvaus"]


def _attr_or(inst, name: str, default: int = 1) -> int:
    try:
        return int(inst.get_nodeattr(name))
    except (AttributeError, Exception):  # noqa: BLE001 - qonnx raises AttributeError or KeyError variants
        return default


def mac_count(inst) -> int:
    """MACs per frame of a FINN layer (its op counts), 0 for data-movement layers."""
    try:
        counts = inst.get_op_and_param_counts()
    except Exception:  # noqa: BLE001 - data-movement layers have no op counts
        return 0
    return int(sum(v for k, v in counts.items() if k.startswith("op_mac")))


def node_estimates(model: ModelWrapper, fpgapart: str) -> list[dict]:
    from ..ops import facts_of

    rows = []
    for node in model.graph.node:
        inst = getCustomOp(node)
        res = inst.node_res_estimation(fpgapart)
        if (luts := facts_of(inst).lut_estimate) is not None:       # where FINN counts none
            res = {**res, "LUT": luts(inst)}
        rows.append({
            "name": node.name, "op_type": node.op_type,
            "pe": _attr_or(inst, "PE"), "simd": _attr_or(inst, "SIMD"),
            "macs": mac_count(inst), "cycles": int(inst.get_exp_cycles()),
            "lut": float(res.get("LUT", 0)), "bram18": float(res.get("BRAM_18K", 0)),
            "uram": float(res.get("URAM", 0)), "dsp": float(res.get("DSP", 0)),
        })
    return rows


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def zero_insertion_mvau(record: dict, pe_simd: int) -> tuple[int, int]:
    """(MACs, cycles) of FINN's pixel-padding route for the ConvTranspose in ``record``."""
    from finn.transformation.fpgadataflow.convert_to_hw.quantized_matrix_vector_activation import (
        InferQuantizedMatrixVectorActivation,
    )
    from finn.transformation.fpgadataflow.infer_pixel_padding_deconv import (
        InferPixelPaddingDeconv,
    )
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    cin, cout, s, h, w = (record[x] for x in ("cin", "cout", "s", "h", "w"))
    kh, kw = record.get("kernel", [record["k"]] * 2)
    pads = record.get("pads", [record["p"]] * 4)
    out_pad = record.get("output_padding", [0, 0])
    hout = s * (h - 1) + kh - pads[0] - pads[2] + out_pad[0]
    wout = s * (w - 1) + kw - pads[1] - pads[3] + out_pad[1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, hout, wout])
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv", kernel_shape=[kh, kw],
                            strides=[s, s], pads=list(pads), output_padding=list(out_pad), group=1,
                            dilations=[1, 1])
    model = ModelWrapper(helper.make_model(helper.make_graph([node], "zero_insertion", [x], [y])))
    model.set_initializer("w", np.ones((cin, cout, kh, kw), np.float32))
    model.set_tensor_datatype("x", DataType["UINT4"])
    model.set_tensor_datatype("w", DataType["INT4"])
    model = model.transform(InferShapes()).transform(InferPixelPaddingDeconv()).transform(InferShapes())
    model = model.transform(InferDataTypes()).transform(InferQuantizedMatrixVectorActivation())
    mvau = getCustomOp(model.get_nodes_by_op_type("MVAU")[0])
    mh, mw = mvau.get_nodeattr("MH"), mvau.get_nodeattr("MW")
    pe = _largest_divisor_at_most(mh, pe_simd)
    simd = _largest_divisor_at_most(mw, max(1, pe_simd // pe))
    mvau.set_nodeattr("PE", pe)
    mvau.set_nodeattr("SIMD", simd)
    return mac_count(mvau), int(mvau.get_exp_cycles())


def subpixel_mvaus(model: ModelWrapper) -> list[dict]:
    """Per sub-pixel convolution (a layer of phase role "interleave": DepthToSpace), in graph
    order: the ConvTranspose it was lowered from (``source``, its provenance tag; None for a
    user's own DepthToSpace / PixelShuffle) and the layers that compute its phases ("compute":
    the MVAU in front of it, or the per-phase MVAUs behind a "gather" layer, a StreamingConcat,
    through the zero fill of a short phase, FINN's FMPadding). The roles are the layers' own facts
    (:mod:`fpga_gan.ops.registry`)."""
    from ..ops.registry import COMPUTE, GATHER, INTERLEAVE, facts_of
    from .passes.subpixel import provenance

    def role(node) -> str:
        return facts_of(getCustomOp(node)).phase_role

    def computing_behind(tensor: str) -> list[str]:
        producer = model.find_producer(tensor)
        if producer is None:
            return []
        if role(producer) == COMPUTE:
            return [producer.name]
        if role(producer) == GATHER:
            return [name for inp in producer.input for name in computing_behind(inp)]
        if producer.op_type.startswith("FMPadding"):          # FINN's zero fill of a short phase
            return computing_behind(producer.input[0])
        return []

    return [{"source": provenance(n.doc_string), "mvaus": computing_behind(n.input[0])}
            for n in model.graph.node if role(n) == INTERLEAVE]


def deconv_comparison(records: list[dict], nodes: list[dict], groups: list[dict]) -> list[dict]:
    """Pair each transposed convolution with the MVAUs that replaced it (``groups``, from
    :func:`subpixel_mvaus`), by provenance: the lowering tags its DepthToSpace with the
    ConvTranspose's name, so a PixelShuffle elsewhere in the model is never mistaken for one.
    Phase MVAUs run side by side: their MACs and PE x SIMD add up, the slowest sets the cycles.
    ``macs_zero_free`` is what the MVAUs spend, ``macs_useful`` the MACs that meet no inserted
    zero, ``macs_zero_insertion`` FINN's pixel-padding route at the same PE x SIMD."""
    by_name = {n["name"]: n for n in nodes}
    by_source = {g["source"]: g["mvaus"] for g in groups if isinstance(g, dict) and g.get("source")}
    out = []
    for record in records:
        mvaus = [by_name[name] for name in by_source.get(record["name"], []) if name in by_name]
        if not mvaus:
            continue
        pe_x_simd = sum(m["pe"] * m["simd"] for m in mvaus)
        macs_zi, cycles_zi = zero_insertion_mvau(record, pe_x_simd)
        spent = sum(m["macs"] for m in mvaus)
        out.append({"name": record["name"], "macs_zero_free": spent,
                    "macs_useful": record["macs_useful"], "macs_zero_insertion": macs_zi,
                    "ratio_zero_insertion": round(macs_zi / spent, 4),
                    "cycles_zero_free": max(m["cycles"] for m in mvaus), "cycles_zero_insertion": cycles_zi,
                    "pe_x_simd": pe_x_simd, "phase_mvaus": len(mvaus),
                    "phase_macs": [m["macs"] for m in mvaus],
                    "input": [record["h"], record["w"]], "kernel": record["k"], "stride": record["s"],
                    "kernel_shape": record.get("kernel", [record["k"]] * 2),
                    "pads": record.get("pads", [record["p"]] * 4),
                    "output_padding": record.get("output_padding", [0, 0])})
    return out
