"""The stream packing the testbench and the board share must match FINN's own convention."""

from __future__ import annotations

import numpy as np
import pytest

from fpga_gan.runtime.packing import pack_beats, unpack_beats
from fpga_gan.sim.verilator import beats_to_frames, frames_to_beats


@pytest.mark.parametrize("dtype, bits, elems", [("INT8", 8, 32), ("UINT4", 4, 3), ("INT3", 3, 5), ("UINT8", 8, 1)])
def test_packing_matches_finn_and_round_trips(dtype, bits, elems):
    from finn.util.data_packing import npy_to_rtlsim_input
    from qonnx.core.datatype import DataType

    dt = DataType[dtype]
    codes = np.random.default_rng(bits * elems).integers(dt.min(), dt.max() + 1, size=(4, elems))
    ours = pack_beats(codes, bits, elems)
    finn = npy_to_rtlsim_input(codes.astype(np.float32), dt, bits * elems)
    assert [int(b) for b in finn] == ours
    assert np.array_equal(unpack_beats(ours, bits, elems, dt.signed()), codes.reshape(-1))
    frames = codes[None]
    packed = frames_to_beats(frames, bits, elems)
    assert np.array_equal(beats_to_frames(packed, bits, elems, dt.signed()), frames.reshape(1, -1))
    flat = packed.reshape(1, -1)                      # as the testbench saves received frames
    assert np.array_equal(beats_to_frames(flat, bits, elems, dt.signed()), frames.reshape(1, -1))


def test_pack_rejects_codes_that_do_not_fit():
    with pytest.raises(ValueError, match="outside what 4 bits"):
        pack_beats(np.array([16]), 4, 1)
    with pytest.raises(ValueError, match="do not fill beats"):
        pack_beats(np.arange(5), 8, 2)
