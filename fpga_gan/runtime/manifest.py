"""The board artifact's ``manifest.json``: what must hold before a bitstream goes onto the fabric.

A board artifact is a directory with ``model.json`` (the tensor specs every backend reads), the
CPU fallback ONNX, and - unless it is a CPU-only package - ``<name>.bit`` and ``<name>.hwh``. Its
``manifest.json`` (format: ``bitstreams/manifest.schema.json``) says which board and part the
bitstream was built for, how the DMA streams are packed, and the sha256 of every other file.

Why the checks: loading a bitstream built for another part, or a truncated copy, fails in ways
that are slow to diagnose on a board (a hung AXI bus, a wedged kernel), and a ``.hwh`` from a
different build makes PYNQ drive the wrong registers. Every one of these is cheap to catch here,
with a message that names the file and what was expected.

The schema is checked by hand (required keys, types, internal consistency) so that the runtime
needs no ``jsonschema`` on the board; the tests validate against the schema file itself.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import UnsafePathError, inside, sha256_file, write_json_atomic
from .accelerator import ArtifactError, IntegrityError
from .packing import beat_bytes

__all__ = [
    "MANIFEST_NAME",
    "PACKING_ORDER",
    "SUPPORTED_MANIFEST_SCHEMA",
    "Manifest",
    "StreamSpec",
    "canonical_board",
    "running_board",
    "sha256_file",
    "validate_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
SUPPORTED_MANIFEST_SCHEMA = 1
PACKING_ORDER = ("NHWC, channels fastest; element 0 in the least significant bits; "
                 "each beat little-endian, padded to whole bytes")
REQUIRED_KEYS = ("schema_version", "name", "model", "model_sha256", "board", "pynq_board", "part", "clock_mhz",
                 "finn_plus_version", "fpga_gan_version", "bitstream", "hwh", "dma", "input", "output",
                 "packing", "files")
BOARDS = ("pynq-z2", "ultra96", "zcu104", "kv260")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def canonical_board(name: str) -> str:
    """Lower case without ``-``, ``_`` and spaces: ``Pynq-Z2``, ``PYNQ_Z2`` and ``pynq z2`` compare equal."""
    return re.sub(r"[-_\s]", "", str(name)).lower()


def running_board() -> str | None:
    """The board this process runs on, as the PYNQ image reports it (the ``BOARD`` variable), or None."""
    value = os.environ.get("BOARD", "").strip()
    return value or None


@dataclass(frozen=True)
class StreamSpec:
    """How one DMA stream is packed (``packing.input`` / ``packing.output`` of the manifest)."""

    bits: int
    signed: bool
    elems_per_beat: int
    beat_bytes: int
    beats_per_frame: int
    shape_nhwc: tuple[int, ...]

    @property
    def frame_bytes(self) -> int:
        """Bytes one frame takes in a DMA buffer."""
        return self.beats_per_frame * self.beat_bytes

    @classmethod
    def from_json(cls, d: Any, where: str) -> StreamSpec:
        if not isinstance(d, dict):
            raise ArtifactError(f"{where} must be an object, got {type(d).__name__}")
        missing = [k for k in ("bits", "signed", "elems_per_beat", "beat_bytes", "beats_per_frame", "shape_nhwc")
                   if k not in d]
        if missing:
            raise ArtifactError(f"{where} lacks {', '.join(missing)}")
        for key in ("bits", "elems_per_beat", "beat_bytes", "beats_per_frame"):
            if not _is_int(d[key]) or d[key] < 1:
                raise ArtifactError(f"{where}.{key} must be a positive integer, got {d[key]!r}")
        if not isinstance(d["signed"], bool):
            raise ArtifactError(f"{where}.signed must be true or false, got {d['signed']!r}")
        shape = d["shape_nhwc"]
        if (not isinstance(shape, list) or len(shape) < 2
                or not all(_is_int(s) and s >= 1 for s in shape)):
            raise ArtifactError(f"{where}.shape_nhwc must list at least 2 positive integers, got {shape!r}")
        spec = cls(int(d["bits"]), d["signed"], int(d["elems_per_beat"]), int(d["beat_bytes"]),
                   int(d["beats_per_frame"]), tuple(int(s) for s in shape))
        spec._check_consistent(where)
        return spec

    def _check_consistent(self, where: str) -> None:
        # Wrong numbers here would make the DMA move the wrong byte count: the transfer never
        # completes, or completes with garbage. Catch them before anything touches the hardware.
        if self.bits > 32:
            raise ArtifactError(f"{where}.bits is {self.bits}; at most 32 are supported")
        expected_bytes = beat_bytes(self.bits, self.elems_per_beat)
        if self.beat_bytes != expected_bytes:
            raise ArtifactError(f"{where}: {self.elems_per_beat} elements of {self.bits} bits take "
                                f"{expected_bytes} bytes per beat, the manifest says beat_bytes {self.beat_bytes}")
        elems = 1
        for s in self.shape_nhwc:
            elems *= s
        if elems % self.elems_per_beat or elems // self.elems_per_beat != self.beats_per_frame:
            raise ArtifactError(f"{where}: a frame of shape {list(self.shape_nhwc)} ({elems} elements) in beats of "
                                f"{self.elems_per_beat} is {elems / self.elems_per_beat:g} beats, "
                                f"the manifest says beats_per_frame {self.beats_per_frame}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_plain_name(value: Any, where: str) -> None:
    # Files are named relative to the artifact directory; a path would let a manifest point outside it.
    if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ArtifactError(f"{where} must be a plain file name inside the artifact directory, got {value!r}")


def validate_manifest(data: Any, where: str = MANIFEST_NAME) -> None:
    """Check a manifest dict against the fixed schema (hand-written: no jsonschema on the board).

    Raises ArtifactError naming the first problem. Checks what the runtime relies on plus the
    schema's closed key set, so a manifest written for a newer format is noticed, not half-read.
    """
    if not isinstance(data, dict):
        raise ArtifactError(f"{where} must hold a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SUPPORTED_MANIFEST_SCHEMA or isinstance(version, bool):
        raise ArtifactError(f"{where}: schema_version {version!r} is not supported "
                            f"(this runtime reads {SUPPORTED_MANIFEST_SCHEMA}); rebuild the artifact")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ArtifactError(f"{where} lacks required key(s): {', '.join(missing)}")
    known = set(REQUIRED_KEYS) | {"vivado_version", "created"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ArtifactError(f"{where} has unknown key(s) {', '.join(unknown)} "
                            f"(schema_version {SUPPORTED_MANIFEST_SCHEMA} allows {', '.join(sorted(known))})")
    for key in ("name", "model", "board", "pynq_board", "part", "finn_plus_version", "fpga_gan_version"):
        if not isinstance(data[key], str):
            raise ArtifactError(f"{where}: {key} must be a string, got {data[key]!r}")
    if not _NAME.match(data["name"]):
        raise ArtifactError(f"{where}: name {data['name']!r} may only hold letters, digits, '_', '.' and '-'")
    if data["board"] not in BOARDS:
        raise ArtifactError(f"{where}: board {data['board']!r} is none of {', '.join(BOARDS)}")
    if not isinstance(data["model_sha256"], str) or not _SHA256.match(data["model_sha256"]):
        raise ArtifactError(f"{where}: model_sha256 must be 64 lower-case hex digits, got {data['model_sha256']!r}")
    clock = data["clock_mhz"]
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or clock <= 0:
        raise ArtifactError(f"{where}: clock_mhz must be a positive number, got {clock!r}")
    for key, suffix in (("bitstream", ".bit"), ("hwh", ".hwh")):
        value = data[key]
        if value is None:
            continue
        _check_plain_name(value, f"{where}: {key}")
        if not value.endswith(suffix):
            raise ArtifactError(f"{where}: {key} {value!r} must end in {suffix}")
    dma = data["dma"]
    # a multi-input accelerator has one input DMA per input (FINN: idma0, idma1, ...): dma.input,
    # input and packing.input are then lists of equal length, in model.json's input order
    dma_inputs = dma.get("input") if isinstance(dma, dict) else None
    dma_inputs = dma_inputs if isinstance(dma_inputs, list) and dma_inputs else [dma_inputs]
    if not isinstance(dma, dict) or set(dma) != {"input", "output"} \
            or not all(isinstance(v, str) and v for v in (*dma_inputs, dma["output"])):
        raise ArtifactError(f"{where}: dma must be {{\"input\": IP name (or a list, one per input), "
                            f"\"output\": IP name}}, got {dma!r}")
    for key in ("input", "output"):
        tensors = data[key] if key == "input" and isinstance(data[key], list) else [data[key]]
        for tensor in tensors:
            if not isinstance(tensor, dict):
                raise ArtifactError(f"{where}: {key} must be an object, got {tensor!r}")
            lacking = [k for k in ("name", "shape", "layout", "dtype", "bits", "signed") if k not in tensor]
            if lacking:
                raise ArtifactError(f"{where}: {key} lacks {', '.join(lacking)}")
    packing = data["packing"]
    if not isinstance(packing, dict) or set(packing) != {"order", "input", "output"}:
        raise ArtifactError(f"{where}: packing must hold exactly order, input and output, got {packing!r}")
    if packing["order"] != PACKING_ORDER:
        raise ArtifactError(f"{where}: packing.order is {packing['order']!r}; this runtime packs "
                            f"{PACKING_ORDER!r}")
    for key in ("input", "output"):
        streams = packing[key] if key == "input" and isinstance(packing[key], list) else [packing[key]]
        for k, stream in enumerate(streams):
            StreamSpec.from_json(stream, f"{where}: packing.{key}" + (f"[{k}]" if len(streams) > 1 else ""))
    counts = {"dma.input": len(dma_inputs),
              "input": len(data["input"]) if isinstance(data["input"], list) else 1,
              "packing.input": len(packing["input"]) if isinstance(packing["input"], list) else 1}
    if len(set(counts.values())) != 1:
        raise ArtifactError(f"{where}: one input DMA, tensor and stream per input, but "
                            + ", ".join(f"{k} lists {v}" for k, v in counts.items()))
    files = data["files"]
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{where}: files must map file names to sha256 digests, got {files!r}")
    for name, digest in files.items():
        _check_plain_name(name, f"{where}: files key")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise ArtifactError(f"{where}: files[{name!r}] must be 64 lower-case hex digits, got {digest!r}")
    for key in ("bitstream", "hwh"):
        if data[key] is not None and data[key] not in files:
            raise ArtifactError(f"{where}: the {key} {data[key]} is not listed in files, so its sha256 "
                                "cannot be checked; rewrite the manifest with write_manifest")


@dataclass
class Manifest:
    """A loaded and validated ``manifest.json`` of a board artifact."""

    path: Path           # the artifact directory
    data: dict

    @classmethod
    def load(cls, artifact_dir: str | Path) -> Manifest:
        """Read ``artifact_dir/manifest.json`` and validate it (keys, types, packing arithmetic)."""
        artifact_dir = Path(artifact_dir)
        file = artifact_dir / MANIFEST_NAME
        if file.is_symlink():
            raise IntegrityError(f"{file} is a symlink; a manifest must be a file of the artifact itself")
        if not file.is_file():
            raise ArtifactError(f"{artifact_dir} has no {MANIFEST_NAME}: it is not a board artifact "
                                "(an export alone runs on backend='cpu')")
        try:
            data = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{file} is not readable JSON: {exc}") from exc
        validate_manifest(data, str(file))
        return cls(artifact_dir, data)

    @property
    def file(self) -> Path:
        return self.path / MANIFEST_NAME

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def board(self) -> str:
        return self.data["board"]

    @property
    def pynq_board(self) -> str:
        return self.data["pynq_board"]

    @property
    def part(self) -> str:
        return self.data["part"]

    @property
    def bitstream(self) -> Path | None:
        """The ``.bit`` file, or None in a CPU-only package."""
        name = self.data["bitstream"]
        return None if name is None else self.path / name

    @property
    def hwh(self) -> Path | None:
        name = self.data["hwh"]
        return None if name is None else self.path / name

    @property
    def dma_input(self) -> str:
        """The (first) input DMA."""
        return self.dma_inputs[0]

    @property
    def dma_inputs(self) -> list[str]:
        """One input DMA per input, in model.json's input order."""
        value = self.data["dma"]["input"]
        return list(value) if isinstance(value, list) else [value]

    @property
    def dma_output(self) -> str:
        return self.data["dma"]["output"]

    @property
    def input_stream(self) -> StreamSpec:
        """The (first) input stream."""
        return self.input_streams[0]

    @property
    def input_streams(self) -> list[StreamSpec]:
        """How each input stream is packed, in model.json's input order."""
        value = self.data["packing"]["input"]
        if not isinstance(value, list):
            return [StreamSpec.from_json(value, f"{self.file}: packing.input")]
        return [StreamSpec.from_json(v, f"{self.file}: packing.input[{k}]") for k, v in enumerate(value)]

    @property
    def output_stream(self) -> StreamSpec:
        return StreamSpec.from_json(self.data["packing"]["output"], f"{self.file}: packing.output")

    def verify_files(self) -> None:
        """Check the sha256 of every file the manifest lists; the first missing or altered one raises.

        A bitstream copied with a truncated transfer or edited by hand must never reach the fabric.
        """
        for name, expected in sorted(self.data["files"].items()):
            try:
                f = inside(self.path, name, f"{self.file}: files key")
            except UnsafePathError as exc:
                raise IntegrityError(str(exc)) from None
            if f.is_symlink():
                raise IntegrityError(f"{f} (listed in {self.file}) is a symlink; the manifest hashed a regular "
                                     "file there, so the artifact was altered after it was written")
            if not f.is_file():
                raise IntegrityError(f"artifact file missing: {f} (listed in {self.file})")
            actual = sha256_file(f)
            if actual != expected:
                raise IntegrityError(f"{f} does not match {self.file}: sha256 mismatch, expected {expected}, "
                                     f"actual {actual}; the file was altered or copied incompletely")

    def check_board(self, running: str | None = None) -> None:
        """Refuse a bitstream built for another board than the one this process runs on.

        ``running`` defaults to the ``BOARD`` environment variable, which PYNQ images set
        (``Pynq-Z2``, ``KV260``, ...). Names compare case-insensitively ignoring ``-`` and ``_``.
        """
        if running is None:
            running = running_board()
        if running is None:
            raise ArtifactError(f"cannot tell which board this is: the BOARD environment variable is not set. "
                                f"The pynq backend runs on a PYNQ board image, which sets it; this artifact "
                                f"is for {self.pynq_board} (part {self.part}), so on that board run with "
                                f"BOARD={self.pynq_board}")
        if canonical_board(running) != canonical_board(self.pynq_board):
            raise IntegrityError(f"this artifact is for {self.pynq_board} (part {self.part}, {self.file}), "
                                f"the board here is {running} (BOARD environment variable); use the "
                                f"artifact built for {running}, or backend='cpu'")


def write_manifest(artifact_dir: str | Path, manifest: dict) -> Path:
    """Write ``artifact_dir/manifest.json`` with ``files`` set to the sha256 of every other file.

    Every regular file directly in the directory except ``manifest.json`` is hashed (sub-
    directories, such as a sim build, are not part of the board package). The manifest is
    validated first and written atomically (temporary file, fsync, rename), so a reader never
    sees half a manifest and an interrupted write leaves the old one in place.
    """
    artifact_dir = Path(artifact_dir)
    if not artifact_dir.is_dir():
        raise ArtifactError(f"artifact directory not found: {artifact_dir}")
    target = artifact_dir / MANIFEST_NAME
    files = {}
    for f in sorted(artifact_dir.iterdir()):
        if f.name == MANIFEST_NAME or f.name.startswith(f".{MANIFEST_NAME}.") or f.is_symlink() or not f.is_file():
            continue
        files[f.name] = sha256_file(f)
    data = {**manifest, "files": files}
    validate_manifest(data, str(target))
    return write_json_atomic(target, data)
