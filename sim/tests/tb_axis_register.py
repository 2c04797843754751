"""cocotb testbench of hw/rtl/axis_register.sv: frames in == frames out under random stalls."""

import os
import random

import cocotb
from _axis import pauses as _pauses
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


@cocotb.test()
async def frames_pass_unchanged_under_backpressure(dut):
    width = int(os.environ.get("DATA_WIDTH", "8"))
    nbytes = (width + 7) // 8
    seed = int(os.environ.get("TB_SEED", "1"))
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False)
    source.set_pause_generator(_pauses(0.3, seed))
    sink.set_pause_generator(_pauses(0.4, seed + 1))

    dut.ap_rst_n.value = 0
    for _ in range(4):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1

    rng = random.Random(seed)
    frames = [bytes(rng.getrandbits(8) for _ in range(nbytes * rng.randint(1, 40))) for _ in range(8)]
    for data in frames:
        await source.send(AxiStreamFrame(data))
    for expected in frames:
        got = await sink.recv()
        assert bytes(got.tdata) == expected
