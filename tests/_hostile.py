"""Hostile files for the security tests and the bad-input catalogue: a pickle payload, a tampered
ONNX graph, oversized image headers, a board artifact. Each builder writes real files the way an
attacker or a careless user would, so the tests exercise the real loaders."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "fpga_gan" / "zoo"
BOARD_NAME = "dcgan-pynq-z2"
PLACEHOLDER = b"TEST PLACEHOLDER written by tests/_hostile.py: NOT a bitstream, NOT a hardware handoff.\n"


class Payload:
    """Unpickling this runs ``exec`` and writes ``marker``: the classic pickle payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


def payload_checkpoint(path: Path, marker: Path, working: bool = True) -> Path:
    """A ``.pt`` file carrying a payload: inside a real zoo checkpoint (``working``) or alone."""
    import torch

    if working:
        blob = torch.load(ZOO / "dcgan_w4a4.pt", map_location="cpu", weights_only=True)
        blob["metrics"] = {"note": Payload(marker)}
    else:
        blob = Payload(marker)
    torch.save(blob, path)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (8-bit RGB) with a token of pixel data:
    what a decompression bomb looks like to a reader that trusts the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def tamper_onnx(path: Path) -> None:
    """Change one weight of an ONNX graph: still a valid model, different outputs."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 16:
            init.CopyFrom(numpy_helper.from_array((arr * -1.0).astype(np.float32), init.name))
            break
    onnx.save(model, str(path))


def board_artifact(src: Path, dest: Path, cpu_only: bool = False) -> Path:
    """A copy of an exported dcgan artifact with placeholder .bit/.hwh and a valid manifest."""
    from fpga_gan.runtime.manifest import PACKING_ORDER, sha256_file, write_manifest

    shutil.copytree(src, dest)
    meta = json.loads((dest / "model.json").read_text())

    def tensor(spec: dict) -> dict:
        return {k: spec[k] for k in ("name", "shape", "layout", "dtype", "bits", "signed")}

    def stream(spec: dict) -> dict:
        c, *hw = spec["shape"][1:]
        elems = int(np.prod([*hw, c]))
        return {"bits": spec["bits"], "signed": spec["signed"], "elems_per_beat": c,
                "beat_bytes": (spec["bits"] * c + 7) // 8, "beats_per_frame": elems // c, "shape_nhwc": [*hw, c]}

    if not cpu_only:
        (dest / f"{BOARD_NAME}.bit").write_bytes(PLACEHOLDER)
        (dest / f"{BOARD_NAME}.hwh").write_bytes(PLACEHOLDER)
    inp, out = meta["inputs"][0], meta["outputs"][0]
    write_manifest(dest, {
        "schema_version": 1, "name": BOARD_NAME, "model": meta["model"],
        "model_sha256": sha256_file(dest / meta["files"]["qonnx"]),
        "board": "pynq-z2", "pynq_board": "Pynq-Z2", "part": "xc7z020clg400-1", "clock_mhz": 100.0,
        "finn_plus_version": "test", "fpga_gan_version": "test",
        "bitstream": None if cpu_only else f"{BOARD_NAME}.bit", "hwh": None if cpu_only else f"{BOARD_NAME}.hwh",
        "dma": {"input": "idma0", "output": "odma0"}, "input": tensor(inp), "output": tensor(out),
        "packing": {"order": PACKING_ORDER, "input": stream(inp), "output": stream(out)}, "files": {}})
    return dest
