"""RTL of a compiled build dir: every layer's Verilog, FIFOs and width converters, one stitched top.

Why our own stitching: FINN's ``CreateStitchedIP`` drives Vivado's block design. The layers'
Verilog does not need Vivado (FINN's ``PrepareIP`` writes it for RTL nodes, our ops fill their
templates), so the top level that wires them is generated here: one AXI-Stream slave in, one
master out with TLAST on the last beat of each frame, ``ap_clk`` / ``ap_rst_n`` as FINN names
them. Weight memories and thresholds are read from FINN's memory init files by absolute path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["RtlDesign", "generate_rtl", "partition_model"]

TOP = "fpga_gan_accelerator"
_REPO = Path(__file__).resolve().parents[2]
# finn-rtllib files Verilator cannot elaborate, replaced (for simulation only) by our own models
SIM_MODELS = {name: _REPO / "sim" / "rtl" / name for name in ("add_multi.sv", "fifo.sv")}
_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|logic\s+|reg\s+)?(?:signed\s+)?(?:\[[^\]]*\]\s*)?([A-Za-z_]\w*)", re.M)


@dataclass
class RtlDesign:
    """What the testbench and the report need to know about the generated RTL."""

    top: str
    rtl_dir: str
    sources: list[str]
    in_bits: int                  # element width of the input stream
    in_elems_per_beat: int
    in_signed: bool
    in_beats_per_frame: int
    out_bits: int
    out_elems_per_beat: int
    out_signed: bool
    out_beats_per_frame: int
    in_shape: list[int]           # NHWC of one frame
    out_shape: list[int]
    fifo_depths: dict[str, int] = field(default_factory=dict)
    clock_mhz: float = 100.0
    default_fifo_depth: int = 2
    source_digest: str = ""       # sha256 of the compiled partition the RTL was generated from
    layers: int | None = None
    fifo_names: list[str] = field(default_factory=list)   # order of the top's fifo_peak_<k> ports
    real_fifos: bool = False      # False: FINN_SIMULATION's unbounded gauges (to measure peak fill)
    # every input stream in graph-input order (the in_* fields above are the first): its AXI-Stream
    # port prefix ("s_axis" for a single-input design, "s_axis_<k>" otherwise), element width,
    # elements per beat, signedness, beats per frame and NHWC frame shape
    inputs: list[dict] = field(default_factory=list)

    @property
    def streams_in(self) -> list[dict]:
        """The input streams; designs saved before multi-input support have only the in_* fields."""
        return self.inputs or [{"port": "s_axis", "bits": self.in_bits, "elems_per_beat": self.in_elems_per_beat,
                                "signed": self.in_signed, "beats_per_frame": self.in_beats_per_frame,
                                "shape": self.in_shape}]

    def save(self) -> None:
        Path(self.rtl_dir, "design.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, rtl_dir: Path) -> "RtlDesign":
        return cls(**json.loads(Path(rtl_dir, "design.json").read_text()))


def partition_model(build_dir: Path):
    """The folded dataflow partition of a finished compile, or a clear error."""
    from qonnx.core.modelwrapper import ModelWrapper

    from ..compiler.errors import CompileError

    state_path = build_dir / "state.json"
    if not state_path.is_file():
        raise CompileError(f"{build_dir} is not a compile build dir (no state.json); run fpga-gan compile first")
    state = json.loads(state_path.read_text())
    if not state.get("complete"):
        failed = state.get("failed_stage")
        raise CompileError(f"the compile in {build_dir} did not finish"
                           + (f" (stage {failed} failed)" if failed else "") + "; run fpga-gan compile again")
    final = sorted(build_dir.glob("*_estimates.onnx"))
    if not final:
        raise CompileError(f"{build_dir} has no estimates stage model; it is from an older compile, run it again")
    from ..compiler.pipeline import partition_file

    parent = ModelWrapper(str(final[-1]))
    child_path = partition_file(parent, build_dir)   # relative to the build dir: it may have been moved
    if not child_path.is_file():
        raise CompileError(f"the dataflow partition {child_path} is missing; compile again")
    return parent, ModelWrapper(str(child_path)), state


def partition_digest(build_dir: Path) -> str:
    """Content hash of the compiled partition (a re-run compile that reused its stages keeps it)."""
    import hashlib

    from ..compiler.pipeline import partition_file

    parent, _, _ = partition_model(build_dir)
    return hashlib.sha256(partition_file(parent, build_dir).read_bytes()).hexdigest()[:16]


def _ports(verilog: str, module: str) -> dict[str, str]:
    """Port name -> direction of ``module``, from its ANSI header (as FINN and our templates write)."""
    start = re.search(rf"\bmodule\s+{module}\b", verilog)
    if start is None:
        raise ValueError(f"module {module} not found")
    header = verilog[start.start():]
    close = re.search(r"\n\s*\);", header)
    header = header[:close.start()] if close else header
    return {m.group(2): m.group(1) for m in _PORT.finditer(header)}


def _top_file(inst, module: str) -> Path:
    for name in inst.get_rtl_file_list(abspath=True):
        path = Path(name)
        if path.is_file() and re.search(rf"\bmodule\s+{module}\b", path.read_text(errors="ignore")):
            return path
    raise FileNotFoundError(f"no generated Verilog defines module {module}")


def _stream_width(inst, direction: str, index: int) -> int:
    names = inst.get_verilog_top_module_intf_names()["s_axis" if direction == "in" else "m_axis"]
    return int(names[index][1])


def first_layers(model, count):
    """The partition cut to a chain of its layers: ``count`` = k keeps the first k, (a, b) keeps
    layers a..b-1 (0-based). To find the layer whose RTL disagrees with its golden model or its
    cycle estimate; a cut must not leave a fork's other branch dangling."""
    from onnx import helper

    nodes = list(model.graph.node)
    start, stop = (0, count) if isinstance(count, int) else (int(count[0]), int(count[1]))
    if not 0 <= start < stop <= len(nodes):
        raise ValueError(f"the partition has {len(nodes)} layers, cannot keep layers {start}..{stop - 1}")
    kept = nodes[start:stop]
    first_in, out = kept[0].input[0], kept[-1].output[0]
    for node in nodes[:start] + nodes[stop:]:
        model.graph.node.remove(node)
    for name, graph_list in ((out, model.graph.output), (first_in, model.graph.input)):
        shape, dtype = model.get_tensor_shape(name), model.get_tensor_datatype(name)
        for vi in [v for v in model.graph.value_info if v.name == name]:
            model.graph.value_info.remove(vi)
        del graph_list[:]
        graph_list.append(helper.make_tensor_value_info(name, 1, shape))
        model.set_tensor_datatype(name, dtype)
    return model


