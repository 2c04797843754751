"""cocotb testbench of a whole compiled accelerator (the stitched top of fpga_gan.sim.rtl).

Driven by fpga_gan.sim.run through environment variables; the frames come packed (the board
runtime's packing, fpga_gan.runtime.packing) in an .npz, so the testbench itself is plain
stream plumbing:

* phase "throughput": frames back to back, no idle cycles, no backpressure; the steady-state
  cycles per frame (initiation interval) and the first-frame latency are measured from the
  simulation time of the frame ends, not by a Python loop over cycles.
* phase "backpressure": the same frames with random idle cycles on every input and random
  backpressure on the output (probability FPGA_GAN_SIM_BACKPRESSURE).

A multi-input design (a conditional generator: an image and a condition vector) has one
AXI-Stream slave per input, named in FPGA_GAN_SIM_INPUT_PORTS (``s_axis_0,s_axis_1``; default the
single ``s_axis``), whose frames are ``inputs_<k>`` in the .npz. Each gets its own source, and in
the backpressure phase its own random idle cycles, so the layers joining the streams see them
arrive out of step.

Every output frame is compared with the expected one for exact equality. When no output arrives
for FPGA_GAN_SIM_STALL_CYCLES cycles the test fails and names the streams that are stuck
(valid without ready), instead of hanging.
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

PERIOD_NS = 10


def _pause(probability: float, rng: random.Random):
    while True:
        yield rng.random() < probability


def _stuck_streams(dut) -> list[str]:
    """Nets of the stitched top whose valid is high while ready is low: where the data stopped."""
    stuck = []
    for handle in dut:
        name = handle._name
        if name.startswith("t_") and name.endswith("_tvalid"):
            base = name[: -len("_tvalid")]
            ready = getattr(dut, base + "_tready", None)
            if ready is not None and int(handle.value) == 1 and int(ready.value) == 0:
                stuck.append(base[2:])
    return stuck


class Stall(AssertionError):
    pass


async def _receive(dut, sink, stall_ns: float, what: str) -> AxiStreamFrame:
    try:
        return await with_timeout(sink.recv(), stall_ns, "ns")
    except cocotb.triggers.SimTimeoutError:
        stuck = _stuck_streams(dut)
        where = (f"data waits (valid, no ready) on: {', '.join(stuck)}" if stuck
                 else "no stream holds data: the input was consumed and nothing came out")
        message = (f"stall: no output frame for {stall_ns / PERIOD_NS:,.0f} cycles while waiting for {what}; "
                   f"{where}")
        with open(os.environ["FPGA_GAN_SIM_RESULT"], "w") as f:
            json.dump({"error": message}, f)
        raise Stall(message) from None


@cocotb.test()
async def accelerator_frames(dut):
    vectors = np.load(os.environ["FPGA_GAN_SIM_VECTORS"])
    ports = os.environ.get("FPGA_GAN_SIM_INPUT_PORTS", "s_axis").split(",")
    streams = [vectors["inputs"]] if len(ports) == 1 else [vectors[f"inputs_{k}"] for k in range(len(ports))]
    in_frames = streams[0]                                                 # (frames, beats, bytes)
    out_frames = vectors["expected"] if "expected" in vectors.files else None   # None: just record
    received = []
    backpressure = float(os.environ.get("FPGA_GAN_SIM_BACKPRESSURE", "0.3"))
    stall_ns = float(os.environ.get("FPGA_GAN_SIM_STALL_CYCLES", "200000")) * PERIOD_NS
    rng = random.Random(int(os.environ.get("FPGA_GAN_SIM_SEED", "0")))

    cocotb.start_soon(Clock(dut.ap_clk, PERIOD_NS, unit="ns").start())
    sources = [AxiStreamSource(AxiStreamBus.from_prefix(dut, port), dut.ap_clk, dut.ap_rst_n,
                               reset_active_level=False) for port in ports]
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    for endpoint in (*sources, sink):
        endpoint.log.setLevel(logging.WARNING)            # not every frame's bytes in the log
    dut.ap_rst_n.value = 0
    await ClockCycles(dut.ap_clk, 16)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 16)

    results = {"mismatches": 0, "frames": 0, "mismatch_frames": []}

    def check(frame: AxiStreamFrame, index: int, phase: str) -> None:
        got = np.frombuffer(bytes(frame.tdata), np.uint8)
        if phase == "throughput":
            received.append(got)
        if out_frames is None:
            results["frames"] += 1
            return
        expected = out_frames[index].reshape(-1)
        ok = got.shape == expected.shape and np.array_equal(got, expected)
        results["frames"] += 1
        if not ok:
            results["mismatches"] += 1
            record = {"phase": phase, "frame": index, "bytes_received": int(got.size),
                      "bytes_expected": int(expected.size)}
            if got.shape == expected.shape:
                beats = out_frames[index].shape
                diff = np.nonzero((got != expected).reshape(beats).any(axis=1))[0]
                record.update(first_bad_beat=int(diff[0]), bad_beats=int(diff.size))
            results["mismatch_frames"].append(record)
            np.save(os.environ["FPGA_GAN_SIM_RESULT"] + f".{phase}.{index}.npy", got)

    async def send_all() -> None:
        # queued on every source at once: each streams its frames on its own, as separate DMAs do
        for source, frames in zip(sources, streams):
            for frame in frames:
                await source.send(AxiStreamFrame(bytes(frame.reshape(-1))))

    # phase 1: throughput, no idle cycles, no backpressure
    start = get_sim_time("ns")
    await send_all()
    await RisingEdge(dut.m_axis_tvalid)
    first_out = get_sim_time("ns")
    ends = []
    for i in range(len(in_frames)):
        check(await _receive(dut, sink, stall_ns, f"frame {i} (throughput phase)"), i, "throughput")
        ends.append(get_sim_time("ns"))
    results["latency_cycles"] = int(round((first_out - start) / PERIOD_NS))
    results["first_frame_cycles"] = int(round((ends[0] - start) / PERIOD_NS))
    gaps = np.diff(ends) / PERIOD_NS
    results["cycles_per_frame"] = int(round(float(np.median(gaps)))) if len(gaps) else results["first_frame_cycles"]

    # phase 2: random idle cycles on the input, random backpressure on the output
    if backpressure > 0:
        seed = int(os.environ.get("FPGA_GAN_SIM_SEED", "0"))
        for k, source in enumerate(sources):      # the first as before multi-input; each its own pattern
            source.set_pause_generator(_pause(backpressure, rng if k == 0 else random.Random(seed * 1000 + k)))
        sink.set_pause_generator(_pause(backpressure, rng))
        await send_all()
        for i in range(len(in_frames)):
            check(await _receive(dut, sink, stall_ns * 4, f"frame {i} (backpressure phase)"), i, "backpressure")
    results["sim_cycles"] = int(round(get_sim_time("ns") / PERIOD_NS))
    peaks, k = [], 0
    while hasattr(dut, f"fifo_peak_{k}"):                # each FIFO's peak fill since reset
        peaks.append(int(getattr(dut, f"fifo_peak_{k}").value))
        k += 1
    results["fifo_peaks"] = peaks
    np.save(os.environ["FPGA_GAN_SIM_RESULT"] + ".outputs.npy", np.stack(received))
    with open(os.environ["FPGA_GAN_SIM_RESULT"], "w") as f:
        json.dump(results, f)
    assert results["mismatches"] == 0, f"{results['mismatches']} of {results['frames']} frames differ"
