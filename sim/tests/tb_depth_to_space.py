"""cocotb testbench of hw/rtl/depth_to_space.sv against fpga_gan's golden model.

Streams NUM_IMAGES random NHWC images through the core with random idle cycles on the input and
random backpressure on the output, and checks every output element against
``fpga_gan.ops.depth_to_space.depth_to_space_nhwc`` in the channel order D2S_MODE (CRD or DCR).
Geometry comes from the environment (IMG_H, IMG_W, CHANNELS, BLOCK, ELEM_BITS, NUM_IMAGES,
TB_SEED, D2S_MODE); the HDL parameters must match.
"""


import os

import cocotb
import numpy as np
from _axis import env_int as _env
from _axis import pauses as _pauses
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from fpga_gan.ops.depth_to_space import depth_to_space_nhwc


@cocotb.test()
async def depth_to_space_matches_golden_under_stalls(dut):
    h, w, c, b = _env("IMG_H", 2), _env("IMG_W", 3), _env("CHANNELS", 2), _env("BLOCK", 2)
    bits, images, seed = _env("ELEM_BITS", 8), _env("NUM_IMAGES", 2), _env("TB_SEED", 1)
    mode = os.environ.get("D2S_MODE", "CRD")

    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n,
                             reset_active_level=False, byte_size=bits)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
                         reset_active_level=False, byte_size=bits)
    source.set_pause_generator(_pauses(0.3, seed))
    sink.set_pause_generator(_pauses(0.4, seed + 1))

    dut.ap_rst_n.value = 0
    for _ in range(4):
        await RisingEdge(dut.ap_clk)
    dut.ap_rst_n.value = 1

    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 1 << bits, size=(1, h, w, c * b * b)) for _ in range(images)]
    for x in xs:   # the core has no tlast: the images are one long element stream
        await source.send(AxiStreamFrame([int(v) for v in x.reshape(-1)]))

    expected = np.concatenate([depth_to_space_nhwc(x, b, mode).reshape(-1) for x in xs])
    got = []
    for _ in range(expected.size):   # without tlast every beat arrives as its own frame
        frame = await sink.recv()
        got.extend(frame.tdata)
    np.testing.assert_array_equal(np.array(got), expected)
    # nothing extra comes out
    for _ in range(20):
        await RisingEdge(dut.ap_clk)
    assert sink.empty()