def generate_rtl(build_dir: Path, fifo_depths: dict[str, int] | None = None, default_fifo_depth: int = 2,
                 rtl_dir: Path | None = None, layers: int | None = None) -> RtlDesign:
    """Write ``BUILD/rtl/``: the layers' Verilog, a stitched top and ``design.json``.

    With ``fifo_depths`` (sized FIFOs) every FIFO is finn-rtllib's real ``fifo`` of that depth;
    without, FINN's FIFO wrapper is used, which under ``FINN_SIMULATION`` is an unbounded gauge:
    nothing deadlocks for lack of buffering and each FIFO reports its peak fill, which is how the
    depths are sized. Either way each FIFO's peak fill leaves the top as ``fifo_peak_<k>``.
    """
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.settings import get_settings, initialize_dummy_settings
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveUniqueNodeNames

    from ..compiler.boards import get_board
    from ..ops.registry import Stitch, facts_of

    build_dir = Path(build_dir).resolve()
    rtl_dir = Path(rtl_dir or build_dir / "rtl").resolve()
    if rtl_dir.exists():
        shutil.rmtree(rtl_dir)
    (rtl_dir / "layers").mkdir(parents=True)
    os.environ["FINN_BUILD_DIR"] = str(rtl_dir / "layers")     # FINN's code generation dirs go here
    initialize_dummy_settings()
    import fpga_gan.ops  # noqa: F401 - registers our *_rtl classes with FINN
    rtllib = Path(get_settings().finn_rtllib)

    _, model, state = partition_model(build_dir)
    digest = partition_digest(build_dir)
    if layers is not None:
        model = first_layers(model, layers)
    board = get_board(state["board"])
    clock_mhz = float(json.loads((build_dir / "report.json").read_text())["clock_mhz"])
    model = model.transform(InsertDWC())
    model = model.transform(InsertFIFO(create_shallow_fifos=True))
    model = model.transform(SpecializeLayers(board.part)).transform(GiveUniqueNodeNames())
    real_fifos = fifo_depths is not None
    fifo_depths = dict(fifo_depths or {})
    for node in model.graph.node:
        if facts_of(getCustomOp(node)).sized_fifo:
            inst = getCustomOp(node)
            inst.set_nodeattr("depth", int(fifo_depths.get(node.name, max(default_fifo_depth, 2))))
            inst.set_nodeattr("impl_style", "rtl")
            fifo_depths[node.name] = inst.get_nodeattr("depth")
    model = model.transform(PrepareIP(board.part, 1000.0 / clock_mhz))
    model.save(str(rtl_dir / "model.onnx"))

    sources: list[str] = []
    instances: list[str] = []
    wires: list[str] = []
    tensors: dict[str, tuple[int, str]] = {}
    fifo_names: list[str] = []
    peaks: list[str] = []
    graph_ins, graph_out = [i.name for i in model.graph.input], model.graph.output[0].name

    def add_sources(paths) -> None:
        for p in paths:
            p = Path(p).resolve()
            p = str(SIM_MODELS.get(p.name, p))       # Verilator-compatible stand-ins, see sim/rtl
            if p not in sources:
                sources.append(p)

    for node in model.graph.node:
        inst = getCustomOp(node)
        module = inst.get_nodeattr("gen_top_module")
        files = inst.get_rtl_file_list(abspath=True)
        add_sources(sorted(files, key=lambda f: 0 if f.endswith("_pkg.sv") else 1))
        ports = _ports(_top_file(inst, module).read_text(), module)
        conns = {"ap_clk": "ap_clk", "ap_clk2x": "ap_clk", "ap_rst_n": "ap_rst_n"}
        for i, tensor in enumerate(node.input):
            if model.get_initializer(tensor) is not None:
                continue
            _connect(tensors, tensor, _stream_width(inst, "in", i), node.name)
            for sig in ("TDATA", "TVALID", "TREADY"):
                conns[f"in{i}_V_{sig}"] = f"{_net(tensor)}_{sig.lower()}"
        for i, tensor in enumerate(node.output):
            _connect(tensors, tensor, _stream_width(inst, "out", i), node.name)
            for sig in ("TDATA", "TVALID", "TREADY"):
                conns[f"out{i}_V_{sig}"] = f"{_net(tensor)}_{sig.lower()}"
        facts = facts_of(inst)
        stitch = Stitch(node_name=node.name, code_dir=Path(inst.get_nodeattr("code_gen_dir_ipgen")),
                        rtllib=rtllib, conns=conns, add_sources=add_sources, wires=wires, instances=instances,
                        ports_of=lambda path, mod: _ports(Path(path).read_text(), mod), instance=_instance)
        if facts.sim_hook is not None:
            facts.sim_hook(inst, node, stitch)
        params = stitch.params
        if facts.sized_fifo:
            peak = f"fifo_peak_{len(fifo_names)}"
            fifo_names.append(node.name)
            peaks.append(peak)
            if real_fifos:
                width = _stream_width(inst, "in", 0)
                src, dst = _net(node.input[0]), _net(node.output[0])
                instances.append(
                    f"fifo #(.DEPTH({inst.get_nodeattr('depth')}), .DATA_WIDTH({width}), .RAM_STYLE(\"auto\")) "
                    f"{node.name}_i (\n    .clk(ap_clk), .rst(!ap_rst_n),\n"
                    f"    .idat({src}_tdata), .ivld({src}_tvalid), .irdy({src}_tready),\n"
                    f"    .odat({dst}_tdata), .ovld({dst}_tvalid), .ordy({dst}_tready),\n"
                    f"    .count(), .maxcount({peak}_w)\n);\nassign {peak} = 32'({peak}_w);")
                wires.append(f"wire [$clog2({inst.get_nodeattr('depth')}+1):0] {peak}_w;")
                continue
            conns["maxcount"] = peak
        instances.append(_instance(module, f"{node.name}_i", ports, conns, params))

    for tensor, (width, _) in tensors.items():
        wires.append(f"wire [{width - 1}:0] {_net(tensor)}_tdata;\nwire {_net(tensor)}_tvalid, {_net(tensor)}_tready;")

    streams = [_input_stream(model, name, "s_axis" if len(graph_ins) == 1 else f"s_axis_{k}")
               for k, name in enumerate(graph_ins)]
    lout = getCustomOp(model.graph.node[-1])
    out_dt, out_fold = lout.get_output_datatype(0), lout.get_folded_output_shape(0)
    first = streams[0]
    design = RtlDesign(
        top=TOP, rtl_dir=str(rtl_dir), sources=sources,
        in_bits=first["bits"], in_elems_per_beat=first["elems_per_beat"], in_signed=first["signed"],
        in_beats_per_frame=first["beats_per_frame"],
        out_bits=out_dt.bitwidth(), out_elems_per_beat=int(out_fold[-1]), out_signed=out_dt.signed(),
        out_beats_per_frame=int(np.prod(out_fold[:-1])),
        in_shape=first["shape"],
        out_shape=[int(v) for v in lout.get_normal_output_shape(0)],
        fifo_depths=fifo_depths, clock_mhz=clock_mhz, default_fifo_depth=default_fifo_depth,
        source_digest=digest, layers=layers, fifo_names=fifo_names, real_fifos=real_fifos, inputs=streams)
    top_path = rtl_dir / f"{TOP}.sv"     # SystemVerilog (casts, '0)
    ports_in = [(st["port"], tensors[name][0], _net(name)) for st, name in zip(streams, graph_ins)]
    top_path.write_text(_top_verilog(design, ports_in, tensors[graph_out][0], _net(graph_out),
                                     wires, instances, peaks))
    design.sources = sources + [str(top_path)]
    (rtl_dir / "filelist.f").write_text("\n".join(design.sources) + "\n")
    design.save()
    return design


