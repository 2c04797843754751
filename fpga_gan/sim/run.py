"""``fpga-gan sim``: simulate a compiled accelerator in Verilator, frame by frame, bit for bit.

The reference for every frame is FINN's Python execution of the same dataflow partition (each
layer's golden model, which the compiler checked against the original QONNX model); the RTL's
output codes must equal it exactly. Verilator builds are cached by a hash of the RTL sources'
contents (:mod:`fpga_gan.sim.verilator`), so re-running an unchanged design does not rebuild.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .._files import write_json_atomic
from ..compiler.errors import CompileError, explained_failures
from .rtl import RtlDesign, first_layers, generate_rtl, partition_model
from .verilator import SimulatorError, build, frames_to_beats, run_frames, simulator_version

__all__ = ["SimError", "simulate", "design_for"]


class SimError(CompileError):
    """A simulation that could not run or did not match; the message says which and why."""


def _golden(child, frames_nhwc) -> np.ndarray:
    """FINN's Python execution frame by frame; ``frames_nhwc`` is one array (frames, ...) or, for a
    multi-input partition, a list of them in graph-input order."""
    from ..compiler.pipeline import execute_golden

    streams = [frames_nhwc] if isinstance(frames_nhwc, np.ndarray) else list(frames_nhwc)
    return np.stack([execute_golden(child, [s[i][None].astype(np.float32) for s in streams])[0]
                     for i in range(len(streams[0]))])


FIFO_FILE = "fifo_depths.json"


def load_fifo_depths(build_dir: Path) -> dict[str, int] | None:
    """The simulated FIFO depths of ``build_dir``'s partition as it is now compiled; None when
    it was never sized, or sized for a partition since recompiled (FIFO names and roles change
    with the graph: old depths would leave new FIFOs at depth 2, and a skip connection deadlocks)."""
    from .rtl import partition_digest

    path = Path(build_dir) / FIFO_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    if not isinstance(saved.get("depths"), dict) or saved.get("partition") != partition_digest(Path(build_dir)):
        return None
    return {name: int(depth) for name, depth in saved["depths"].items()}


def save_fifo_depths(build_dir: Path, depths: dict[str, int]) -> None:
    """Write ``fifo_depths.json``, tied to the partition they were measured on."""
    from .rtl import partition_digest

    payload = {"partition": partition_digest(Path(build_dir)), "depths": depths}
    write_json_atomic(Path(build_dir) / FIFO_FILE, payload)


def design_for(build_dir: Path, fifo_depths: dict[str, int] | None = None, layers: int | None = None) -> RtlDesign:
    """The generated RTL of ``build_dir``, regenerated when missing, stale or of other FIFO depths.

    ``fifo_depths`` None: unbounded gauge FIFOs (``rtl-gauge/``); else real FIFOs (``rtl/``).
    """
    from .rtl import partition_digest

    name = "rtl" if fifo_depths is not None else "rtl-gauge"
    cut = None if layers is None else (str(layers) if isinstance(layers, int) else f"{layers[0]}-{layers[1]}")
    rtl_dir = build_dir / (name if cut is None else f"{name}-layers-{cut}")
    if (rtl_dir / "design.json").is_file():
        design = RtlDesign.load(rtl_dir)
        if (Path(design.rtl_dir).resolve() == rtl_dir.resolve()   # not another (copied-from) build dir's RTL
                and all(Path(p).is_file() for p in design.sources) and design.source_digest == partition_digest(build_dir)
                and design.real_fifos == (fifo_depths is not None)
                and (fifo_depths is None or design.fifo_depths == fifo_depths)):
            return design
    with explained_failures("rtl_generation"):      # FINN's code generation asserts too: say where and why
        return generate_rtl(build_dir, fifo_depths=fifo_depths, rtl_dir=rtl_dir, layers=layers)


# Depth caps (in beats) tried in turn for FIFOs that are not on a skip connection; None: the
# measured peak. Accepted when the sized design keeps the unbounded design's throughput. Each try
# is a Verilator build; 64 lost throughput on the small U-Net (bursty sub-pixel rows), and 1024
# cuts only what a greedy source piles up in front of slow layers.
CHAIN_FIFO_CAPS = (1024, None)
THROUGHPUT_SLACK = 1.01


def skip_fifos(model) -> set[str]:
    """The FIFOs that buffer a skip connection.

    They sit between a layer that forks a stream (stream role "fork": DuplicateStreams) and one
    that joins streams in lockstep ("join": a concat, an elementwise add) with only stream plumbing
    ("pass": FIFOs, width converters, or a residual add's requantizer on its bypass) in between,
    and must hold everything the long branch delays, or the design deadlocks. Every other FIFO
    only smooths rates: backpressure makes a shallow one safe, and its peak fill in an unbounded
    run is mostly the backlog of a greedy source, not a need (the try-on's input FIFOs filled to
    40,000 beats, which no board could afford). The roles are the layers' own facts
    (:mod:`fpga_gan.ops.registry`).
    """
    from qonnx.custom_op.registry import getCustomOp

    from ..ops.registry import FORK, JOIN, PASS, facts_of

    def facts(node):
        return facts_of(getCustomOp(node))

    skip: set[str] = set()
    for node in model.graph.node:
        if facts(node).stream_role != FORK:
            continue
        for tensor in node.output:
            path = []
            consumer = model.find_consumer(tensor)
            while consumer is not None and facts(consumer).stream_role == PASS:
                path.append(consumer)
                consumer = model.find_consumer(consumer.output[0])
            if consumer is not None and facts(consumer).stream_role == JOIN:
                skip.update(n.name for n in path if facts(n).sized_fifo)
    return skip


def sized_depths(names: list[str], peaks: list[int], skip: set[str] = frozenset(),
                 chain_cap: int | None = None) -> dict[str, int]:
    """Depth per FIFO from its peak fill in an unbounded run: 10% (at least 2) headroom, and at
    most ``chain_cap`` beats for FIFOs that are not in ``skip``."""
    depths = {}
    for name, peak in zip(names, peaks):
        depth = max(2, peak + max(2, -(-peak // 10)))
        if chain_cap is not None and name not in skip:
            depth = min(depth, max(2, chain_cap))
        depths[name] = depth
    return depths


def simulate(build_dir: str | Path, frames: int = 4, backpressure: float = 0.3, waves: bool = False,
             seed: int = 0, stall_cycles: int | None = None, size_fifos: bool = False, layers: int | None = None,
             log=print) -> dict:
    """Build (cached) and run the RTL of ``build_dir``; write and return ``sim_report.json``.

    FIFOs: with ``size_fifos`` (or when ``fifo_depths.json`` does not exist yet, or was sized for
    an earlier compile of the partition) a first run
    with unbounded gauge FIFOs measures each FIFO's peak fill and the unbounded throughput. Skip
    connection FIFOs get their peak + 10%; the others are capped (:data:`CHAIN_FIFO_CAPS`, the
    smallest cap that keeps the unbounded throughput within 1%). The depths go to
    ``fifo_depths.json``. The reported run uses real FIFOs of those depths, which shows there is
    no deadlock and gives the throughput of the design as it would be built.
    """
    build_dir = Path(build_dir).resolve()
    if frames < 2:
        raise SimError("--frames must be at least 2: the cycles per frame are measured between frames")
    if not 0 <= backpressure < 1:
        raise SimError("--backpressure is a probability in [0, 1)")
    _, child, state = partition_model(build_dir)       # clear errors for a bad or unfinished build dir
    if layers is not None:
        child = first_layers(child, layers)
    report_extra: dict = {}
    try:
        simulator = simulator_version()
        rng = np.random.default_rng(seed)
        dtypes = [child.get_tensor_datatype(i.name) for i in child.graph.input]
        estimate = json.loads((build_dir / "report.json").read_text())["totals"]["cycles_per_frame"]
        stall = stall_cycles or max(200_000, 4 * int(estimate))
        depths = None
        if not size_fifos and layers is None:
            depths = load_fifo_depths(build_dir)
            if depths is None and (build_dir / FIFO_FILE).is_file():
                log(f"{FIFO_FILE} was sized for an earlier compile of this build; sizing the FIFOs again")
        inputs = expected = None

        def run_design(fifo_depths):
            nonlocal inputs, expected
            start = time.perf_counter()
            design = design_for(build_dir, fifo_depths, layers)
            rtl_seconds = time.perf_counter() - start
            log(f"RTL ({'unbounded gauge FIFOs' if fifo_depths is None else 'sized FIFOs'}): "
                f"{len(design.sources)} files in {design.rtl_dir} ({rtl_seconds:.1f} s)")
            if inputs is None:                          # random frames of every input stream, in its code range
                inputs = [rng.integers(int(dt.min()), int(dt.max()) + 1, size=(frames, *st["shape"][1:]))
                          for dt, st in zip(dtypes, design.streams_in)]
                expected = _golden(child, inputs).astype(np.int64)
            sim_build, build_seconds, cached = build(design.top, design.sources, build_dir / "sim", waves=waves,
                                                     log=log)
            log(f"Verilator build: {'cached' if cached else f'{build_seconds:.1f} s'}")
            run = run_frames(design.top, sim_build,
                             [frames_to_beats(x, st["bits"], st["elems_per_beat"])
                              for x, st in zip(inputs, design.streams_in)],
                             frames_to_beats(expected, design.out_bits, design.out_elems_per_beat),
                             build_dir / "sim", backpressure=backpressure, seed=seed, stall_cycles=stall,
                             waves=waves, ports=[st["port"] for st in design.streams_in])
            return design, run, rtl_seconds, build_seconds, cached, sim_build

        if depths is not None:
            design, run, rtl_seconds, build_seconds, cached, sim_build = run_design(depths)
        else:
            design, run, rtl_seconds, build_seconds, cached, sim_build = run_design(None)
            if not run.results["mismatches"]:
                from qonnx.core.modelwrapper import ModelWrapper

                peaks, unbounded = run.results["fifo_peaks"], run.results["cycles_per_frame"]
                skip = skip_fifos(ModelWrapper(str(Path(design.rtl_dir) / "model.onnx")))
                names = design.fifo_names
                report_extra = {"unbounded_cycles_per_frame": unbounded, "fifo_peak_total": int(sum(peaks)),
                                "skip_fifos": sorted(skip)}
                log(f"FIFO peaks measured: {len(names)} FIFOs, {len(skip)} on skip connections")
                for cap in CHAIN_FIFO_CAPS:
                    depths = sized_depths(names, peaks, skip, cap)
                    design, run, rtl_seconds, build_seconds, cached, sim_build = run_design(depths)
                    cycles = run.results["cycles_per_frame"]
                    report_extra["chain_fifo_cap"] = cap
                    if run.results["mismatches"] or cycles <= unbounded * THROUGHPUT_SLACK:
                        break
                    log(f"chain FIFOs capped at {cap} beats: {cycles:,} cycles per frame, unbounded {unbounded:,}; "
                        "trying deeper ones")
                if layers is None and not run.results["mismatches"]:
                    save_fifo_depths(build_dir, depths)
                    log(f"FIFO depths: total {sum(depths.values()):,} beats (written to {FIFO_FILE})")
    except SimulatorError as err:
        raise SimError(f"simulation of {build_dir}: {err}") from err
    result, clock = run.results, float(design.clock_mhz)
    report = {
        "frames": result["frames"], "mismatches": result["mismatches"],
        "mismatch_frames": result["mismatch_frames"], "backpressure": backpressure,
        "cycles_per_frame": result["cycles_per_frame"], "latency_cycles": result["latency_cycles"],
        "first_frame_cycles": result["first_frame_cycles"], "clock_mhz": clock,
        "fps_at_clock": clock * 1e6 / result["cycles_per_frame"], "estimated_cycles_per_frame": estimate,
        "cycles_vs_estimate": round(result["cycles_per_frame"] / estimate, 4), "simulator": simulator,
        "rtl_seconds": round(rtl_seconds, 1), "build_seconds": round(build_seconds, 1), "build_cached": cached,
        "sim_seconds": round(run.sim_seconds, 1), "sim_cycles": result["sim_cycles"],
        "sim_cycles_per_second": round(result["sim_cycles"] / run.sim_seconds),
        "frames_per_minute": round(60 * result["frames"] / run.sim_seconds, 1),
        "fifos": "sized" if design.real_fifos else "unbounded gauges (FINN_SIMULATION)",
        "fifo_depths": design.fifo_depths if design.real_fifos else None,
        "fifo_total_depth": int(sum(design.fifo_depths.values())) if design.real_fifos else None,
        "fifo_peaks": dict(zip(design.fifo_names, result.get("fifo_peaks", []))),
        "waves": str(sim_build / "dump.fst") if waves else None, "model": state.get("model"),
        "board": state.get("board"), "layers": layers, **report_extra,
    }
    name = "sim_report.json" if layers is None else f"sim_report-layers-{layers}.json"   # a cut never replaces it
    write_json_atomic(build_dir / name, report)
    if report["mismatches"]:
        raise SimError(f"RTL simulation of {build_dir}: {report['mismatches']} of {report['frames']} frames differ "
                       f"from FINN's Python execution (details in sim_report.json)")
    return report
