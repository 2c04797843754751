"""Accelerator cases: compile (cached, and cold in a fresh directory), simulate, and the figures.

Why every figure carries its provenance: the FPS of a simulated design is measured (cycles per
frame between back-to-back frames in Verilator), the FPS of an unsimulated one is FINN's estimate,
resources are always FINN's estimates (there is no synthesis here), and MAC counts are counted off
the folded graph. A table that mixed them silently would overstate what was measured.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import AccelCase, model_stem

__all__ = [
    "PROVENANCE",
    "CaseResult",
    "CompileOutcome",
    "accel_row",
    "compile_case",
    "deconv_geometry",
    "deconv_rows",
    "design_structure",
    "lanes_per_dsp",
    "run_case",
    "tool_row",
]

Log = Callable[[str], None]

PROVENANCE = {
    "sim": "measured: RTL simulation (Verilator), cycles per frame between back-to-back frames",
    "estimate": "estimated: FINN cost model (expected cycles of the slowest layer)",
    "resources": "estimated: FINN resource estimates of the folded layers (no synthesis)",
    "macs": "counted: FINN op counts of the folded graph (MACs executed per frame)",
    "bound": "derived: DSP budget x MAC lanes per DSP (finn-rtllib packing at the layers' bit widths) x clock",
    "deconv_macs": "counted: FINN op counts of the zero-free MVAU and of FINN's InferPixelPaddingDeconv MVAU",
    "deconv_cycles": ("estimated: FINN cost model at equal PE x SIMD (neither layer is simulated alone; "
                      "the zero-insertion route has no RTL in this flow)"),
    "compile_fresh": "measured: compile into a fresh directory, this run",
    "compile_cold_here": "measured: this run's compile ran every stage",
    "compile_recorded": "measured: stage times recorded in state.json when the stages last ran (cached now)",
    "rtl": "measured: RTL generation in this run's simulation",
    "rtl_fresh": "measured: RTL generated into a fresh directory, this run (the simulation reused the build's)",
    "verilator_now": "measured: Verilator build in this run",
    "verilator_earlier": ("measured: Verilator build in an earlier run (the previous bench.json, or the build "
                          "dir's sim_report.json); a cache hit in this run"),
    "sim_speed": "measured: simulated cycles / wall seconds of the testbench, this run",
}


@dataclass
class CompileOutcome:
    """What compiling one case gave: the report, or why there is none."""

    status: str                       # "ok", "does not fit", "compile error"
    report: dict | None = None
    message: str = ""
    seconds: float = 0.0
    stages_reused: int = 0
    stages_run: int = 0

    @property
    def cache(self) -> str:
        """``hit``: every stage reused (the estimates are always recomputed, by design), ``partial``
        or ``cold``. A failed compile is never a hit: the stage that failed ran."""
        if self.status == "ok" and self.stages_run == 0 and self.stages_reused:
            return "hit"
        return "partial" if self.stages_reused else "cold"


@dataclass
class CaseResult:
    """Everything measured for one case, before it becomes table rows."""

    case: AccelCase
    build_dir: Path
    compiled: CompileOutcome
    cold_compile: CompileOutcome | None = None
    sim: dict | None = None
    sim_error: str | None = None
    rtl_reused: bool | None = None
    rtl_fresh_s: float | None = None
    previous_sim: dict | None = None
    precision: list[dict] = field(default_factory=list)
    structure: dict | None = None


# ------------------------------------------------------------------------------------------- compile


def compile_case(case: AccelCase, model: str, build_dir: Path, log: Log) -> CompileOutcome:
    """Compile (or resume) ``case`` into ``build_dir``; a design that does not fit is a result, not a crash."""
    from ..compiler.errors import CompileError
    from ..compiler.pipeline import CompileConfig, compile_model

    lines: list[str] = []

    def record(line: str) -> None:
        lines.append(line)
        log(line)

    start = time.perf_counter()
    try:
        report = compile_model(CompileConfig(model=model, board=case.board, target_fps=case.target_fps,
                                             clock_mhz=case.clock_mhz, out_dir=build_dir, log=record)).report
        status, message = "ok", ""
    except CompileError as err:
        report, message = None, str(err)
        status = "does not fit" if "fit" in message.split("\n")[0] else "compile error"
    seconds = time.perf_counter() - start
    reused = sum(1 for line in lines if line.rstrip().endswith("reused"))
    ran = sum(1 for line in lines if "bit-exact" in line and " estimates " not in line)
    return CompileOutcome(status, report, message, seconds, reused, ran)


def cold_compile(case: AccelCase, model: str, scratch: Path, log: Log) -> CompileOutcome:
    """Compile ``case`` into a fresh temporary directory under ``scratch``, to time a cold compile."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"{case.build_name()}-") as tmp:
        return compile_case(case, model, Path(tmp) / "build", log)


