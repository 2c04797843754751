"""cocotb testbench of hw/rtl/duplicate_streams.sv against fpga_gan's golden model.

The pytest driver (tests/test_ops.py) runs the DuplicateStreams op's golden model
(fpga_gan/ops/streams.py) and hands the data over as an .npz file (TB_DATA), so the simulator
process never imports fpga_gan/FINN/torch:

* ``x``: the input element stream (NHWC order, unsigned bit patterns),
* ``y0`` .. ``y<N-1>``: the expected element stream of every output.

The input is driven by a cocotbext-axi AxiStreamSource with random idle cycles. The outputs are
packed buses (output i in m_axis_tdata[i*DATA_WIDTH +: DATA_WIDTH], m_axis_tvalid[i],
m_axis_tready[i]), which cocotbext-axi cannot address by slice, so :class:`PackedSinks` plays one
AXI-Stream sink per output at the Python level, each with its own random backpressure, and checks
that a stalled output holds tvalid/tdata. Every receive has a timeout. Environment: TB_DATA,
ELEM_BITS, PE (elements per beat), NUM_OUTPUTS, TB_SEED, TB_TIMEOUT_NS (per received beat).
"""

import os

import cocotb
import numpy as np
from _axis import env_int as _env
from _axis import pauses as _pauses
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSource

from fpga_gan.runtime.packing import unpack_beats


class PackedSinks:
    """One AXI-Stream sink per slice of packed tdata/tvalid/tready buses (stream i in slice i).

    Same timing as cocotbext-axi's AxiStreamSink: at every rising edge the handshake of the cycle
    that just ended is sampled (a beat is taken where tvalid[i] and tready[i] were both high), then
    tready is driven for the next cycle from each stream's pause generator. Received beats land in
    one queue per stream; a stalled beat that changes or drops tvalid is recorded in ``violations``.
    """

    def __init__(self, clk, tdata, tvalid, tready, num: int, width: int, pauses):
        self.clk, self.tdata, self.tvalid, self.tready = clk, tdata, tvalid, tready
        self.num, self.width, self.pauses = num, width, list(pauses)
        self.queues = [Queue() for _ in range(num)]
        self.violations: list[str] = []
        self.stalls = [0] * num              # cycles with tvalid[i] high and tready[i] low
        self.tready.value = 0
        self._task = cocotb.start_soon(self._run())

    def _slice(self, bus: int, i: int) -> int:
        return (bus >> (i * self.width)) & ((1 << self.width) - 1)

    async def _run(self):
        held = [None] * self.num
        while True:
            await RisingEdge(self.clk)
            valid, ready, data = int(self.tvalid.value), int(self.tready.value), int(self.tdata.value)
            for i in range(self.num):
                v, r = (valid >> i) & 1, (ready >> i) & 1
                beat = self._slice(data, i) if v else None
                if held[i] is not None and beat != held[i]:
                    self.violations.append(f"t={get_sim_time('ns')}ns output {i}: stalled beat {held[i]:#x} "
                                           f"changed to valid={v} data={beat if beat is None else hex(beat)}")
                if v and r:
                    self.queues[i].put_nowait(beat)
                held[i] = beat if (v and not r) else None
                self.stalls[i] += bool(v and not r)
            self.tready.value = sum((0 if next(p) else 1) << i for i, p in enumerate(self.pauses))

    async def recv(self, i: int, timeout_ns: int) -> int:
        return await with_timeout(self.queues[i].get(), timeout_ns, "ns")

    def empty(self) -> bool:
        return all(q.empty() for q in self.queues)


@cocotb.test()
async def duplicate_streams_match_golden_under_stalls(dut):
    bits, pe, num = _env("ELEM_BITS", 8), _env("PE", 1), _env("NUM_OUTPUTS", 2)
    seed, timeout_ns = _env("TB_SEED", 1), _env("TB_TIMEOUT_NS", 20000)
    data = np.load(os.environ["TB_DATA"])
    x = data["x"].astype(np.int64)
    expected = [data[f"y{i}"].astype(np.int64) for i in range(num)]
    width = pe * bits
    assert len(dut.s_axis_tdata) == width and len(dut.m_axis_tdata) == num * width
    assert len(dut.m_axis_tvalid) == num

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False, byte_size=bits)
    assert source.byte_lanes == pe
    source.set_pause_generator(_pauses(0.3, seed))

    dut.ap_rst_n.value = 0
    dut.m_axis_tready.value = 0
    for _ in range(4):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    # each output stalls independently, with its own (different) backpressure rate
    probabilities = [0.2 + 0.5 * i / max(1, num - 1) for i in range(num)]
    sinks = PackedSinks(dut.ap_clk, dut.m_axis_tdata, dut.m_axis_tvalid, dut.m_axis_tready, num, width,
                        [_pauses(p, seed + 1 + i) for i, p in enumerate(probabilities)])

    await source.send(AxiStreamFrame([int(v) for v in x]))

    got: list[list[int]] = [[] for _ in range(num)]
    beats = [e.size // pe for e in expected]

    async def collect(i: int):
        for beat in range(beats[i]):
            try:
                word = await sinks.recv(i, timeout_ns)
            except SimTimeoutError:
                raise AssertionError(f"output {i}: beat {beat} of {beats[i]} never arrived (waited "
                                     f"{timeout_ns} ns); got {len(got[i])} elements so far") from None
            elems = unpack_beats([word], bits, pe, signed=False).tolist()
            lo = beat * pe
            want = [int(v) for v in expected[i][lo:lo + pe]]
            if elems != want:
                raise AssertionError(f"output {i} beat {beat} (elements {lo}..{lo + pe - 1}): expected {want}, "
                                     f"got {elems}")
            got[i].extend(elems)

    tasks = [cocotb.start_soon(collect(i)) for i in range(num)]
    for t in tasks:
        await t
    for i in range(num):
        np.testing.assert_array_equal(np.array(got[i]), expected[i], err_msg=f"output {i}")

    # the whole input was consumed and nothing extra comes out on any output
    await with_timeout(source.wait(), timeout_ns, "ns")
    for _ in range(50):
        await RisingEdge(dut.ap_clk)
    assert sinks.empty(), [q.qsize() for q in sinks.queues]
    assert int(dut.m_axis_tvalid.value) == 0, "an output still shows a beat after all were taken"
    assert not sinks.violations, "\n".join(sinks.violations[:10])
    assert all(sinks.stalls), f"some output was never stalled (stalled cycles {sinks.stalls})"
