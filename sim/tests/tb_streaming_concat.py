"""cocotb testbench of hw/rtl/streaming_concat.sv against fpga_gan's golden model.

The pytest driver (tests/test_ops.py) runs the StreamingConcat op's golden model
(fpga_gan/ops/streams.py) and hands the data over as an .npz file (TB_DATA), so the simulator
process never imports fpga_gan/FINN/torch:

* ``x0`` .. ``x<N-1>``: the element stream of every input (NHWC order, unsigned bit patterns),
* ``y``: the expected output element stream.

The inputs are packed buses (input i in s_axis_tdata[i*DW +: DW], s_axis_tvalid[i],
s_axis_tready[i]), which cocotbext-axi cannot address by slice, so :class:`PackedSources` plays
one AXI-Stream source per input at the Python level, each with its own random idle cycles. The
output is a cocotbext-axi AxiStreamSink with random backpressure; it must hold tvalid/tdata while
stalled. Every receive has a timeout. Environment: TB_DATA, ELEM_BITS, SIMD, NUM_INPUTS, TB_SEED,
TB_TIMEOUT_NS (per received beat).
"""

import os
from collections import deque

import cocotb
import numpy as np
from _axis import check_stable as _check_stable
from _axis import env_int as _env
from _axis import pauses as _pauses
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink

from fpga_gan.runtime.packing import pack_beats as _pack  # element 0 in the lowest bits


class PackedSources:
    """One AXI-Stream source per slice of packed tdata/tvalid/tready buses (stream i in slice i).

    Same timing as cocotbext-axi's AxiStreamSource: at every rising edge the handshake of the
    cycle that just ended is sampled (the presented beat of stream i is gone where tvalid[i] and
    tready[i] were both high); a stream without a presented beat then presents its next one unless
    its pause generator says idle. A presented beat stays (tvalid high, tdata stable) until taken.
    One coroutine drives the whole packed buses, so the streams never overwrite each other.
    """

    def __init__(self, clk, tdata, tvalid, tready, num: int, width: int, pauses):
        self.clk, self.tdata, self.tvalid, self.tready = clk, tdata, tvalid, tready
        self.num, self.width, self.pauses = num, width, list(pauses)
        self.queues = [deque() for _ in range(num)]
        self.current = [None] * num          # beat presented on stream i (tvalid[i] high)
        self.taken = [0] * num
        self.tvalid.value = 0
        self.tdata.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, i: int, beats) -> None:
        self.queues[i].extend(int(b) for b in beats)

    def idle(self) -> bool:
        return all(c is None for c in self.current) and not any(self.queues)

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            ready = int(self.tready.value)
            for i in range(self.num):
                if self.current[i] is not None and (ready >> i) & 1:
                    self.current[i] = None
                    self.taken[i] += 1
                pause = next(self.pauses[i])
                if self.current[i] is None and self.queues[i] and not pause:
                    self.current[i] = self.queues[i].popleft()
            self.tvalid.value = sum((c is not None) << i for i, c in enumerate(self.current))
            self.tdata.value = sum((c or 0) << (i * self.width) for i, c in enumerate(self.current))


@cocotb.test()
async def streaming_concat_matches_golden_under_stalls(dut):
    bits, simd, num = _env("ELEM_BITS", 8), _env("SIMD", 1), _env("NUM_INPUTS", 2)
    seed, timeout_ns = _env("TB_SEED", 1), _env("TB_TIMEOUT_NS", 20000)
    data = np.load(os.environ["TB_DATA"])
    xs = [data[f"x{i}"].astype(np.int64) for i in range(num)]
    expected = data["y"].astype(np.int64)
    width = simd * bits
    assert len(dut.s_axis_tdata) == num * width and len(dut.m_axis_tdata) == width
    assert len(dut.s_axis_tvalid) == num

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False, byte_size=bits)
    assert sink.byte_lanes == simd
    sink.set_pause_generator(_pauses(0.4, seed))

    dut.ap_rst_n.value = 0
    dut.s_axis_tvalid.value = 0
    for _ in range(4):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    # each input idles independently, with its own (different) rate
    probabilities = [0.2 + 0.5 * i / max(1, num - 1) for i in range(num)]
    sources = PackedSources(dut.ap_clk, dut.s_axis_tdata, dut.s_axis_tvalid, dut.s_axis_tready, num, width,
                            [_pauses(p, seed + 1 + i) for i, p in enumerate(probabilities)])
    violations: list[str] = []
    stalls = [0]
    cocotb.start_soon(_check_stable(dut.ap_clk, dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tdata,
                                    violations, stalls))
    for i, x in enumerate(xs):
        sources.send(i, _pack(x, bits, simd))

    got: list[int] = []
    for beat in range(expected.size // simd):   # without tlast every beat arrives as its own frame
        try:
            frame = await with_timeout(sink.recv(), timeout_ns, "ns")
        except SimTimeoutError:
            raise AssertionError(f"output beat {beat} of {expected.size // simd} never arrived (waited "
                                 f"{timeout_ns} ns); got {len(got)} elements so far; inputs taken "
                                 f"{sources.taken} of {[x.size // simd for x in xs]} beats") from None
        assert len(frame.tdata) == simd
        got.extend(int(v) for v in frame.tdata)
        lo = beat * simd
        if got[lo:] != [int(v) for v in expected[lo:lo + simd]]:
            raise AssertionError(f"output beat {beat} (elements {lo}..{lo + simd - 1}): expected "
                                 f"{expected[lo:lo + simd].tolist()}, got {got[lo:]}")
    np.testing.assert_array_equal(np.array(got), expected)

    # every input beat was taken exactly once and nothing extra comes out
    for _ in range(50):
        await RisingEdge(dut.ap_clk)
    assert sources.idle(), f"inputs not drained: taken {sources.taken} of {[x.size // simd for x in xs]} beats"
    assert sources.taken == [x.size // simd for x in xs]
    assert sink.empty(), f"{sink.count()} unexpected extra beat(s) on the output"
    assert not violations, "\n".join(violations[:10])
    assert stalls[0] > 0, "the output was never stalled: backpressure not exercised"
