"""The pynq backend: the compiled accelerator on a PYNQ board, driven through FINN's IODMAs.

``Accelerator.open(artifact, backend="pynq")`` (or ``"auto"`` on a board) lands here. Opening
checks the artifact before anything touches the fabric (manifest, sha256 of every file, the board
it was built for, the ``.hwh`` PYNQ needs), then loads the overlay and finds the two DMA engines
the manifest names. ``run`` packs the frames into a DMA buffer with :mod:`.packing` (the same
convention the RTL simulation checks bit-exactly), starts the DMAs and waits - with a deadline,
so a stalled stream becomes an error that says what to check instead of a hung process.

The DMAs are FINN's HLS IODMA blocks. Their AXI-lite control registers (``ap_ctrl_hs``):

* ``0x00`` control/status: bit 0 ``ap_start`` (write 1 to start), bit 1 ``ap_done`` (clear on
  read), bit 2 ``ap_idle``;
* ``0x10`` / ``0x14`` the buffer's device address, low and high 32 bits;
* ``0x1C`` the number of frames to move.

The output DMA is started first: once the input DMA runs, the dataflow pipeline produces output
that stalls the whole stream if nothing drains it. Completion is the output DMA's ``ap_done``
(its last beat is written to memory), as in FINN's own driver.

A multi-input accelerator (a conditional generator: an image and a condition vector) has one
input IODMA per input, as FINN's ``InsertIODMA`` makes them (``idma0``, ``idma1``, ...; the
manifest lists them in model.json's input order): each input is packed into its own buffer, and
all input DMAs are started after the output DMA.

pynq is imported only when this backend opens; the module itself needs numpy alone.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import UserError
from .accelerator import Artifact, ArtifactError, InputError, register_backend
from .manifest import Manifest, sha256_file
from .packing import pack_frames, stream_order, unpack_frames

__all__ = [
    "AP_DONE",
    "AP_IDLE",
    "AP_START",
    "DEFAULT_TIMEOUT_S",
    "PER_FRAME_TIMEOUT_S",
    "REG_ADDR_HI",
    "REG_ADDR_LO",
    "REG_CTRL",
    "REG_FRAMES",
    "TIMEOUT_ENV",
    "BoardError",
    "DmaTimeoutError",
    "PynqBackend",
]

REG_CTRL, REG_ADDR_LO, REG_ADDR_HI, REG_FRAMES = 0x00, 0x10, 0x14, 0x1C
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4

TIMEOUT_ENV = "FPGA_GAN_DMA_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 10.0
# Added per frame on top of the base timeout: a frame takes micro- to milliseconds on every
# supported board, so half a second each only matters when something is really stuck.
PER_FRAME_TIMEOUT_S = 0.5
# Busy-poll this long before yielding the CPU between status reads: short transfers finish
# within it, and long ones should not burn a core of a small ARM board while they run.
_SPIN_S = 0.002
_POLL_SLEEP_S = 0.0001
_MAX_CACHED_BATCHES = 4


class BoardError(UserError, RuntimeError):
    """The overlay or its DMAs misbehaved at run time (not a problem of the artifact files)."""


class DmaTimeoutError(BoardError):
    """A DMA transfer did not complete before its deadline."""


def _timeout_from_env(default: float) -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} must be a positive number of seconds")
    return value


def _nhwc_shape_of(nchw_shape: tuple) -> tuple:
    """(N, C, H, W) -> (H, W, C): the frame shape of a model shape, batch dropped; a vector
    (N, C) streams as one pixel of C channels, (1, 1, C)."""
    if len(nchw_shape) == 2:
        return (1, 1) + tuple(nchw_shape[1:2])
    return tuple(nchw_shape[2:]) + tuple(nchw_shape[1:2])


def _device_address(buf: Any) -> int:
    addr = getattr(buf, "device_address", None)       # pynq >= 3.0
    if addr is None:
        addr = getattr(buf, "physical_address", None)  # pynq 2.x
    if addr is None:
        raise BoardError(f"the buffer pynq.allocate returned ({type(buf).__name__}) has neither "
                         "device_address nor physical_address")
    return int(addr)


class PynqBackend:
    """Runs a board artifact's bitstream through its input and output IODMA.

    ``timeout_s`` is the base deadline of one ``run`` (default: the ``FPGA_GAN_DMA_TIMEOUT_S``
    environment variable, else 10 s); ``per_frame_timeout_s`` is added for every frame of the batch.
    """

    def __init__(self, artifact: Artifact, *, timeout_s: float | None = None,
                 per_frame_timeout_s: float = PER_FRAME_TIMEOUT_S) -> None:
        self._overlay = None
        self._buffers: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self.artifact = artifact
        self.manifest = manifest = Manifest.load(artifact.path)
        self.timeout_s = _timeout_from_env(DEFAULT_TIMEOUT_S) if timeout_s is None else float(timeout_s)
        self.per_frame_timeout_s = float(per_frame_timeout_s)
        bit = manifest.bitstream
        if bit is None:
            raise ArtifactError(f"{manifest.file} is a CPU-only package (bitstream: null): there is no "
                                f"bitstream to load on {manifest.pynq_board}; open it with backend='cpu'")
        hwh = bit.with_suffix(".hwh")
        if manifest.hwh is not None and manifest.hwh.name != hwh.name:
            raise ArtifactError(f"{manifest.file} names the hardware handoff {manifest.hwh.name}, but PYNQ "
                                f"reads the one beside the bitstream with its basename: {hwh.name}")
        if not bit.is_file():
            raise ArtifactError(f"bitstream missing: {bit} (named in {manifest.file})")
        if not hwh.is_file():
            raise ArtifactError(f"hardware handoff missing: {hwh}; PYNQ needs the .hwh beside {bit.name} "
                                "(same basename) to find the DMA registers; copy it from the same build")
        manifest.verify_files()
        manifest.check_board()
        self.in_streams, self.out_stream = manifest.input_streams, manifest.output_stream
        self.in_stream = self.in_streams[0]
        self._check_model(artifact)
        try:
            import pynq
        except ImportError as exc:
            raise ArtifactError(f"the pynq backend runs on a PYNQ board image, and pynq does not import "
                                f"here ({exc}); off the board use backend='cpu'") from exc
        self._pynq = pynq
        try:
            self._overlay = pynq.Overlay(str(bit))
        except Exception as exc:  # pynq raises its own (and OSError, RuntimeError) types
            raise BoardError(f"PYNQ could not load the overlay {bit}: {exc}") from exc
        self.idmas = [self._find_ip(name, "input") for name in manifest.dma_inputs]
        self.idma = self.idmas[0]
        self.odma = self._find_ip(manifest.dma_output, "output")

    # -- opening -----------------------------------------------------------------------------

    def _check_model(self, artifact: Artifact) -> None:
        # model.json (what Accelerator.validate enforces) and the manifest (what the DMA moves)
        # must describe the same model and frames, or every run would fail - or worse, run on
        # misread data, or give another model's images.
        name = artifact.meta.get("model")
        if name is not None and name != self.manifest.data["model"]:
            raise ArtifactError(f"{self.manifest.file} is a bitstream of model '{self.manifest.data['model']}', but "
                                f"model.json describes '{name}'; the bitstream and the model do not belong together")
        qonnx = artifact.meta.get("files", {}).get("qonnx")
        if qonnx and (artifact.path / qonnx).is_file():
            actual = sha256_file(artifact.path / qonnx)
            if actual != self.manifest.data["model_sha256"]:
                raise ArtifactError(f"the bitstream in {artifact.path} was built from another model: {qonnx} has "
                                    f"sha256 {actual}, the manifest's model_sha256 is "
                                    f"{self.manifest.data['model_sha256']}")
        if len(artifact.inputs) != len(self.in_streams):
            raise ArtifactError(f"{self.manifest.file} packs {len(self.in_streams)} input stream(s), but model.json "
                                f"lists {len(artifact.inputs)} inputs; the bitstream and the model do not belong together")
        multi = len(self.in_streams) > 1
        for role, spec, stream in (*((f"input[{k}]" if multi else "input", spec, stream)
                                     for k, (spec, stream) in enumerate(zip(artifact.inputs, self.in_streams))),
                                   ("output", artifact.output, self.out_stream)):
            expected = _nhwc_shape_of(spec.shape)
            if expected != stream.shape_nhwc:
                raise ArtifactError(f"{self.manifest.file}: packing.{role}.shape_nhwc is {list(stream.shape_nhwc)}, "
                                    f"but model.json's {role} '{spec.name}' {list(spec.shape)} (NCHW) is "
                                    f"{list(expected)} as NHWC; the bitstream and the model do not belong together")

    def _find_ip(self, name: str, role: str) -> Any:
        ips = getattr(self._overlay, "ip_dict", {}) or {}
        if name not in ips:
            raise ArtifactError(f"the overlay {self.manifest.bitstream.name} has no {role} DMA '{name}' "
                                f"(manifest dma.{role}); its IPs are: {', '.join(sorted(ips)) or 'none'}")
        try:
            return getattr(self._overlay, name)
        except AttributeError as exc:
            raise ArtifactError(f"the overlay lists IP '{name}' but gives no driver for it: {exc}") from exc

    # -- running -----------------------------------------------------------------------------

    def _buffers_for(self, n: int) -> tuple[Any, ...]:
        """DMA buffers for a batch of n, reused across runs: allocating contiguous memory is slow.
        One per input stream, then the output buffer."""
        if n in self._buffers:
            self._buffers.move_to_end(n)
            return self._buffers[n]
        while len(self._buffers) >= _MAX_CACHED_BATCHES:   # contiguous memory is scarce on a board
            _, old = self._buffers.popitem(last=False)
            self._free(old)
        buffers: list[Any] = []
        try:
            for stream in (*self.in_streams, self.out_stream):
                buffers.append(self._pynq.allocate(shape=(n, stream.frame_bytes), dtype=np.uint8))
        except BaseException:
            self._free(tuple(buffers))
            raise
        self._buffers[n] = tuple(buffers)
        return self._buffers[n]

    @staticmethod
    def _free(buffers: tuple) -> None:
        for buf in buffers:
            free = getattr(buf, "freebuffer", None) or getattr(buf, "close", None)
            if free is not None:
                free()

    def _check_idle(self, ip: Any, name: str) -> None:
        status = int(ip.read(REG_CTRL))
        if not status & AP_IDLE:
            raise BoardError(f"the DMA '{name}' is not idle (status register 0x00 = {status:#x}) before a new "
                             "transfer: an earlier transfer never finished. Reopen the Accelerator to reload "
                             "the overlay")

    def _program(self, ip: Any, buf: Any, frames: int) -> None:
        addr = _device_address(buf)
        ip.write(REG_ADDR_LO, addr & 0xFFFFFFFF)
        ip.write(REG_ADDR_HI, (addr >> 32) & 0xFFFFFFFF)
        ip.write(REG_FRAMES, frames)
        ip.write(REG_CTRL, AP_START)

    def _wait_done(self, frames: int) -> None:
        timeout = self.timeout_s + self.per_frame_timeout_s * frames
        start = time.monotonic()
        deadline = start + timeout
        status = int(self.odma.read(REG_CTRL))
        while not status & AP_DONE:
            now = time.monotonic()
            if now > deadline:
                name_out = self.manifest.dma_output
                in_status = ", ".join(f"input DMA '{name}' = {int(ip.read(REG_CTRL)):#x}"
                                      for name, ip in zip(self.manifest.dma_inputs, self.idmas))
                raise DmaTimeoutError(
                    f"DMA did not complete within {timeout:.3g} s ({frames} frame(s); base {self.timeout_s:g} s "
                    f"from {TIMEOUT_ENV} or the constructor, plus {self.per_frame_timeout_s:g} s per frame): "
                    f"output DMA '{name_out}' status register 0x00 = {status:#x}, {in_status} "
                    f"(bit 1 done, bit 2 idle). Check that the bitstream, .hwh and manifest "
                    f"packing come from the same build (a wrong byte count stalls the stream), that the "
                    f"overlay is the one this process loaded, and that the PL clock runs; then reopen the "
                    f"Accelerator. Raise {TIMEOUT_ENV} only if the design is known to be this slow.")
            if now - start > _SPIN_S:
                time.sleep(_POLL_SLEEP_S)
            status = int(self.odma.read(REG_CTRL))

    def run(self, codes) -> np.ndarray:
        """Input codes (N, C, H, W) -> output codes (N, C, H, W) int64, through the accelerator.
        A multi-input accelerator takes a tuple of arrays, one per input stream, in order."""
        if self._overlay is None:
            raise BoardError("the pynq backend is closed")
        arrays = [np.asarray(c) for c in (codes if isinstance(codes, (tuple, list)) else (codes,))]
        if len(arrays) != len(self.in_streams):
            raise InputError(f"{len(arrays)} input array(s) for an accelerator with {len(self.in_streams)} "
                             f"input streams ({', '.join(self.manifest.dma_inputs)})")
        multi = len(arrays) > 1
        packed = []
        for k, (array, ins) in enumerate(zip(arrays, self.in_streams)):
            where = f"packing.input[{k}]" if multi else "packing.input"
            if array.ndim < 2:
                raise InputError(f"the pynq backend takes a batch (N, C, ...), got shape {array.shape}")
            nhwc = stream_order(array)
            if tuple(nhwc.shape[1:]) != ins.shape_nhwc:
                raise InputError(f"frames of shape {tuple(nhwc.shape[1:])} (NHWC, from {tuple(array.shape)} NCHW), "
                                 f"but the accelerator takes {ins.shape_nhwc} ({where}.shape_nhwc in "
                                 f"{self.manifest.file})")
            try:
                packed.append(pack_frames(nhwc, ins.bits, ins.elems_per_beat, signed=ins.signed))
            except ValueError as exc:
                raise InputError(f"input codes do not fit the accelerator's input stream"
                                 f"{f' {k}' if multi else ''}: {exc}") from exc
        n = arrays[0].shape[0]
        if any(a.shape[0] != n for a in arrays):
            raise InputError(f"the inputs hold different numbers of frames: {[a.shape[0] for a in arrays]}")
        outs = self.out_stream
        out_nchw = (n, outs.shape_nhwc[-1], *outs.shape_nhwc[:-1])
        if n == 0:
            return np.zeros(out_nchw, np.int64)
        *ibufs, obuf = self._buffers_for(n)
        for ibuf, data in zip(ibufs, packed):
            ibuf[:] = data
            ibuf.flush()
        self._check_idle(self.odma, self.manifest.dma_output)
        for ip, name in zip(self.idmas, self.manifest.dma_inputs):
            self._check_idle(ip, name)
        # Output first: the pipeline must have somewhere to put results before data flows in.
        self._program(self.odma, obuf, n)
        for ip, ibuf in zip(self.idmas, ibufs):
            self._program(ip, ibuf, n)
        self._wait_done(n)
        obuf.invalidate()
        out = unpack_frames(obuf, outs.bits, outs.elems_per_beat, outs.signed, outs.shape_nhwc)
        return np.ascontiguousarray(np.moveaxis(out, -1, 1))

    def close(self) -> None:
        """Free the DMA buffers (contiguous memory is a scarce, board-wide resource) and drop the overlay."""
        buffers, self._buffers = list(self._buffers.values()), OrderedDict()
        for pair in buffers:
            self._free(pair)
        self._overlay = None

    def __repr__(self) -> str:
        return f"PynqBackend({self.manifest.name!r}, board={self.manifest.pynq_board!r})"


register_backend("pynq", PynqBackend)