def _input_stream(model, tensor: str, port: str) -> dict:
    """One input stream of the stitched top, as its first layer reads it."""
    from qonnx.custom_op.registry import getCustomOp

    consumer = model.find_consumer(tensor)
    inst, ind = getCustomOp(consumer), list(consumer.input).index(tensor)
    dt, fold = inst.get_input_datatype(ind), inst.get_folded_input_shape(ind)
    return {"port": port, "bits": dt.bitwidth(), "elems_per_beat": int(fold[-1]), "signed": dt.signed(),
            "beats_per_frame": int(np.prod(fold[:-1])), "shape": [int(v) for v in inst.get_normal_input_shape(ind)]}


def _connect(tensors: dict[str, tuple[int, str]], tensor: str, width: int, node: str) -> None:
    """Record a stream's TDATA width; both ends of a stream must agree (a mismatch is a datatype
    annotation gone wrong in the compiler, and would silently drop or invent bits in hardware)."""
    if tensor in tensors and tensors[tensor][0] != width:
        other_width, other = tensors[tensor]
        raise ValueError(f"stream {tensor!r}: {other} has {other_width} bit TDATA, {node} has {width}; "
                         "the layers disagree on its datatype")
    tensors.setdefault(tensor, (width, node))


def _net(tensor: str) -> str:
    """A legal Verilog identifier for an ONNX tensor name (those may start with a digit)."""
    return "t_" + re.sub(r"\W", "_", tensor)


