"""AXI-Stream packing of integer codes: the one convention the RTL testbench and the board share.

A stream carries ``elems_per_beat`` elements of ``bits`` bits per beat, element 0 in the least
significant bits, each in two's complement when signed, the beat padded to whole bytes. This is
FINN's convention (``npy_to_rtlsim_input`` with ``reverse_inner=True``); it lives here, in numpy
alone, because the board runtime cannot import FINN. Elements are taken in stream order: NHWC,
channels fastest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["beat_bytes", "pack_beats", "unpack_beats"]


def beat_bytes(bits: int, elems_per_beat: int) -> int:
    """Bytes of one beat (TDATA is padded to whole bytes)."""
    return (bits * elems_per_beat + 7) // 8


def pack_beats(codes: np.ndarray, bits: int, elems_per_beat: int) -> list[int]:
    """Integer codes (any shape, stream order when flattened) -> one Python int per beat."""
    flat = np.asarray(codes).reshape(-1).astype(np.int64)
    if flat.size % elems_per_beat:
        raise ValueError(f"{flat.size} elements do not fill beats of {elems_per_beat}")
    lo, hi = -(1 << (bits - 1)), (1 << bits) - 1
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise ValueError(f"codes outside what {bits} bits can carry: [{flat.min()}, {flat.max()}]")
    unsigned = flat & ((1 << bits) - 1)
    beats = []
    for group in unsigned.reshape(-1, elems_per_beat):
        word = 0
        for i, value in enumerate(group.tolist()):
            word |= value << (i * bits)
        beats.append(word)
    return beats


def unpack_beats(beats: Sequence[int], bits: int, elems_per_beat: int, signed: bool) -> np.ndarray:
    """One int per beat -> flat int64 codes in stream order (the inverse of :func:`pack_beats`)."""
    mask = (1 << bits) - 1
    out = np.empty(len(beats) * elems_per_beat, np.int64)
    k = 0
    for word in beats:
        for i in range(elems_per_beat):
            value = (int(word) >> (i * bits)) & mask
            if signed and value >> (bits - 1):
                value -= 1 << bits
            out[k] = value
            k += 1
    return out