def _recorded_compile_seconds(report: dict) -> float:
    return float(sum(stage["seconds"] for stage in report.get("stages", [])))


# ---------------------------------------------------------------------------------------- simulate


def simulate_case(build_dir: Path, frames: int, log: Log) -> tuple[dict, bool]:
    """Simulate with no backpressure (the throughput phase alone); returns the report and whether
    the RTL already generated for this partition was reused."""
    from ..sim.run import simulate

    design = build_dir / "rtl" / "design.json"
    before = design.stat().st_mtime_ns if design.is_file() else None
    report = simulate(build_dir, frames=frames, backpressure=0.0, log=log)
    after = design.stat().st_mtime_ns if design.is_file() else None
    return report, before is not None and before == after


def _has_compiled_stages(build_dir: Path) -> bool:
    """Whether a compile in ``build_dir`` would reuse stages (else it is itself a cold compile)."""
    try:
        return bool(json.loads((build_dir / "state.json").read_text()).get("stages"))
    except (OSError, json.JSONDecodeError):
        return False


def time_rtl_generation(build_dir: Path, scratch: Path) -> float | None:
    """Seconds to generate the sized-FIFO RTL of ``build_dir`` into a fresh directory.

    The simulation reuses the build's RTL when the partition is unchanged, so its own RTL time
    is then near zero; this measures what generating it costs. FINN's build dir (an environment
    variable the generator repoints) is restored afterwards.
    """
    from ..sim.rtl import generate_rtl
    from ..sim.run import load_fifo_depths

    depths = load_fifo_depths(build_dir)
    if depths is None:
        return None
    saved = os.environ.get("FINN_BUILD_DIR")
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="rtl-") as tmp:
        start = time.perf_counter()
        try:
            generate_rtl(build_dir, fifo_depths=depths, rtl_dir=Path(tmp) / "rtl")
        finally:
            if saved is None:
                os.environ.pop("FINN_BUILD_DIR", None)
            else:
                os.environ["FINN_BUILD_DIR"] = saved
        return time.perf_counter() - start


def _previous_sim(build_dir: Path) -> dict | None:
    path = build_dir / "sim_report.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def run_case(case: AccelCase, model: str, build_dir: Path, scratch: Path, frames: int, fresh_compile: bool,
             log: Log, step: Callable[[str], None]) -> CaseResult:
    """Compile, cold-compile (if asked and the build dir holds compiled stages) and simulate one case.

    The cold compile runs first: the compiler points FINN's build dir (an environment variable)
    at the directory it compiles into, and the simulation must see the persistent one. With no
    stages in the build dir, compiling there is the cold compile, so it is not repeated.
    """
    from ..sim.rtl import partition_model
    from ..sim.run import SimError

    cold = None
    if fresh_compile and _has_compiled_stages(build_dir):
        step(f"{case.name}: cold compile")
        cold = cold_compile(case, model, scratch, log)
    step(f"{case.name}: compile")
    result = CaseResult(case, build_dir, compile_case(case, model, build_dir, log), cold)
    if result.compiled.status != "ok":
        return result
    parent, child, _ = partition_model(build_dir)
    result.structure = design_structure(parent, child)
    result.precision = design_precision(child, result.compiled.report["budget"]["part"])
    if case.simulate:
        step(f"{case.name}: simulate")
        result.previous_sim = _previous_sim(build_dir)
        try:
            result.sim, result.rtl_reused = simulate_case(build_dir, frames, log)
        except SimError as err:
            result.sim_error = str(err)
        if result.rtl_reused:
            result.rtl_fresh_s = time_rtl_generation(build_dir, scratch)
    return result