def _instance(module: str, name: str, ports: dict[str, str], conns: dict[str, str], params: str = "") -> str:
    """Instantiate with every port listed: connected, inputs tied to 0, outputs left open."""
    lines = []
    for port, direction in ports.items():
        if port in conns:
            lines.append(f"    .{port}({conns[port]})")
        elif direction == "input":
            lines.append(f"    .{port}('0)")
        else:
            lines.append(f"    .{port}()")
    return f"{module}{params} {name} (\n" + ",\n".join(lines) + "\n);"


def _top_verilog(d: RtlDesign, ports_in: list[tuple[str, int, str]], out_width: int, graph_out: str,
                 wires: list[str], instances: list[str], peaks: list[str]) -> str:
    """``ports_in``: (port prefix, TDATA width, net) of every input stream, in graph-input order."""
    count_bits = max(1, int(np.ceil(np.log2(d.out_beats_per_frame + 1))))
    peak_ports = "".join(f",\n    output wire [31:0] {p}" for p in peaks)
    in_ports = "".join(f"    input  wire [{width - 1}:0] {port}_tdata,\n    input  wire {port}_tvalid,\n"
                       f"    output wire {port}_tready,\n" for port, width, _ in ports_in)
    in_assigns = "".join(f"assign {net}_tdata = {port}_tdata;\nassign {net}_tvalid = {port}_tvalid;\n"
                         f"assign {port}_tready = {net}_tready;\n" for port, _, net in ports_in)
    frame = ", ".join(f"{st['port']}: {st['beats_per_frame']} beats ({st['elems_per_beat']} x {st['bits']} bit)"
                      for st in d.streams_in)
    return f"""// Generated by fpga_gan.sim.rtl: the stitched dataflow partition. Do not edit.
// One frame in: {frame};
// out: {d.out_beats_per_frame} beats ({d.out_elems_per_beat} x {d.out_bits} bit), TLAST on the last.
`timescale 1ns / 1ps
module {d.top} (
    input  wire ap_clk,
    input  wire ap_rst_n,
{in_ports}    output wire [{out_width - 1}:0] m_axis_tdata,
    output wire m_axis_tvalid,
    input  wire m_axis_tready,
    output wire m_axis_tlast{peak_ports}
);
{chr(10).join(wires)}
{in_assigns}assign m_axis_tdata = {graph_out}_tdata;
assign m_axis_tvalid = {graph_out}_tvalid;
assign {graph_out}_tready = m_axis_tready;

// TLAST: count output beats of the current frame
reg [{count_bits - 1}:0] out_beat;
assign m_axis_tlast = out_beat == {count_bits}'d{d.out_beats_per_frame - 1};
always @(posedge ap_clk) begin
    if (!ap_rst_n) out_beat <= 0;
    else if (m_axis_tvalid && m_axis_tready) out_beat <= m_axis_tlast ? 0 : out_beat + 1;
end

{chr(10).join(instances)}
endmodule
"""
