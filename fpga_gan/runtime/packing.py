"""AXI-Stream packing of integer codes: the one convention the RTL testbench and the board share.

A stream carries ``elems_per_beat`` elements of ``bits`` bits per beat, element 0 in the least
significant bits, each in two's complement when signed, the beat padded to whole bytes. This is
FINN's convention (``npy_to_rtlsim_input`` with ``reverse_inner=True``); it lives here, in numpy
alone, because the board runtime cannot import FINN. Elements are taken in stream order: NHWC,
channels fastest.

Two layers: :func:`pack_beats` / :func:`unpack_beats` build one Python int per beat. They are slow
but obviously right, and they are what the simulator checks bit-exactly against the RTL, so they
are the reference. :func:`pack_frames` / :func:`unpack_frames` produce and read the byte image of
whole frames (each beat as its little-endian bytes), vectorised with numpy because the board fills
DMA buffers of hundreds of kilobytes per batch and a per-element Python loop would cost more than
the accelerator itself. The tests hold the two layers equal.

A multi-input accelerator (an image and a condition vector) has one stream, and one DMA buffer,
per input; each is packed on its own with its own format. :func:`stream_order` turns a model
tensor's batch (NCHW, or a vector batch (N, C), which streams as one pixel of C channels) into
the frames those functions take.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["beat_bytes", "frame_layout", "pack_beats", "pack_frames", "stream_order", "unpack_beats",
           "unpack_frames"]

MAX_BITS = 32   # the widest element the manifest schema allows; keeps every beat field in int64


def beat_bytes(bits: int, elems_per_beat: int) -> int:
    """Bytes of one beat (TDATA is padded to whole bytes)."""
    return (bits * elems_per_beat + 7) // 8


def stream_order(codes: np.ndarray) -> np.ndarray:
    """A batch of a model tensor -> its frames in stream order: (N, C, H, W) -> (N, H, W, C), a
    vector batch (N, C) -> (N, 1, 1, C) (a condition vector enters as one pixel of C channels)."""
    arr = np.asarray(codes)
    if arr.ndim == 2:
        return arr.reshape(arr.shape[0], 1, 1, arr.shape[1])
    if arr.ndim < 2:
        raise ValueError(f"stream_order needs a batch (N, C, ...), got shape {arr.shape}")
    return np.moveaxis(arr, 1, -1)


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


def _check_format(bits: int, elems_per_beat: int) -> None:
    if not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"bits must lie in [1, {MAX_BITS}], got {bits}")
    if int(elems_per_beat) < 1:
        raise ValueError(f"elems_per_beat must be at least 1, got {elems_per_beat}")


def frame_layout(shape_nhwc: Sequence[int], bits: int, elems_per_beat: int) -> tuple[int, int]:
    """``(beats_per_frame, bytes_per_frame)`` of one frame: what a DMA buffer row must hold."""
    _check_format(bits, elems_per_beat)
    elems = int(np.prod(shape_nhwc, dtype=np.int64))
    if elems % elems_per_beat:
        raise ValueError(f"a frame of shape {tuple(shape_nhwc)} has {elems} elements, "
                         f"which do not fill beats of {elems_per_beat}")
    beats = elems // elems_per_beat
    return beats, beats * beat_bytes(bits, elems_per_beat)


def _code_range(bits: int, signed: bool | None) -> tuple[int, int]:
    if signed is None:          # unknown signedness: whatever fits either reading, as pack_beats does
        return -(1 << (bits - 1)), (1 << bits) - 1
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def pack_frames(frames_nhwc: np.ndarray, bits: int, elems_per_beat: int, *,
                signed: bool | None = None) -> np.ndarray:
    """Frames of integer codes (N, H, W, C) -> uint8 ``(N, beats_per_frame * beat_bytes)``.

    Row ``n`` is the byte image of frame ``n`` as the input DMA reads it from memory: beat after
    beat, each beat the little-endian bytes of the word :func:`pack_beats` builds. Any frame shape
    works as long as its elements, in C order, are in stream order and fill whole beats.

    ``signed`` narrows the accepted code range to that type; left ``None`` it accepts anything
    ``bits`` bits can carry in either reading (as :func:`pack_beats` does). Codes out of range
    raise ``ValueError`` naming the first offending frame and element, because silently wrapping
    them would feed the accelerator different numbers than the caller meant.
    """
    _check_format(bits, elems_per_beat)
    arr = np.asarray(frames_nhwc)
    if arr.ndim < 1:
        raise ValueError("pack_frames needs a batch of frames, got a scalar")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"pack_frames needs integer codes, got dtype {arr.dtype}")
    n = arr.shape[0]
    beats_per_frame, frame_bytes = frame_layout(arr.shape[1:], bits, elems_per_beat)
    lo, hi = _code_range(bits, signed)
    flat = arr.reshape(n, beats_per_frame * elems_per_beat)   # explicit sizes: n may be 0
    if flat.size:
        fmin, fmax = int(flat.min()), int(flat.max())
        if fmin < lo or fmax > hi:
            wide = flat if flat.dtype == np.uint64 else flat.astype(np.int64)  # compare without wrapping
            outside = wide > np.uint64(hi) if wide.dtype == np.uint64 else (wide < lo) | (wide > hi)
            frame, elem = np.argwhere(outside)[0]
            kind = {None: "", True: " signed", False: " unsigned"}[signed]
            raise ValueError(f"codes outside what {bits}{kind} bits can carry ([{lo}, {hi}]): "
                             f"frame {frame} element {elem} (stream order) is {int(flat[frame, elem])}; "
                             f"the batch spans [{fmin}, {fmax}]")
    if bits in (8, 16, 32):
        # Byte-aligned elements: every beat is exactly elems_per_beat little-endian words, no padding.
        # An integer cast to a narrower unsigned type wraps modulo 2**bits: two's complement.
        return np.ascontiguousarray(flat.astype(f"<u{bits // 8}")).view(np.uint8).reshape(n, frame_bytes)
    # Two's complement in `bits` bits; uint64 keeps the shifts below free of sign extension.
    values = (flat.astype(np.int64) & ((1 << bits) - 1)).astype(np.uint64)
    nbytes = beat_bytes(bits, elems_per_beat)
    beats = values.reshape(n, beats_per_frame, elems_per_beat)
    if nbytes <= 8:
        # The whole beat fits one 64-bit word: shift every element to its place and combine (the
        # fields are disjoint, so a sum is an OR), then keep the word's low nbytes little-endian bytes.
        shifts = np.arange(elems_per_beat, dtype=np.uint64) * np.uint64(bits)
        words = (beats << shifts).sum(axis=-1, dtype=np.uint64)
        return np.ascontiguousarray(words.astype("<u8").view(np.uint8).reshape(n, beats_per_frame, 8)[..., :nbytes]) \
            .reshape(n, frame_bytes)
    # Wider beats: expand every element into its bits, LSB first; concatenated in element order they
    # are the beat, LSB first, which packbits(bitorder="little") turns into little-endian bytes.
    shifts = np.arange(bits, dtype=np.uint64)
    bit_planes = ((beats[..., None] >> shifts) & np.uint64(1)).astype(np.uint8)
    bit_planes = bit_planes.reshape(n, beats.shape[1], elems_per_beat * bits)
    pad = nbytes * 8 - elems_per_beat * bits
    if pad:
        bit_planes = np.concatenate([bit_planes, np.zeros((*bit_planes.shape[:2], pad), np.uint8)], axis=-1)
    return np.packbits(bit_planes, axis=-1, bitorder="little").reshape(n, frame_bytes)


def unpack_frames(buf: np.ndarray, bits: int, elems_per_beat: int, signed: bool,
                  shape_nhwc: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`pack_frames`: uint8 byte images -> int64 codes ``(N, *shape_nhwc)``.

    ``buf`` holds one row per frame (any shape whose leading axis is the batch, e.g. a DMA buffer
    of ``(N, bytes_per_frame)``); padding bits of each beat are ignored. The result never shares
    memory with ``buf``, so a DMA buffer can be reused as soon as this returns.
    """
    _check_format(bits, elems_per_beat)
    shape_nhwc = tuple(int(s) for s in shape_nhwc)
    beats_per_frame, frame_bytes = frame_layout(shape_nhwc, bits, elems_per_beat)
    raw = np.asarray(buf)
    if raw.dtype != np.uint8:
        raise ValueError(f"unpack_frames reads bytes (uint8), got dtype {raw.dtype}")
    if raw.ndim < 1:
        raise ValueError("unpack_frames needs a batch of byte rows, got a scalar")
    n = raw.shape[0]
    row_bytes = raw[0].size if n else int(np.prod(raw.shape[1:], dtype=np.int64))
    if row_bytes != frame_bytes:
        raise ValueError(f"frames of shape {shape_nhwc} ({beats_per_frame} beats of "
                         f"{beat_bytes(bits, elems_per_beat)} bytes) take {frame_bytes} bytes each, "
                         f"the buffer rows hold {row_bytes}")
    raw = raw.reshape(n, frame_bytes)
    if bits in (8, 16, 32):
        values = np.ascontiguousarray(raw).view(f"<u{bits // 8}").astype(np.int64)
    else:
        # Element i starts at bit i*bits of the beat: in byte (i*bits)//8, at bit (i*bits)%8. An 8-byte
        # little-endian window from that byte holds all of it (at most 7 + 32 bits), so gather one
        # window per element, read it as a 64-bit word, shift and mask.
        nbytes = beat_bytes(bits, elems_per_beat)
        offsets = np.arange(elems_per_beat, dtype=np.int64) * bits
        padded = np.zeros((n, beats_per_frame, nbytes + 8), np.uint8)
        padded[..., :nbytes] = raw.reshape(n, beats_per_frame, nbytes)
        windows = padded[..., (offsets // 8)[:, None] + np.arange(8)]          # (n, beats, elems, 8)
        words = np.ascontiguousarray(windows).view("<u8")[..., 0]
        values = ((words >> (offsets % 8).astype(np.uint64)) & np.uint64((1 << bits) - 1)).astype(np.int64)
    if signed:
        values = values - ((values >> (bits - 1)) & 1) * (1 << bits)
    return values.reshape(n, *shape_nhwc)