# --------------------------------------------------------------------------------- physical bound


def dsp_version(part: str) -> int:
    """finn-rtllib's compute core version for the part: 1 DSP48E1, 2 DSP48E2, 3 DSP58."""
    from finn.util.basic import get_dsp_block

    return {"DSP58": 3, "DSP48E2": 2}.get(get_dsp_block(part), 1)


def lanes_per_dsp(version: int, weight_bits: int, act_bits: int, narrow_weights: bool) -> int:
    """MACs one DSP does per cycle in FINN's RTL MVU, as finn-rtllib's mvu.sv packs them.

    A DSP48's A port (25 bits, 27 on DSP48E2) holds several weights, each lane needing
    ``weight_bits + act_bits - 1`` bits; e.g. 4-bit weights and activations: 4 lanes (3 on a
    DSP48E1 with full-range weights), 8-bit: 2. DSP58 runs up to 8-bit weights in its INT8 mode,
    3 lanes (mvu_vvu_axi.sv).
    """
    a_width = 25 + 2 * (version > 1)
    min_lane = weight_bits + act_bits - 1
    lanes = 1 if a_width == weight_bits else 1 + (a_width - (not narrow_weights) - weight_bits) // min_lane
    if version > 2 and lanes <= 3 and weight_bits <= 8 and act_bits <= 9:
        return 3
    return max(1, lanes)


def design_structure(parent, child) -> dict:
    """What the compiled graph is made of: how many dataflow partitions, the op types left outside
    them, and the partition's layers that are not RTL layers (``*_rtl``). Counted off the final
    stage model (``parent``) and its partition (``child``), not taken from the compiler's word."""
    partitions = parent.get_nodes_by_op_type("StreamingDataflowPartition")
    return {"partitions": len(partitions),
            "outside_partition": sorted({n.op_type for n in parent.graph.node} - {"StreamingDataflowPartition"}),
            "layers": len(child.graph.node),
            "non_rtl_layers": sorted({n.op_type for n in child.graph.node if not n.op_type.endswith("_rtl")})}


def design_precision(child, part: str) -> list[dict]:
    """Per MVAU of the compiled partition ``child``: bit widths, MAC lanes per DSP, MACs per frame."""
    import numpy as np
    from qonnx.custom_op.registry import getCustomOp

    from ..compiler.estimates import mac_count

    version = dsp_version(part)
    rows = []
    for node in child.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        wdt, adt = inst.get_input_datatype(1), inst.get_input_datatype(0)
        weights = child.get_initializer(node.input[1])
        narrow = weights is not None and float(np.min(weights)) > wdt.min()
        macs = mac_count(inst)
        rows.append({"name": node.name, "weight_bits": wdt.bitwidth(), "act_bits": adt.bitwidth(),
                     "narrow_weights": narrow, "macs": int(macs),
                     "lanes_per_dsp": lanes_per_dsp(version, wdt.bitwidth(), adt.bitwidth(), narrow)})
    return rows


def effective_lanes_per_dsp(precision: list[dict]) -> float | None:
    """MAC lanes per DSP over the whole design, weighting each layer by its MACs: the DSP-cycles
    a frame needs are sum(macs / lanes), so the design's packing is total MACs over that."""
    macs = sum(p["macs"] for p in precision)
    dsp_cycles = sum(p["macs"] / p["lanes_per_dsp"] for p in precision)
    return macs / dsp_cycles if dsp_cycles else None


# -------------------------------------------------------------------------------------------- rows


def _resources(report: dict) -> dict:
    totals, budget = report["totals"], report["budget"]
    out = {}
    for key in ("lut", "bram18", "uram", "dsp"):
        have = budget[key]
        out[key] = {"used": totals[key], "budget": have, "pct": 100 * totals[key] / have if have else None}
    return out


def _headline(result: CaseResult, report: dict) -> tuple[float, float, str]:
    """(cycles per frame, FPS, provenance): simulated where the simulation ran, else estimated."""
    if result.sim is not None:
        return result.sim["cycles_per_frame"], result.sim["fps_at_clock"], PROVENANCE["sim"]
    return report["totals"]["cycles_per_frame"], report["totals"]["fps"], PROVENANCE["estimate"]


