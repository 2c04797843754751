"""The stream packing the testbench and the board share must match FINN's own convention.

``pack_beats``/``unpack_beats`` (one Python int per beat) are checked against FINN here and
against the RTL by the simulator; the vectorised ``pack_frames``/``unpack_frames`` that fill the
board's DMA buffers are held byte-equal to them.
"""

from __future__ import annotations

import numpy as np
import pytest

from fpga_gan.runtime.packing import (
    beat_bytes,
    frame_layout,
    pack_beats,
    pack_frames,
    unpack_beats,
    unpack_frames,
)
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


# -- the vectorised DMA buffer packing -------------------------------------------------------------

FORMATS = [(bits, elems) for bits in (1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 20, 31, 32)
           for elems in (1, 2, 3, 7, 8, 24)]


def _random_codes(rng, bits, signed, shape):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    codes = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    codes.reshape(-1)[:2] = [lo, hi]                    # the extremes always appear
    return codes


def _reference_bytes(frames, bits, elems):
    """The byte image of each frame built from pack_beats, one beat at a time."""
    nbytes = beat_bytes(bits, elems)
    return np.stack([np.frombuffer(b"".join(w.to_bytes(nbytes, "little") for w in pack_beats(f, bits, elems)),
                                   np.uint8) for f in frames])


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits, elems", FORMATS)
def test_pack_frames_equals_pack_beats(bits, elems, signed):
    rng = np.random.default_rng(1000 * bits + 10 * elems + signed)
    shape_nhwc = (2, 3, 2 * elems)
    frames = _random_codes(rng, bits, signed, (3, *shape_nhwc))
    packed = pack_frames(frames, bits, elems, signed=signed)
    beats_per_frame, frame_bytes = frame_layout(shape_nhwc, bits, elems)
    assert packed.dtype == np.uint8 and packed.shape == (3, frame_bytes) == (3, beats_per_frame * beat_bytes(bits, elems))
    assert np.array_equal(packed, _reference_bytes(frames, bits, elems))
    assert np.array_equal(pack_frames(frames, bits, elems), packed)      # signedness only narrows the check
    # the simulator's per-frame packing, the one it checks against the RTL, agrees byte for byte
    assert np.array_equal(frames_to_beats(frames.reshape(3, -1), bits, elems).reshape(3, -1), packed)
    unpacked = unpack_frames(packed, bits, elems, signed, shape_nhwc)
    assert unpacked.dtype == np.int64 and unpacked.shape == frames.shape
    assert np.array_equal(unpacked, frames)
    reference = np.stack([unpack_beats(pack_beats(f, bits, elems), bits, elems, signed) for f in frames])
    assert np.array_equal(unpacked.reshape(3, -1), reference)


@pytest.mark.parametrize("bits, elems, beat", [(4, 3, 2), (5, 7, 5), (8, 3, 3), (3, 1, 1), (12, 3, 5), (32, 2, 8)])
def test_beats_are_padded_to_whole_bytes(bits, elems, beat):
    frames = np.full((1, 4, elems), (1 << bits) - 1)                  # every bit of every field set
    packed = pack_frames(frames, bits, elems).reshape(4, beat)
    assert beat_bytes(bits, elems) == beat
    used = bits * elems
    top = packed[:, -1]
    assert np.all(top == (0xFF >> (8 * beat - used))), "padding bits are zero, data bits one"
    # padding bits are ignored when reading back, whatever they hold
    dirty = packed.copy()
    dirty[:, -1] |= np.uint8(0xFF << (used - 8 * (beat - 1)) & 0xFF) if used % 8 else 0
    assert np.array_equal(unpack_frames(dirty.reshape(1, -1), bits, elems, False, (4, elems)), frames)


def test_pack_frames_takes_any_integer_dtype_and_buffer_layout():
    rng = np.random.default_rng(3)
    frames = rng.integers(-128, 128, size=(4, 5, 6, 24)).astype(np.int8)
    packed = pack_frames(frames, 8, 24)
    assert np.array_equal(packed, frames.reshape(4, -1).view(np.uint8))  # 8 bits: the two's complement bytes
    for variant in (frames.astype(np.int64), frames.astype(np.int16), np.moveaxis(np.moveaxis(frames, 3, 1), 1, 3)):
        assert np.array_equal(pack_frames(variant, 8, 24), packed)
    as_beats = packed.reshape(4, 30, 24)                                 # (frames, beats, bytes) works too
    assert np.array_equal(unpack_frames(as_beats, 8, 24, True, (5, 6, 24)), frames)
    assert pack_frames(np.zeros((0, 2, 3), np.uint8), 4, 3).shape == (0, 4)            # 2 beats of 2 bytes
    assert unpack_frames(np.zeros((0, 4), np.uint8), 4, 3, False, (2, 3)).shape == (0, 2, 3)


@pytest.mark.parametrize("codes, bits, signed, message", [
    ([[0, 16]], 4, None, r"outside what 4 bits can carry \(\[-8, 15\]\): frame 0 element 1 .* is 16"),
    ([[0, -9]], 4, None, r"frame 0 element 1 .* is -9"),
    ([[3], [-1]], 4, False, r"outside what 4 unsigned bits can carry \(\[0, 15\]\): frame 1 element 0 .* is -1"),
    ([[8, 0]], 4, True, r"outside what 4 signed bits can carry \(\[-8, 7\]\): frame 0 element 0 .* is 8"),
    ([[2]], 1, True, r"\[-1, 0\]"),
    (np.array([[1, 2**63]], np.uint64), 32, None, r"is 9223372036854775808"),
])
def test_pack_frames_rejects_codes_out_of_range(codes, bits, signed, message):
    with pytest.raises(ValueError, match=message):
        pack_frames(np.asarray(codes), bits, 1, signed=signed)


def test_pack_and_unpack_frames_reject_bad_layouts():
    with pytest.raises(ValueError, match=r"73728 elements, which do not fill beats of 5"):
        pack_frames(np.zeros((1, 64, 48, 24), np.uint8), 8, 5)
    with pytest.raises(ValueError, match="integer codes, got dtype float32"):
        pack_frames(np.zeros((1, 4), np.float32), 8, 1)
    with pytest.raises(ValueError, match=r"bits must lie in \[1, 32\], got 33"):
        pack_frames(np.zeros((1, 4), np.int64), 33, 1)
    with pytest.raises(ValueError, match=r"take 8 bytes each, the buffer rows hold 6"):
        unpack_frames(np.zeros((2, 6), np.uint8), 4, 3, False, (4, 3))
    with pytest.raises(ValueError, match="reads bytes"):
        unpack_frames(np.zeros((2, 6), np.int16), 4, 3, False, (4, 3))
