"""What fpga_gan knows about FINN's ``ElementwiseAdd_rtl`` (finn-rtllib ``eltwise``), in one place.

Residual adds (``x + f(x)``) stream through FINN's own op: the backend-neutral
``ElementwiseAdd`` (golden model: numpy add) and its RTL backend, whose integer path is
finn-rtllib's ``binopi`` (``a + b``, one register stage, LUTs only) behind a credit-based join of
the two input streams. The graph passes that produce it are in
:mod:`fpga_gan.compiler.passes.residual`. What the rest of fpga_gan needs to treat the op right
lives here, behind :func:`op_facts`, so no other module tests the op's name:

* simulation: it joins the two branches of a skip connection, so the FIFOs on the short branch
  (the bypass) must hold what the long branch delays: sized to their peak, never capped, like the
  skip FIFOs in front of a ``StreamingConcat``; a requantizing ``Thresholding`` layer may sit on
  that bypass (:mod:`~fpga_gan.compiler.passes.residual` puts one there when the grids differ);
* folding: FINN's ``SetFolding`` folds only the HLS elementwise ops, so the PE of the RTL add is
  set here, to the smallest that meets the cycle target;
* estimates: FINN counts only the (absent) parameter memory; the adder, the input side registers
  and the 4-deep output queue are estimated here;
* lint: the wrapper FINN fills for the op is linted with finn-rtllib's sources.

HOOKS (the call sites that use these facts, each marked ``# HOOK``; the ``ops`` registry takes
them over at merge): ``fpga_gan.sim.run.skip_fifos`` (:func:`joins_skip`, :func:`on_skip_path`),
``fpga_gan.compiler.folding._fold`` (``op_facts(node).fold``),
``fpga_gan.compiler.folding.resource_totals`` and ``fpga_gan.compiler.estimates.node_estimates``
(``op_facts(node).lut_estimate``: FINN reports 0 LUTs for the op).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["OP_TYPES", "OpFacts", "fold_for_cycles", "joins_skip", "lint_eltwise", "lut_estimate", "on_skip_path",
           "op_facts"]

OP_TYPES = ("ElementwiseAdd", "ElementwiseAdd_rtl")
# Layers the residual alignment may leave between a stream fork and the add (a requantizer).
_SKIP_PATH_OPS = ("Thresholding",)
# finn-rtllib eltwise: CREDIT = LATENCY + 3 entries in its output queue (binopi ADD: LATENCY 1).
_OUTPUT_QUEUE_DEPTH = 4


@dataclass(frozen=True)
class OpFacts:
    """The facts of one op kind that sim / folding / estimates need."""

    joins_skip: bool                                  # ends a skip connection (bypass FIFO sized, not capped)
    fold: Callable[[object, int], None]               # (op instance, target cycles) -> sets PE
    lut_estimate: Callable[[object], int]             # op instance -> LUTs


def _channels(inst) -> int:
    return int(inst.get_normal_output_shape()[-1])


def fold_for_cycles(inst, target_cycles: int) -> None:
    """Smallest PE dividing the channels whose cycles per frame (pixels x channels / PE) meet the target."""
    channels = _channels(inst)
    pixels = int(math.prod(inst.get_normal_output_shape()[:-1]))
    for pe in range(1, channels + 1):
        if channels % pe == 0 and pixels * channels // pe <= target_cycles:
            break
    inst.set_nodeattr("PE", pe)


def lut_estimate(inst) -> int:
    """LUTs: one adder bit per output bit and lane, the output queue in LUTRAM (one LUT per two bits
    of its 4 entries), and the input side registers' muxes (one LUT per input bit), plus control."""
    pe = int(inst.get_nodeattr("PE"))
    out_bits = inst.get_output_datatype().bitwidth() * pe
    in_bits = (inst.get_input_datatype(0).bitwidth() + inst.get_input_datatype(1).bitwidth()) * pe
    return out_bits + math.ceil(out_bits * _OUTPUT_QUEUE_DEPTH / 8) + in_bits + 12


_FACTS = OpFacts(joins_skip=True, fold=fold_for_cycles, lut_estimate=lut_estimate)


def _declare_stream_role() -> None:
    """The registry's view (:mod:`fpga_gan.ops.registry`): the add joins two streams in lockstep,
    so the simulator sizes the FIFOs on its bypass like a concat's skip FIFOs."""
    from finn.custom_op.fpgadataflow.elementwise_binary import ElementwiseAdd

    from .registry import JOIN, declare_facts
    from .registry import OpFacts as RegistryFacts

    declare_facts(ElementwiseAdd, RegistryFacts(stream_role=JOIN))


_declare_stream_role()


def op_facts(node) -> OpFacts | None:
    """The facts of ``node``'s op if it is FINN's elementwise add, else None (the lookup the other
    modules call instead of testing op names)."""
    return _FACTS if node is not None and node.op_type in OP_TYPES and len(node.input) == 2 else None


def joins_skip(node) -> bool:
    facts = op_facts(node)
    return facts is not None and facts.joins_skip


def on_skip_path(node) -> bool:
    """A one-in one-out layer that may sit on the bypass of a residual add (walked through when
    looking for the bypass FIFOs)."""
    return node is not None and node.op_type.startswith(_SKIP_PATH_OPS) and len(node.input) >= 1


def lint_eltwise(work_dir: Path, dtype: str = "INT5", channels: int = 6, pe: int = 3):
    """Fill FINN's ``ElementwiseAdd_rtl`` wrapper for two ``dtype`` streams into ``work_dir`` and lint
    it with finn-rtllib's eltwise sources (our Verilator, ``-DFINN_SIMULATION``; the float-path
    sources finn-rtllib lists are linted too, which checks that the unused DSPFP32 branch does not
    stop Verilator). Returns (files, CompletedProcess)."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.util.basic import qonnx_make_model

    from .lint import lint

    shape = [1, 2, 2, channels]
    width = DataType[dtype].bitwidth()
    out_dtype = DataType[f"{'INT' if DataType[dtype].signed() else 'UINT'}{width + 1}"]
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("a", "b")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    node = helper.make_node("ElementwiseAdd_rtl", ["a", "b"], ["y"], domain="finn.custom_op.fpgadataflow.rtl",
                            backend="fpgadataflow", name="ElementwiseAdd_rtl_0", lhs_shape=shape, rhs_shape=shape,
                            out_shape=shape, lhs_dtype=dtype, rhs_dtype=dtype, out_dtype=out_dtype.name,
                            lhs_style="input", rhs_style="input", PE=pe)
    model = ModelWrapper(qonnx_make_model(helper.make_graph([node], "g", ins, [y])))
    for name in ("a", "b"):
        model.set_tensor_datatype(name, DataType[dtype])
    inst = getCustomOp(model.graph.node[0])
    work_dir.mkdir(parents=True, exist_ok=True)
    inst.set_nodeattr("code_gen_dir_ipgen", str(work_dir))
    inst.generate_hdl(model, "xck26-sfvc784-2LV-c", 5.0)
    from .lint import SIM_RTL

    stand_ins = {"fifo.sv": SIM_RTL / "fifo.sv"}     # as the simulation uses (fpga_gan.sim.rtl.SIM_MODELS)
    files = [Path(stand_ins.get(Path(f).name, f)) for f in inst.get_rtl_file_list(abspath=True)]
    return files, lint(files, inst.get_nodeattr("gen_top_module"), "-DFINN_SIMULATION", "-Wno-fatal")