def accel_row(result: CaseResult) -> dict:
    """The accelerator table's row of one case (status and message alone when it did not compile)."""
    case, outcome = result.case, result.compiled
    row: dict = {"case": case.name, "model": model_stem(case.model), "board": case.board,
                 "status": outcome.status, "message": outcome.message}
    if outcome.report is None:
        return row
    report = outcome.report
    cycles, fps, fps_source = _headline(result, report)
    macs = sum(n.get("macs") or 0 for n in report["nodes"])
    clock = float(report["clock_mhz"])
    gops = 2 * macs * fps / 1e9
    res = _resources(report)
    lanes = effective_lanes_per_dsp(result.precision)
    bound_lanes = report["budget"]["dsp"] * lanes if lanes else None
    bound_gops = 2 * bound_lanes * clock * 1e6 / 1e9 if bound_lanes else None
    row.update({
        "clock_mhz": clock, "simulated": result.sim is not None, "fps_source": fps_source,
        "cycles_per_frame": cycles, "fps": fps,
        "fps_sim": result.sim["fps_at_clock"] if result.sim else None,
        "cycles_per_frame_sim": result.sim["cycles_per_frame"] if result.sim else None,
        "fps_estimate": report["totals"]["fps"], "cycles_per_frame_estimate": report["totals"]["cycles_per_frame"],
        "sim_vs_estimate_cycles": result.sim["cycles_vs_estimate"] if result.sim else None,
        "sim_frames": result.sim["frames"] if result.sim else None,
        "sim_mismatches": result.sim["mismatches"] if result.sim else None,
        "latency_cycles": result.sim["latency_cycles"] if result.sim else None,
        "sim_error": result.sim_error,
        "fits": bool(report["fits"]), "structure": result.structure,
        "resources": res, "macs_per_frame": macs, "gops": gops,
        "gops_per_dsp": gops / res["dsp"]["used"] if res["dsp"]["used"] else None,
        "gops_per_klut": gops / (res["lut"]["used"] / 1e3) if res["lut"]["used"] else None,
        "mac_lanes_used": sum(n["pe"] * n["simd"] for n in report["nodes"] if n["op_type"].startswith("MVAU")),
        "lanes_per_dsp": lanes, "bound_lanes": bound_lanes, "bound_gops": bound_gops,
        "bound_reached_pct": 100 * gops / bound_gops if bound_gops else None,
        "weight_bits": sorted({p["weight_bits"] for p in result.precision}),
        "act_bits": sorted({p["act_bits"] for p in result.precision}),
        "provenance": {"fps": fps_source, "cycles_per_frame": fps_source, "fps_sim": PROVENANCE["sim"],
                       "fps_estimate": PROVENANCE["estimate"], "resources": PROVENANCE["resources"],
                       "macs_per_frame": PROVENANCE["macs"], "gops": f"derived: 2 x MACs x FPS ({fps_source})",
                       "bound_gops": PROVENANCE["bound"], "bound_reached_pct": "derived: GOPS / bound GOPS"},
    })
    return row


def deconv_geometry(kernel: list[int], stride: int, pads: list[int], output_padding: list[int]) -> str:
    """``k4s2p1``, ``k3s2p1op1``, ``k3x5s2p1,2,1,2``: the layer as the table names it (square
    kernels and equal pads written once; output padding only where there is some)."""
    k = f"{kernel[0]}" if len(set(kernel)) == 1 else "x".join(map(str, kernel))
    p = f"{pads[0]}" if len(set(pads)) == 1 else ",".join(map(str, pads))
    op = "" if not any(output_padding) else (f"op{output_padding[0]}" if len(set(output_padding)) == 1
                                             else "op" + ",".join(map(str, output_padding)))
    return f"k{k}s{stride}p{p}{op}"


