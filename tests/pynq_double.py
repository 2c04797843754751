"""A test double of the pynq API, not a board; it checks the call sequence and data path of the pynq backend.

Nothing here talks to hardware or says anything about a real bitstream. It stands in for the
parts of ``pynq`` the backend uses - ``Overlay``, the IPs' ``read``/``write`` registers,
``allocate`` and the buffers' ``flush``/``invalidate``/``freebuffer`` - with the semantics of
FINN's HLS IODMA control registers (0x00 ``ap_start``/``ap_done`` (clear on read)/``ap_idle``,
0x10/0x14 buffer address, 0x1C frame count), and it is strict where a board would be unforgiving:

* buffers have a CPU view (the ndarray) and a separate device view; the device sees only what
  was flushed, and the CPU sees the DMA's output only after ``invalidate`` (non-coherent caches);
* a DMA programmed with an address no live buffer holds, a byte count beyond the buffer, frame
  counts that differ between the DMAs, or an input DMA started before the output DMA raise
  :class:`DoubleError` at once (on a board these corrupt memory or hang);
* it decodes the input with the per-beat reference ``unpack_beats`` and encodes the output with
  ``pack_beats`` - deliberately not the vectorised ``pack_frames``/``unpack_frames`` under test -
  and computes the output with a function the test supplies (the cpu backend, ONNX Runtime).

Modes: ``"ok"``; ``"hang"`` (the DMAs start and never complete); ``"corrupt"`` (one output code
has its lowest bit flipped, in the last frame of every transfer; :attr:`PynqDouble.corruptions`
says where). Every call is recorded in
:attr:`PynqDouble.calls`. Install with ``monkeypatch.setitem(sys.modules, "pynq", double.module)``.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fpga_gan.runtime.packing import beat_bytes, pack_beats, unpack_beats

REG_CTRL, REG_ADDR_LO, REG_ADDR_HI, REG_FRAMES = 0x00, 0x10, 0x14, 0x1C
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
MODES = ("ok", "hang", "corrupt")


class DoubleError(AssertionError):
    """The code under test used the (double's) pynq API in a way that would fail on a board."""


@dataclass
class _Stream:
    bits: int
    signed: bool
    elems_per_beat: int
    shape_nhwc: tuple[int, ...]

    @classmethod
    def from_packing(cls, d: dict) -> _Stream:
        return cls(int(d["bits"]), bool(d["signed"]), int(d["elems_per_beat"]), tuple(d["shape_nhwc"]))

    @property
    def beat_bytes(self) -> int:
        return beat_bytes(self.bits, self.elems_per_beat)

    @property
    def beats_per_frame(self) -> int:
        return int(np.prod(self.shape_nhwc)) // self.elems_per_beat

    @property
    def frame_bytes(self) -> int:
        return self.beats_per_frame * self.beat_bytes


class _Allocation:
    """One contiguous buffer: the CPU's array and the memory the DMA sees."""

    def __init__(self, double: PynqDouble, address: int, host: DoubleBuffer) -> None:
        self.double, self.address, self.host = double, address, host
        self.nbytes = host.nbytes
        self.device = np.zeros(self.nbytes, np.uint8)
        self.freed = False

    def flush(self) -> None:
        self._alive("flush")
        self.device[:] = np.asarray(self.host).reshape(-1).view(np.uint8)

    def invalidate(self) -> None:
        self._alive("invalidate")
        np.asarray(self.host).reshape(-1).view(np.uint8)[:] = self.device

    def _alive(self, what: str) -> None:
        if self.freed:
            raise DoubleError(f"{what} on buffer {self.address:#x} after freebuffer()")


class DoubleBuffer(np.ndarray):
    """What ``allocate`` returns: an ndarray with pynq's buffer methods and a fake device address."""

    _alloc: _Allocation | None = None

    def __array_finalize__(self, obj) -> None:
        self._alloc = getattr(obj, "_alloc", None)

    @property
    def device_address(self) -> int:
        return self._alloc.address

    @property
    def physical_address(self) -> int:
        return self._alloc.address

    def flush(self) -> None:
        self._alloc.double.calls.append(("flush", self._alloc.address))
        self._alloc.flush()

    def invalidate(self) -> None:
        self._alloc.double.calls.append(("invalidate", self._alloc.address))
        self._alloc.invalidate()

    sync_to_device = flush
    sync_from_device = invalidate

    def freebuffer(self) -> None:
        alloc = self._alloc
        alloc.double.calls.append(("freebuffer", alloc.address))
        if alloc.freed:
            raise DoubleError(f"buffer {alloc.address:#x} freed twice")
        alloc.freed = True
        alloc.double._memory.pop(alloc.address, None)

    close = freebuffer


class DoubleIP:
    """An IP of the overlay: a bank of 32-bit registers; the DMA roles get IODMA behaviour."""

    def __init__(self, double: PynqDouble, name: str, role: str | None) -> None:
        self.double, self.name, self.role = double, name, role
        self.regs: dict[int, int] = {}
        self.ctrl = AP_IDLE             # idle after reset
        self.running = False

    def read(self, offset: int) -> int:
        if offset == REG_CTRL:
            value = self.ctrl | (AP_START if self.running else 0)
            self.ctrl &= ~AP_DONE       # ap_done is clear-on-read
        else:
            value = self.regs.get(offset, 0)
        self.double.calls.append(("read", self.name, offset, value))
        return value

    def write(self, offset: int, value: int) -> None:
        self.double.calls.append(("write", self.name, offset, value))
        if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 0xFFFFFFFF:
            raise DoubleError(f"{self.name}: register {offset:#x} takes a 32-bit unsigned int, got {value!r}")
        if offset % 4:
            raise DoubleError(f"{self.name}: unaligned register offset {offset:#x}")
        if offset == REG_CTRL:
            if int(value) & AP_START:
                self.double._start(self)
            return
        self.regs[offset] = int(value)

    @property
    def address(self) -> int:
        return self.regs.get(REG_ADDR_LO, 0) | (self.regs.get(REG_ADDR_HI, 0) << 32)

    @property
    def frames(self) -> int:
        return self.regs.get(REG_FRAMES, 0)


class PynqDouble:
    """The state behind one fake ``pynq`` module; build it, then install :attr:`module`.

    ``packing`` is the manifest's ``packing`` dict (how the fake accelerator reads and writes its
    streams); ``compute`` maps NCHW input codes to NCHW output codes (the tests pass the cpu
    backend's ``run``). ``ip_names`` are the IPs the fake overlay has; ``dma`` which of them are
    the input and output IODMA. A multi-input accelerator has a list of input streams in
    ``packing["input"]`` and ``dma`` = (input DMA per input..., output DMA); it computes once every
    input DMA has started, and ``compute`` gets a tuple of NCHW inputs.
    """

    def __init__(self, packing: dict, compute: Callable[[np.ndarray], np.ndarray], *, mode: str = "ok",
                 ip_names: Sequence[str] = ("idma0", "odma0", "StreamingDataflowPartition_1"),
                 dma: tuple[str, str] = ("idma0", "odma0"), high_addresses: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is none of {MODES}")
        inputs = packing["input"] if isinstance(packing["input"], list) else [packing["input"]]
        self.inputs = [_Stream.from_packing(d) for d in inputs]
        self.input, self.output = self.inputs[0], _Stream.from_packing(packing["output"])
        if len(dma) != len(self.inputs) + 1:
            raise ValueError(f"dma names {dma}: one input DMA per input stream ({len(self.inputs)}) and the output")
        self.compute, self.mode, self.ip_names, self.dma = compute, mode, tuple(ip_names), tuple(dma)
        self.calls: list[tuple] = []
        self.corruptions: list[tuple[int, tuple[int, ...]]] = []   # per corrupted run: (frame, (c, h, w))
        self.completed = 0
        self._memory: dict[int, _Allocation] = {}
        # Above 4 GiB by default, so a driver that forgets the high address word is caught.
        self._next_address = 0x8_0000_0000 if high_addresses else 0x1800_0000
        self.overlays: list[DoubleOverlay] = []
        self.module = self._make_module()

    # -- the fake module -----------------------------------------------------------------------

    def _make_module(self) -> types.ModuleType:
        mod = types.ModuleType("pynq", "test double of the pynq API (tests/pynq_double.py), not a board")
        double = self

        class Overlay(DoubleOverlay):
            def __init__(self, bitfile_name: str, download: bool = True) -> None:
                super().__init__(double, bitfile_name)

        def allocate(shape, dtype="u4", target=None, **kwargs) -> DoubleBuffer:
            return double._allocate(shape, dtype)

        mod.Overlay = Overlay
        mod.allocate = allocate
        mod.__version__ = "0.0-test-double"
        mod.double = self
        return mod

    def _allocate(self, shape, dtype) -> DoubleBuffer:
        buf = np.zeros(shape, dtype).view(DoubleBuffer)
        address = self._next_address
        self._next_address += (buf.nbytes + 0xFFF) // 0x1000 * 0x1000 + 0x1000   # page aligned, with a gap
        buf._alloc = _Allocation(self, address, buf)
        self._memory[address] = buf._alloc
        self.calls.append(("allocate", tuple(int(s) for s in np.atleast_1d(shape)), np.dtype(dtype).name, address))
        return buf

    def live_buffers(self) -> list[int]:
        """Addresses of buffers allocated and not yet freed."""
        return sorted(self._memory)

    # -- the fake accelerator ------------------------------------------------------------------

    def _region(self, ip: DoubleIP, nbytes: int) -> tuple[_Allocation, int]:
        addr = ip.address
        for alloc in self._memory.values():
            if alloc.address <= addr < alloc.address + alloc.nbytes:
                offset = addr - alloc.address
                if offset + nbytes > alloc.nbytes:
                    raise DoubleError(f"{ip.name}: {ip.frames} frame(s) = {nbytes} bytes from {addr:#x} run past "
                                      f"the end of the {alloc.nbytes}-byte buffer at {alloc.address:#x}")
                return alloc, offset
        raise DoubleError(f"{ip.name}: address {addr:#x} (0x10 low | 0x14 high) lies in no live buffer; "
                          f"live buffers: {[hex(a) for a in self.live_buffers()]}")

    def _start(self, ip: DoubleIP) -> None:
        self.calls.append(("start", ip.name))
        if ip.role is None:
            return
        if ip.running or not ip.ctrl & AP_IDLE:
            raise DoubleError(f"{ip.name} started while busy")
        if ip.frames < 1:
            raise DoubleError(f"{ip.name} started with frame count {ip.frames} (register 0x1c)")
        idmas, odma = self._dmas(ip)
        if ip.role == "output":
            self._region(ip, ip.frames * self.output.frame_bytes)
            ip.running, ip.ctrl = True, 0
            return
        idma = ip
        if not odma.running:
            raise DoubleError(f"input DMA {idma.name} started before output DMA {odma.name}: the output "
                              "DMA must be programmed and started first, or the stream stalls")
        if idma.frames != odma.frames:
            raise DoubleError(f"frame counts differ: {idma.name} {idma.frames}, {odma.name} {odma.frames}")
        stream = self.inputs[idmas.index(idma)]
        self._region(idma, idma.frames * stream.frame_bytes)
        out_alloc, out_off = self._region(odma, odma.frames * self.output.frame_bytes)
        idma.running, idma.ctrl = True, 0
        if self.mode == "hang" or not all(d.running for d in idmas):
            return                                       # the accelerator waits for every input stream
        inputs = []
        for dma, s in zip(idmas, self.inputs):
            alloc, off = self._region(dma, dma.frames * s.frame_bytes)
            inputs.append(np.moveaxis(self._decode(alloc.device[off:off + dma.frames * s.frame_bytes], dma.frames, s),
                                      -1, 1))
        outputs = np.asarray(self.compute(inputs[0] if len(inputs) == 1 else tuple(inputs))).astype(np.int64)
        expected = (idma.frames, self.output.shape_nhwc[-1], *self.output.shape_nhwc[:-1])
        if outputs.shape != expected:
            raise DoubleError(f"compute returned shape {outputs.shape}, the output stream carries {expected}")
        nhwc = np.ascontiguousarray(np.moveaxis(outputs, 1, -1))
        if self.mode == "corrupt":
            frame = idma.frames - 1
            flat = nhwc[frame].reshape(-1)
            k = flat.size // 2
            flat[k] ^= 1
            h_w_c = np.unravel_index(k, self.output.shape_nhwc)
            self.corruptions.append((frame, (int(h_w_c[-1]), *map(int, h_w_c[:-1]))))
        out_alloc.device[out_off:out_off + odma.frames * self.output.frame_bytes] = self._encode(nhwc)
        for dma in (*idmas, odma):
            dma.running, dma.ctrl = False, AP_DONE | AP_IDLE
        self.completed += 1

    def _dmas(self, ip: DoubleIP) -> tuple[list[DoubleIP], DoubleIP]:
        overlay = ip._overlay
        return [overlay._ips[name] for name in self.dma[:-1]], overlay._ips[self.dma[-1]]

    def _decode(self, data: np.ndarray, frames: int, s: _Stream) -> np.ndarray:
        rows = data.reshape(frames, s.beats_per_frame, s.beat_bytes)
        out = []
        for frame in rows:
            beats = [int.from_bytes(bytes(row), "little") for row in frame]
            out.append(unpack_beats(beats, s.bits, s.elems_per_beat, s.signed).reshape(s.shape_nhwc))
        return np.stack(out)

    def _encode(self, nhwc: np.ndarray) -> np.ndarray:
        s = self.output
        chunks = []
        for frame in nhwc:
            chunks.extend(word.to_bytes(s.beat_bytes, "little") for word in pack_beats(frame, s.bits, s.elems_per_beat))
        return np.frombuffer(b"".join(chunks), np.uint8)

    # -- queries for tests ---------------------------------------------------------------------

    def starts(self) -> list[str]:
        """Names of the IPs started, in order."""
        return [c[1] for c in self.calls if c[0] == "start"]


class DoubleOverlay:
    """``pynq.Overlay``: checks the .hwh is beside the .bit (as PYNQ does), exposes the IPs."""

    def __init__(self, double: PynqDouble, bitfile_name: str) -> None:
        bit = Path(bitfile_name)
        double.calls.append(("Overlay", str(bit)))
        if not bit.is_file():
            raise OSError(f"test double: bitstream file {bit} does not exist")
        if not bit.with_suffix(".hwh").is_file():
            raise OSError(f"test double: no .hwh beside {bit}")
        self._double = double
        self._ips: dict[str, DoubleIP] = {}
        roles = {**{name: "input" for name in double.dma[:-1]}, double.dma[-1]: "output"}
        for name in double.ip_names:
            ip = DoubleIP(double, name, roles.get(name))
            ip._overlay = self
            self._ips[name] = ip
        self.ip_dict = {name: {"fullpath": name, "type": f"test-double:hls:{name}:1.0",
                               "phys_addr": 0x4000_0000 + 0x1_0000 * i, "addr_range": 0x1_0000}
                        for i, name in enumerate(double.ip_names)}
        self.bitfile_name = str(bit)
        double.overlays.append(self)

    def __getattr__(self, name: str) -> DoubleIP:
        ips = self.__dict__.get("_ips", {})
        if name in ips:
            return ips[name]
        raise AttributeError(f"test double overlay has no IP or attribute {name!r}")
