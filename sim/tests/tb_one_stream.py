"""cocotb testbench of any one-stream-in, one-stream-out op core against fpga_gan's golden model.

Used for hw/rtl/upsample_nearest.sv and hw/rtl/streaming_pad.sv (any core with ``s_axis_*`` /
``m_axis_*`` ports of SIMD elements per beat). The pytest driver (tests/test_ops.py) computes the
golden data with the op's golden function and hands it over as an .npz file (TB_DATA), so the
simulator process never imports fpga_gan/FINN/torch:

* ``x``: the input element stream (all images back to back, NHWC order, unsigned bit patterns),
* ``y``: the expected output element stream.

The core has no tlast: images are one long element stream. Inputs get random idle cycles, the
output random backpressure; every receive has a timeout so a lost beat fails instead of hanging,
and the output must hold tvalid/tdata stable while stalled. Environment: TB_DATA, ELEM_BITS, SIMD,
TB_SEED, TB_TIMEOUT_NS (per received beat). The HDL parameters must match the data.
"""

import os

import cocotb
import numpy as np
from _axis import check_stable as _check_stable
from _axis import env_int as _env
from _axis import pauses as _pauses
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


@cocotb.test()
async def core_matches_golden_under_stalls(dut):
    bits, simd, seed = _env("ELEM_BITS", 8), _env("SIMD", 1), _env("TB_SEED", 1)
    timeout_ns = _env("TB_TIMEOUT_NS", 20000)
    data = np.load(os.environ["TB_DATA"])
    x, expected = data["x"].astype(np.int64), data["y"].astype(np.int64)
    assert x.size % simd == 0 and expected.size % simd == 0

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False, byte_size=bits)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False, byte_size=bits)
    assert source.byte_lanes == simd and sink.byte_lanes == simd
    source.set_pause_generator(_pauses(0.3, seed))
    sink.set_pause_generator(_pauses(0.4, seed + 1))

    dut.ap_rst_n.value = 0
    for _ in range(4):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1
    violations: list[str] = []
    stalls = [0]
    cocotb.start_soon(_check_stable(dut.ap_clk, dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tdata,
                                    violations, stalls))

    await source.send(AxiStreamFrame([int(v) for v in x]))

    got: list[int] = []
    for beat in range(expected.size // simd):   # without tlast every beat arrives as its own frame
        try:
            frame = await with_timeout(sink.recv(), timeout_ns, "ns")
        except SimTimeoutError:
            raise AssertionError(f"output beat {beat} of {expected.size // simd} never arrived "
                                 f"(waited {timeout_ns} ns); got {len(got)} elements so far") from None
        assert len(frame.tdata) == simd
        got.extend(int(v) for v in frame.tdata)
        lo = beat * simd
        if got[lo:] != [int(v) for v in expected[lo:lo + simd]]:
            raise AssertionError(f"output beat {beat} (elements {lo}..{lo + simd - 1}): expected "
                                 f"{expected[lo:lo + simd].tolist()}, got {got[lo:]}")
    np.testing.assert_array_equal(np.array(got), expected)

    # the whole input was consumed and nothing extra comes out
    await with_timeout(source.wait(), timeout_ns, "ns")
    for _ in range(50):
        await RisingEdge(dut.ap_clk)
    assert sink.empty(), f"{sink.count()} unexpected extra beat(s) on the output"
    assert not violations, "\n".join(violations[:10])
    assert stalls[0] > 0, "the output was never stalled: backpressure not exercised"