def deconv_rows(result: CaseResult) -> list[dict]:
    """Zero-free vs zero-insertion, per transposed convolution of the case, from the compile report."""
    if result.compiled.report is None:
        return []
    rows = []
    for d in result.compiled.report.get("deconv", []):
        kernel = d.get("kernel_shape") or [d["kernel"]] * 2
        pads, output_padding = d.get("pads") or [0] * 4, d.get("output_padding") or [0, 0]
        rows.append({
            "case": result.case.name, "model": model_stem(result.case.model), "layer": d["name"],
            "input": d["input"], "kernel": d["kernel"], "stride": d["stride"], "kernel_shape": kernel,
            "pads": pads, "output_padding": output_padding,
            "geometry": deconv_geometry(kernel, d["stride"], pads, output_padding), "pe_x_simd": d["pe_x_simd"],
            "macs_zero_free": d["macs_zero_free"], "macs_zero_insertion": d["macs_zero_insertion"],
            "macs_useful": d["macs_useful"], "macs_spent_vs_useful": d["macs_zero_free"] / d["macs_useful"],
            "macs_ratio": d["macs_zero_insertion"] / d["macs_zero_free"],
            "cycles_zero_free": d["cycles_zero_free"], "cycles_zero_insertion": d["cycles_zero_insertion"],
            "cycles_ratio": d["cycles_zero_insertion"] / d["cycles_zero_free"], "cycles_source": "estimated",
            "provenance": {"macs": PROVENANCE["deconv_macs"], "cycles": PROVENANCE["deconv_cycles"]},
        })
    return rows


def _compile_times(result: CaseResult) -> tuple[float | None, str]:
    """The cold compile time and where it comes from (fresh dir, this run's cold compile, or state.json)."""
    if result.cold_compile is not None and result.cold_compile.status == result.compiled.status:
        return result.cold_compile.seconds, PROVENANCE["compile_fresh"]
    if result.compiled.cache == "cold":
        return result.compiled.seconds, PROVENANCE["compile_cold_here"]
    if result.compiled.report is not None:
        return _recorded_compile_seconds(result.compiled.report), PROVENANCE["compile_recorded"]
    return None, "not measured: the cached compile failed before recording its stages"


def _verilator_build(result: CaseResult, previous_row: dict | None) -> tuple[float | None, str]:
    """The Verilator build time: this run's, else the last one measured (this bench's previous run,
    or the build dir's previous sim_report.json), saying that the build was a cache hit now."""
    sim = result.sim
    if sim is None:
        return None, "not simulated"
    if not sim["build_cached"]:
        return sim["build_seconds"], PROVENANCE["verilator_now"]
    if previous_row and previous_row.get("verilator_build_s") is not None:
        return previous_row["verilator_build_s"], PROVENANCE["verilator_earlier"]
    prev = result.previous_sim
    if prev and not prev.get("build_cached", True):
        return prev["build_seconds"], PROVENANCE["verilator_earlier"]
    return None, "not measured: cache hit, and no earlier run recorded the build's time"


def tool_row(result: CaseResult, previous_row: dict | None = None) -> dict:
    """Tool times of one case: compile (cold and now), RTL generation, Verilator build, simulation speed."""
    cold_s, cold_source = _compile_times(result)
    build_s, build_source = _verilator_build(result, previous_row)
    sim = result.sim
    row = {"case": result.case.name, "status": result.compiled.status,
           "compile_cold_s": cold_s, "compile_cold_source": cold_source,
           "compile_now_s": result.compiled.seconds, "compile_cache": result.compiled.cache,
           "verilator_build_s": build_s, "verilator_build_source": build_source}
    if sim is not None:
        rtl_s, rtl_source = ((result.rtl_fresh_s, PROVENANCE["rtl_fresh"]) if result.rtl_reused
                             else (sim["rtl_seconds"], PROVENANCE["rtl"]))
        row.update({"rtl_s": rtl_s, "rtl_source": rtl_source,
                    "sim_seconds": sim["sim_seconds"], "sim_cycles": sim["sim_cycles"],
                    "sim_cycles_per_s": sim["sim_cycles_per_second"], "sim_frames": sim["frames"],
                    "sim_s_per_frame": sim["sim_seconds"] / sim["frames"], "simulator": sim["simulator"],
                    "provenance": {"rtl_s": rtl_source, "sim_cycles_per_s": PROVENANCE["sim_speed"]}})
    return row
