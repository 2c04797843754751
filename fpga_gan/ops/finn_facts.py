"""Facts about FINN's own layers that fpga_gan's simulator, folding and estimates need.

A small table keyed by FINN's backend-neutral classes (declared with
:func:`fpga_gan.ops.registry.declare_facts`; ``MVAU`` covers ``MVAU_rtl`` and ``MVAU_hls``). Our
own ops carry their facts as the class attribute ``FACTS``. A module that brings another FINN layer
into the flow (an elementwise add, say) declares its facts the same way, in its own module.
"""

from __future__ import annotations

from pathlib import Path

from finn.custom_op.fpgadataflow.convolutioninputgenerator import ConvolutionInputGenerator
from finn.custom_op.fpgadataflow.fmpadding import FMPadding
from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.streamingdatawidthconverter import StreamingDataWidthConverter
from finn.custom_op.fpgadataflow.streamingfifo import StreamingFIFO
from finn.custom_op.fpgadataflow.thresholding import Thresholding

from .registry import COMPUTE, PASS, OpFacts, Stitch, declare_facts


def _thresholds_path(inst, node, stitch: Stitch) -> None:
    """FINN's Thresholding_rtl reads its thresholds from files named after the node."""
    stitch.params = f' #(.THRESHOLDS_PATH("{stitch.code_dir}/{node.name}_"))'


def _mvau_weight_stream(inst, node, stitch: Stitch) -> None:
    """An MVAU with decoupled weights reads them as a second stream from FINN's memstream; the
    stitched top instantiates the streamer (loaded from ``memblock.dat``) and feeds ``in1_V``."""
    if inst.get_nodeattr("mem_mode") != "internal_decoupled":
        return
    stream = f"{node.name}_weights"
    wrapper = next(Path(stitch.code_dir).glob("*_memstream_wrapper.v"))
    rtllib = stitch.rtllib
    stitch.add_sources([rtllib / "axi/hdl/axilite.sv", rtllib / "memstream/hdl/memstream.sv",
                        rtllib / "memstream/hdl/memstream_axi.sv", wrapper])
    width = (inst.get_instream_width(1) + 7) // 8 * 8
    stitch.wires.append(f"wire [{width - 1}:0] {stream}_tdata;\nwire {stream}_tvalid, {stream}_tready;")
    ports = stitch.ports_of(wrapper, wrapper.stem)
    conns = {"ap_clk": "ap_clk", "ap_clk2x": "ap_clk", "ap_rst_n": "ap_rst_n",
             "m_axis_0_tdata": f"{stream}_tdata", "m_axis_0_tvalid": f"{stream}_tvalid",
             "m_axis_0_tready": f"{stream}_tready"}
    stitch.instances.append(stitch.instance(wrapper.stem, f"{node.name}_wstrm", ports, conns,
                                            f' #(.INIT_FILE("{stitch.code_dir}/memblock.dat"))'))
    for sig in ("TDATA", "TVALID", "TREADY"):
        stitch.conns[f"in1_V_{sig}"] = f"{stream}_{sig.lower()}"


def _mvau_limit(inst, key: str) -> tuple[int, str]:
    if key == "PE":
        return int(inst.get_nodeattr("MH")), "output channels"
    return int(inst.get_nodeattr("MW")), "input channels x k x k"


def _input_channels(inst, key: str) -> tuple[int, str]:
    return int(inst.get_normal_input_shape()[-1]), "input channels"


declare_facts(MVAU, OpFacts(phase_role=COMPUTE, fold_limit=_mvau_limit, sim_hook=_mvau_weight_stream))
declare_facts(Thresholding, OpFacts(sim_hook=_thresholds_path, stream_role=PASS))   # a requantizer on a bypass
declare_facts(ConvolutionInputGenerator, OpFacts(fold_limit=_input_channels))
declare_facts(FMPadding, OpFacts(fold_limit=_input_channels))
declare_facts(StreamingFIFO, OpFacts(stream_role=PASS, sized_fifo=True))
declare_facts(StreamingDataWidthConverter, OpFacts(stream_role=PASS))
