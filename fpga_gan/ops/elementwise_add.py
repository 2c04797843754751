"""What fpga_gan knows about FINN's ``ElementwiseAdd_rtl`` (finn-rtllib ``eltwise``), in one place.

Residual adds (``x + f(x)``) stream through FINN's own op: the backend-neutral
``ElementwiseAdd`` (golden model: numpy add) and its RTL backend, whose integer path is
finn-rtllib's ``binopi`` (``a + b``, one register stage, LUTs only) behind a credit-based join of
the two input streams. The graph passes that produce it are in
:mod:`fpga_gan.compiler.passes.residual`. What the rest of fpga_gan needs to treat the op right
lives here, as the op's facts in the layer registry (:mod:`fpga_gan.ops.registry`), so no other
module tests the op's name:

* simulation: it joins the two branches of a skip connection, so the FIFOs on the short branch
  (the bypass) must hold what the long branch delays: sized to their peak, never capped, like the
  skip FIFOs in front of a ``StreamingConcat``; a requantizing ``Thresholding`` layer may sit on
  that bypass (:mod:`~fpga_gan.compiler.passes.residual` puts one there when the grids differ);
* folding: FINN's ``SetFolding`` folds only the HLS elementwise ops, so the PE of the RTL add is
  set here (``OpFacts.fold``), to the smallest that meets the cycle target;
* estimates: FINN counts only the (absent) parameter memory; the adder, the input side registers
  and the 4-deep output queue are estimated here (``OpFacts.lut_estimate``);
* lint: the wrapper FINN fills for the op is linted with finn-rtllib's sources.

The requantizing ``Thresholding`` on a bypass is a ``PASS`` layer in FINN's facts
(:mod:`fpga_gan.ops.finn_facts`), so the simulator walks through it to the add.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["fold_for_cycles", "lint_eltwise", "lut_estimate"]

# finn-rtllib eltwise: CREDIT = LATENCY + 3 entries in its output queue (binopi ADD: LATENCY 1).
_OUTPUT_QUEUE_DEPTH = 4


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


def _declare_facts() -> None:
    """The add joins two streams in lockstep, so the simulator sizes the FIFOs on its bypass like a
    concat's skip FIFOs; SetFolding does not fold FINN's RTL adds, and FINN counts no LUTs for them."""
    from finn.custom_op.fpgadataflow.elementwise_binary import ElementwiseAdd

    from .registry import JOIN, OpFacts, declare_facts

    declare_facts(ElementwiseAdd, OpFacts(stream_role=JOIN, fold=fold_for_cycles, lut_estimate=lut_estimate))


_declare_facts()


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
