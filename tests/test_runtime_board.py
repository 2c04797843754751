"""The pynq backend, the manifest checks and the self-test, against a test double of pynq.

No board is involved (except in the one test marked ``board``): ``tests/pynq_double.py`` stands
in for the pynq API and computes the accelerator's output with the cpu backend, so these tests
check the call sequence, the register protocol, the DMA buffer byte images and every refusal.
The ``.bit``/``.hwh`` files written here are placeholders whose bytes say so, not bitstreams.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema  # a test dependency (requirements.txt): the runtime itself checks manifests by hand
import numpy as np
import pytest

from fpga_gan.runtime import Accelerator, ArtifactError, InputError
from fpga_gan.runtime.accelerator import Artifact
from fpga_gan.runtime.board import TIMEOUT_ENV, BoardError, DmaTimeoutError, PynqBackend
from fpga_gan.runtime.manifest import (
    MANIFEST_NAME,
    PACKING_ORDER,
    Manifest,
    sha256_file,
    write_manifest,
)
from fpga_gan.runtime.selftest import main as selftest_main
from fpga_gan.runtime.selftest import selftest

from .pynq_double import DoubleError, PynqDouble

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "bitstreams" / "manifest.schema.json").read_text())
NAME = "dcgan-pynq-z2"
PLACEHOLDER = (b"TEST DOUBLE PLACEHOLDER written by tests/test_runtime_board.py. This is NOT a bitstream "
               b"and NOT a hardware handoff; only tests/pynq_double.py accepts it.\n")


@pytest.fixture(scope="module")
def dcgan_src() -> Path:
    from fpga_gan.artifacts import zoo_artifact

    return zoo_artifact("dcgan", root=REPO / "build" / "artifacts")


@pytest.fixture(autouse=True)
def on_a_pynq_z2(request, monkeypatch):
    """Every test but the real-board one runs as if on a Pynq-Z2 image (which sets BOARD)."""
    if request.node.get_closest_marker("board"):
        return
    monkeypatch.setenv("BOARD", "Pynq-Z2")
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)


def _tensor(spec: dict) -> dict:
    return {k: spec[k] for k in ("name", "shape", "layout", "dtype", "bits", "signed")}


def _stream(spec: dict, elems_per_beat: int) -> dict:
    c, *hw = spec["shape"][1:]
    shape_nhwc = [*hw, c]
    elems = int(np.prod(shape_nhwc))
    return {"bits": spec["bits"], "signed": spec["signed"], "elems_per_beat": elems_per_beat,
            "beat_bytes": (spec["bits"] * elems_per_beat + 7) // 8, "beats_per_frame": elems // elems_per_beat,
            "shape_nhwc": shape_nhwc}


def make_manifest(art: Path, *, cpu_only: bool = False, in_epb: int = 8, out_epb: int = 3, **overrides) -> dict:
    """A manifest following bitstreams/manifest.schema.json for the artifact in ``art``."""
    meta = json.loads((art / "model.json").read_text())
    inp, out = meta["inputs"][0], meta["outputs"][0]
    manifest = {
        "schema_version": 1, "name": NAME, "model": "dcgan",
        "model_sha256": sha256_file(art / meta["files"]["qonnx"]),
        "board": "pynq-z2", "pynq_board": "Pynq-Z2", "part": "xc7z020clg400-1", "clock_mhz": 100.0,
        "finn_plus_version": "test", "fpga_gan_version": "test", "vivado_version": None,
        "created": "2025-01-01T00:00:00Z",
        "bitstream": None if cpu_only else f"{NAME}.bit", "hwh": None if cpu_only else f"{NAME}.hwh",
        "dma": {"input": "idma0", "output": "odma0"},
        "input": _tensor(inp), "output": _tensor(out),
        "packing": {"order": PACKING_ORDER, "input": _stream(inp, in_epb), "output": _stream(out, out_epb)},
        "files": {},
    }
    manifest.update(overrides)
    return manifest


def write_checked(art: Path, manifest: dict) -> dict:
    """write_manifest, then validate the result against the schema file itself."""
    path = write_manifest(art, manifest)
    written = json.loads(path.read_text())
    jsonschema.validate(written, SCHEMA)
    return written


def build_artifact(src: Path, dest: Path, *, cpu_only: bool = False, **kw) -> Path:
    shutil.copytree(src, dest)
    if not cpu_only:
        (dest / f"{NAME}.bit").write_bytes(PLACEHOLDER)
        (dest / f"{NAME}.hwh").write_bytes(PLACEHOLDER)
    write_checked(dest, make_manifest(dest, cpu_only=cpu_only, **kw))
    return dest


@pytest.fixture
def board_artifact(dcgan_src, tmp_path) -> Path:
    return build_artifact(dcgan_src, tmp_path / NAME)


def cpu_compute(art: Path):
    from fpga_gan.runtime.cpu import CpuBackend

    return CpuBackend(Artifact.load(art)).run


def install_double(monkeypatch, art: Path, **kw) -> PynqDouble:
    packing = json.loads((art / MANIFEST_NAME).read_text())["packing"]
    double = PynqDouble(packing, cpu_compute(art), **kw)
    monkeypatch.setitem(sys.modules, "pynq", double.module)
    return double


def random_codes(acc: Accelerator, n: int, seed: int = 0) -> np.ndarray:
    return acc.quantize_input(np.random.default_rng(seed).standard_normal((n, *acc.input_spec.shape[1:])) * 2)


# -- the data path -------------------------------------------------------------------------------

def test_pynq_backend_gives_the_cpu_codes(monkeypatch, board_artifact):
    double = install_double(monkeypatch, board_artifact)
    with Accelerator.open(board_artifact, backend="cpu") as cpu:
        z = random_codes(cpu, 5)
        expected = cpu.run(z)
    with Accelerator.open(board_artifact, backend="pynq") as acc:
        assert acc.backend_name == "pynq"
        out = acc.run(z)
        assert out.dtype == np.uint8 and out.shape == (5, 3, 64, 64)
        assert np.array_equal(out, expected)
        assert np.array_equal(acc.run(z), expected)          # buffers reused
        assert np.array_equal(acc.run(z[2]), expected[2:3])  # batch 1: its own buffers
        allocations = [c for c in double.calls if c[0] == "allocate"]
        assert [c[1] for c in allocations] == [(5, 64), (5, 3 * 64 * 64), (1, 64), (1, 3 * 64 * 64)]
        assert len(double.live_buffers()) == 4
    assert double.live_buffers() == [], "close() must free the DMA buffers"
    assert double.completed == 3


def test_sub_byte_streams_through_the_backend(monkeypatch, tmp_path):
    """4-bit signed codes in (3 a beat, 2 bytes), 5-bit unsigned out (8 a beat, 5 bytes): the general packing path."""
    art = tmp_path / "toy-pynq-z2"
    art.mkdir()
    x = {"name": "x", "shape": [None, 3, 4, 5], "layout": "NCHW", "dtype": "int8", "bits": 4, "signed": True,
         "scale": 1.0, "range": [-8, 7]}
    y = {"name": "y", "shape": [None, 6, 4, 5], "layout": "NCHW", "dtype": "uint8", "bits": 5, "signed": False,
         "scale": 1.0}
    (art / "model.json").write_text(json.dumps({"schema_version": 1, "model": "toy", "files": {},
                                                 "inputs": [x], "outputs": [y]}))
    for suffix in (".bit", ".hwh"):
        (art / f"toy-pynq-z2{suffix}").write_bytes(PLACEHOLDER)
    manifest = {
        "schema_version": 1, "name": "toy-pynq-z2", "model": "toy", "model_sha256": "0" * 64, "board": "pynq-z2",
        "pynq_board": "Pynq-Z2", "part": "xc7z020clg400-1", "clock_mhz": 100, "finn_plus_version": "test",
        "fpga_gan_version": "test", "bitstream": "toy-pynq-z2.bit", "hwh": "toy-pynq-z2.hwh",
        "dma": {"input": "idma0", "output": "odma0"}, "input": _tensor(x), "output": _tensor(y),
        "packing": {"order": PACKING_ORDER, "input": _stream(x, 3), "output": _stream(y, 8)}, "files": {}}
    written = write_checked(art, manifest)
    assert written["packing"]["input"]["beat_bytes"] == 2 and written["packing"]["output"]["beat_bytes"] == 5

    def compute(codes: np.ndarray) -> np.ndarray:       # any function into 5 unsigned bits will do
        u = codes + 8
        return np.concatenate([u, 2 * u + 1], axis=1)

    double = PynqDouble(written["packing"], compute)
    monkeypatch.setitem(sys.modules, "pynq", double.module)
    z = np.random.default_rng(5).integers(-8, 8, size=(3, 3, 4, 5))
    with Accelerator.open(art, backend="pynq") as acc:
        out = acc.run(z)
    assert out.dtype == np.uint8 and np.array_equal(out, compute(z))


def test_auto_picks_pynq_on_the_board(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    with Accelerator.open(board_artifact) as acc:
        assert acc.backend_name == "pynq"


def test_auto_falls_back_to_cpu_without_pynq(monkeypatch, board_artifact):
    monkeypatch.setitem(sys.modules, "pynq", None)     # import pynq raises ImportError
    with pytest.raises(ArtifactError, match="runs on a PYNQ board image"):
        Accelerator.open(board_artifact, backend="pynq")
    with Accelerator.open(board_artifact) as acc:
        assert acc.backend_name == "cpu"


def test_register_protocol_and_call_order(monkeypatch, board_artifact):
    double = install_double(monkeypatch, board_artifact)
    with Accelerator.open(board_artifact, backend="pynq") as acc:
        acc.run(random_codes(acc, 2))
        calls = double.calls
        starts = [i for i, c in enumerate(calls) if c[0] == "start"]
        assert [calls[i][1] for i in starts] == ["odma0", "idma0"], "the output DMA must start first"
        (ibuf_addr,) = [c[3] for c in calls if c[0] == "allocate" and c[1] == (2, 64)]
        (obuf_addr,) = [c[3] for c in calls if c[0] == "allocate" and c[1] == (2, 3 * 64 * 64)]
        assert ibuf_addr > 0xFFFFFFFF, "the double hands out addresses above 4 GiB"
        writes = {(c[1], c[2]): c[3] for c in calls if c[0] == "write"}
        assert writes[("odma0", 0x10)] == obuf_addr & 0xFFFFFFFF and writes[("odma0", 0x14)] == obuf_addr >> 32
        assert writes[("idma0", 0x10)] == ibuf_addr & 0xFFFFFFFF and writes[("idma0", 0x14)] == ibuf_addr >> 32
        assert writes[("odma0", 0x1C)] == writes[("idma0", 0x1C)] == 2
        # the output DMA is checked idle before anything starts; the input is flushed before the
        # input DMA starts; the output is invalidated only after ap_done was seen
        idle_check = calls.index(("read", "odma0", 0x00, 0x4))
        flush = calls.index(("flush", ibuf_addr))
        done = next(i for i, c in enumerate(calls) if c[:3] == ("read", "odma0", 0x00) and c[3] & 0x2)
        invalidate = calls.index(("invalidate", obuf_addr))
        assert idle_check < starts[0] and flush < starts[1] < done < invalidate


def test_the_double_catches_a_wrong_start_order(monkeypatch, board_artifact):
    double = install_double(monkeypatch, board_artifact)
    pynq = double.module
    overlay = pynq.Overlay(str(board_artifact / f"{NAME}.bit"))
    ibuf = pynq.allocate(shape=(1, 64), dtype=np.uint8)
    obuf = pynq.allocate(shape=(1, 3 * 64 * 64), dtype=np.uint8)
    for ip, buf in ((overlay.idma0, ibuf), (overlay.odma0, obuf)):
        ip.write(0x10, buf.device_address & 0xFFFFFFFF)
        ip.write(0x14, buf.device_address >> 32)
        ip.write(0x1C, 1)
    with pytest.raises(DoubleError, match="input DMA idma0 started before output DMA odma0"):
        overlay.idma0.write(0x00, 1)
    overlay.odma0.write(0x14, 0)                       # a driver that forgets the high address word
    with pytest.raises(DoubleError, match="lies in no live buffer"):
        overlay.odma0.write(0x00, 1)


# -- refusals ------------------------------------------------------------------------------------

def test_tampered_bitstream_is_refused(monkeypatch, board_artifact):
    double = install_double(monkeypatch, board_artifact)
    bit = board_artifact / f"{NAME}.bit"
    data = bytearray(bit.read_bytes())
    data[10] ^= 0x01
    bit.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"{NAME}\.bit.*sha256 mismatch, expected [0-9a-f]{{64}}, "
                                            rf"actual {sha256_file(bit)}"):
        Accelerator.open(board_artifact, backend="pynq")
    assert not any(c[0] == "Overlay" for c in double.calls), "nothing may be loaded before the checks pass"


def test_missing_listed_file_is_refused(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    (board_artifact / "model.qonnx.onnx").unlink()
    with pytest.raises(ArtifactError, match="artifact file missing: .*model.qonnx.onnx"):
        Accelerator.open(board_artifact, backend="pynq")


def test_artifact_for_another_board_is_refused(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    monkeypatch.setenv("BOARD", "KV260")
    with pytest.raises(ArtifactError, match=r"this artifact is for Pynq-Z2 \(part xc7z020clg400-1.*"
                                            r"the board here is KV260"):
        Accelerator.open(board_artifact, backend="pynq")
    monkeypatch.delenv("BOARD")
    with pytest.raises(ArtifactError, match="BOARD environment variable is not set"):
        Accelerator.open(board_artifact, backend="pynq")


def test_board_names_compare_loosely(board_artifact):
    manifest = Manifest.load(board_artifact)
    for name in ("Pynq-Z2", "PYNQ_Z2", "pynq-z2", "PynqZ2"):
        manifest.check_board(name)
    with pytest.raises(ArtifactError, match="the board here is Pynq-Z1"):
        manifest.check_board("Pynq-Z1")


def test_missing_hwh_is_refused(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    (board_artifact / f"{NAME}.hwh").unlink()
    with pytest.raises(ArtifactError, match=rf"hardware handoff missing: .*{NAME}\.hwh"):
        Accelerator.open(board_artifact, backend="pynq")


def test_cpu_only_package_is_refused_with_the_hint(monkeypatch, dcgan_src, tmp_path):
    art = build_artifact(dcgan_src, tmp_path / "cpu-only", cpu_only=True)
    install_double(monkeypatch, art)
    with pytest.raises(ArtifactError, match=r"CPU-only package \(bitstream: null\).*backend='cpu'"):
        Accelerator.open(art, backend="pynq")
    with Accelerator.open(art) as acc:                  # auto falls back to the CPU
        assert acc.backend_name == "cpu"


def test_missing_dma_ip_lists_the_ips_present(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact, ip_names=("idma0", "StreamingDataflowPartition_1", "odma1"))
    with pytest.raises(ArtifactError, match="no output DMA 'odma0'.*StreamingDataflowPartition_1, idma0, odma1"):
        Accelerator.open(board_artifact, backend="pynq")


def test_manifest_disagreeing_with_the_model_is_refused(monkeypatch, dcgan_src, tmp_path):
    art = tmp_path / "bad"
    build_artifact(dcgan_src, art)
    manifest = json.loads((art / MANIFEST_NAME).read_text())
    manifest["packing"]["input"].update(shape_nhwc=[1, 1, 32], beats_per_frame=4)
    write_checked(art, manifest)
    install_double(monkeypatch, art)
    with pytest.raises(ArtifactError, match=r"packing.input.shape_nhwc is \[1, 1, 32\].*\[1, 1, 64\]"):
        Accelerator.open(art, backend="pynq")


@pytest.mark.parametrize("field, value, message", [
    ("model", "tryon", "bitstream of model 'tryon', but model.json describes 'dcgan'"),
    ("model_sha256", "1" * 64, "built from another model: model.qonnx.onnx has sha256"),
])
def test_bitstream_of_another_model_is_refused(monkeypatch, dcgan_src, tmp_path, field, value, message):
    art = tmp_path / "other"
    build_artifact(dcgan_src, art, **{field: value})
    install_double(monkeypatch, art)
    with pytest.raises(ArtifactError, match=message):
        Accelerator.open(art, backend="pynq")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(schema_version=2), "schema_version 2 is not supported"),
    (lambda m: m.pop("part"), "lacks required key.*part"),
    (lambda m: m.update(colour="red"), "unknown key.*colour"),
    (lambda m: m["packing"]["output"].update(beat_bytes=4), "take 3 bytes per beat.*beat_bytes 4"),
    (lambda m: m["packing"]["output"].update(beats_per_frame=7), "beats_per_frame 7"),
    (lambda m: m.update(bitstream="../elsewhere.bit"), "plain file name"),
])
def test_malformed_manifests_are_refused(board_artifact, edit, message):
    path = board_artifact / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=message):
        Manifest.load(board_artifact)


def test_write_manifest_hashes_every_other_file(board_artifact):
    written = json.loads((board_artifact / MANIFEST_NAME).read_text())
    expected = {f.name: sha256_file(f) for f in board_artifact.iterdir() if f.is_file() and f.name != MANIFEST_NAME}
    assert written["files"] == expected and f"{NAME}.bit" in expected and "model.json" in expected
    assert not [f for f in board_artifact.iterdir() if f.name.endswith(".tmp")]
    Manifest.load(board_artifact).verify_files()
    with pytest.raises(ArtifactError, match="schema_version"):   # invalid manifests are never written
        write_manifest(board_artifact, {**written, "schema_version": 7})
    assert json.loads((board_artifact / MANIFEST_NAME).read_text()) == written


# -- run-time errors -----------------------------------------------------------------------------

def test_dma_that_never_completes_times_out(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact, mode="hang")
    monkeypatch.setenv(TIMEOUT_ENV, "0.2")
    with Accelerator.open(board_artifact, backend="pynq") as acc:
        z = random_codes(acc, 1)
        t0 = time.monotonic()
        with pytest.raises(DmaTimeoutError, match=r"did not complete within 0\.7 s.*odma0.*status register "
                                                  r"0x00 = 0x1"):
            acc.run(z)
        assert time.monotonic() - t0 < 1.5
        with pytest.raises(BoardError, match="'odma0' is not idle"):
            acc.run(z)


def test_timeout_env_must_be_a_number(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{TIMEOUT_ENV}='soon' is not a number"):
        Accelerator.open(board_artifact, backend="pynq")


def test_wrong_input_shape_is_an_input_error(monkeypatch, board_artifact):
    install_double(monkeypatch, board_artifact)
    backend = PynqBackend(Artifact.load(board_artifact))
    try:
        with pytest.raises(InputError, match=r"frames of shape \(1, 1, 32\).*takes \(1, 1, 64\)"):
            backend.run(np.zeros((2, 32, 1, 1), np.int8))
        with pytest.raises(InputError, match=r"outside what 8 signed bits"):
            backend.run(np.full((1, 64, 1, 1), 200))
    finally:
        backend.close()
    with Accelerator.open(board_artifact, backend="pynq") as acc, pytest.raises(InputError, match="must have shape"):
        acc.run(np.zeros((2, 32, 1, 1), np.int8))


# -- the self-test -------------------------------------------------------------------------------

def test_selftest_passes_on_identical_codes(monkeypatch, board_artifact, capsys):
    install_double(monkeypatch, board_artifact)
    result = selftest(board_artifact, n=4, repeats=2)
    assert result.ok and result.mismatch is None and result.board == "Pynq-Z2"
    assert result.images_per_s > 0 and result.latency_ms > 0
    assert selftest_main([str(board_artifact), "--n", "4", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "identical on all 4 frames" in out and "images/s" in out and "ms (batch 1" in out and "PASS" in out


def test_selftest_reports_the_first_mismatch(monkeypatch, board_artifact, capsys):
    double = install_double(monkeypatch, board_artifact, mode="corrupt")
    assert selftest_main([str(board_artifact), "--n", "3", "--repeats", "1"]) == 1
    out = capsys.readouterr().out
    # the first run of the self-test is the one compared; the double corrupted the middle code
    # of its last frame: NHWC (64, 64, 3) element 6144 is h=32, w=0, c=0
    frame, (c, h, w) = 2, (0, 32, 0)
    assert double.corruptions[0] == (frame, (c, h, w))
    assert f"frame {frame} differs first at (c={c}, h={h}, w={w})" in out
    assert "(1 of 36864 codes differ)" in out and "FAIL" in out


def test_selftest_errors_exit_2(monkeypatch, board_artifact, capsys):
    install_double(monkeypatch, board_artifact)
    monkeypatch.setenv("BOARD", "ZCU104")
    assert selftest_main([str(board_artifact)]) == 2
    assert "the board here is ZCU104" in capsys.readouterr().err


# -- light imports -------------------------------------------------------------------------------

def test_board_modules_import_neither_torch_finn_nor_onnxruntime():
    code = ("import sys, fpga_gan.runtime, fpga_gan.runtime.board, fpga_gan.runtime.manifest, "
            "fpga_gan.runtime.selftest, fpga_gan.runtime.packing\n"
            "from fpga_gan.runtime.accelerator import _load_builtin_backends; _load_builtin_backends()\n"
            "bad = [m for m in ('torch', 'finn', 'brevitas', 'qonnx', 'onnxruntime', 'onnx', 'pynq', 'jsonschema')"
            " if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", f"the board runtime imported {out.stdout.strip()}"


# -- on a real board -----------------------------------------------------------------------------

@pytest.mark.board
def test_selftest_on_a_real_board():
    art = os.environ.get("FPGA_GAN_BOARD_ARTIFACT")
    if not art:
        pytest.skip("set FPGA_GAN_BOARD_ARTIFACT to a board artifact directory to run on a PYNQ board")
    result = selftest(art, n=16)
    assert result.ok, result.summary()
